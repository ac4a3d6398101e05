import { useState } from "react";
import { Link } from "wouter";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Download, RefreshCw, RotateCcw, ShieldCheck, Timer } from "lucide-react";
import { ApiError, getBlob, post, seg } from "../api/client";
import { keys, useAutoRenew, useCerts } from "../api/queries";
import type { AdminRotation, AutoRenewStatus, Cert, CertRenewed, OnboardingStatus } from "../api/types.gen";
import { CertLetsEncrypt, MsgCertificateRequired, MsgRevoked } from "../api/types.gen";
import { useToast } from "../components/toast";
import { Badge, Button, Card, Checkbox, CodeLine, Dialog, Empty, ErrorState, Loading, Notice, PageHeader, Secret } from "../components/ui";
import { base64ToBlob, saveBlob } from "../lib/download";
import { formatDate, formatDateTime, plural, relativeTime } from "../lib/format";

const typeLabel: Record<string, string> = {
  letsencrypt: "TLS certificate",
  "mtls-ca": "Client certificate authority",
  "mtls-client": "Admin client certificate",
};

export function Certificates() {
  const certs = useCerts();
  const [rotating, setRotating] = useState(false);
  const [dlErr, setDlErr] = useState("");
  return (
    <>
      <PageHeader title="Certificates" description="The TLS certificates of your domain, and the client certificates that open this panel." />
      <Card title="Certificates" id="certs">
        {certs.isPending ? (
          <Loading label="Loading certificates" />
        ) : certs.isError ? (
          <ErrorState what="Certificates" error={certs.error} retry={() => certs.refetch()} />
        ) : certs.data.length === 0 ? (
          <Empty title="No certificates found" icon={<ShieldCheck className="size-8" />} />
        ) : (
          <ul className="divide-y divide-zinc-200 dark:divide-zinc-800">
            {certs.data.map((c) => (
              <CertRow key={c.path} c={c} />
            ))}
          </ul>
        )}
      </Card>

      <div className="mt-6 grid gap-6 lg:grid-cols-2">
        <Card title="Automatic renewal" id="auto-renew" className="lg:col-span-2">
          <AutoRenew />
        </Card>
        <Card title="Admin certificate" id="admin-cert">
          <div className="space-y-3 text-sm">
            <p>Your browser opens this panel with the admin client certificate (<code className="font-mono">client.p12</code>). Download it to set up another browser or computer.</p>
            {dlErr && <Notice tone="danger">{dlErr}</Notice>}
            <div className="flex flex-wrap gap-2">
              <Button
                icon={<Download aria-hidden className="size-4" />}
                onClick={async () => {
                  setDlErr("");
                  try {
                    saveBlob(await getBlob("/api/certs/mtls/download"), "client.p12");
                  } catch (e) {
                    setDlErr(e instanceof Error ? e.message : String(e));
                  }
                }}
              >
                Download client.p12
              </Button>
              <Button variant="danger" icon={<RotateCcw aria-hidden className="size-4" />} onClick={() => setRotating(true)}>
                Rotate admin certificate
              </Button>
            </div>
            <p className="text-xs text-zinc-600 dark:text-zinc-400">Its password is in <code className="font-mono">/etc/portlama/pki/.p12-password</code> on the server, or shown once after a rotation.</p>
          </div>
        </Card>
        <Card title="Agent certificates" id="agent-certs">
          <p className="text-sm">
            Agents get their own certificates with limited capabilities. Issue an enrollment token or a P12 bundle, edit capabilities and revoke agents on the{" "}
            <Link href="/agents" className="font-medium text-teal-700 underline dark:text-teal-400">
              Agents
            </Link>{" "}
            page.
          </p>
        </Card>
      </div>
      {rotating && <RotateDialog onClose={() => setRotating(false)} />}
    </>
  );
}

