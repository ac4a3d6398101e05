import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { ShieldCheck } from "lucide-react";
import { ApiError, post } from "../api/client";
import { keys, useOnboarding, useTwoFA } from "../api/queries";
import type { TwoFAEnabled, TwoFASetup } from "../api/types.gen";
import { useToast } from "../components/toast";
import { Badge, Button, Card, CodeLine, ErrorState, Loading, Notice, PageHeader, TextField } from "../components/ui";
import { hostURL } from "../lib/format";

export function isIPHost(h: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(h) || h.startsWith("[");
}

function codeError(e: unknown): string {
  if (e instanceof ApiError && e.status === 401) return "That code is not right. Enter the current one from your app.";
  if (e instanceof ApiError && e.status === 429) return `Too many wrong codes. Try again in ${Math.ceil((Number(e.body.retryAfter) || 60) / 60)} minutes.`;
  return e instanceof Error ? e.message : String(e);
}

export function SettingsPage() {
  const tfa = useTwoFA();
  return (
    <>
      <PageHeader title="Settings" />
      <Card
        title={
          <span className="flex items-center gap-2">
            <ShieldCheck aria-hidden className="size-5" /> Two-factor authentication for the panel
          </span>
        }
        id="twofa"
      >
        {tfa.isPending ? <Loading /> : tfa.isError ? <ErrorState what="2FA status" error={tfa.error} retry={() => tfa.refetch()} /> : tfa.data.enabled ? <Disable /> : <Enable />}
      </Card>
    </>
  );
}

function Enable() {
  const { data: ob } = useOnboarding();
  const [setup, setSetup] = useState<TwoFASetup | null>(null);
  const [enabled, setEnabled] = useState(false);
  const [code, setCode] = useState("");
  const [err, setErr] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const start = useMutation({ mutationFn: () => post<TwoFASetup>("/api/settings/2fa/setup"), onSuccess: setSetup });
  const confirm = useMutation({
    mutationFn: () => post<TwoFAEnabled>("/api/settings/2fa/confirm", { code }),
    onSuccess: () => {
      toast("Two-factor authentication is on");
      setEnabled(true);
      // Through the IP address the panel is gone now; through
      // panel.<d> the status is refreshed.
      if (!isIPHost(window.location.hostname)) qc.invalidateQueries({ queryKey: keys.twofa });
    },
    onError: (e) => {
      setErr(codeError(e));
      setCode("");
    },
  });
  const panelDomain = ob?.domain ? hostURL(`panel.${ob.domain}`, ob.httpsPort) : null;
  if (enabled) {
    return (
      <div className="space-y-3 text-sm">
        <Notice tone="success" title="Two-factor authentication is on">
          From now on the panel asks for a code from your authenticator app.
        </Notice>
        {isIPHost(window.location.hostname) && panelDomain && (
          <p>
            Access by IP address is now off. Continue at{" "}
            <a className="font-medium text-teal-700 underline dark:text-teal-400" href={panelDomain + "settings"}>
              {panelDomain}
            </a>
            .
          </p>
        )}
      </div>
    );
  }
  if (!setup) {
    return (
      <div className="space-y-3 text-sm">
        <p>
          <Badge>Off</Badge> The client certificate alone opens this panel. With two-factor authentication, a code from an authenticator app is asked for as well, every 12 hours.
        </p>
        <Notice tone="warning" title="Access by IP address is turned off">
          Once enabled, <code className="font-mono">{ob?.panelIpUrl ?? "the panel by IP"}</code> stops answering and the panel is reached only at {panelDomain ? <code className="font-mono">{panelDomain}</code> : "panel.<your domain>"}. Make sure that address works first.
        </Notice>
        {start.isError && (
          <Notice tone="danger">
            {start.error.message}
            {start.error instanceof ApiError && start.error.detail ? ` ${start.error.detail}` : ""}
          </Notice>
        )}
        <Button variant="primary" loading={start.isPending} onClick={() => start.mutate()}>
          Set up two-factor authentication
        </Button>
      </div>
    );
  }
  return (
    <form
      className="grid gap-6 text-sm md:grid-cols-[auto_1fr]"
      onSubmit={(e) => {
        e.preventDefault();
        setErr("");
        if (!/^\d{6}$/.test(code)) {
          setErr("Enter the 6 digits your app shows.");
          return;
        }
        confirm.mutate();
      }}
    >
      <img src={setup.totpQr} alt="QR code of the panel's two-factor secret" className="size-48 rounded bg-white p-2 ring-1 ring-zinc-200" data-testid="panel-totp-qr" />
      <div className="space-y-4">
        <p>1. Scan the QR code with an authenticator app, or enter the key by hand:</p>
        <CodeLine text={setup.manualKey} label="manual key" />
        <p>2. Enter the code the app shows to turn two-factor authentication on.</p>
        <TextField label="6-digit code" name="code" inputMode="numeric" autoComplete="one-time-code" maxLength={6} value={code} onChange={(v) => setCode(v.replace(/\D/g, ""))} error={err || undefined} className="max-w-48" />
        <Notice tone="warning">After this, the panel answers only at {panelDomain ? <code className="font-mono">{panelDomain}</code> : "panel.<your domain>"}; this IP address stops working.</Notice>
        <Button type="submit" variant="primary" loading={confirm.isPending}>
          Turn on
        </Button>
      </div>
    </form>
  );
}

function Disable() {
  const [code, setCode] = useState("");
  const [err, setErr] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const m = useMutation({
    mutationFn: () => post<TwoFAEnabled>("/api/settings/2fa/disable", { code }),
    onSuccess: async () => {
      toast("Two-factor authentication is off");
      await qc.invalidateQueries({ queryKey: keys.twofa });
    },
    onError: (e) => {
      setErr(codeError(e));
      setCode("");
    },
  });
  return (
    <form
      className="space-y-4 text-sm"
      onSubmit={(e) => {
        e.preventDefault();
        setErr("");
        if (!/^\d{6}$/.test(code)) {
          setErr("Enter the 6 digits your app shows.");
          return;
        }
        m.mutate();
      }}
    >
      <p>
        <Badge tone="green">On</Badge> The panel asks for a code from your authenticator app every 12 hours (or after 2 hours without use). Access by IP address is off.
      </p>
      <p>To turn it off, enter a current code. Access by IP address comes back.</p>
      <TextField label="6-digit code" name="disable-code" inputMode="numeric" autoComplete="one-time-code" maxLength={6} value={code} onChange={(v) => setCode(v.replace(/\D/g, ""))} error={err || undefined} className="max-w-48" />
      <Button type="submit" variant="danger" loading={m.isPending}>
        Turn off two-factor authentication
      </Button>
      <p className="text-xs text-zinc-600 dark:text-zinc-400">
        Lost your authenticator? On the server, <CodeLine text="portlama reset-admin" label="reset command" /> turns it off and issues a new admin certificate.
      </p>
    </form>
  );
}
