import type { Capability } from "../api/types.gen";
import { CapabilityValues } from "../api/types.gen";

/** What each capability lets an agent do (docs/api.md, "Capabilities"). */
export const capabilityInfo: Record<Capability, string> = {
  "tunnels:read": "Read its tunnel configuration (always granted).",
  "tunnels:write": "Create, change and delete its own tunnels.",
  "services:read": "See the relay's services.",
  "services:write": "Start, stop, restart and reload services.",
  "system:read": "See CPU, memory and disk statistics.",
  "sites:read": "List files of the static sites it is allowed.",
  "sites:write": "Upload and delete files of those sites.",
  "panel:expose": "Publish its own management panel as agent-<label>.",
  "identity:read": "Reserved; no route uses it yet.",
  "identity:query": "Look up users and groups of the relay.",
};

export const selectableCapabilities = CapabilityValues.filter((c) => c !== "identity:read");