/** renewal: what the timer status means for the admin. */
export function renewal(s: AutoRenewStatus, now: number = Date.now()): { tone: "green" | "amber" | "red"; label: string; text: string } {
  if (!s.active) {
    return {
      tone: "red",
      label: "Off",
      text: "The renewal timer is not running, so certificates will expire unless renewed here. On the server: systemctl enable --now portlama-certs-renew.timer",
    };
  }
  const next = s.nextRun ? `Next check ${relativeTime(s.nextRun, now)} (${formatDateTime(s.nextRun)})` : "No next check is scheduled";
  const last = s.lastRun ? `last ran ${relativeTime(s.lastRun, now)}` : "it has not run yet";
  return { tone: s.nextRun ? "green" : "amber", label: "On", text: `${next}; ${last}. Certificates are renewed 30 days before they expire.` };
}

function AutoRenew() {
  const q = useAutoRenew();
  if (q.isPending) return <Loading label="Loading the renewal timer" />;
  if (q.isError) return <ErrorState what="The renewal timer" error={q.error} retry={() => q.refetch()} />;
  const r = renewal(q.data);
  return (
    <div className="flex items-start gap-3 text-sm" data-testid="auto-renew">
      <Timer aria-hidden className="mt-0.5 size-5 shrink-0 text-zinc-500" />
      <div className="space-y-1">
        <p className="flex items-center gap-2 font-medium">
          Renewal timer <Badge tone={r.tone}>{r.label}</Badge>
        </p>
        <p className="text-zinc-600 dark:text-zinc-400">{r.text}</p>
      </div>
    </div>
  );
}

function RenewButton({ c }: { c: Cert }) {
  const qc = useQueryClient();
  const toast = useToast();
  const name = c.domain ?? "";
  const m = useMutation({
    mutationFn: () => post<CertRenewed>(`/api/certs/${seg(name)}/renew`),
    onSuccess: (r) => {
      qc.invalidateQueries({ queryKey: keys.certs });
      toast(r.newExpiry ? `${name} renewed: valid until ${formatDate(r.newExpiry)}` : `${name} renewed`);
    },
  });
  return (
    <div className="text-right">
      <Button size="sm" icon={<RefreshCw aria-hidden className="size-4" />} loading={m.isPending} onClick={() => m.mutate()} aria-label={`Renew ${name}`}>
        Renew
      </Button>
      {m.isError && (
        <p role="alert" className="mt-1 max-w-xs text-xs text-red-700 dark:text-red-400">
          {m.error.message}
          {m.error instanceof ApiError && m.error.detail ? `: ${m.error.detail}` : ""}
        </p>
      )}
    </div>
  );
}

function CertRow({ c }: { c: Cert }) {
  const days = c.daysUntilExpiry;
  return (
    <li className="flex flex-wrap items-center justify-between gap-2 py-3" data-testid="cert-row">
      <div className="min-w-0">
        <p className="font-medium">{c.domain ?? typeLabel[c.type] ?? c.type}</p>
        <p className="truncate text-xs text-zinc-600 dark:text-zinc-400">
          {c.domain ? `${typeLabel[c.type] ?? c.type} · ` : ""}
          <span className="font-mono">{c.path}</span>
        </p>
      </div>
      <div className="flex items-start gap-4">
        <div className="text-right">
          <Badge tone={days < 0 ? "red" : c.expiringSoon ? "amber" : "green"}>{days < 0 ? "Expired" : `${plural(days, "day")} left`}</Badge>
          <p className="mt-0.5 text-xs text-zinc-600 dark:text-zinc-400">until {formatDate(c.expiresAt)}</p>
        </div>
        {c.type === CertLetsEncrypt && c.domain && <RenewButton c={c} />}
      </div>
    </li>
  );
}

/** answerLost: the rotation's answer did not arrive (the connection closed,
 * or the retried request met the already revoked certificate). */
export function answerLost(e: unknown): boolean {
  if (!(e instanceof ApiError)) return false;
  if (e.status === 0) return true;
  // nginx refusing the (already revoked) certificate: its HTML 400/496, or
  // its JSON answer; or the panel's own revocation check.
  const refused = !e.body.error || e.message === MsgCertificateRequired || e.message === MsgRevoked;
  return [400, 403, 495, 496].includes(e.status) && refused;
}

