// The Sites page's logic: the API's file rules (docs/api.md "Static sites")
// checked before an upload starts, folder paths, what a DNS check means,
// and which settings a PATCH must carry. The panel checks everything again;
// these only spare a doomed upload.
import type { Site, SiteDNSCheck, UpdateSiteRequest } from "../api/types.gen";
import { hostURL } from "./format";

/**
 * The extensions site files may have (lower case, no dot). The same list as
 * internal/validate's siteFileTypes; internal/webui's test compares them.
 */
export const siteExtensions = [
  "avif", "bmp", "css", "csv", "eot", "flac", "geojson", "gif", "htm", "html", "ico", "jpeg", "jpg", "js", "json", "manifest", "map", "md", "mjs",
  "mp3", "mp4", "ogg", "otf", "pdf", "png", "svg", "topojson", "ttf", "txt", "wasm", "wav", "webm", "webmanifest", "webp", "woff", "woff2", "xml",
];

/** checkUploadName: "" when the panel would accept a file stored as name (relative, "/"-separated). */
export function checkUploadName(name: string): string {
  if (!name) return "Path is required";
  if (name.includes("\0")) return "Path contains null bytes";
  if (name.startsWith("/")) return "Absolute paths are not allowed";
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) return "Path traversal is not allowed";
  if (parts.some((p) => p.startsWith("."))) return "Hidden files/directories are not allowed";
  const base = parts[parts.length - 1] ?? "";
  const dot = base.lastIndexOf(".");
  if (dot <= 0 || dot === base.length - 1) return `File '${name}' has no extension and is not allowed`;
  const ext = base.slice(dot + 1).toLowerCase();
  if (!siteExtensions.includes(ext)) return `File '${name}' has disallowed extension '.${ext}'`;
  return "";
}

/** The name of a file as uploaded: its path inside a picked folder, or its name. */
export function uploadName(f: File): string {
  return (f as File & { webkitRelativePath?: string }).webkitRelativePath || f.name;
}

export interface UploadPlan {
  ok: File[];
  refused: { name: string; reason: string }[];
}

/** planUpload splits picked files into those to send and those the panel would refuse. */
export function planUpload(files: File[]): UploadPlan {
  const plan: UploadPlan = { ok: [], refused: [] };
  for (const f of files) {
    const reason = checkUploadName(uploadName(f));
    if (reason) plan.refused.push({ name: uploadName(f), reason });
    else plan.ok.push(f);
  }
  return plan;
}

/** joinPath: a child of dir ("." is the site root). */
export function joinPath(dir: string, name: string): string {
  return !dir || dir === "." ? name : `${dir.replace(/\/+$/, "")}/${name}`;
}

export interface Crumb {
  label: string;
  path: string;
}

/** crumbs: "a/b" → site root, a, a/b. */
export function crumbs(path: string, rootLabel: string): Crumb[] {
  const out: Crumb[] = [{ label: rootLabel, path: "." }];
  let acc = ".";
  for (const p of path.split("/").filter((x) => x && x !== ".")) {
    acc = joinPath(acc, p);
    out.push({ label: p, path: acc });
  }
  return out;
}

/** The public address of a site file (the path's segments encoded). */
export function fileURL(site: Pick<Site, "fqdn">, rel: string, httpsPort?: number): string {
  return hostURL(site.fqdn, httpsPort) + rel.split("/").map(encodeURIComponent).join("/");
}

export type Tone = "green" | "amber" | "red" | "neutral";

/** siteState: is the site served yet? */
export function siteState(s: Site): { label: string; tone: Tone; hint: string } {
  if (s.certIssued) return { label: "Live", tone: "green", hint: "nginx serves it over HTTPS." };
  if (s.type === "custom" && !s.dnsVerified) return { label: "Waiting for DNS", tone: "amber", hint: "Add the A record, then verify DNS: the site goes live after that." };
  return { label: "No certificate", tone: "red", hint: "DNS is verified but the certificate is missing: verify DNS again to issue it." };
}

export interface DNSExplanation {
  tone: "success" | "warning";
  title: string;
  text: string;
}

/**
 * explainDNS turns a verify-dns answer into what the admin should know or
 * do: from what was resolved when the answer says (fqdn, expectedIp,
 * resolvedIps), else the API's own message.
 */
export function explainDNS(r: SiteDNSCheck, fqdn: string): DNSExplanation {
  if (r.ok) return { tone: "success", title: "The site is live", text: r.message };
  const name = r.fqdn || fqdn;
  const found = r.resolvedIps ?? [];
  if (!r.expectedIp) return { tone: "warning", title: "DNS is not ready", text: r.message || `${name} does not point to this server yet. Check its A record, then verify again.` };
  const ip = r.expectedIp;
  const text =
    found.length === 0
      ? `${name} has no A record yet. Create an A record for ${name} pointing to ${ip} at your DNS provider, wait a few minutes, then verify again.`
      : `${name} points to ${found.join(", ")}, not to ${ip}. Change its A record to ${ip} (and remove the others), wait until the old answer expires, then verify again.`;
  return { tone: "warning", title: "DNS is not ready", text };
}

export interface SiteSettings {
  spaMode: boolean;
  autheliaProtected: boolean;
  allowedUsers: string[];
}

/** settingsPatch: only what changed (null when nothing did). allowedUsers is compared as a set. */
export function settingsPatch(s: Site, next: SiteSettings): UpdateSiteRequest | null {
  const out: UpdateSiteRequest = {};
  if (next.spaMode !== s.spaMode) out.spaMode = next.spaMode;
  if (next.autheliaProtected !== s.autheliaProtected) out.autheliaProtected = next.autheliaProtected;
  const a = [...(s.allowedUsers ?? [])].sort();
  const b = [...next.allowedUsers].sort();
  if (a.length !== b.length || a.some((x, i) => x !== b[i])) out.allowedUsers = b;
  return Object.keys(out).length ? out : null;
}

/** protectable: login protection needs the site under the relay's domain (the session cookie's scope). */
export function protectable(fqdn: string, domain: string | undefined): boolean {
  if (!domain) return true;
  return fqdn === domain || fqdn.endsWith("." + domain);
}

/** checkSiteName mirrors POST /api/sites' name rule. */
export function checkSiteName(s: string): string {
  if (!s) return "Enter a name.";
  if (s.length > 100) return "At most 100 characters.";
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(s)) return "Lower-case letters, digits and inner hyphens only.";
  return "";
}

/** checkCustomDomain mirrors customDomain's rule (and the certificate name rule: two labels or more). */
export function checkCustomDomain(s: string): string {
  if (!s) return "Enter the domain the site is served at.";
  if (/^https?:\/\//i.test(s)) return "Only the domain, without https://.";
  if (s.length > 253 || !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(s) || !s.includes(".") || s.split(".").some((l) => !l || l.length > 63 || l.startsWith("-") || l.endsWith("-")))
    return "A domain like www.example.org: lower-case letters, digits, dots and hyphens.";
  return "";
}
