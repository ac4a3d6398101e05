import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { HomeStatus, HomeTunnelList, Tunnel } from "../api/types.gen";
import { renderWithClient } from "../test/render";
import { TunnelsPage } from "./Tunnels";

const status: HomeStatus = { version: "test", keychain: "os", server: { id: "laptop", kind: "agent", panelUrl: "https://203.0.113.7:9292", addedAt: "", current: true } };

function tunnel(sub: string, extra: Partial<Tunnel> = {}): Tunnel {
  return {
    id: `00000000-0000-4000-8000-00000000000${sub.length}`,
    subdomain: sub,
    fqdn: `${sub}.example.com`,
    agentLabel: "laptop",
    port: 8000 + sub.length,
    targetHost: "127.0.0.1",
    relayPort: 20000,
    description: null,
    type: "app",
    accessMode: "authenticated",
    createdAt: "2026-01-01T00:00:00.000Z",
    ...extra,
  };
}

const list: HomeTunnelList = {
  connection: "reconnecting",
  error: "dial tunnel.example.com: connection refused",
  tunnels: [
    { tunnel: tunnel("up"), state: "connected" },
    { tunnel: tunnel("flaky"), state: "reconnecting", reason: "relay port closed" },
    { tunnel: tunnel("off", { enabled: false }), state: "disabled" },
    { tunnel: tunnel("team", { accessMode: "restricted", allowedUsers: ["alice"], allowedGroups: ["family"] }), state: "connected" },
  ],
};

test("live state per tunnel, the reason of a reconnect, the connection problem", () => {
  renderWithClient(<TunnelsPage />, (qc) => {
    qc.setQueryData(["home", "status"], status);
    qc.setQueryData(["home", "tunnels"], list);
  });
  expect(screen.getByText("Relay reconnecting")).toBeInTheDocument();
  expect(screen.getByText("dial tunnel.example.com: connection refused")).toBeInTheDocument();
  expect(screen.getAllByText("Connected")).toHaveLength(2);
  expect(screen.getByText("Reconnecting")).toBeInTheDocument();
  expect(screen.getByText("relay port closed")).toBeInTheDocument();
  expect(screen.getByText("Disabled")).toBeInTheDocument();
  expect(screen.getByText("alice, @family")).toBeInTheDocument();
  expect(screen.getByRole("switch", { name: "Enable off.example.com" })).toHaveAttribute("aria-checked", "false");
});

test("the switch sends enabled=false", async () => {
  const calls: { url: string; method?: string; body: unknown }[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init?: RequestInit) => {
      calls.push({ url, method: init?.method, body: init?.body ? JSON.parse(String(init.body)) : undefined });
      const answer = init?.method === "PATCH" ? tunnel("up", { enabled: false }) : url.endsWith("/status") ? status : list;
      return new Response(JSON.stringify(answer), { status: 200, headers: { "Content-Type": "application/json" } });
    }),
  );
  try {
    renderWithClient(<TunnelsPage />, (qc) => {
      qc.setQueryData(["home", "status"], status);
      qc.setQueryData(["home", "tunnels"], list);
    });
    await userEvent.click(screen.getByRole("switch", { name: "Enable up.example.com" }));
    await vi.waitFor(() => expect(calls.find((c) => c.method === "PATCH")).toBeDefined());
    const p = calls.find((c) => c.method === "PATCH")!;
    expect(p.url).toBe(`/api/home/tunnels/${tunnel("up").id}`);
    expect(p.body).toEqual({ enabled: false });
  } finally {
    vi.unstubAllGlobals();
  }
});
