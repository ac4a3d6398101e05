import { useEffect, useState } from "react";
import { CheckCircle2, Circle, CloudUpload, Loader2, XCircle } from "lucide-react";
import type { HomeCloud, HomeCloudRegion, HomeProvisionEvent } from "../api/types.gen";
import { isApiError } from "../api/client";
import { Button, Card, ConfirmDialog, ErrorState, FormActions, Loading, Notice, PageHeader, SelectField, TextField } from "../components/ui";
import { useToast } from "../components/toast";
import { formError } from "../lib/fieldErrors";
import { useCloud, useCloudAction, useCloudOptions, useCloudToken, useProvision } from "./queries";

const stepTitles: Record<string, string> = {
  keys: "Make the SSH key and the host key on this machine",
  "upload-key": "Upload the SSH key to DigitalOcean",
  "create-droplet": "Create the droplet",
  "wait-address": "Wait for its address",
  connect: "Connect over SSH (host key verified)",
  "upload-binary": "Upload the relay program",
  install: "Install the relay",
  "download-p12": "Download the admin certificate",
  register: "Add the relay to this machine's servers",
  "delete-key": "Delete the SSH key from DigitalOcean",
};

const money = (n: number, digits = 2) => `$${n.toFixed(digits)}`;

export function CloudPage() {
  const cloud = useCloud();
  return (
    <>
      <PageHeader title="New relay on DigitalOcean" description="Create a droplet and install Portlama on it, without a terminal." />
      {cloud.isPending ? (
        <Loading />
      ) : isApiError(cloud.error, 503) ? (
        <Notice tone="warning" title="Provisioning is not available">
          <p>{cloud.error.message} Start the UI with <code>--relay-binary</code> pointing at the portlama program for Linux (amd64).</p>
        </Notice>
      ) : cloud.error ? (
        <ErrorState error={cloud.error} retry={() => cloud.refetch()} what="Provisioning" />
      ) : (
        <CloudBody cloud={cloud.data} />
      )}
    </>
  );
}

function CloudBody({ cloud }: { cloud: HomeCloud }) {
  const [changeToken, setChangeToken] = useState(false);
  if (!cloud.tokenSaved || changeToken) return <TokenForm onSaved={() => setChangeToken(false)} />;
  if (cloud.job || cloud.running) return <JobView cloud={cloud} />;
  return (
    <div className="space-y-4">
      <ChooseForm />
      <Button size="sm" variant="ghost" onClick={() => setChangeToken(true)}>
        Use another API token
      </Button>
    </div>
  );
}

function TokenForm({ onSaved }: { onSaved: () => void }) {
  const save = useCloudToken();
  const toast = useToast();
  const [token, setToken] = useState("");
  const [err, setErr] = useState("");
  return (
    <Card title="DigitalOcean API token" id="token">
      <form
        className="space-y-3"
        onSubmit={async (e) => {
          e.preventDefault();
          setErr("");
          try {
            const acct = await save.mutateAsync(token.trim());
            setToken("");
            toast(`Token accepted for ${acct.email}`);
            onSaved();
          } catch (ex) {
            setErr(formError(ex).form);
          }
        }}
      >
        <TextField
          label="API token"
          name="token"
          type="password"
          autoComplete="off"
          value={token}
          onChange={setToken}
          required
          hint="In the DigitalOcean control panel: API → Generate New Token, with read and write scope. It is checked now and kept only in this machine's keychain."
        />
        <FormActions error={err}>
          <Button type="submit" variant="primary" loading={save.isPending} disabled={!token.trim()}>
            Check and save
          </Button>
        </FormActions>
      </form>
    </Card>
  );
}

function sizeLabel(s: HomeCloudRegion["sizes"][number]) {
  return `${s.memoryMb >= 1024 ? `${s.memoryMb / 1024} GB` : `${s.memoryMb} MB`}, ${s.vcpus} vCPU, ${s.diskGb} GB disk — ${money(s.priceMonthly)}/month (${money(s.priceHourly, 5)}/hour)`;
}

