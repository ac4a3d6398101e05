import { useState } from "react";
import { CheckCircle2, Loader2, Plus, Trash2, Upload, XCircle } from "lucide-react";
import type { HomeServer, HomeSetupStep } from "../api/types.gen";
import { Badge, Button, Card, ConfirmDialog, Empty, ErrorState, FormActions, Loading, Notice, PageHeader, TextField } from "../components/ui";
import { useToast } from "../components/toast";
import { formError } from "../lib/fieldErrors";
import { useAddServer, useImportP12, useRemoveServer, useServers, useStatus, useUseServer } from "./queries";

export function ServersPage() {
  const servers = useServers();
  const status = useStatus();
  const use = useUseServer();
  const remove = useRemoveServer();
  const toast = useToast();
  const [removing, setRemoving] = useState<HomeServer | null>(null);
  const [warning, setWarning] = useState("");
  return (
    <>
      <PageHeader title="Servers" description="The relays this machine uses. Tunnels run on the current one." />
      {status.data?.keychainError && (
        <div className="mb-4">
          <Notice tone="warning" title="No keychain">
            <p>{status.data.keychainError}</p>
          </Notice>
        </div>
      )}
      {warning && (
        <div className="mb-4">
          <Notice tone="warning" title="Removed here, but not revoked on the relay">
            <p>{warning}</p>
          </Notice>
        </div>
      )}
      <div className="grid gap-6 lg:grid-cols-2">
        <Card title="Relays" id="relays" className="self-start">
          {servers.isPending ? (
            <Loading />
          ) : servers.error ? (
            <ErrorState error={servers.error} retry={() => servers.refetch()} what="The relays" />
          ) : servers.data.servers.length === 0 ? (
            <Empty title="No relay yet">Add one with an enrollment token.</Empty>
          ) : (
            <ul className="divide-y divide-zinc-200 dark:divide-zinc-800">
              {servers.data.servers.map((s) => (
                <li key={s.id} className="flex flex-wrap items-center justify-between gap-2 py-3">
                  <div className="min-w-0">
                    <p className="flex items-center gap-2 font-medium">
                      {s.id}
                      {s.current && <Badge tone="teal">Current</Badge>}
                      <Badge>{s.kind === "agent" ? "This machine" : "Admin certificate"}</Badge>
                    </p>
                    <p className="truncate text-sm text-zinc-600 dark:text-zinc-400">{s.panelUrl}</p>
                  </div>
                  <div className="flex gap-2">
                    {!s.current && (
                      <Button size="sm" loading={use.isPending && use.variables === s.id} onClick={() => use.mutate(s.id, { onSuccess: () => toast(`Now using ${s.id}`) })}>
                        Use
                      </Button>
                    )}
                    <Button size="sm" variant="ghost" aria-label={`Remove ${s.id}`} icon={<Trash2 aria-hidden className="size-4" />} onClick={() => setRemoving(s)}>
                      Remove
                    </Button>
                  </div>
                </li>
              ))}
            </ul>
          )}
        </Card>
        <div className="space-y-6">
          <AddByToken />
          <ImportP12 disabled={!!status.data?.keychainError} />
        </div>
      </div>
      <ConfirmDialog
        open={!!removing}
        title={`Remove ${removing?.id ?? "server"}?`}
        confirmLabel="Remove"
        onClose={() => setRemoving(null)}
        onConfirm={async () => {
          if (!removing) return;
          const r = await remove.mutateAsync(removing.id);
          setWarning(r.warning ?? "");
          toast(r.revoked ? `Removed ${removing.id}; its certificate was revoked on the relay` : `Removed ${removing.id}`);
        }}
      >
        {removing?.kind === "agent"
          ? "This machine's certificate is revoked on the relay and its tunnels stop. To use the relay again you need a new enrollment token."
          : "The admin certificate and its password are deleted from this machine."}
      </ConfirmDialog>
    </>
  );
}

