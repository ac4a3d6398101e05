import { useEffect, useReducer, useRef, useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { ArrowLeft, ArrowRight, CheckCircle2, Circle, Loader2, XCircle } from "lucide-react";
import { ApiError, get, isApiError, post } from "../api/client";
import { keys } from "../api/queries";
import type { DNSCheck, OnboardingStatus, SetDomainResponse } from "../api/types.gen";
import { StatusCompleted, StatusDNSReady, StatusDomainSet, StatusFresh, StatusProvisioning } from "../api/types.gen";
import { finishedCount, initialProvisionState, openStream, provisionTasks, reduceFrame, type Frame, type ProvisionResult, type ProvisionState } from "../api/provision";
import { Logo } from "../components/Layout";
import { Badge, Button, Card, CodeLine, cx, FormActions, Notice, Secret, TextField } from "../components/ui";
import { checkDomain, checkEmail, formError, type FieldErrors } from "../lib/fieldErrors";
import { hostURL } from "../lib/format";

const steps = ["Domain", "DNS", "Provisioning", "Complete"];

export function initialStep(status: string): number {
  switch (status) {
    case StatusFresh:
      return 1;
    case StatusDomainSet:
    case StatusDNSReady:
      return 2;
    case StatusProvisioning:
      return 3;
    default:
      return 4;
  }
}

export function Onboarding({ status, onStay }: { status: OnboardingStatus; onStay: (stay: boolean) => void }) {
  const [step, setStep] = useState(() => initialStep(status.status));
  const [result, setResult] = useState<ProvisionResult | null>(null);
  const qc = useQueryClient();
  useEffect(() => {
    document.title = `Set up · ${steps[step - 1]} · Portlama`;
  }, [step]);
  const refresh = () => qc.invalidateQueries({ queryKey: keys.onboarding });
  return (
    <div className="min-h-screen px-4 py-8 sm:py-12">
      <header className="mx-auto mb-8 flex max-w-3xl flex-wrap items-center justify-between gap-4">
        <Logo />
        <span className="text-sm text-zinc-600 dark:text-zinc-400">Relay {status.ip}</span>
      </header>
      <main id="main" className="mx-auto max-w-3xl">
        <h1 className="text-2xl font-semibold tracking-tight">Set up your relay</h1>
        <ol className="mt-4 mb-6 grid grid-cols-4 gap-2" aria-label="Steps">
          {steps.map((s, i) => (
            <li key={s} aria-current={step === i + 1 ? "step" : undefined} className="flex flex-col gap-1.5">
              <span className={cx("h-1.5 rounded-full", i + 1 < step ? "bg-teal-600 dark:bg-teal-500" : i + 1 === step ? "bg-teal-600/60 dark:bg-teal-500/70" : "bg-zinc-200 dark:bg-zinc-800")} />
              <span className={cx("text-xs sm:text-sm", step === i + 1 ? "font-semibold" : "text-zinc-600 dark:text-zinc-400")}>
                {i + 1}. {s}
              </span>
            </li>
          ))}
        </ol>
        <div>
          {step === 1 && (
            <DomainStep
              status={status}
              onDone={async () => {
                await refresh();
                setStep(2);
              }}
            />
          )}
          {step === 2 && <DNSStep status={status} onBack={() => setStep(1)} onContinue={() => setStep(3)} refresh={refresh} />}
          {step === 3 && (
            <ProvisionStep
              onStart={() => onStay(true)}
              onComplete={(r) => {
                setResult(r);
                setStep(4);
              }}
              onAlreadyDone={async () => {
                onStay(false);
                await refresh();
              }}
            />
          )}
          {step === 4 && (
            <CompleteStep
              status={status}
              result={result}
              onDone={async () => {
                await refresh();
                onStay(false);
              }}
            />
          )}
        </div>
      </main>
    </div>
  );
}

function DomainStep({ status, onDone }: { status: OnboardingStatus; onDone: () => void }) {
  const [domain, setDomain] = useState(status.domain ?? "");
  const [email, setEmail] = useState("");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const [busy, setBusy] = useState(false);
  return (
    <Card title="Your domain" id="step-domain">
      <form
        noValidate
        className="space-y-4"
        onSubmit={async (e) => {
          e.preventDefault();
          const errs: FieldErrors = {};
          const d = checkDomain(domain.trim());
          if (d) errs.domain = d;
          const m = checkEmail(email.trim());
          if (m) errs.email = m;
          setErrors(errs);
          setFormErr("");
          if (Object.keys(errs).length) return;
          setBusy(true);
          try {
            await post<SetDomainResponse>("/api/onboarding/domain", { domain: domain.trim(), email: email.trim() });
            onDone();
          } catch (err) {
            const fe = formError(err);
            setErrors(fe.fields);
            setFormErr(fe.form);
          } finally {
            setBusy(false);
          }
        }}
      >
        <p className="text-sm text-zinc-600 dark:text-zinc-400">
          Your apps will live at <em>name.your-domain</em>, this panel at <em>panel.your-domain</em> and the login page at <em>auth.your-domain</em>.
        </p>
        <TextField label="Domain" name="domain" autoFocus autoComplete="off" spellCheck={false} placeholder="example.com" value={domain} onChange={setDomain} error={errors.domain} hint="A domain (or subdomain) whose DNS you control." />
        <TextField label="E-mail" name="email" type="email" autoComplete="email" placeholder="you@example.com" value={email} onChange={setEmail} error={errors.email} hint="Let's Encrypt writes here before a certificate expires." />
        <FormActions error={formErr}>
          <Button type="submit" variant="primary" loading={busy} icon={<ArrowRight aria-hidden className="size-4" />}>
            Save &amp; Continue
          </Button>
        </FormActions>
      </form>
    </Card>
  );
}

export const dnsNames = (d: string) => [d, `panel.${d}`, `auth.${d}`, `tunnel.${d}`];

function DNSStep({ status, onBack, onContinue, refresh }: { status: OnboardingStatus; onBack: () => void; onContinue: () => void; refresh: () => Promise<void> }) {
  const d = status.domain ?? "";
  const [check, setCheck] = useState<DNSCheck | null>(null);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  const ready = status.status === StatusDNSReady || check?.ok;
  return (
    <Card title="Point your domain at this server" id="step-dns">
      <div className="space-y-4 text-sm">
        <p>At your DNS provider, create these two A records. The wildcard gives every tunnel its address without more records.</p>
        <div className="-mx-4 overflow-x-auto">
          <table className="w-full min-w-[32rem] text-left">
            <thead className="border-b border-zinc-200 text-xs text-zinc-600 uppercase dark:border-zinc-800 dark:text-zinc-400">
              <tr>
                <th scope="col" className="px-4 py-2 font-medium">Type</th>
                <th scope="col" className="px-4 py-2 font-medium">Name</th>
                <th scope="col" className="px-4 py-2 font-medium">Value</th>
              </tr>
            </thead>
            <tbody className="divide-y divide-zinc-200 dark:divide-zinc-800">
              {[d, `*.${d}`].map((name) => (
                <tr key={name}>
                  <td className="px-4 py-2 font-mono">A</td>
                  <td className="px-4 py-2">
                    <CodeLine text={name} label={`record name ${name}`} />
                  </td>
                  <td className="px-4 py-2">
                    <CodeLine text={status.ip} label={`address for ${name}`} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <p className="text-zinc-600 dark:text-zinc-400">
          No wildcard? Then at least <code className="font-mono">panel</code>, <code className="font-mono">auth</code> and <code className="font-mono">tunnel</code> need A records to {status.ip}, and each tunnel its own. New records can take a few minutes to be visible.
        </p>
        {check && <DNSResult check={check} />}
        {err && <Notice tone="danger">{err}</Notice>}
        <div className="flex flex-wrap justify-between gap-2 pt-2">
          {status.status === StatusDomainSet ? (
            <Button icon={<ArrowLeft aria-hidden className="size-4" />} onClick={onBack}>
              Back
            </Button>
          ) : (
            <span />
          )}
          <div className="flex gap-2">
            <Button
              loading={busy}
              onClick={async () => {
                setBusy(true);
                setErr("");
                try {
                  const r = await post<DNSCheck>("/api/onboarding/verify-dns");
                  setCheck(r);
                  if (r.ok) await refresh();
                } catch (e) {
                  setErr(e instanceof ApiError && e.detail ? `${e.message}: ${e.detail}` : e instanceof Error ? e.message : String(e));
                } finally {
                  setBusy(false);
                }
              }}
            >
              Verify DNS
            </Button>
            <Button variant="primary" disabled={!ready} onClick={onContinue} icon={<ArrowRight aria-hidden className="size-4" />}>
              Continue
            </Button>
          </div>
        </div>
      </div>
    </Card>
  );
}

function DNSResult({ check }: { check: DNSCheck }) {
  return (
    <div className="space-y-3" aria-live="polite">
      <Notice tone={check.ok ? (check.wildcardOk ? "success" : "warning") : "danger"} title={check.ok ? "DNS is ready" : "Not there yet"}>
        {check.message}
      </Notice>
      <ul className="grid gap-1.5 sm:grid-cols-2">
        {dnsNames(check.domain).map((n) => {
          const missing = check.missingNames.includes(n);
          return (
            <li key={n} className="flex items-center gap-2">
              {missing ? <XCircle aria-hidden className="size-4 text-red-700 dark:text-red-400" /> : <CheckCircle2 aria-hidden className="size-4 text-green-700 dark:text-green-400" />}
              <span className="font-mono">{n}</span>
              <span className="sr-only">{missing ? "does not point here" : "points here"}</span>
            </li>
          );
        })}
        <li className="flex items-center gap-2">
          {check.wildcardOk ? <CheckCircle2 aria-hidden className="size-4 text-green-700 dark:text-green-400" /> : <Circle aria-hidden className="size-4 text-amber-700 dark:text-amber-400" />}
          <span className="font-mono">*.{check.domain}</span>
          <span className="text-xs text-zinc-600 dark:text-zinc-400">{check.wildcardOk ? "wildcard works" : "no wildcard (optional)"}</span>
        </li>
      </ul>
      {check.resolvedIps.length > 0 && (
        <p className="text-xs text-zinc-600 dark:text-zinc-400">
          {check.domain} resolves to {check.resolvedIps.join(", ")}; expected {check.expectedIp}.
        </p>
      )}
    </div>
  );
}

function ProvisionStep({ onStart, onComplete, onAlreadyDone }: { onStart: () => void; onComplete: (r: ProvisionResult | null) => void; onAlreadyDone: () => void }) {
  const [state, dispatch] = useReducer((s: ProvisionState, f: Frame | "reset") => (f === "reset" ? { ...initialProvisionState(), logs: s.logs } : reduceFrame(s, f)), undefined, initialProvisionState);
  const [conn, setConn] = useState<"connecting" | "open" | "reconnecting" | "closed">("connecting");
  const [startErr, setStartErr] = useState("");
  const doneRef = useRef(false);
  const logRef = useRef<HTMLPreElement>(null);

  const start = async () => {
    setStartErr("");
    try {
      await post("/api/onboarding/provision");
    } catch (e) {
      if (isApiError(e, 409)) return; // already running (or DNS first: the stream tells)
      if (isApiError(e, 410)) {
        onAlreadyDone();
        return;
      }
      setStartErr(isApiError(e, 404) ? "This panel cannot provision yet: its provisioning route is missing. Update the relay." : e instanceof Error ? e.message : String(e));
    }
  };

  useEffect(() => {
    onStart();
    start();
    let misses = 0;
    const s = openStream(
      "/api/onboarding/provision/stream",
      {
        onFrame: (f) => dispatch(f),
        onStatus: (st) => {
          setConn(st);
          if (st === "open") misses = 0;
          if (st === "reconnecting" && ++misses % 3 === 0) {
            // The stream is refused once onboarding is complete (410).
            get<OnboardingStatus>("/api/onboarding/status")
              .then((o) => {
                if (o.status === StatusCompleted && !doneRef.current) {
                  doneRef.current = true;
                  s.stop();
                  onAlreadyDone();
                }
              })
              .catch(() => {});
          }
        },
      },
      () => doneRef.current,
    );
    return () => s.stop();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  useEffect(() => {
    if (state.done && !doneRef.current) {
      doneRef.current = true;
      onComplete(state.result);
    }
  }, [state.done, state.result, onComplete]);

  useEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [state.logs.length]);

  const finished = finishedCount(state);
  const pct = Math.round(((finished + (state.running ? 0.5 : 0)) / provisionTasks.length) * 100);
  return (
    <Card title="Provisioning" id="step-provision" actions={<Badge tone={conn === "open" ? "green" : conn === "reconnecting" ? "amber" : "neutral"}>{conn === "open" ? "Live" : conn === "reconnecting" ? "Reconnecting…" : conn === "connecting" ? "Connecting…" : "Closed"}</Badge>}>
      <div className="space-y-4 text-sm">
        <p>The relay starts its tunnel and login servers, gets TLS certificates and configures nginx. This takes a minute or two; you can leave this page open.</p>
        <div role="progressbar" aria-label="Provisioning progress" aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct} className="h-2 overflow-hidden rounded-full bg-zinc-200 dark:bg-zinc-800">
          <div className={cx("h-full rounded-full transition-[width]", state.error ? "bg-red-600" : "bg-teal-600 dark:bg-teal-500")} style={{ width: `${pct}%` }} />
        </div>
        <ol className="space-y-2" data-testid="provision-tasks">
          {state.tasks.map((t) => (
            <li key={t.id} className="flex items-start gap-2" data-status={t.status}>
              {t.status === "done" ? (
                <CheckCircle2 aria-hidden className="mt-0.5 size-4 text-green-700 dark:text-green-400" />
              ) : t.status === "running" ? (
                <Loader2 aria-hidden className="mt-0.5 size-4 animate-spin text-teal-700 dark:text-teal-400" />
              ) : t.status === "error" ? (
                <XCircle aria-hidden className="mt-0.5 size-4 text-red-700 dark:text-red-400" />
              ) : (
                <Circle aria-hidden className="mt-0.5 size-4 text-zinc-400" />
              )}
              <div>
                <p className="font-medium">
                  {t.title} <span className="sr-only">({t.status})</span>
                </p>
                {t.message && <p className="text-xs text-zinc-600 dark:text-zinc-400">{t.message}</p>}
              </div>
            </li>
          ))}
        </ol>
        {state.error && (
          <Notice tone="danger" title="Provisioning failed">
            <p>{state.error.message}</p>
            <Button
              className="mt-2"
              variant="primary"
              onClick={() => {
                dispatch("reset");
                start();
              }}
            >
              Retry
            </Button>
          </Notice>
        )}
        {startErr && <Notice tone="danger">{startErr}</Notice>}
        <div>
          <p className="mb-1 text-xs font-medium text-zinc-600 dark:text-zinc-400">Log</p>
          <pre ref={logRef} tabIndex={0} aria-label="Provisioning log" className="h-48 overflow-auto rounded-md bg-zinc-950 p-3 font-mono text-xs text-zinc-100">
            {state.logs.length ? state.logs.join("\n") : "Waiting for the first task…"}
          </pre>
        </div>
      </div>
    </Card>
  );
}

function CompleteStep({ status, result, onDone }: { status: OnboardingStatus; result: ProvisionResult | null; onDone: () => void }) {
  const d = status.domain ?? "";
  const panelUrl = result?.panelUrl ?? hostURL(`panel.${d}`, status.httpsPort).replace(/\/$/, "");
  const authUrl = result?.authUrl ?? hostURL(`auth.${d}`, status.httpsPort).replace(/\/$/, "");
  return (
    <Card title="Your relay is ready" id="step-complete">
      <div className="space-y-5 text-sm">
        {result?.adminPassword ? (
          <>
            <Notice tone="warning" title="Shown only once">
              Save this login now: the password is not stored anywhere you can read it again. It signs in to your apps as <strong>{result.adminUsername}</strong>.
            </Notice>
            <div className="grid gap-3 sm:grid-cols-2">
              <div>
                <p className="mb-1 font-medium">Username</p>
                <CodeLine text={result.adminUsername} label="admin username" />
              </div>
              <div>
                <p className="mb-1 font-medium">Password</p>
                <Secret value={result.adminPassword} label="admin password" />
              </div>
            </div>
          </>
        ) : (
          <Notice title="The first login was shown when provisioning finished">Give the user admin a new password on the Users page if it was not saved.</Notice>
        )}
        <div className="space-y-2">
          <p className="font-medium">Addresses</p>
          <dl className="grid gap-2 sm:grid-cols-[10rem_1fr]">
            <dt className="text-zinc-600 dark:text-zinc-400">Panel (client certificate)</dt>
            <dd>
              <CodeLine text={panelUrl} label="panel address" />
            </dd>
            <dt className="text-zinc-600 dark:text-zinc-400">Login for apps</dt>
            <dd>
              <CodeLine text={authUrl} label="login address" />
            </dd>
            <dt className="text-zinc-600 dark:text-zinc-400">Panel by IP</dt>
            <dd>
              <CodeLine text={status.panelIpUrl} label="panel by IP" />
            </dd>
          </dl>
        </div>
        <Notice>Before signing in to an app, give <strong>admin</strong> a two-factor code: Users → Reset TOTP, then scan the QR code.</Notice>
        <div className="flex justify-end">
          <Button variant="primary" onClick={onDone} icon={<ArrowRight aria-hidden className="size-4" />}>
            Go to Dashboard
          </Button>
        </div>
      </div>
    </Card>
  );
}
