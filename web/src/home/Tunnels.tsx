import { useState } from "react";
import { Cable, ExternalLink, Shield, Trash2 } from "lucide-react";
import type { HomeTunnel } from "../api/types.gen";
import { Badge, Button, Card, ConfirmDialog, Dialog, Empty, ErrorState, FormActions, Loading, Notice, PageHeader, Switch } from "../components/ui";
import { useToast } from "../components/toast";
import { formError } from "../lib/fieldErrors";
import { useDeleteTunnel, useStatus, useTunnels, useUpdateTunnel } from "./queries";
import { AccessFields, accessFrom, accessRequest, type Access } from "./AccessFields";
import { NeedsServer } from "./HomeApp";

const stateTone = { connected: "green", connecting: "amber", reconnecting: "amber", refused: "red", unverified: "red", disabled: "neutral" } as const;
const stateLabel: Record<string, string> = {
  connected: "Connected",
  connecting: "Connecting",
  reconnecting: "Reconnecting",
  refused: "Refused by the relay",
  unverified: "Relay not verified",
  disabled: "Disabled",
  "": "Waiting for the agent",
};

export function TunnelsPage() {
  const status = useStatus();
  const agent = status.data?.server?.kind === "agent";
  const tunnels = useTunnels(agent);
  const [deleting, setDeleting] = useState<HomeTunnel | null>(null);
  const [editing, setEditing] = useState<HomeTunnel | null>(null);
  const del = useDeleteTunnel();
  const toast = useToast();
  return (
    <>
      <PageHeader title="Tunnels" description="This machine's tunnels on the current relay, with their live connection state." />
      {!status.data?.server ? (
        <NeedsServer />
      ) : !agent ? (
        <Notice title="This relay is an admin certificate">
          <p>Tunnels run from agent enrollments. Add this machine with an enrollment token on the Servers page, or switch to one.</p>
        </Notice>
      ) : tunnels.isPending ? (
        <Loading />
      ) : tunnels.error ? (
        <ErrorState error={tunnels.error} retry={() => tunnels.refetch()} what="The tunnels" />
      ) : (
        <Card
          title="Tunnels"
          actions={
            tunnels.data.connection && (
              <Badge tone={tunnels.data.connection === "connected" ? "green" : "amber"}>Relay {tunnels.data.connection}</Badge>
            )
          }
        >
          {tunnels.data.error && (
            <div className="mb-3">
              <Notice tone="warning" title="Connection problem">
                {tunnels.data.error}
              </Notice>
            </div>
          )}
          {tunnels.data.tunnels.length === 0 ? (
            <Empty title="No tunnels yet" icon={<Cable aria-hidden className="size-6" />}>
              Pick an app on the Apps page and tunnel it with one click.
            </Empty>
          ) : (
            <div className="relative overflow-x-auto">
              <table className="w-full text-left text-sm">
                <thead className="text-xs text-zinc-600 uppercase dark:text-zinc-400">
                  <tr>
                    <th scope="col" className="py-2 pr-4 font-medium">Address</th>
                    <th scope="col" className="py-2 pr-4 font-medium">Local</th>
                    <th scope="col" className="py-2 pr-4 font-medium">Access</th>
                    <th scope="col" className="py-2 pr-4 font-medium">State</th>
                    <th scope="col" className="py-2 pr-4 font-medium">Enabled</th>
                    <th scope="col" className="py-2 font-medium"><span className="sr-only">Actions</span></th>
                  </tr>
                </thead>
                <tbody className="divide-y divide-zinc-200 dark:divide-zinc-800">
                  {tunnels.data.tunnels.map((ht) => (
                    <TunnelRow key={ht.tunnel.id} ht={ht} onDelete={() => setDeleting(ht)} onAccess={() => setEditing(ht)} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </Card>
      )}
      {editing && <AccessDialog ht={editing} onClose={() => setEditing(null)} />}
      <ConfirmDialog
        open={!!deleting}
        title={`Delete ${deleting?.tunnel.fqdn ?? "tunnel"}?`}
        confirmLabel="Delete tunnel"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await del.mutateAsync(deleting.tunnel.id);
          toast(`Deleted ${deleting.tunnel.fqdn}`);
        }}
      >
        The address stops working at once. The app on this machine keeps running.
      </ConfirmDialog>
    </>
  );
}

function TunnelRow({ ht, onDelete, onAccess }: { ht: HomeTunnel; onDelete: () => void; onAccess: () => void }) {
  const toggle = useUpdateTunnel();
  const t = ht.tunnel;
  const enabled = t.enabled !== false;
  const tone = stateTone[ht.state as keyof typeof stateTone] ?? "neutral";
  return (
    <tr>
      <td className="py-2 pr-4">
        <a href={`https://${t.fqdn}`} target="_blank" rel="noreferrer" className="inline-flex items-center gap-1 font-medium text-teal-800 underline dark:text-teal-300">
          {t.fqdn}
          <ExternalLink aria-hidden className="size-3.5" />
        </a>
      </td>
      <td className="py-2 pr-4 font-mono text-xs">
        {t.targetHost || "127.0.0.1"}:{t.port}
      </td>
      <td className="py-2 pr-4">
        {t.accessMode}
        {t.accessMode === "restricted" && (
          <p className="text-xs text-zinc-600 dark:text-zinc-400">{[...(t.allowedUsers ?? []), ...(t.allowedGroups ?? []).map((g) => `@${g}`)].join(", ") || "nobody yet"}</p>
        )}
      </td>
      <td className="py-2 pr-4">
        <Badge tone={tone}>{stateLabel[ht.state] ?? ht.state}</Badge>
        {ht.reason && <p className="mt-1 text-xs text-zinc-600 dark:text-zinc-400">{ht.reason}</p>}
      </td>
      <td className="py-2 pr-4">
        <Switch checked={enabled} disabled={toggle.isPending} label={`Enable ${t.fqdn}`} onChange={(v) => toggle.mutate({ id: t.id, change: { enabled: v } })} />
      </td>
      <td className="py-2 text-right whitespace-nowrap">
        <Button size="sm" variant="ghost" icon={<Shield aria-hidden className="size-4" />} aria-label={`Access… for ${t.fqdn}`} onClick={onAccess}>
          Access…
        </Button>
        <Button size="sm" variant="ghost" icon={<Trash2 aria-hidden className="size-4" />} aria-label={`Delete ${t.fqdn}`} onClick={onDelete}>
          Delete
        </Button>
      </td>
    </tr>
  );
}

function AccessDialog({ ht, onClose }: { ht: HomeTunnel; onClose: () => void }) {
  const t = ht.tunnel;
  const update = useUpdateTunnel();
  const toast = useToast();
  const [access, setAccess] = useState<Access>(accessFrom(t.accessMode, t.allowedUsers, t.allowedGroups));
  const [err, setErr] = useState("");
  const save = async () => {
    setErr("");
    try {
      await update.mutateAsync({ id: t.id, change: accessRequest(access) });
      toast(`Access of ${t.fqdn} saved`);
      onClose();
    } catch (e) {
      setErr(formError(e).form);
    }
  };
  return (
    <Dialog
      open
      onClose={onClose}
      title={`Who can open ${t.fqdn}`}
      footer={
        <FormActions error={err}>
          <Button onClick={onClose}>Cancel</Button>
          <Button variant="primary" loading={update.isPending} onClick={save}>
            Save access
          </Button>
        </FormActions>
      }
    >
      {t.accessMode === "public" && (
        <div className="mb-4">
          <Notice tone="warning">An admin made this tunnel public. Saving here puts it behind the login again.</Notice>
        </div>
      )}
      <AccessFields value={access} onChange={setAccess} />
    </Dialog>
  );
}
