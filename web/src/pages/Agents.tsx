import { useState } from "react";
import { Link } from "wouter";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Download, Monitor, Pencil, Plus } from "lucide-react";
import { del, getBlob, patch, post, seg } from "../api/client";
import { keys, useAgents, useSites } from "../api/queries";
import type { Agent, AgentP12, Capability, CapabilitiesResponse, EnrollmentToken, NewAgentRequest } from "../api/types.gen";
import { CapTunnelsRead } from "../api/types.gen";
import { useToast } from "../components/toast";
import { ConnectionBadge } from "../components/Connection";
import { Badge, Button, DeleteButton, Card, Checkbox, CodeLine, ConfirmDialog, Dialog, Empty, ErrorState, FormActions, Loading, Notice, PageHeader, Secret, Spinner, TextField } from "../components/ui";
import { capabilityInfo, selectableCapabilities } from "../lib/capabilities";
import { saveBlob } from "../lib/download";
import { formError, patterns, type FieldErrors } from "../lib/fieldErrors";
import { formatDate, relativeTime } from "../lib/format";

/** setupCommand is what the admin pastes on the home machine. */
export function setupCommand(token: string, panelURL: string, fingerprint?: string): string {
  const byIP = /^https:\/\/\d{1,3}(\.\d{1,3}){3}(:\d+)?$/.test(panelURL) || /^https:\/\/\[/.test(panelURL);
  return `portlama-agent setup --token ${token} --panel-url ${panelURL}${byIP && fingerprint ? ` --panel-fingerprint ${fingerprint}` : ""}`;
}

export function Agents() {
  const agents = useAgents();
  const [adding, setAdding] = useState(false);
  return (
    <>
      <PageHeader
        title="Agents"
        description="An agent runs on a home machine and carries its tunnels. Connect one with a one-time enrollment token: its key never leaves that machine."
        actions={
          <Button variant="primary" icon={<Plus aria-hidden className="size-4" />} onClick={() => setAdding(true)}>
            Connect an agent
          </Button>
        }
      />
      {adding && <AddAgent onClose={() => setAdding(false)} />}
      <Card>
        {agents.isPending ? (
          <Loading label="Loading agents" />
        ) : agents.isError ? (
          <ErrorState what="Agents" error={agents.error} retry={() => agents.refetch()} />
        ) : agents.data.length === 0 ? (
          <Empty title="No agents yet" icon={<Monitor className="size-8" />}>
            Choose <strong>Connect an agent</strong>, then paste the command it shows on the home machine.
          </Empty>
        ) : (
          <AgentTable agents={agents.data} />
        )}
      </Card>
    </>
  );
}

function AgentTable({ agents }: { agents: Agent[] }) {
  const [editing, setEditing] = useState<Agent | null>(null);
  const [revoking, setRevoking] = useState<Agent | null>(null);
  const [dlError, setDlError] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const sorted = [...agents].sort((a, b) => Number(a.revoked) - Number(b.revoked) || a.label.localeCompare(b.label));
  return (
    <>
      {dlError && <Notice tone="danger">{dlError}</Notice>}
      <div className="-mx-4 overflow-x-auto">
        <table className="w-full min-w-[44rem] text-left text-sm">
          <thead className="border-b border-zinc-200 text-xs text-zinc-600 uppercase dark:border-zinc-800 dark:text-zinc-400">
            <tr>
              <th scope="col" className="px-4 py-2 font-medium">Agent</th>
              <th scope="col" className="px-4 py-2 font-medium">Capabilities</th>
              <th scope="col" className="px-4 py-2 font-medium">Method</th>
              <th scope="col" className="px-4 py-2 font-medium">Certificate</th>
              <th scope="col" className="px-4 py-2 font-medium"><span className="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody className="divide-y divide-zinc-200 dark:divide-zinc-800">
            {sorted.map((a) => (
              <tr key={a.label + a.serial} data-testid="agent-row">
                <td className="px-4 py-2.5">
                  <p className="font-mono font-medium">{a.label}</p>
                  <p className="text-xs text-zinc-600 dark:text-zinc-400">added {formatDate(a.createdAt)}</p>
                  {!a.revoked && (
                    <div className="mt-1">
                      <ConnectionBadge of={a} />
                    </div>
                  )}
                </td>
                <td className="px-4 py-2.5">
                  <div className="flex max-w-sm flex-wrap gap-1">
                    {a.capabilities.map((c) => (
                      <Badge key={c} tone="neutral">
                        {c}
                      </Badge>
                    ))}
                  </div>
                  {a.allowedSites.length > 0 && <p className="mt-1 text-xs text-zinc-600 dark:text-zinc-400">sites: {a.allowedSites.join(", ")}</p>}
                </td>
                <td className="px-4 py-2.5 text-xs">{a.enrollmentMethod === "p12" ? "P12 bundle" : "Enrolled (key on the agent)"}</td>
                <td className="px-4 py-2.5">
                  {a.revoked ? (
                    <Badge tone="neutral">Revoked {a.revokedAt ? relativeTime(a.revokedAt) : ""}</Badge>
                  ) : a.expiringSoon ? (
                    <Badge tone="amber">Expires {relativeTime(a.expiresAt)}</Badge>
                  ) : (
                    <Badge tone="green">Valid until {formatDate(a.expiresAt)}</Badge>
                  )}
                </td>
                <td className="px-4 py-2.5">
                  {!a.revoked && (
                    <div className="flex justify-end gap-1">
                      <Button size="sm" variant="ghost" aria-label={`Edit capabilities of ${a.label}`} onClick={() => setEditing(a)} icon={<Pencil aria-hidden className="size-4" />} />
                      {a.enrollmentMethod === "p12" && (
                        <Button
                          size="sm"
                          variant="ghost"
                          aria-label={`Download the P12 of ${a.label}`}
                          icon={<Download aria-hidden className="size-4" />}
                          onClick={async () => {
                            setDlError("");
                            try {
                              saveBlob(await getBlob(`/api/certs/agent/${seg(a.label)}/download`), `${a.label}.p12`);
                            } catch (e) {
                              setDlError(e instanceof Error ? e.message : String(e));
                            }
                          }}
                        />
                      )}
                      <DeleteButton label={`Revoke ${a.label}`} onClick={() => setRevoking(a)} />
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {editing && <EditCapabilities agent={editing} onClose={() => setEditing(null)} />}
      <ConfirmDialog
        open={!!revoking}
        title={`Revoke ${revoking?.label}?`}
        confirmLabel="Revoke agent"
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await del(`/api/certs/agent/${seg(revoking.label)}`);
          await qc.invalidateQueries({ queryKey: keys.agents });
          // Its tunnels are disabled now.
          qc.invalidateQueries({ queryKey: keys.tunnels });
          toast(`${revoking.label} revoked`);
        }}
      >
        <p>Its certificate stops working at once and its tunnels are disabled. The tunnels stay listed; an agent enrolling again with the same label gets them only once you enable them.</p>
      </ConfirmDialog>
    </>
  );
}

function CapabilityPicker({ value, onChange }: { value: Capability[]; onChange: (c: Capability[]) => void }) {
  return (
    <fieldset>
      <legend className="mb-2 text-sm font-medium">Capabilities</legend>
      <div className="grid gap-2 sm:grid-cols-2">
        {selectableCapabilities.map((c) => (
          <Checkbox
            key={c}
            label={<span className="font-mono">{c}</span>}
            description={capabilityInfo[c]}
            checked={c === CapTunnelsRead || value.includes(c)}
            disabled={c === CapTunnelsRead}
            onChange={(on) => onChange(on ? [...value, c] : value.filter((x) => x !== c))}
          />
        ))}
      </div>
    </fieldset>
  );
}

function withRead(caps: Capability[]): Capability[] {
  return [CapTunnelsRead, ...caps.filter((c) => c !== CapTunnelsRead)];
}

function EditCapabilities({ agent, onClose }: { agent: Agent; onClose: () => void }) {
  const [caps, setCaps] = useState<Capability[]>(agent.capabilities);
  const [sites, setSites] = useState<string[]>(agent.allowedSites);
  const [err, setErr] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const m = useMutation({
    mutationFn: async () => {
      await patch<CapabilitiesResponse>(`/api/certs/agent/${seg(agent.label)}/capabilities`, { capabilities: withRead(caps) });
      if ([...sites].sort().join(",") !== [...agent.allowedSites].sort().join(",")) await patch(`/api/certs/agent/${seg(agent.label)}/allowed-sites`, { allowedSites: sites });
    },
    onSuccess: async () => {
      await qc.invalidateQueries({ queryKey: keys.agents });
      toast(`${agent.label} updated`);
      onClose();
    },
    onError: (e) => {
      const fe = formError(e);
      setErr(fe.fields);
      setFormErr(fe.form);
    },
  });
  return (
    <Dialog open onClose={onClose} title={`Capabilities of ${agent.label}`} wide>
      <form
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          m.mutate();
        }}
      >
        <CapabilityPicker value={caps} onChange={setCaps} />
        {err.capabilities && <p className="text-xs font-medium text-red-700 dark:text-red-400">{err.capabilities}</p>}
        <SitePicker value={sites} onChange={setSites} error={err.allowedSites} />
        <p className="text-xs text-zinc-600 dark:text-zinc-400">Changes apply to the agent's next request.</p>
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending}>
            Save
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}

function AddAgent({ onClose }: { onClose: () => void }) {
  const [label, setLabel] = useState("");
  const [method, setMethod] = useState<"token" | "p12">("token");
  const [caps, setCaps] = useState<Capability[]>(["tunnels:write"]);
  const [sites, setSites] = useState<string[]>([]);
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const [token, setToken] = useState<EnrollmentToken | null>(null);
  const [p12, setP12] = useState<AgentP12 | null>(null);
  const qc = useQueryClient();
  const toast = useToast();
  const body = (): NewAgentRequest => ({ label, capabilities: withRead(caps), allowedSites: sites });
  const m = useMutation({
    mutationFn: async () => {
      if (method === "token") setToken(await post<EnrollmentToken>("/api/certs/agent/enroll", body()));
      else setP12(await post<AgentP12>("/api/certs/agent", body()));
    },
    onSuccess: () => qc.invalidateQueries({ queryKey: keys.agents }),
    onError: (e) => {
      const fe = formError(e, [[/label/i, "label"]]);
      setErrors(fe.fields);
      setFormErr(fe.form);
    },
  });
  const revokeToken = useMutation({
    mutationFn: () => del<{ ok: boolean; revoked: boolean }>(`/api/certs/agent/enroll/${seg(label)}`),
    onSuccess: (r) => {
      toast(r.revoked ? "Enrollment token revoked" : "The token was already used or expired");
      onClose();
    },
  });

  if (token) {
    const cmd = setupCommand(token.token, window.location.origin, token.panelFingerprint);
    return (
      <Dialog open onClose={onClose} title={`Enroll ${token.label}`} wide footer={<><Button variant="danger" loading={revokeToken.isPending} onClick={() => revokeToken.mutate()}>Revoke token</Button><Button variant="primary" onClick={onClose}>Done</Button></>}>
        <div className="space-y-4 text-sm">
          <p>
            On the home machine, install <code className="font-mono">portlama-agent</code> and run this command. The token works once and expires {relativeTime(token.expiresAt)} ({new Date(token.expiresAt).toLocaleTimeString()}).
          </p>
          <CodeLine text={cmd} label="setup command" />
          <p className="text-zinc-600 dark:text-zinc-400">
            The agent makes its own key, the relay signs it, and the agent then keeps its tunnels connected. Run <code className="font-mono">portlama-agent service install</code> afterwards to start it at login.
          </p>
          {revokeToken.isError && <Notice tone="danger">{revokeToken.error.message}</Notice>}
        </div>
      </Dialog>
    );
  }
  if (p12) {
    return (
      <Dialog open onClose={onClose} title={`Certificate for ${p12.label}`} footer={<Button variant="primary" onClick={onClose}>Done</Button>}>
        <div className="space-y-4 text-sm">
          <Notice tone="warning" title="The password is shown only now">Copy it before you close this dialog; the bundle can be downloaded again later, its password cannot.</Notice>
          <Secret value={p12.p12Password} label="P12 password" />
          <Button icon={<Download aria-hidden className="size-4" />} onClick={async () => saveBlob(await getBlob(`/api/certs/agent/${seg(p12.label)}/download`), `${p12.label}.p12`)}>
            Download {p12.label}.p12
          </Button>
          <p className="text-zinc-600 dark:text-zinc-400">Valid until {formatDate(p12.expiresAt)}. An enrollment token is safer: with it, the key never leaves the agent's machine.</p>
        </div>
      </Dialog>
    );
  }
  const wantsSites = caps.includes("sites:read") || caps.includes("sites:write");
  return (
    <Dialog open onClose={onClose} title="Connect an agent" wide>
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          const errs: FieldErrors = {};
          if (!patterns.agentLabel.test(label)) errs.label = "1–50 lower-case letters, digits and hyphens, starting with a letter or digit.";
          setErrors(errs);
          setFormErr("");
          if (!Object.keys(errs).length) m.mutate();
        }}
      >
        <TextField label="Label" name="label" autoFocus autoComplete="off" spellCheck={false} value={label} onChange={(v) => setLabel(v.toLowerCase())} error={errors.label} hint="A name for the machine, e.g. home-server or laptop." />
        <fieldset>
          <legend className="mb-2 text-sm font-medium">How it gets its certificate</legend>
          <div className="space-y-2">
            <label className="flex gap-2 text-sm">
              <input type="radio" name="method" className="mt-0.5 accent-teal-700" checked={method === "token"} onChange={() => setMethod("token")} />
              <span>
                <span className="font-medium">Enrollment token</span> (recommended) — a one-time command; the key is made on the agent's machine.
              </span>
            </label>
            <label className="flex gap-2 text-sm">
              <input type="radio" name="method" className="mt-0.5 accent-teal-700" checked={method === "p12"} onChange={() => setMethod("p12")} />
              <span>
                <span className="font-medium">P12 bundle</span> — the relay makes key and certificate; you copy the file over.
              </span>
            </label>
          </div>
        </fieldset>
        <CapabilityPicker value={caps} onChange={setCaps} />
        {errors.capabilities && <p className="text-xs font-medium text-red-700 dark:text-red-400">{errors.capabilities}</p>}
        {wantsSites && <SitePicker value={sites} onChange={setSites} error={errors.allowedSites} />}
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending}>
            {method === "token" ? "Create enrollment token" : "Create certificate"}
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}