function LostAnswer() {
  // From the cache: asking the panel again would only meet the revoked
  // certificate.
  const ob = useQueryClient().getQueryData<OnboardingStatus>(keys.onboarding);
  const host = ob?.ip ?? "<server-ip>";
  return (
    <Notice tone="danger" title="The answer with the new certificate did not arrive">
      <p>The rotation has most likely happened: this browser's certificate no longer opens the panel. Fetch the new certificate and its password from the server, import it, then reload this page:</p>
      <CodeLine text={`scp root@${host}:/etc/portlama/pki/client.p12 .`} label="copy command" />
      <CodeLine text={`ssh root@${host} cat /etc/portlama/pki/.p12-password`} label="password command" />
    </Notice>
  );
}

function RotateDialog({ onClose }: { onClose: () => void }) {
  const [sure, setSure] = useState(false);
  const [res, setRes] = useState<AdminRotation | null>(null);
  const qc = useQueryClient();
  const m = useMutation({
    // Its warning ("your certificate is now invalid") is shown in the dialog.
    mutationFn: () => post<AdminRotation>("/api/certs/mtls/rotate", undefined, { ownWarning: true }),
    onSuccess: (r) => {
      setRes(r);
      // The old certificate is already refused: save the new one at once.
      saveBlob(base64ToBlob(r.p12, "application/x-pkcs12"), "client.p12");
      // The admin certificate's new expiry, without asking the panel again
      // (this browser's certificate no longer opens it).
      qc.setQueryData<Cert[]>(keys.certs, (old) => old?.map((c) => (c.type === "mtls-client" ? { ...c, expiresAt: r.expiresAt, daysUntilExpiry: Math.floor((Date.parse(r.expiresAt) - Date.now()) / 86400_000), expiringSoon: false } : c)));
    },
  });
  if (res) {
    return (
      <Dialog open onClose={onClose} title="New admin certificate" footer={<Button variant="primary" onClick={onClose}>I have imported it</Button>}>
        <div className="space-y-4 text-sm">
          <Notice tone="danger" title="Import the new certificate now">{res.warning}</Notice>
          <p>
            <code className="font-mono">client.p12</code> was saved to your downloads. Import it into your browser or keychain with this password (shown only now):
          </p>
          <Secret value={res.p12Password} label="P12 password" />
          <Button icon={<Download aria-hidden className="size-4" />} onClick={() => saveBlob(base64ToBlob(res.p12, "application/x-pkcs12"), "client.p12")}>
            Save client.p12 again
          </Button>
          <p className="text-xs text-zinc-600 dark:text-zinc-400">Valid until {formatDate(res.expiresAt)}. If panel 2FA is on, you will be asked for a code again.</p>
        </div>
      </Dialog>
    );
  }
  return (
    <Dialog
      open
      onClose={onClose}
      title="Rotate the admin certificate?"
      footer={
        <>
          <Button onClick={onClose} disabled={m.isPending}>
            Cancel
          </Button>
          <Button variant="danger" disabled={!sure || (m.isError && answerLost(m.error))} loading={m.isPending} onClick={() => m.mutate()}>
            Rotate now
          </Button>
        </>
      }
    >
      <div className="space-y-3 text-sm">
        <Notice tone="warning" title="Every browser using the current certificate is locked out at once">
          A new key and certificate are made and the current one is revoked. This page saves the new <code className="font-mono">client.p12</code> and shows its password once; import it before closing the page. If you lose it, only <code className="font-mono">portlama reset-admin</code> on the server helps.
        </Notice>
        <Checkbox label="I understand that the current certificate stops working immediately" checked={sure} onChange={setSure} />
        {m.isError && (answerLost(m.error) ? <LostAnswer /> : <Notice tone="danger">{m.error.message}</Notice>)}
      </div>
    </Dialog>
  );
}
