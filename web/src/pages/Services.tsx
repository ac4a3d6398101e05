import { useEffect, useRef, useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Pause, Play, Power, RefreshCw, RotateCw, Server, Square, Trash2 } from "lucide-react";
import { get, post, seg } from "../api/client";
import { openStream, type StreamStatus } from "../api/provision";
import { keys, useServices, type Service } from "../api/queries";
import type { Health, LogLine } from "../api/types.gen";
import { useToast } from "../components/toast";
import { Badge, Button, Card, ConfirmDialog, cx, Empty, ErrorState, Loading, Notice, PageHeader, SelectField } from "../components/ui";

export const maxLines = 1000;
const panelUnit = "portlama-panel";

type ActionName = "start" | "stop" | "restart" | "reload";

export function Services() {
  const services = useServices();
  const [selected, setSelected] = useState("nginx");
  return (
    <>
      <PageHeader title="Services" description="The relay's own services: status, uptime and controls, and their live logs." />
      {services.isPending ? (
        <Loading label="Loading services" />
      ) : services.isError ? (
        <ErrorState what="Services" error={services.error} retry={() => services.refetch()} />
      ) : services.data === null ? (
        <Card>
          <Empty title="Service control is not available on this relay yet" icon={<Server className="size-8" />}>
            This panel does not serve <code className="font-mono">/api/services</code>. Update the relay to see and control its services here.
          </Empty>
        </Card>
      ) : (
        <>
          <div className="grid gap-4 md:grid-cols-2">
            {services.data.map((s) => (
              <ServiceCard key={s.name} s={s} onLogs={() => setSelected(s.name)} />
            ))}
          </div>
          <LogViewer names={services.data.map((s) => s.name)} selected={selected} onSelect={setSelected} />
        </>
      )}
    </>
  );
}

function ServiceCard({ s, onLogs }: { s: Service; onLogs: () => void }) {
  const [confirm, setConfirm] = useState<ActionName | null>(null);
  const [err, setErr] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const m = useMutation({
    mutationFn: async (action: ActionName) => {
      await post(`/api/services/${seg(s.name)}/${action}`);
      // The panel answers first, then restarts itself: wait until it is back.
      if (s.name === panelUnit) await waitForPanel();
    },
    onSuccess: (_, action) => {
      toast(`${s.name}: ${action} done`);
      qc.invalidateQueries({ queryKey: keys.services });
    },
    onError: (e) => setErr(e instanceof Error ? e.message : String(e)),
  });
  const run = (a: ActionName) => {
    setErr("");
    if (a === "stop" || a === "restart") setConfirm(a);
    else m.mutate(a);
  };
  const tone = s.status === "active" ? "green" : s.status === "failed" ? "red" : "neutral";
  return (
    <Card
      title={<span className="font-mono">{s.name}</span>}
      id={`svc-${s.name}`}
      actions={
        <Badge tone={tone}>
          <span aria-hidden className={cx("size-1.5 rounded-full", s.status === "active" ? "bg-green-600" : s.status === "failed" ? "bg-red-600" : "bg-zinc-400")} />
          {s.status}
        </Badge>
      }
    >
      <p className="text-sm text-zinc-600 dark:text-zinc-400">{s.status === "active" && s.uptime ? `Up for ${s.uptime}` : "Not running"}</p>
      <div className="mt-3 flex flex-wrap gap-2">
        <Button size="sm" aria-label={`Start ${s.name}`} icon={<Play aria-hidden className="size-3.5" />} disabled={s.status === "active"} loading={m.isPending && m.variables === "start"} onClick={() => run("start")}>
          Start
        </Button>
        <Button
          size="sm"
          aria-label={`Stop ${s.name}`}
          icon={<Square aria-hidden className="size-3.5" />}
          disabled={s.name === panelUnit || s.status !== "active"}
          title={s.name === panelUnit ? "Stopping the panel would end this session" : undefined}
          onClick={() => run("stop")}
        >
          Stop
        </Button>
        <Button size="sm" aria-label={`Restart ${s.name}`} icon={<RotateCw aria-hidden className="size-3.5" />} loading={m.isPending && m.variables === "restart"} onClick={() => run("restart")}>
          Restart
        </Button>
        <Button size="sm" aria-label={`Reload ${s.name}`} icon={<RefreshCw aria-hidden className="size-3.5" />} loading={m.isPending && m.variables === "reload"} onClick={() => run("reload")}>
          Reload
        </Button>
        <Button size="sm" variant="ghost" aria-label={`Logs of ${s.name}`} onClick={onLogs}>
          Logs
        </Button>
      </div>
      {s.name === panelUnit && <p className="mt-2 text-xs text-zinc-600 dark:text-zinc-400">The panel cannot be stopped from here: that would end this session.</p>}
      {err && (
        <div className="mt-3">
          <Notice tone="danger">{err}</Notice>
        </div>
      )}
      <ConfirmDialog
        open={!!confirm}
        title={`${confirm === "stop" ? "Stop" : "Restart"} ${s.name}?`}
        confirmLabel={confirm === "stop" ? `Stop ${s.name}` : `Restart ${s.name}`}
        onClose={() => setConfirm(null)}
        onConfirm={async () => {
          if (confirm) await m.mutateAsync(confirm);
        }}
      >
        <p>{impact(s.name, confirm)}</p>
      </ConfirmDialog>
    </Card>
  );
}

