import { backoff, initialProvisionState, openStream, reduceFrame, finishedCount, maxLogLines, type Frame } from "./provision";

test("frames drive the six tasks to completion", () => {
  let s = initialProvisionState();
  expect(s.tasks.map((t) => t.id)).toEqual(["start-tunnel-server", "start-auth-server", "issue-certs", "configure-nginx", "verify-services", "finalize"]);
  s = reduceFrame(s, { task: "start-tunnel-server", title: "Starting tunnel server", status: "running", message: "Starting", log: "creating key", progress: { current: 1, total: 6 } });
  expect(s.tasks[0].status).toBe("running");
  expect(s.running).toBe(true);
  expect(s.logs).toEqual(["Starting", "creating key"]);
  s = reduceFrame(s, { task: "start-tunnel-server", title: "Starting tunnel server", status: "done", message: "Tunnel server running", log: null, progress: { current: 1, total: 6 } });
  expect(finishedCount(s)).toBe(1);
  expect(s.logs).toEqual(["Starting", "creating key", "Tunnel server running"]);
  s = reduceFrame(s, {
    task: "complete",
    status: "done",
    message: "Provisioning complete",
    result: { adminUsername: "admin", adminPassword: "pw", panelUrl: "https://panel.example.com", authUrl: "https://auth.example.com" },
    progress: { current: 6, total: 6 },
  });
  expect(s.done).toBe(true);
  expect(finishedCount(s)).toBe(6);
  expect(s.result?.adminPassword).toBe("pw");
});

test("a failure marks its task and keeps the log; a snapshot restores state", () => {
  let s = reduceFrame(initialProvisionState(), { task: "issue-certs", status: "error", message: "Failed: Issuing TLS certificates", error: "DNS for panel.example.com does not point to this server yet", progress: { current: 2, total: 6 } });
  expect(s.error?.message).toMatch(/DNS for panel/);
  expect(s.tasks[2].status).toBe("error");
  expect(s.running).toBe(false);
  const snap: Frame = {
    type: "state",
    isRunning: true,
    tasks: [
      { id: "start-tunnel-server", title: "Starting tunnel server", status: "done", message: "ok", log: "a\nb" },
      { id: "start-auth-server", title: "Starting auth server", status: "running", message: "", log: null },
      { id: "issue-certs", title: "Issuing TLS certificates", status: "queued", message: "", log: null },
    ],
    error: null,
    result: null,
  };
  s = reduceFrame(s, snap);
  expect(s.tasks.map((t) => t.status)).toEqual(["done", "running", "pending", "pending", "pending", "pending"]);
  expect(s.logs).toEqual(["ok", "a", "b"]);
  expect(s.error).toBeNull();
});

test("the log keeps the last lines only", () => {
  let s = initialProvisionState();
  for (let i = 0; i < maxLogLines + 50; i++) s = reduceFrame(s, { task: "finalize", title: "Finalizing setup", status: "running", message: "", log: `line ${i}`, progress: { current: 6, total: 6 } });
  expect(s.logs.length).toBe(maxLogLines);
  expect(s.logs.at(-1)).toBe(`line ${maxLogLines + 49}`);
});

test("reconnect delays double and stop at 10 s", () => {
  expect([0, 1, 2, 3, 4, 5, 6, 10].map(backoff)).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
});

class FakeWS {
  static all: FakeWS[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(public url: string) {
    FakeWS.all.push(this);
  }
  close() {
    this.onclose?.();
  }
}

test("the stream reconnects with back-off and resets it after a connection", () => {
  vi.useFakeTimers();
  FakeWS.all = [];
  const frames: Frame[] = [];
  const statuses: string[] = [];
  const s = openStream("/api/onboarding/provision/stream", { onFrame: (f) => frames.push(f), onStatus: (x) => statuses.push(x) }, () => false, FakeWS as unknown as typeof WebSocket);
  expect(FakeWS.all[0].url).toBe("ws://localhost:3000/api/onboarding/provision/stream".replace("localhost:3000", window.location.host));
  FakeWS.all[0].onclose?.(); // refused
  vi.advanceTimersByTime(499);
  expect(FakeWS.all.length).toBe(1);
  vi.advanceTimersByTime(1);
  expect(FakeWS.all.length).toBe(2);
  FakeWS.all[1].onclose?.();
  vi.advanceTimersByTime(999);
  expect(FakeWS.all.length).toBe(2);
  vi.advanceTimersByTime(1);
  expect(FakeWS.all.length).toBe(3);
  FakeWS.all[2].onopen?.();
  FakeWS.all[2].onmessage?.({ data: JSON.stringify({ type: "state", isRunning: false, tasks: [], error: null, result: null }) });
  FakeWS.all[2].onmessage?.({ data: "not json" });
  expect(frames.length).toBe(1);
  FakeWS.all[2].onclose?.();
  vi.advanceTimersByTime(500); // back to the first delay
  expect(FakeWS.all.length).toBe(4);
  s.stop();
  vi.advanceTimersByTime(20_000);
  expect(FakeWS.all.length).toBe(4);
  expect(statuses).toContain("reconnecting");
  vi.useRealTimers();
});
