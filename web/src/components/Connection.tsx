// Whether a tunnel's agent or an agent is connected right now, from the
// tunnel server's status (api.Tunnel.connected, api.Agent.connected and
// connectedSince). The fields are optional on the wire: absent when the
// relay does not report them or could not ask the tunnel server, and then
// nothing is shown rather than a guess.
import { Badge } from "./ui";
import { formatDateTime } from "../lib/format";

export interface ConnectionState {
  connected?: boolean | null;
  connectedSince?: string;
}

/** connection reads the optional connection fields of a tunnel or agent. */
export function connection(x: object): ConnectionState {
  const c = x as ConnectionState;
  return { connected: typeof c.connected === "boolean" ? c.connected : undefined, connectedSince: typeof c.connectedSince === "string" && c.connectedSince ? c.connectedSince : undefined };
}

export function ConnectionBadge({ of }: { of: object }) {
  const c = connection(of);
  if (c.connected === undefined) return null;
  return c.connected ? (
    <span className="inline-flex flex-wrap items-center gap-1.5">
      <Badge tone="green">
        <span aria-hidden className="size-1.5 rounded-full bg-green-600 dark:bg-green-400" />
        Connected
      </Badge>
      {c.connectedSince && <span className="text-xs text-zinc-600 dark:text-zinc-400">since {formatDateTime(c.connectedSince)}</span>}
    </span>
  ) : (
    <Badge tone="neutral">
      <span aria-hidden className="size-1.5 rounded-full bg-zinc-500" />
      Disconnected
    </Badge>
  );
}
