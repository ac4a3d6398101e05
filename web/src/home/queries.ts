// The control UI's API (internal/homeui), same-origin JSON with the
// session cookie.
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { del, get, patch, post, seg } from "../api/client";
import type {
  CreateTunnelRequest,
  HomeAddServerRequest,
  HomeAddServerResponse,
  HomeImportP12Request,
  HomeLogs,
  HomeServer,
  HomeServerList,
  HomeServerRemoved,
  HomeServiceList,
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

/** Every mutation refreshes the whole home state: it is small. */
function useHomeMutation<A, R>(fn: (a: A) => Promise<R>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSettled: () => qc.invalidateQueries({ queryKey: ["home"] }) });
}

export const useAddServer = () => useHomeMutation((b: HomeAddServerRequest) => post<HomeAddServerResponse>("/api/home/servers", b));
export const useImportP12 = () => useHomeMutation((b: HomeImportP12Request) => post<HomeAddServerResponse>("/api/home/servers/import-p12", b));
export const useUseServer = () => useHomeMutation((id: string) => post<HomeServer>(`/api/home/servers/${seg(id)}/use`));
export const useRemoveServer = () => useHomeMutation((id: string) => del<HomeServerRemoved>(`/api/home/servers/${seg(id)}`));
export const useCreateTunnel = () => useHomeMutation((b: CreateTunnelRequest) => post<Tunnel>("/api/home/tunnels", b));
export const useUpdateTunnel = () =>
  useHomeMutation(({ id, change }: { id: string; change: UpdateTunnelRequest }) => patch<Tunnel>(`/api/home/tunnels/${seg(id)}`, change));
export const useDeleteTunnel = () => useHomeMutation((id: string) => del<{ ok: boolean }>(`/api/home/tunnels/${seg(id)}`));
