import { useState } from "react";
import { Link } from "wouter";
import { Plus, Radar, RefreshCw, SlidersHorizontal } from "lucide-react";
import type { HomeService } from "../api/types.gen";
import { Badge, Button, Card, Dialog, Empty, ErrorState, FormActions, Loading, PageHeader, TextField } from "../components/ui";
import { AccessFields, accessFrom, accessRequest, type Access } from "./AccessFields";
import { useToast } from "../components/toast";
import { checkSubdomain, formError } from "../lib/fieldErrors";
import { useCreateTunnel, useServices, useStatus } from "./queries";
import { NeedsServer } from "./HomeApp";

export function AppsPage() {
  const status = useStatus();
  const services = useServices();
  const canTunnel = status.data?.server?.kind === "agent";
  return (
    <>
      <PageHeader
        title="Apps on this machine"
        description="Web apps listening on this computer. Turn one into a tunnel to reach it from anywhere through your relay."
        actions={
          <Button icon={<RefreshCw aria-hidden className="size-4" />} loading={services.isFetching} onClick={() => services.refetch()}>
            Scan again
          </Button>
        }
      />
      {!status.data?.server && (
        <div className="mb-4">
          <NeedsServer />
        </div>
      )}
      {services.isPending ? (
        <Loading label="Looking for apps" />
      ) : services.error ? (
        <ErrorState error={services.error} retry={() => services.refetch()} what="The app list" />
      ) : services.data.services.length === 0 ? (
        <Empty title="No apps found" icon={<Radar aria-hidden className="size-6" />}>
          Start a web app (a dev server, Jupyter, Home Assistant, …) and scan again.
        </Empty>
      ) : (
        <ServiceList services={services.data.services} canTunnel={canTunnel} />
      )}
    </>
  );
}

/** Web pages first; listeners that answer no page (or an error) fold away. */
function ServiceList({ services, canTunnel }: { services: HomeService[]; canTunnel: boolean }) {
  const [all, setAll] = useState(false);
  const pages = services.filter((s) => s.tunnel || (s.http && (s.status ?? 0) < 400));
  const others = services.filter((s) => !pages.includes(s));
  const shown = all ? [...pages, ...others] : pages;
  return (
    <>
      {shown.length === 0 && !all && (
        <Empty title="No web pages found" icon={<Radar aria-hidden className="size-6" />}>
          Nothing here answers with a page yet. Start your app, or show the other listeners below.
        </Empty>
      )}
      <ul className="grid gap-4 md:grid-cols-2">
        {shown.map((s) => (
          <li key={s.port}>
            <ServiceCard service={s} canTunnel={canTunnel} />
          </li>
        ))}
      </ul>
      {others.length > 0 && (
        <div className="mt-4">
          <Button variant="ghost" aria-expanded={all} onClick={() => setAll(!all)}>
            {all ? "Hide other listeners" : `Show ${others.length} other listener${others.length === 1 ? "" : "s"} (no page or an error)`}
          </Button>
        </div>
      )}
    </>
  );
}

function ServiceCard({ service: s, canTunnel }: { service: HomeService; canTunnel: boolean }) {
  const create = useCreateTunnel();
  const toast = useToast();
  const [custom, setCustom] = useState(false);
  const [err, setErr] = useState("");
  const name = s.appName || s.title || s.process || `Port ${s.port}`;
  const oneClick = async () => {
    setErr("");
    try {
      const t = await create.mutateAsync({ subdomain: s.subdomain, port: s.port, accessMode: s.access });
      toast(`Tunnel created: https://${t.fqdn}`);
    } catch (e) {
      setErr(formError(e).form);
    }
  };
  return (
    <Card>
      <div className="flex items-start justify-between gap-3">
        <div className="min-w-0">
          <h2 className="truncate text-base font-semibold">{name}</h2>
          <p className="mt-0.5 truncate text-sm text-zinc-600 dark:text-zinc-400">
            localhost:{s.port}
            {s.process && ` · ${s.process}`}
            {s.pid ? ` (pid ${s.pid})` : ""}
          </p>
          {s.title && s.title !== name && <p className="mt-1 truncate text-sm">{s.title}</p>}
        </div>
        <div className="flex shrink-0 flex-wrap justify-end gap-1">
          {s.http ? <Badge tone="teal">HTTP {s.status}</Badge> : <Badge>No HTTP answer</Badge>}
          {s.tunnel && <Badge tone="green">Tunnelled</Badge>}
        </div>
      </div>
      <div className="mt-4 flex flex-wrap items-center gap-2">
        {s.tunnel ? (
          <p className="text-sm">
            Served as <span className="font-medium">{s.tunnel}</span> —{" "}
            <Link href="/tunnels" className="underline">
              see Tunnels
            </Link>
          </p>
        ) : (
          <>
            <Button
              variant="primary"
              icon={<Plus aria-hidden className="size-4" />}
              disabled={!canTunnel}
              loading={create.isPending}
              onClick={oneClick}
              aria-label={`Tunnel as ${s.subdomain}: ${name}`}
            >
              Tunnel as {s.subdomain}
            </Button>
            <Button icon={<SlidersHorizontal aria-hidden className="size-4" />} disabled={!canTunnel} onClick={() => setCustom(true)} aria-label={`Options… for ${name}`}>
              Options…
            </Button>
          </>
        )}
      </div>
      {err && (
        <p role="alert" className="mt-2 text-sm text-red-700 dark:text-red-300">
          {err}
        </p>
      )}
      {custom && <CustomTunnelDialog service={s} name={name} onClose={() => setCustom(false)} />}
    </Card>
  );
}

function CustomTunnelDialog({ service: s, name, onClose }: { service: HomeService; name: string; onClose: () => void }) {
  const create = useCreateTunnel();
  const toast = useToast();
  const [sub, setSub] = useState(s.subdomain);
  const [access, setAccess] = useState<Access>(accessFrom(s.access));
  const [err, setErr] = useState("");
  const subErr = checkSubdomain(sub);
  const submit = async () => {
    setErr("");
    try {
      const t = await create.mutateAsync({ subdomain: sub, port: s.port, ...accessRequest(access) });
      toast(`Tunnel created: https://${t.fqdn}`);
      onClose();
    } catch (e) {
      setErr(formError(e).form);
    }
  };
  return (
    <Dialog
      open
      onClose={onClose}
      title={`Tunnel ${name}`}
      footer={
        <FormActions error={err}>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" loading={create.isPending} disabled={!!subErr} onClick={submit}>
            Create tunnel
          </Button>
        </FormActions>
      }
    >
      <div className="space-y-4">
        <TextField label="Subdomain" value={sub} onChange={setSub} error={sub ? subErr : undefined} hint="The address becomes https://<subdomain>.<your domain>." />
        <AccessFields value={access} onChange={setAccess} />
      </div>
    </Dialog>
  );
}
