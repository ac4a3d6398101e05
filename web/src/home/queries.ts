// The control UI's API (internal/homeui), same-origin JSON with the
// session cookie.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, del, get, patch, post, put, seg } from "../api/client";
import type {
  CreateTunnelRequest,
  HomeAddServerRequest,
  HomeAddServerResponse,
  HomeCloud,
  HomeCloudAccount,
  HomeCloudOptions,
  HomeProvisionRequest,
  HomeImportP12Request,
  HomeLogs,
  HomeServer,
  HomeServerList,
  HomeServerRemoved,
  HomeServiceList,
  HomeSetupFrame,
  HomeSetupStep,
  HomeStatus,
  HomeTunnelList,
  Tunnel,
  UpdateTunnelRequest,
} from "../api/types.gen";

export const useStatus = () => useQuery({ queryKey: ["home", "status"], queryFn: () => get<HomeStatus>("/api/home/status") });
export const useServers = () => useQuery({ queryKey: ["home", "servers"], queryFn: () => get<HomeServerList>("/api/home/servers") });
export const useServices = () =>
  useQuery({ queryKey: ["home", "services"], queryFn: () => get<HomeServiceList>("/api/home/services"), refetchInterval: 10_000 });
export const useTunnels = (enabled = true) =>
  useQuery({ queryKey: ["home", "tunnels"], queryFn: () => get<HomeTunnelList>("/api/home/tunnels"), refetchInterval: 2_000, enabled });
export const useLogs = () => useQuery({ queryKey: ["home", "logs"], queryFn: () => get<HomeLogs>("/api/home/logs"), refetchInterval: 2_000 });

/** The provisioning job: polled every second while it runs. */
export const useCloud = () =>
  useQuery({
    queryKey: ["home", "cloud"],
    queryFn: () => get<HomeCloud>("/api/home/cloud"),
    refetchInterval: (q) => (q.state.data?.running ? 1_000 : false),
  });
export const useCloudOptions = (enabled: boolean) =>
  useQuery({ queryKey: ["home", "cloud", "options"], queryFn: () => get<HomeCloudOptions>("/api/home/cloud/options"), enabled });

/** Every mutation refreshes the whole home state: it is small. */
function useHomeMutation<A, R>(fn: (a: A) => Promise<R>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSettled: () => qc.invalidateQueries({ queryKey: ["home"] }) });
}

export const useAddServer = () =>
  useHomeMutation(({ req, onStep }: { req: HomeAddServerRequest; onStep: (s: HomeSetupStep) => void }) => addServerWithProgress(req, onStep));

/**
 * addServerWithProgress enrolls this machine and reports each setup step as
 * it happens (the NDJSON answer of POST /api/home/servers).
 */
export async function addServerWithProgress(req: HomeAddServerRequest, onStep: (s: HomeSetupStep) => void): Promise<HomeAddServerResponse> {
  let res: Response;
  try {
    res = await fetch("/api/home/servers", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/x-ndjson", "Content-Type": "application/json" },
      body: JSON.stringify(req),
    });
  } catch {
    throw new ApiError(0, {}, "The control UI cannot be reached: is portlama-agent ui still running?");
  }
  if (!res.ok || !res.body) {
    let body: Record<string, unknown> = {};
    try {
      body = await res.json();
    } catch {
      body = {};
    }
    throw new ApiError(res.status, body);
  }
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      const f = JSON.parse(line) as HomeSetupFrame;
      if (f.step) onStep(f.step);
      if (f.error) throw new ApiError(400, { error: f.error });
      if (f.done) return f.done;
    }
    if (done) throw new ApiError(0, {}, "The enrollment stopped without an answer: see the Log page.");
  }
}
export const useImportP12 = () => useHomeMutation((b: HomeImportP12Request) => post<HomeAddServerResponse>("/api/home/servers/import-p12", b));
export const useUseServer = () => useHomeMutation((id: string) => post<HomeServer>(`/api/home/servers/${seg(id)}/use`));
export const useRemoveServer = () => useHomeMutation((id: string) => del<HomeServerRemoved>(`/api/home/servers/${seg(id)}`));
export const useCreateTunnel = () => useHomeMutation((b: CreateTunnelRequest) => post<Tunnel>("/api/home/tunnels", b));
export const useUpdateTunnel = () =>
  useHomeMutation(({ id, change }: { id: string; change: UpdateTunnelRequest }) => patch<Tunnel>(`/api/home/tunnels/${seg(id)}`, change));
export const useDeleteTunnel = () => useHomeMutation((id: string) => del<{ ok: boolean }>(`/api/home/tunnels/${seg(id)}`));

export const useCloudToken = () => useHomeMutation((token: string) => put<HomeCloudAccount>("/api/home/cloud/token", { token }));
export const useProvision = () => useHomeMutation((req: HomeProvisionRequest) => post<HomeCloud>("/api/home/cloud/provision", req));
/** A job action: resume, destroy, close-port-22, finish. */
export const useCloudAction = () => useHomeMutation((action: "resume" | "destroy" | "close-port-22" | "finish") => post<HomeCloud>(`/api/home/cloud/${action}`));