function impact(name: string, action: ActionName | null): string {
  const what = {
    nginx: "every app, the login page and this panel",
    "portlama-tunnel": "every tunnel (agents reconnect by themselves)",
    "portlama-auth": "logins to protected apps",
    "portlama-panel": "this panel for a few seconds",
  }[name] ?? "what this service serves";
  return action === "stop" ? `Stopping it takes down ${what} until it is started again.` : `Restarting it interrupts ${what} briefly.`;
}

async function waitForPanel() {
  const deadline = Date.now() + 60_000;
  await new Promise((r) => setTimeout(r, 1000));
  while (Date.now() < deadline) {
    try {
      const h = await get<Health>("/api/health");
      if (h.status === "ok") return;
    } catch {
      // Still restarting.
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error("The panel did not come back within a minute. Check the relay over SSH: journalctl -u portlama-panel");
}

/** appendLines keeps the last maxLines lines. */
export function appendLines(lines: LogLine[], more: LogLine[]): LogLine[] {
  const next = lines.concat(more);
  return next.length > maxLines ? next.slice(next.length - maxLines) : next;
}

export function LogViewer({ names, selected, onSelect }: { names: string[]; selected: string; onSelect: (n: string) => void }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [paused, setPaused] = useState(false);
  const [status, setStatus] = useState<StreamStatus>("connecting");
  const pending = useRef<LogLine[]>([]);
  const pausedRef = useRef(false);
  const [held, setHeld] = useState(0);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    setLines([]);
    pending.current = [];
    setHeld(0);
    let buf: LogLine[] = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const flush = () => {
      timer = undefined;
      const chunk = buf;
      buf = [];
      if (pausedRef.current) {
        pending.current = appendLines(pending.current, chunk);
        setHeld(pending.current.length);
      } else setLines((l) => appendLines(l, chunk));
    };
    const s = openStream<LogLine>(`/api/services/${seg(selected)}/logs`, {
      onFrame: (f) => {
        buf.push(f);
        // At most one render per 50 ms, however fast lines arrive.
        if (!timer) timer = setTimeout(flush, 50);
      },
      onStatus: setStatus,
    });
    return () => {
      s.stop();
      clearTimeout(timer);
    };
  }, [selected]);

  useEffect(() => {
    const el = box.current;
    if (el && !paused) el.scrollTop = el.scrollHeight;
  }, [lines, paused]);

  const togglePause = () => {
    const next = !paused;
    pausedRef.current = next;
    setPaused(next);
    if (!next) {
      const chunk = pending.current;
      pending.current = [];
      setLines((l) => appendLines(l, chunk));
      setHeld(0);
    }
  };

  return (
    <Card
      className="mt-6"
      title="Logs"
      id="logs"
      actions={
        <>
          <Badge tone={status === "open" ? "green" : status === "reconnecting" ? "amber" : "neutral"}>{status === "open" ? "Live" : status === "reconnecting" ? "Reconnecting…" : status === "connecting" ? "Connecting…" : "Ended"}</Badge>
          <Button size="sm" aria-pressed={paused} onClick={togglePause} icon={paused ? <Play aria-hidden className="size-3.5" /> : <Pause aria-hidden className="size-3.5" />}>
            {paused ? `Resume${held ? ` (${held} new)` : ""}` : "Pause"}
          </Button>
          <Button size="sm" variant="ghost" onClick={() => setLines([])} icon={<Trash2 aria-hidden className="size-3.5" />}>
            Clear
          </Button>
        </>
      }
    >
      <div className="mb-3 max-w-xs">
        <SelectField label="Service" name="log-service" value={selected} onChange={onSelect} options={names.map((n) => ({ value: n, label: n }))} />
      </div>
      <div ref={box} tabIndex={0} role="log" aria-label={`Log of ${selected}`} aria-live="off" className="h-96 overflow-auto rounded-md bg-zinc-950 p-3 font-mono text-xs leading-5 text-zinc-100" data-testid="log-lines">
        {lines.length === 0 ? (
          <p className="text-zinc-400">Waiting for log lines…</p>
        ) : (
          lines.map((l, i) => (
            <div key={i} className="whitespace-pre-wrap">
              {l.timestamp && <span className="mr-2 text-zinc-400">{l.timestamp.replace("T", " ").replace(/\..*$/, "")}</span>}
              {l.message}
            </div>
          ))
        )}
      </div>
      <p className="mt-2 flex items-center gap-1 text-xs text-zinc-600 dark:text-zinc-400">
        <Power aria-hidden className="size-3" /> The last {maxLines.toLocaleString("en")} lines are kept; older ones scroll away.
      </p>
    </Card>
  );
}