/**
 * SitePicker chooses the static sites an agent with sites:read or
 * sites:write may use (by name). Names no longer among the sites stay
 * listed while picked, so they can be removed.
 */
export function SitePicker({ value, onChange, error }: { value: string[]; onChange: (names: string[]) => void; error?: string }) {
  const sites = useSites();
  const names = [...new Set([...(sites.data ?? []).map((s) => s.name), ...value])];
  const fqdn = new Map((sites.data ?? []).map((s) => [s.name, s.fqdn]));
  return (
    <fieldset className="rounded-md p-3 ring-1 ring-zinc-200 dark:ring-zinc-800">
      <legend className="px-1 text-sm font-medium">Allowed sites</legend>
      <p className="mb-2 text-xs text-zinc-600 dark:text-zinc-400">The static sites this agent may list and deploy to.</p>
      {sites.isPending ? (
        <Spinner />
      ) : sites.isError ? (
        <ErrorState what="Sites" error={sites.error} retry={() => sites.refetch()} />
      ) : names.length === 0 ? (
        <p className="text-sm text-zinc-600 dark:text-zinc-400">
          No sites yet:{" "}
          <Link href="/sites" className="font-medium text-teal-700 underline dark:text-teal-400">
            create one on the Sites page
          </Link>
          .
        </p>
      ) : (
        <div className="max-h-48 space-y-2 overflow-y-auto">
          {names.map((n) => (
            <Checkbox key={n} label={n} description={fqdn.get(n) ?? "no such site any more"} checked={value.includes(n)} onChange={(on) => onChange(on ? [...value, n] : value.filter((x) => x !== n))} />
          ))}
        </div>
      )}
      {error && <p className="mt-1 text-xs font-medium text-red-700 dark:text-red-400">{error}</p>}
    </fieldset>
  );
}
