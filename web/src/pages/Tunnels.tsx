import { useMemo, useState } from "react";
import { Link } from "wouter";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Cable, ExternalLink, Pencil, Plus, Search, Trash2 } from "lucide-react";
import { del, patch, post, seg } from "../api/client";
import { activeAgents, keys, useAgents, useOnboarding, useTunnels } from "../api/queries";
import type { CreateTunnelRequest, Tunnel, TunnelResponse, UpdateTunnelRequest } from "../api/types.gen";
import { AccessPicker, accessLabel, type Access } from "../components/AccessPicker";
import { useToast } from "../components/toast";
import { Badge, Button, Card, ConfirmDialog, Dialog, Empty, ErrorState, FormActions, Loading, Notice, PageHeader, Pagination, SelectField, Switch, TextField, usePaged } from "../components/ui";
import { checkPort, checkSubdomain, formError, patterns, type FieldErrors, type MessageRule } from "../lib/fieldErrors";
import { hostURL, relativeTime } from "../lib/format";

export const pageSize = 25;

const tunnelRules: MessageRule[] = [
  [/^Subdomain|subdomain must be|DNS for '/, "subdomain"],
  [/^Port \d+ is already in use/, "port"],
  [/^Unknown agent|agentLabel is required|Agents can only create/, "agentLabel"],
  [/access mode/i, "accessMode"],
];

export function Tunnels() {
  const tunnels = useTunnels();
  const [creating, setCreating] = useState(false);
  const [query, setQuery] = useState("");
  const list = useMemo(() => {
    const q = query.trim().toLowerCase();
    const all = tunnels.data ?? [];
    return q ? all.filter((t) => t.fqdn.includes(q) || t.agentLabel.includes(q) || (t.description ?? "").toLowerCase().includes(q)) : all;
  }, [tunnels.data, query]);
  return (
    <>
      <PageHeader
        title="Tunnels"
        description="Each tunnel puts an app from a home machine on a subdomain of your relay, behind the login you choose."
        actions={
          <Button variant="primary" icon={<Plus aria-hidden className="size-4" />} onClick={() => setCreating(true)}>
            New tunnel
          </Button>
        }
      />
      <TunnelDialog open={creating} onClose={() => setCreating(false)} />
      <Card>
        {tunnels.isPending ? (
          <Loading label="Loading tunnels" />
        ) : tunnels.isError ? (
          <ErrorState what="Tunnels" error={tunnels.error} retry={() => tunnels.refetch()} />
        ) : tunnels.data.length === 0 ? (
          <Empty title="No tunnels yet" icon={<Cable className="size-8" />}>
            Create one to reach an app on a home machine at <em>name.your-domain</em>. An agent must be connected first:{" "}
            <Link href="/agents" className="font-medium text-teal-700 underline dark:text-teal-400">
              connect an agent
            </Link>
            .
          </Empty>
        ) : (
          <TunnelTable tunnels={list} all={tunnels.data.length} query={query} setQuery={setQuery} />
        )}
      </Card>
      <p className="mt-4 text-sm text-zinc-600 dark:text-zinc-400">
        Tunnels are carried by an agent on the home machine.{" "}
        <Link href="/agents" className="font-medium text-teal-700 underline dark:text-teal-400">
          Connect an agent
        </Link>{" "}
        with a one-time enrollment token.
      </p>
    </>
  );
}

export function TunnelTable({ tunnels, all, query, setQuery }: { tunnels: Tunnel[]; all: number; query: string; setQuery: (q: string) => void }) {
  const paged = usePaged(tunnels, pageSize);
  const [editing, setEditing] = useState<Tunnel | null>(null);
  const [deleting, setDeleting] = useState<Tunnel | null>(null);
  const qc = useQueryClient();
  const toast = useToast();
  const { data: ob } = useOnboarding();
  const toggle = useMutation({
    mutationFn: (t: Tunnel) => patch<TunnelResponse>(`/api/tunnels/${seg(t.id)}`, { enabled: t.enabled === false } satisfies UpdateTunnelRequest),
    onSuccess: (r) => {
      qc.setQueryData<Tunnel[]>(keys.tunnels, (old) => old?.map((t) => (t.id === r.tunnel.id ? r.tunnel : t)));
      toast(`${r.tunnel.fqdn} ${r.tunnel.enabled === false ? "disabled" : "enabled"}`);
    },
  });
  return (
    <>
      <div className="mb-3 flex flex-wrap items-center justify-between gap-3">
        <div className="relative w-full max-w-xs">
          <Search aria-hidden className="pointer-events-none absolute top-2.5 left-2.5 size-4 text-zinc-500" />
          <input
            type="search"
            aria-label="Filter tunnels"
            placeholder="Filter by name, agent, description"
            value={query}
            onChange={(e) => {
              setQuery(e.target.value);
              paged.setPage(1);
            }}
            className="block w-full rounded-md border-0 bg-white py-2 pr-3 pl-8 text-sm ring-1 ring-inset ring-zinc-300 placeholder:text-zinc-500 focus:ring-2 focus:ring-teal-600 dark:bg-zinc-950 dark:ring-zinc-700"
          />
        </div>
        <span className="text-sm text-zinc-600 dark:text-zinc-400">{query ? `${tunnels.length.toLocaleString("en")} of ${all.toLocaleString("en")} tunnels` : `${all.toLocaleString("en")} tunnels`}</span>
      </div>
      {toggle.isError && <Notice tone="danger">{toggle.error.message}</Notice>}
      {tunnels.length === 0 ? (
        <Empty title="No tunnel matches the filter" />
      ) : (
        <div className="-mx-4 overflow-x-auto">
          <table className="w-full min-w-[44rem] text-left text-sm">
            <thead className="border-b border-zinc-200 text-xs text-zinc-600 uppercase dark:border-zinc-800 dark:text-zinc-400">
              <tr>
                <th scope="col" className="px-4 py-2 font-medium">Address</th>
                <th scope="col" className="px-4 py-2 font-medium">Agent</th>
                <th scope="col" className="px-4 py-2 font-medium">Relay → target</th>
                <th scope="col" className="px-4 py-2 font-medium">Access</th>
                <th scope="col" className="px-4 py-2 font-medium">Enabled</th>
                <th scope="col" className="px-4 py-2 font-medium"><span className="sr-only">Actions</span></th>
              </tr>
            </thead>
            <tbody className="divide-y divide-zinc-200 dark:divide-zinc-800">
              {paged.rows.map((t) => (
                <tr key={t.id} data-testid="tunnel-row">
                  <td className="px-4 py-2.5">
                    <a href={hostURL(t.fqdn, ob?.httpsPort)} target="_blank" rel="noreferrer noopener" className="inline-flex items-center gap-1 font-medium text-teal-700 hover:underline dark:text-teal-400">
                      {t.fqdn}
                      <ExternalLink aria-hidden className="size-3.5" />
                      <span className="sr-only">(opens in a new tab)</span>
                    </a>
                    {t.description && <p className="max-w-xs truncate text-xs text-zinc-600 dark:text-zinc-400">{t.description}</p>}
                    <p className="text-xs text-zinc-600 dark:text-zinc-400">created {relativeTime(t.createdAt)}</p>
                  </td>
                  <td className="px-4 py-2.5 font-mono text-xs">{t.agentLabel}</td>
                  <td className="px-4 py-2.5 font-mono text-xs whitespace-nowrap">
                    {t.relayPort} → {t.targetHost.includes(":") ? `[${t.targetHost}]` : t.targetHost}:{t.port}
                  </td>
                  <td className="px-4 py-2.5">
                    <Badge tone={t.type === "panel" ? "blue" : t.accessMode === "public" ? "amber" : t.accessMode === "restricted" ? "teal" : "green"}>{accessLabel(t.accessMode)}</Badge>
                    {t.accessMode === "restricted" && (
                      <p className="mt-0.5 text-xs text-zinc-600 dark:text-zinc-400">
                        {[...(t.allowedUsers ?? []), ...(t.allowedGroups ?? []).map((g) => `@${g}`)].join(", ") || "nobody"}
                      </p>
                    )}
                  </td>
                  <td className="px-4 py-2.5">
                    <Switch checked={t.enabled !== false} label={`Enable ${t.fqdn}`} disabled={toggle.isPending && toggle.variables?.id === t.id} onChange={() => toggle.mutate(t)} />
                  </td>
                  <td className="px-4 py-2.5">
                    <div className="flex justify-end gap-1">
                      {t.type !== "panel" && (
                        <Button size="sm" variant="ghost" aria-label={`Edit access of ${t.fqdn}`} onClick={() => setEditing(t)} icon={<Pencil aria-hidden className="size-4" />} />
                      )}
                      <Button size="sm" variant="ghost" aria-label={`Delete ${t.fqdn}`} onClick={() => setDeleting(t)} icon={<Trash2 aria-hidden className="size-4 text-red-700 dark:text-red-400" />} />
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pagination page={paged.page} pages={paged.pages} onPage={paged.setPage} total={paged.total} from={paged.from} to={paged.to} />
      {editing && <AccessDialog tunnel={editing} onClose={() => setEditing(null)} />}
      <ConfirmDialog
        open={!!deleting}
        title="Delete tunnel?"
        confirmLabel="Delete tunnel"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await del(`/api/tunnels/${seg(deleting.id)}`);
          qc.setQueryData<Tunnel[]>(keys.tunnels, (old) => old?.filter((t) => t.id !== deleting.id));
          toast(`${deleting.fqdn} deleted`);
        }}
      >
        <p>
          <strong>{deleting?.fqdn}</strong> stops answering at once and its address is freed. The app on the home machine is not touched.
        </p>
      </ConfirmDialog>
    </>
  );
}


function AccessDialog({ tunnel, onClose }: { tunnel: Tunnel; onClose: () => void }) {
  const [access, setAccess] = useState<Access>({ accessMode: tunnel.accessMode ?? "authenticated", allowedUsers: tunnel.allowedUsers ?? [], allowedGroups: tunnel.allowedGroups ?? [] });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const m = useMutation({
    mutationFn: () => patch<TunnelResponse>(`/api/tunnels/${seg(tunnel.id)}`, access satisfies UpdateTunnelRequest),
    onSuccess: (r) => {
      qc.setQueryData<Tunnel[]>(keys.tunnels, (old) => old?.map((t) => (t.id === r.tunnel.id ? r.tunnel : t)));
      toast(`Access of ${r.tunnel.fqdn} updated`);
      onClose();
    },
    onError: (e) => {
      const fe = formError(e, tunnelRules);
      setErrors(fe.fields);
      setFormErr(fe.form);
    },
  });
  return (
    <Dialog open onClose={onClose} title={`Access to ${tunnel.fqdn}`} wide>
      <form
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          m.mutate();
        }}
      >
        <AccessPicker value={access} onChange={setAccess} errors={errors} />
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending}>
            Save access
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}

export function TunnelDialog({ open, onClose }: { open: boolean; onClose: () => void }) {
  return open ? <TunnelForm onClose={onClose} /> : null;
}

function TunnelForm({ onClose }: { onClose: () => void }) {
  const { data: ob } = useOnboarding();
  const agents = useAgents();
  const active = activeAgents(agents.data);
  const [subdomain, setSubdomain] = useState("");
  const [agent, setAgent] = useState("");
  const [port, setPort] = useState("");
  const [targetHost, setTargetHost] = useState("127.0.0.1");
  const [description, setDescription] = useState("");
  const [access, setAccess] = useState<Access>({ accessMode: "authenticated", allowedUsers: [], allowedGroups: [] });
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const agentValue = agent || (active.length === 1 ? active[0].label : "");

  const m = useMutation({
    mutationFn: (body: CreateTunnelRequest) => post<TunnelResponse>("/api/tunnels", body),
    onSuccess: (r) => {
      qc.setQueryData<Tunnel[]>(keys.tunnels, (old) => [r.tunnel, ...(old ?? [])]);
      qc.invalidateQueries({ queryKey: keys.tunnels });
      toast(`${r.tunnel.fqdn} created`);
      onClose();
    },
    onError: (e) => {
      const fe = formError(e, tunnelRules);
      setErrors(fe.fields);
      setFormErr(fe.form);
    },
  });

  const submit = () => {
    const errs: FieldErrors = {};
    const s = checkSubdomain(subdomain);
    if (s) errs.subdomain = s;
    const p = checkPort(port);
    if (p) errs.port = p;
    if (!agentValue) errs.agentLabel = active.length ? "Choose the agent that carries this tunnel." : "No agent is connected yet.";
    if (targetHost && !patterns.targetHost.test(targetHost)) errs.targetHost = "A host name or IP address, without port or scheme.";
    if (description.length > 200) errs.description = "At most 200 characters.";
    setErrors(errs);
    setFormErr("");
    if (Object.keys(errs).length) return;
    const body: CreateTunnelRequest = { subdomain, port: Number(port), agentLabel: agentValue, accessMode: access.accessMode };
    if (targetHost && targetHost !== "127.0.0.1") body.targetHost = targetHost;
    if (description) body.description = description;
    if (access.accessMode === "restricted") {
      body.allowedUsers = access.allowedUsers;
      body.allowedGroups = access.allowedGroups;
    }
    m.mutate(body);
  };

  return (
    <Dialog open onClose={onClose} title="New tunnel" wide>
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <TextField label="Subdomain" name="subdomain" autoFocus autoComplete="off" spellCheck={false} value={subdomain} onChange={(v) => setSubdomain(v.toLowerCase())} suffix={`.${ob?.domain ?? "your-domain"}`} error={errors.subdomain} hint="Lower-case letters, digits and hyphens." />
        <div className="grid gap-4 sm:grid-cols-2">
          {agents.isPending ? (
            <Loading label="Loading agents" />
          ) : agents.isError ? (
            <ErrorState what="Agents" error={agents.error} retry={() => agents.refetch()} />
          ) : active.length === 0 ? (
            <Notice tone="warning" title="No agent connected">
              A tunnel needs an agent on the home machine.{" "}
              <Link href="/agents" className="font-medium underline">
                Connect one first
              </Link>
              .
            </Notice>
          ) : (
            <SelectField
              label="Agent"
              name="agentLabel"
              value={agentValue}
              onChange={setAgent}
              error={errors.agentLabel}
              hint="The home machine that runs the app."
              options={[...(active.length > 1 ? [{ value: "", label: "Choose an agent" }] : []), ...active.map((a) => ({ value: a.label, label: a.label }))]}
            />
          )}
          <TextField label="Local port" name="port" inputMode="numeric" value={port} onChange={setPort} error={errors.port} hint="Where the app listens on that machine (1024–65535)." />
        </div>
        <details className="rounded-md ring-1 ring-zinc-200 dark:ring-zinc-800" open={!!errors.targetHost || !!errors.description}>
          <summary className="cursor-pointer px-3 py-2 text-sm font-medium">Advanced</summary>
          <div className="grid gap-4 px-3 pb-3 sm:grid-cols-2">
            <TextField label="Target host" name="targetHost" value={targetHost} onChange={setTargetHost} error={errors.targetHost} hint="Where the agent connects; another machine on its network works too." />
            <TextField label="Description" name="description" value={description} onChange={setDescription} error={errors.description} hint="Optional, up to 200 characters." />
          </div>
        </details>
        <AccessPicker value={access} onChange={setAccess} errors={errors} />
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending} disabled={active.length === 0 && !agents.isPending}>
            Create tunnel
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}