/** Steps shows each setup step once, with its latest status, as it runs. */
function Steps({ steps }: { steps: HomeSetupStep[] }) {
  if (!steps.length) return null;
  const latest = new Map<string, HomeSetupStep>();
  for (const s of steps) if (s.step !== "complete") latest.set(s.step, { ...latest.get(s.step), ...s, message: s.message || latest.get(s.step)?.message });
  return (
    <ol className="space-y-1 text-sm" aria-label="Setup progress" aria-live="polite">
      {[...latest.values()].map((s) => (
        <li key={s.step} className="flex items-start gap-2">
          {s.status === "done" ? (
            <CheckCircle2 aria-hidden className="mt-0.5 size-4 shrink-0 text-green-700 dark:text-green-400" />
          ) : s.status === "error" ? (
            <XCircle aria-hidden className="mt-0.5 size-4 shrink-0 text-red-700 dark:text-red-400" />
          ) : (
            <Loader2 aria-hidden className="mt-0.5 size-4 shrink-0 animate-spin" />
          )}
          <span>
            <span className="font-medium">{s.step}</span>
            {s.message && `: ${s.message}`}
            {s.status === "running" && "…"}
          </span>
        </li>
      ))}
    </ol>
  );
}

function AddByToken() {
  const add = useAddServer();
  const toast = useToast();
  const [token, setToken] = useState("");
  const [url, setUrl] = useState("");
  const [fp, setFp] = useState("");
  const [label, setLabel] = useState("");
  const [err, setErr] = useState("");
  const [steps, setSteps] = useState<HomeSetupStep[]>([]);
  const submit = async () => {
    setErr("");
    setSteps([]);
    try {
      const r = await add.mutateAsync({
        req: { token: token.trim(), panelUrl: url.trim(), panelFingerprint: fp.trim() || undefined, label: label.trim() || undefined },
        onStep: (s) => setSteps((all) => [...all, s]),
      });
      setToken("");
      setUrl("");
      setFp("");
      setLabel("");
      toast(`Added ${r.server.id}`);
    } catch (e) {
      setErr(formError(e).form);
    }
  };
  return (
    <Card title="Add a relay with an enrollment token" id="add-token">
      <form
        className="space-y-3"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <TextField label="Enrollment token" name="token" value={token} onChange={setToken} required autoComplete="off" hint="On the relay's panel: Agents → Add agent." />
        <TextField label="Panel URL" name="panelUrl" value={url} onChange={setUrl} required placeholder="https://203.0.113.7:9292" />
        <TextField label="Panel fingerprint (optional)" name="panelFingerprint" value={fp} onChange={setFp} hint="Shown with the token; pins the panel's certificate." />
        <TextField label="Name on this machine (optional)" name="label" value={label} onChange={setLabel} hint="Default: the agent's name on the relay." />
        <Steps steps={steps} />
        <FormActions error={err}>
          <Button type="submit" variant="primary" loading={add.isPending} icon={<Plus aria-hidden className="size-4" />} disabled={!token || !url}>
            Add relay
          </Button>
        </FormActions>
      </form>
    </Card>
  );
}

function ImportP12({ disabled }: { disabled: boolean }) {
  const imp = useImportP12();
  const toast = useToast();
  const [id, setId] = useState("");
  const [url, setUrl] = useState("");
  const [file, setFile] = useState<File | null>(null);
  const [pw, setPw] = useState("");
  const [err, setErr] = useState("");
  const submit = async () => {
    if (!file) return;
    setErr("");
    try {
      const buf = new Uint8Array(await file.arrayBuffer());
      let bin = "";
      for (const b of buf) bin += String.fromCharCode(b);
      const r = await imp.mutateAsync({ id: id.trim(), panelUrl: url.trim(), p12: btoa(bin), password: pw });
      setPw("");
      toast(`Imported ${r.server.id}`);
    } catch (e) {
      setErr(formError(e).form);
    }
  };
  return (
    <Card title="Import an admin certificate" id="import-p12">
      <form
        className="space-y-3"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        {disabled && <Notice tone="warning">Importing needs a keychain for the password (see above).</Notice>}
        <TextField label="Name" name="p12Name" value={id} onChange={setId} required placeholder="my-relay" />
        <TextField label="Panel URL" name="p12PanelUrl" value={url} onChange={setUrl} required placeholder="https://203.0.113.7:9292" />
        <div>
          <label htmlFor="p12-file" className="mb-1 block text-sm font-medium">
            P12 file
          </label>
          <input id="p12-file" type="file" accept=".p12,application/x-pkcs12" className="block w-full text-sm" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
        </div>
        <TextField label="P12 password" name="p12Password" type="password" value={pw} onChange={setPw} autoComplete="off" hint="Kept in the OS keychain, never in a file." />
        <FormActions error={err}>
          <Button type="submit" loading={imp.isPending} icon={<Upload aria-hidden className="size-4" />} disabled={disabled || !file || !id || !url}>
            Import
          </Button>
        </FormActions>
      </form>
    </Card>
  );
}
