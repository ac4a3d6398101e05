// Query keys and fetchers shared by the pages.
import { useQuery } from "@tanstack/react-query";
import { get, isApiError } from "./client";
import type { AgentList, AutoRenewStatus, CertList, GroupList, Health, InvitationList, OnboardingStatus, Service, ServiceList, SystemStats, TunnelList, TwoFAStatus, UserList, SiteList, SiteFileList } from "./types.gen";

export const keys = {
  onboarding: ["onboarding"] as const,
  health: ["health"] as const,
  stats: ["stats"] as const,
  services: ["services"] as const,
  tunnels: ["tunnels"] as const,
  agents: ["agents"] as const,
  users: ["users"] as const,
  groups: ["groups"] as const,
  invitations: ["invitations"] as const,
  certs: ["certs"] as const,
  twofa: ["twofa"] as const,
  autoRenew: ["auto-renew"] as const,
  sites: ["sites"] as const,
  siteFiles: (id: string, path: string) => ["sites", id, "files", path] as const,
};

export const useOnboarding = () => useQuery({ queryKey: keys.onboarding, queryFn: () => get<OnboardingStatus>("/api/onboarding/status") });
export const useHealth = () => useQuery({ queryKey: keys.health, queryFn: () => get<Health>("/api/health"), staleTime: 60_000 });
export const useStats = () => useQuery({ queryKey: keys.stats, queryFn: () => get<SystemStats>("/api/system/stats"), refetchInterval: 5_000 });
export const useTunnels = (refetchInterval: number | false = 10_000) =>
  useQuery({ queryKey: keys.tunnels, queryFn: async () => (await get<TunnelList>("/api/tunnels")).tunnels, refetchInterval });
export const useAgents = () => useQuery({ queryKey: keys.agents, queryFn: async () => (await get<AgentList>("/api/certs/agent")).agents });
export const useUsers = () => useQuery({ queryKey: keys.users, queryFn: async () => (await get<UserList>("/api/users")).users });
export const useGroups = () => useQuery({ queryKey: keys.groups, queryFn: async () => (await get<GroupList>("/api/identity/groups")).groups });
export const useInvitations = () => useQuery({ queryKey: keys.invitations, queryFn: async () => (await get<InvitationList>("/api/invitations")).invitations });
export const useCerts = () => useQuery({ queryKey: keys.certs, queryFn: async () => (await get<CertList>("/api/certs")).certs });
export const useAutoRenew = () => useQuery({ queryKey: keys.autoRenew, queryFn: () => get<AutoRenewStatus>("/api/certs/auto-renew-status"), staleTime: 60_000 });
export const useSites = () => useQuery({ queryKey: keys.sites, queryFn: async () => (await get<SiteList>("/api/sites")).sites });
export const useSiteFiles = (id: string, path: string) =>
  useQuery({ queryKey: keys.siteFiles(id, path), queryFn: () => get<SiteFileList>(`/api/sites/${encodeURIComponent(id)}/files?path=${encodeURIComponent(path)}`) });
export const useTwoFA = () => useQuery({ queryKey: keys.twofa, queryFn: () => get<TwoFAStatus>("/api/settings/2fa") });

export type { Service };

/**
 * useServices lists the relay's services. Until the panel serves
 * /api/services (issue 10) it answers 404 and the data is null, so the
 * dashboard shows no service card instead of an error.
 */
export const useServices = () =>
  useQuery({
    queryKey: keys.services,
    queryFn: async () => {
      try {
        return (await get<ServiceList>("/api/services")).services;
      } catch (e) {
        if (isApiError(e, 404)) return null;
        throw e;
      }
    },
    // No route (null): nothing to refresh.
    refetchInterval: (q) => (q.state.data === null ? false : 5_000),
  });

export function activeAgents(agents: AgentList["agents"] | undefined) {
  return (agents ?? []).filter((a) => !a.revoked);
}
