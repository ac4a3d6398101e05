// The provisioning WebSocket (contract §6.3). The panel's Go types for these
// frames do not exist yet (issue 9 builds the route); until they land in
// internal/api these are written from the contract, and types.gen.ts takes
// over once they do.

export type TaskStatus = "pending" | "running" | "done" | "error";

export interface ProvisionResult {
  adminUsername: string;
  adminPassword: string | null;
  panelUrl: string;
  authUrl: string;
}

export interface TaskState {
  id: string;
  title: string;
  status: TaskStatus;
  message: string;
  log: string | null;
}

export interface Progress {
  current: number;
  total: number;
}

export interface SnapshotFrame {
  type: "state";
  isRunning: boolean;
  tasks: TaskState[];
  error: null | { task: string; message: string };
  result: null | ProvisionResult;
}

export interface EventFrame {
  task: string;
  title?: string;
  status: "running" | "done" | "error";
  message: string;
  log?: string | null;
  error?: string;
  result?: ProvisionResult;
  progress?: Progress;
}

export type Frame = SnapshotFrame | EventFrame;

/** The six tasks, in order (contract §6.2). */
export const provisionTasks: readonly { id: string; title: string }[] = [
  { id: "start-tunnel-server", title: "Starting tunnel server" },
  { id: "start-auth-server", title: "Starting auth server" },
  { id: "issue-certs", title: "Issuing TLS certificates" },
  { id: "configure-nginx", title: "Configuring nginx" },
  { id: "verify-services", title: "Verifying services" },
  { id: "finalize", title: "Finalizing setup" },
];

export interface ProvisionState {
  tasks: TaskState[];
  logs: string[];
  running: boolean;
  error: null | { task: string; message: string };
  result: ProvisionResult | null;
  done: boolean;
}

export const maxLogLines = 500;

export function initialProvisionState(): ProvisionState {
  return {
    tasks: provisionTasks.map((t) => ({ ...t, status: "pending", message: "", log: null })),
    logs: [],
    running: false,
    error: null,
    result: null,
    done: false,
  };
}

function appendLog(logs: string[], text: string | null | undefined): string[] {
  if (!text) return logs;
  const next = logs.concat(text.split("\n").filter((l) => l !== ""));
  return next.length > maxLogLines ? next.slice(next.length - maxLogLines) : next;
}

/** reduceFrame applies one frame of the stream to the wizard's state. */
export function reduceFrame(s: ProvisionState, f: Frame): ProvisionState {
  if ("type" in f && f.type === "state") {
    const known = new Map(f.tasks.map((t) => [t.id, t]));
    const tasks = provisionTasks.map((t) => known.get(t.id) ?? { ...t, status: "pending" as TaskStatus, message: "", log: null });
    // The log: each started task's message, then its own log lines (most
    // tasks have none), as the events would have added them.
    let logs: string[] = [];
    for (const t of f.tasks) if (t.status !== "pending") logs = appendLog(appendLog(logs, t.message), t.log);
    const done = !!f.result;
    return { tasks, logs, running: f.isRunning, error: f.error, result: f.result, done };
  }
  const e = f as EventFrame;
  if (e.task === "complete") {
    return {
      ...s,
      tasks: s.tasks.map((t) => ({ ...t, status: "done" })),
      running: false,
      error: null,
      result: e.result ?? null,
      done: true,
      logs: appendLog(s.logs, e.message),
    };
  }
  if (e.status === "error") {
    return {
      ...s,
      running: false,
      error: { task: e.task, message: e.error || e.message },
      tasks: s.tasks.map((t) => (t.id === e.task ? { ...t, status: "error", message: e.error || e.message } : t)),
      logs: appendLog(s.logs, e.error ? `${e.message}: ${e.error}` : e.message),
    };
  }
  return {
    ...s,
    running: true,
    error: null,
    tasks: s.tasks.map((t) => (t.id === e.task ? { ...t, status: e.status, message: e.message, title: e.title || t.title } : t)),
    logs: appendLog(appendLog(s.logs, e.message), e.log),
  };
}

export function finishedCount(s: ProvisionState): number {
  return s.tasks.filter((t) => t.status === "done").length;
}

/** Reconnect delays: 0.5 s doubling, capped at 10 s (contract §20). */
export function backoff(attempt: number): number {
  return Math.min(10_000, 500 * 2 ** Math.max(0, attempt));
}

export function streamURL(path: string, loc: Location = window.location): string {
  return `${loc.protocol === "https:" ? "wss:" : "ws:"}//${loc.host}${path}`;
}

export type StreamStatus = "connecting" | "open" | "reconnecting" | "closed";

export interface StreamHandlers<T = Frame> {
  onFrame(f: T): void;
  onStatus(s: StreamStatus): void;
}

/**
 * openStream keeps a WebSocket open to path, reconnecting with backoff
 * until stop() is called or shouldStop() says the stream has nothing more
 * to tell. Each frame is one JSON object.
 */
export function openStream<T = Frame>(path: string, h: StreamHandlers<T>, shouldStop: () => boolean = () => false, WS: typeof WebSocket = WebSocket) {
  let ws: WebSocket | null = null;
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;

  const connect = () => {
    if (stopped) return;
    h.onStatus(attempt === 0 ? "connecting" : "reconnecting");
    ws = new WS(streamURL(path));
    ws.onopen = () => {
      attempt = 0;
      h.onStatus("open");
    };
    ws.onmessage = (ev) => {
      try {
        h.onFrame(JSON.parse(String(ev.data)) as T);
      } catch {
        // A frame that is not JSON is not ours; ignore it.
      }
    };
    ws.onclose = () => {
      ws = null;
      if (stopped || shouldStop()) {
        h.onStatus("closed");
        return;
      }
      h.onStatus("reconnecting");
      timer = setTimeout(connect, backoff(attempt++));
    };
  };
  connect();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      ws?.close();
    },
  };
}
