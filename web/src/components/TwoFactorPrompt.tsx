// The one dialog for the panel 2FA code: whenever a call answers
// 401 2fa_required, the client waits on this prompt, then repeats the call.
import { useEffect, useRef, useState } from "react";
import { KeyRound } from "lucide-react";
import { ApiError, post, setTwoFactorHandler } from "../api/client";
import type { TwoFAVerified } from "../api/types.gen";
import { Button, Dialog, Notice, TextField } from "./ui";

export function TwoFactorPrompt() {
  const [open, setOpen] = useState(false);
  const [code, setCode] = useState("");
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const waiter = useRef<{ resolve: () => void; reject: (e: Error) => void } | null>(null);

  useEffect(
    () =>
      setTwoFactorHandler(
        () =>
          new Promise<void>((resolve, reject) => {
            waiter.current = { resolve, reject };
            setCode("");
            setError("");
            setOpen(true);
          }),
      ),
    [],
  );

  const cancel = () => {
    setOpen(false);
    waiter.current?.reject(new Error("Two-factor code not entered"));
    waiter.current = null;
  };

  const submit = async () => {
    if (!/^\d{6}$/.test(code)) {
      setError("Enter the 6 digits your authenticator app shows.");
      return;
    }
    setBusy(true);
    setError("");
    try {
      await post<TwoFAVerified>("/api/settings/2fa/verify", { code }, { noTwoFactor: true });
      setOpen(false);
      waiter.current?.resolve();
      waiter.current = null;
    } catch (e) {
      if (e instanceof ApiError && e.status === 429) {
        const s = Number(e.body.retryAfter) || 0;
        setError(`Too many wrong codes. Try again in ${s >= 60 ? `${Math.ceil(s / 60)} minutes` : `${s} seconds`}.`);
      } else if (e instanceof ApiError && e.status === 401) {
        setError("That code is not right. Codes change every 30 seconds; enter the current one.");
      } else {
        setError(e instanceof Error ? e.message : String(e));
      }
      setCode("");
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog
      open={open}
      onClose={cancel}
      title={
        <span className="flex items-center gap-2">
          <KeyRound aria-hidden className="size-5" /> Two-factor code
        </span>
      }
    >
      <form
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <p className="text-sm text-zinc-600 dark:text-zinc-400">This panel has two-factor authentication turned on. Enter the code from your authenticator app to continue; your session then lasts up to 12 hours.</p>
        <TextField
          label="6-digit code"
          name="code"
          inputMode="numeric"
          autoComplete="one-time-code"
          pattern="[0-9]*"
          maxLength={6}
          autoFocus
          value={code}
          onChange={(v) => setCode(v.replace(/\D/g, ""))}
          error={error || undefined}
        />
        {error === "" && busy && <Notice>Checking…</Notice>}
        <div className="flex justify-end gap-2">
          <Button onClick={cancel} disabled={busy}>
            Cancel
          </Button>
          <Button type="submit" variant="primary" loading={busy}>
            Verify
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
