// Wire objects the tests start from.
import type { Site } from "../api/types.gen";

/** A live managed site of example.com. */
export const managedSite: Site = {
  id: "11111111-1111-4111-8111-111111111111",
  name: "docs",
  fqdn: "docs.example.com",
  type: "managed",
  spaMode: false,
  autheliaProtected: false,
  allowedUsers: [],
  dnsVerified: true,
  certIssued: true,
  rootPath: "/var/www/portlama/1",
  createdAt: "2026-01-01T00:00:00Z",
  totalSize: 2048,
};