function ChooseForm() {
  const options = useCloudOptions(true);
  const start = useProvision();
  const [name, setName] = useState("relay");
  const [region, setRegion] = useState("");
  const [size, setSize] = useState("");
  const [err, setErr] = useState("");
  const regions = options.data?.regions ?? [];
  const current = regions.find((r) => r.slug === region);
  useEffect(() => {
    if (!region && regions.length) {
      setRegion(regions[0].slug);
      setSize(regions[0].suggested);
    }
  }, [region, regions]);
  if (options.isPending) return <Loading />;
  if (options.error) return <ErrorState error={options.error} retry={() => options.refetch()} what="The regions and sizes" />;
  const chosen = current?.sizes.find((s) => s.slug === size);
  return (
    <Card title="Region and size" id="choose">
      <form
        className="space-y-3"
        onSubmit={async (e) => {
          e.preventDefault();
          setErr("");
          try {
            await start.mutateAsync({ name: name.trim(), region, size });
          } catch (ex) {
            setErr(formError(ex).form);
          }
        }}
      >
        <TextField label="Name" name="name" value={name} onChange={setName} required hint="The droplet's name and the relay's name on this machine (lower-case letters, digits, hyphens)." />
        <SelectField
          label="Region"
          name="region"
          value={region}
          onChange={(v) => {
            setRegion(v);
            setSize(regions.find((r) => r.slug === v)?.suggested ?? "");
          }}
          options={regions.map((r) => ({ value: r.slug, label: `${r.name} (${r.slug})` }))}
        />
        <SelectField
          label="Size"
          name="size"
          value={size}
          onChange={setSize}
          options={(current?.sizes ?? []).map((s) => ({ value: s.slug, label: sizeLabel(s) + (s.slug === current?.suggested ? " — suggested" : "") }))}
          hint="512 MB is enough for a relay; the cheapest such size is preselected."
        />
        {chosen && (
          <p className="text-sm text-zinc-700 dark:text-zinc-300">
            Costs {money(chosen.priceMonthly)} a month ({money(chosen.priceHourly, 5)} an hour) on your DigitalOcean account until you destroy it.
          </p>
        )}
        <FormActions error={err}>
          <Button type="submit" variant="primary" loading={start.isPending} disabled={!name.trim() || !size} icon={<CloudUpload aria-hidden className="size-4" />}>
            Create the relay
          </Button>
        </FormActions>
      </form>
    </Card>
  );
}

/** latestTasks keeps the installer's latest status per task, in order. */
function latestTasks(events: HomeProvisionEvent[]) {
  const tasks = new Map<string, HomeProvisionEvent>();
  for (const e of events) if (e.task) tasks.set(e.task, e);
  return [...tasks.values()];
}

function StepIcon({ state }: { state: "done" | "running" | "failed" | "todo" }) {
  if (state === "done") return <CheckCircle2 aria-hidden className="mt-0.5 size-4 shrink-0 text-green-700 dark:text-green-400" />;
  if (state === "failed") return <XCircle aria-hidden className="mt-0.5 size-4 shrink-0 text-red-700 dark:text-red-400" />;
  if (state === "running") return <Loader2 aria-hidden className="mt-0.5 size-4 shrink-0 animate-spin" />;
  return <Circle aria-hidden className="mt-0.5 size-4 shrink-0 text-zinc-400" />;
}

