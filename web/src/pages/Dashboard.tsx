import { Link } from "wouter";
import { Cable, Monitor } from "lucide-react";
import { activeAgents, useAgents, useServices, useStats, useTunnels } from "../api/queries";
import { connection } from "../components/Connection";
import { Badge, Card, ErrorState, Loading, Meter, PageHeader, Stat } from "../components/ui";
import { formatBytes, formatDuration, formatPercent, plural, ratio } from "../lib/format";

export function Dashboard() {
  const stats = useStats();
  const tunnels = useTunnels();
  const agents = useAgents();
  const services = useServices();
  const s = stats.data;
  return (
    <>
      <PageHeader title="Dashboard" description="The relay at a glance. Refreshed every 5 seconds." />
      {stats.isError && <ErrorState what="System statistics" error={stats.error} retry={() => stats.refetch()} />}
      {stats.isPending ? (
        <Loading label="Loading system statistics" />
      ) : s ? (
        <div className="grid gap-4 sm:grid-cols-2 xl:grid-cols-4">
          <Stat label="CPU" value={formatPercent(s.cpu.usage)} sub={plural(s.cpu.cores, "core")}>
            <Meter value={s.cpu.usage} label="CPU usage" />
          </Stat>
          <Stat label="Memory" value={formatBytes(s.memory.used)} sub={`of ${formatBytes(s.memory.total)} · ${formatBytes(s.memory.free)} available`}>
            <Meter value={ratio(s.memory.used, s.memory.total)} label="Memory used" />
          </Stat>
          <Stat label="Disk" value={formatBytes(s.disk.used)} sub={`of ${formatBytes(s.disk.total)} · ${formatBytes(s.disk.free)} free`}>
            <Meter value={ratio(s.disk.used, s.disk.total)} label="Disk used" />
          </Stat>
          <Stat label="Uptime" value={formatDuration(s.uptime)} sub="since the server booted" />
        </div>
      ) : null}

      <div className="mt-6 grid gap-4 lg:grid-cols-2">
        <Card title="Tunnels" id="dash-tunnels" actions={<Link href="/tunnels" className="text-sm font-medium text-teal-700 hover:underline dark:text-teal-400">Manage</Link>}>
          {tunnels.isPending ? (
            <Loading />
          ) : tunnels.isError ? (
            <ErrorState what="Tunnels" error={tunnels.error} retry={() => tunnels.refetch()} />
          ) : (
            <Summary
              icon={<Cable aria-hidden className="size-5" />}
              total={tunnels.data.length}
              parts={[
                { n: tunnels.data.filter((t) => t.enabled !== false).length, label: "enabled", tone: "green" },
                { n: tunnels.data.filter((t) => t.enabled === false).length, label: "disabled", tone: "neutral" },
                { n: tunnels.data.filter((t) => t.accessMode === "public").length, label: "public", tone: "amber" },
              ]}
              noun="tunnel"
            />
          )}
        </Card>
        <Card title="Agents" id="dash-agents" actions={<Link href="/agents" className="text-sm font-medium text-teal-700 hover:underline dark:text-teal-400">Manage</Link>}>
          {agents.isPending ? (
            <Loading />
          ) : agents.isError ? (
            <ErrorState what="Agents" error={agents.error} retry={() => agents.refetch()} />
          ) : (
            <Summary
              icon={<Monitor aria-hidden className="size-5" />}
              total={activeAgents(agents.data).length}
              parts={[
                // Only when the relay reports connections (see Connection.tsx).
                ...(activeAgents(agents.data).some((a) => connection(a).connected !== undefined)
                  ? [{ n: activeAgents(agents.data).filter((a) => connection(a).connected === true).length, label: "connected", tone: "green" as const }]
                  : []),
                { n: agents.data.filter((a) => !a.revoked && a.expiringSoon).length, label: "expiring soon", tone: "amber" },
                { n: agents.data.filter((a) => a.revoked).length, label: "revoked", tone: "neutral" },
              ]}
              noun="active agent"
            />
          )}
        </Card>
        {services.data && (
          <Card title="Services" id="dash-services" className="lg:col-span-2">
            <p className="mb-3 text-sm text-zinc-600 dark:text-zinc-400">
              {services.data.filter((x) => x.status === "active").length} of {services.data.length} active
            </p>
            <ul className="grid gap-2 sm:grid-cols-2">
              {services.data.map((x) => (
                <li key={x.name} className="flex items-center justify-between rounded-md px-3 py-2 ring-1 ring-zinc-200 dark:ring-zinc-800">
                  <span className="font-mono text-sm">{x.name}</span>
                  <span className="flex items-center gap-2 text-xs text-zinc-600 dark:text-zinc-400">
                    {x.uptime}
                    <Badge tone={x.status === "active" ? "green" : x.status === "failed" ? "red" : "neutral"}>{x.status}</Badge>
                  </span>
                </li>
              ))}
            </ul>
          </Card>
        )}
      </div>
    </>
  );
}

function Summary({ icon, total, parts, noun }: { icon: React.ReactNode; total: number; parts: { n: number; label: string; tone: "green" | "neutral" | "amber" }[]; noun: string }) {
  return (
    <div className="flex items-center gap-4">
      <span className="flex size-10 items-center justify-center rounded-md bg-teal-50 text-teal-800 dark:bg-teal-950 dark:text-teal-300">{icon}</span>
      <div>
        <p className="text-2xl font-semibold tabular-nums">{plural(total, noun)}</p>
        <p className="mt-1 flex flex-wrap gap-1.5">
          {parts
            .filter((p) => p.n > 0)
            .map((p) => (
              <Badge key={p.label} tone={p.tone}>
                {p.n.toLocaleString("en")} {p.label}
              </Badge>
            ))}
        </p>
      </div>
    </div>
  );
}
