import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { HomeService, HomeStatus } from "../api/types.gen";
import { renderWithClient } from "../test/render";
import { AppsPage } from "./Apps";

const status: HomeStatus = { version: "test", keychain: "os", server: { id: "laptop", kind: "agent", panelUrl: "https://203.0.113.7:9292", addedAt: "", current: true } };
const services: HomeService[] = [
  { port: 8123, process: "python3", http: true, status: 200, title: "Home Assistant", appId: "home-assistant", appName: "Home Assistant", subdomain: "home", access: "authenticated" },
  { port: 5173, process: "node", http: true, status: 200, title: "My app", appId: "vite", appName: "Vite dev server", subdomain: "dev", access: "authenticated", tunnel: "dev" },
  { port: 5432, process: "postgres", http: false, subdomain: "postgres", access: "authenticated" },
];

function seed(qc: import("@tanstack/react-query").QueryClient) {
  qc.setQueryData(["home", "status"], status);
  qc.setQueryData(["home", "services"], { services });
}

test("web pages are listed, tunnelled ones marked, other listeners folded away", async () => {
  renderWithClient(<AppsPage />, seed);
  expect(screen.getByRole("heading", { name: "Home Assistant" })).toBeInTheDocument();
  expect(screen.getByText("Tunnelled")).toBeInTheDocument();
  expect(screen.queryByText(/postgres/)).not.toBeInTheDocument();
  await userEvent.click(screen.getByRole("button", { name: /Show 1 other listener/ }));
  expect(screen.getByText(/localhost:5432/)).toBeInTheDocument();
});

test("one click creates the tunnel with the suggested subdomain and access", async () => {
  const calls: { url: string; body: unknown }[] = [];
  const fetchMock = vi.fn(async (url: string, init?: RequestInit) => {
    calls.push({ url, body: init?.body ? JSON.parse(String(init.body)) : undefined });
    const answer = init?.method === "POST" ? { fqdn: "home.example.com" } : url.endsWith("/status") ? status : { services };
    return new Response(JSON.stringify(answer), { status: init?.method === "POST" ? 201 : 200, headers: { "Content-Type": "application/json" } });
  });
  vi.stubGlobal("fetch", fetchMock);
  try {
    renderWithClient(<AppsPage />, seed);
    await userEvent.click(screen.getByRole("button", { name: "Tunnel as home: Home Assistant" }));
    expect(await screen.findByText("Tunnel created: https://home.example.com")).toBeInTheDocument();
    const post = calls.find((c) => c.url === "/api/home/tunnels");
    expect(post?.body).toEqual({ subdomain: "home", port: 8123, accessMode: "authenticated" });
  } finally {
    vi.unstubAllGlobals();
  }
});