function JobView({ cloud }: { cloud: HomeCloud }) {
  const act = useCloudAction();
  const toast = useToast();
  const [confirm, setConfirm] = useState<"destroy" | "close-port-22" | null>(null);
  const [err, setErr] = useState("");
  const job = cloud.job;
  const next = job?.step ?? "keys";
  const nextIndex = cloud.steps.indexOf(next);
  const failed = !cloud.running && !!job?.error;
  const run = async (a: "resume" | "destroy" | "close-port-22" | "finish", done: string) => {
    setErr("");
    try {
      await act.mutateAsync(a);
      toast(done);
    } catch (ex) {
      setErr(formError(ex).form);
    }
  };
  const tasks = latestTasks(cloud.events);
  return (
    <div className="grid gap-6 lg:grid-cols-2">
      <Card title={job ? `Relay ${job.name}` : "Starting"} id="progress" className="self-start">
        <ol className="space-y-1 text-sm" aria-label="Provisioning progress" aria-live="polite">
          {cloud.steps
            .filter((s) => s !== "done")
            .map((s, i) => {
              const state = i < nextIndex ? "done" : i === nextIndex ? (cloud.running ? "running" : failed ? "failed" : "todo") : "todo";
              return (
                <li key={s} className="flex items-start gap-2">
                  <StepIcon state={state} />
                  <span>{stepTitles[s] ?? s}</span>
                </li>
              );
            })}
        </ol>
        {tasks.length > 0 && (
          <details className="mt-3 text-sm" open={cloud.running && next === "install"}>
            <summary className="cursor-pointer font-medium">Install tasks</summary>
            <ul className="mt-1 space-y-0.5" aria-label="Install tasks">
              {tasks.map((t) => (
                <li key={t.task} className="flex items-start gap-2">
                  <StepIcon state={t.taskStatus === "running" ? (cloud.running ? "running" : "failed") : t.taskStatus === "failed" ? "failed" : "done"} />
                  <span>{t.message || t.task}</span>
                </li>
              ))}
            </ul>
          </details>
        )}
      </Card>
      <div className="space-y-4">
        {failed && job && (
          <Notice tone="danger" title="Provisioning stopped">
            <p>{job.error || cloud.error}</p>
            {job.dropletId ? (
              <p className="mt-2 font-medium">
                The droplet {job.name} exists and costs {money(job.priceHourly, 5)} an hour ({money(job.priceMonthly)} a month). Resume to carry on, or destroy it.
              </p>
            ) : null}
          </Notice>
        )}
        {job?.step === "done" && (
          <Notice tone="success" title="The relay is ready">
            <p>
              {job.name} runs at {job.ip}; its panel is <a className="underline" href={job.panelUrl}>{job.panelUrl}</a> and it is on the Servers page with its admin certificate. The SSH key was deleted from your DigitalOcean account.
            </p>
            {job.port22Closed ? <p className="mt-2">Port 22 (SSH) is closed on its firewall.</p> : null}
          </Notice>
        )}
        <FormActions error={err}>
          {failed && (
            <Button variant="primary" loading={act.isPending && act.variables === "resume"} onClick={() => run("resume", "Resuming")}>
              Resume
            </Button>
          )}
          {job?.step === "done" && !job.port22Closed && <Button onClick={() => setConfirm("close-port-22")}>Close port 22…</Button>}
          {job?.step === "done" && (
            <Button variant="ghost" loading={act.isPending && act.variables === "finish"} onClick={() => run("finish", "Done")}>
              Dismiss
            </Button>
          )}
          {!cloud.running && job && (job.dropletId || job.step !== "done") ? (
            <Button variant="danger" onClick={() => setConfirm("destroy")}>
              Destroy the droplet…
            </Button>
          ) : null}
        </FormActions>
      </div>
      <ConfirmDialog
        open={confirm === "destroy"}
        title={`Destroy ${job?.name ?? "the droplet"}?`}
        confirmLabel="Destroy"
        onClose={() => setConfirm(null)}
        onConfirm={() => act.mutateAsync("destroy").then(() => toast("Droplet destroyed"))}
      >
        The droplet and everything on it are deleted from your DigitalOcean account; it stops costing money. If the relay was added to the Servers page, remove it there too.
      </ConfirmDialog>
      <ConfirmDialog
        open={confirm === "close-port-22"}
        title="Close port 22?"
        confirmLabel="Close port 22"
        onClose={() => setConfirm(null)}
        onConfirm={() => act.mutateAsync("close-port-22").then(() => toast("Port 22 closed"))}
      >
        Nobody can log in over SSH afterwards; you manage the relay from its panel. To open it again, run portlama install from DigitalOcean's droplet console.
      </ConfirmDialog>
    </div>
  );
}
