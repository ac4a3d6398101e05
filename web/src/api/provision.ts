// The provisioning WebSocket (docs/api.md "Onboarding"). The frames are
// internal/api's (types.gen.ts); only a task's status is narrowed here to
// its four values, which the Go type leaves a plain string.
import type { ProvisionCompleteEvent, ProvisionFailureEvent, ProvisionProgressEvent, ProvisionResult, ProvisionState as StateFrame, ProvisionTask } from "./types.gen";
import { FrameState, TaskComplete, TaskDone, TaskError, TaskPending, TaskRunning } from "./types.gen";

export type { ProvisionResult };

export type TaskStatus = typeof TaskPending | typeof TaskRunning | typeof TaskDone | typeof TaskError;
const taskStatuses: readonly string[] = [TaskPending, TaskRunning, TaskDone, TaskError];

/** A task as the wizard shows it: the wire's task with its status narrowed. */
export type TaskState = Omit<ProvisionTask, "status"> & { status: TaskStatus };

/** One frame of the stream: the snapshot on connect, then events. */
export type Frame = StateFrame | ProvisionProgressEvent | ProvisionCompleteEvent | ProvisionFailureEvent;

/** A status the UI does not know is shown as pending (it changes nothing else). */
function narrow(status: string): TaskStatus {
  return taskStatuses.includes(status) ? (status as TaskStatus) : TaskPending;
}

/** The six tasks, in order (docs/api.md, "Provisioning"). */
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
  if ("type" in f && f.type === FrameState) {
    const known = new Map(f.tasks.map((t) => [t.id, { ...t, status: narrow(t.status) }]));
    const tasks = provisionTasks.map((t) => known.get(t.id) ?? { ...t, status: TaskPending as TaskStatus, message: "", log: null });
    // The log: each started task's message, then its own log lines (most
    // tasks have none), as the events would have added them.
    let logs: string[] = [];
    for (const t of f.tasks) if (t.status !== TaskPending) logs = appendLog(appendLog(logs, t.message), t.log);
    const done = !!f.result;
    return { tasks, logs, running: f.isRunning, error: f.error, result: f.result, done };
  }
  // The snapshot's type is a plain string on the wire: what is left are events.
  const e = f as Exclude<Frame, StateFrame>;
  if ("result" in e && e.task === TaskComplete) {
    return {
      ...s,
      tasks: s.tasks.map((t) => ({ ...t, status: TaskDone })),
      running: false,
      error: null,
      result: e.result,
      done: true,
      logs: appendLog(s.logs, e.message),
    };
  }
  if ("error" in e && e.status === TaskError) {
    const why = typeof e.error === "string" && e.error ? e.error : e.message;
    return {
      ...s,
      running: false,
      error: { task: e.task, message: why },
      tasks: s.tasks.map((t) => (t.id === e.task ? { ...t, status: TaskError, message: why } : t)),
      logs: appendLog(s.logs, e.error ? `${e.message}: ${e.error}` : e.message),
    };
  }
  const p = e as ProvisionProgressEvent;
  return {
    ...s,
    running: true,
    error: null,
    tasks: s.tasks.map((t) => (t.id === p.task ? { ...t, status: narrow(p.status), message: p.message, title: p.title || t.title } : t)),
    logs: appendLog(appendLog(s.logs, p.message), p.log),
  };
}

export function finishedCount(s: ProvisionState): number {
  return s.tasks.filter((t) => t.status === "done").length;
}

/** Reconnect delays: 0.5 s doubling, capped at 10 s (docs/webui.md, "Behaviour worth knowing"). */
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
