import { screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { Tunnel } from "../api/types.gen";
import { keys } from "../api/queries";
import { renderWithClient } from "../test/render";
import { TunnelTable, pageSize } from "./Tunnels";
import { useState } from "react";

function tunnels(n: number): Tunnel[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    subdomain: `app${i}`,
    fqdn: `app${i}.example.com`,
    agentLabel: i % 2 ? "home" : "nas",
    port: 1024 + i,
    targetHost: i === 7 ? "fd00::5" : "127.0.0.1",
    relayPort: 20000 + i,
    description: i === 3 ? "Photo library" : null,
    type: "app",
    accessMode: i % 3 === 0 ? "public" : "authenticated",
    allowedUsers: [],
    allowedGroups: [],
    enabled: i % 5 !== 0,
    createdAt: "2026-01-01T00:00:00.000Z",
  }));
}

function Harness({ list }: { list: Tunnel[] }) {
  const [q, setQ] = useState("");
  const shown = q ? list.filter((t) => t.fqdn.includes(q) || (t.description ?? "").toLowerCase().includes(q)) : list;
  return <TunnelTable tunnels={shown} all={list.length} query={q} setQuery={setQ} />;
}

test("1,000 tunnels: one page of rows in the DOM, pages to walk, a filter", async () => {
  const list = tunnels(1000);
  renderWithClient(<Harness list={list} />, (qc) => {
    qc.setQueryData(keys.tunnels, list);
    qc.setQueryData(keys.onboarding, { status: "COMPLETED", domain: "example.com", ip: "203.0.113.10", httpsPort: 443, panelIpUrl: "https://203.0.113.10:9292" });
  });
  expect(screen.getAllByTestId("tunnel-row")).toHaveLength(pageSize);
  expect(screen.getByText(`1–${pageSize} of 1,000`)).toBeInTheDocument();
  expect(screen.getByText("Page 1 of 40")).toBeInTheDocument();
  const user = userEvent.setup();
  await user.click(screen.getByRole("button", { name: "Next" }));
  expect(screen.getByText("Page 2 of 40")).toBeInTheDocument();
  expect(screen.getAllByTestId("tunnel-row")[0]).toHaveTextContent("app25.example.com");
  // An IPv6 target is shown in brackets; links open the tunnel's address.
  await user.click(screen.getByRole("button", { name: "Previous" }));
  const row7 = screen.getAllByTestId("tunnel-row")[7];
  expect(row7).toHaveTextContent("20007 → [fd00::5]:1031");
  expect(within(row7).getByRole("link")).toHaveAttribute("href", "https://app7.example.com/");
  // Disabled tunnels show an unchecked switch.
  expect(within(screen.getAllByTestId("tunnel-row")[0]).getByRole("switch")).toHaveAttribute("aria-checked", "false");
  await user.type(screen.getByRole("searchbox", { name: "Filter tunnels" }), "photo");
  expect(screen.getAllByTestId("tunnel-row")).toHaveLength(1);
  expect(screen.getByText("1 of 1,000 tunnels")).toBeInTheDocument();
});
