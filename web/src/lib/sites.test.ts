import { managedSite } from "../test/fixtures";
import { checkCustomDomain, checkSiteName, checkUploadName, crumbs, explainDNS, fileURL, joinPath, planUpload, protectable, settingsPatch, siteState } from "./sites";

const site = managedSite;

test("upload names follow the panel's file rules, with its messages", () => {
  expect(checkUploadName("index.html")).toBe("");
  expect(checkUploadName("assets/app.JS")).toBe("");
  expect(checkUploadName("site/fonts/a.woff2")).toBe("");
  expect(checkUploadName("")).toBe("Path is required");
  expect(checkUploadName("/etc/passwd.txt")).toBe("Absolute paths are not allowed");
  expect(checkUploadName("a/../../b.html")).toBe("Path traversal is not allowed");
  expect(checkUploadName(".env.json")).toBe("Hidden files/directories are not allowed");
  expect(checkUploadName("a/.git/config.txt")).toBe("Hidden files/directories are not allowed");
  expect(checkUploadName("Makefile")).toBe("File 'Makefile' has no extension and is not allowed");
  expect(checkUploadName("notes.")).toBe("File 'notes.' has no extension and is not allowed");
  expect(checkUploadName("run.EXE")).toBe("File 'run.EXE' has disallowed extension '.exe'");
  expect(checkUploadName("x\0.html")).toBe("Path contains null bytes");
});

test("a picked folder keeps its paths; refused files are listed with the reason", () => {
  const a = new File(["<p>"], "index.html");
  const b = new File(["x"], "setup.sh");
  const c = new File(["body{}"], "style.css");
  Object.defineProperty(c, "webkitRelativePath", { value: "site/css/style.css" });
  const plan = planUpload([a, b, c]);
  expect(plan.ok).toEqual([a, c]);
  expect(plan.refused).toEqual([{ name: "setup.sh", reason: "File 'setup.sh' has disallowed extension '.sh'" }]);
});

test("folder paths and breadcrumbs", () => {
  expect(joinPath(".", "a")).toBe("a");
  expect(joinPath("a/", "b")).toBe("a/b");
  expect(crumbs(".", "docs.example.com")).toEqual([{ label: "docs.example.com", path: "." }]);
  expect(crumbs("img/icons", "root")).toEqual([
    { label: "root", path: "." },
    { label: "img", path: "img" },
    { label: "icons", path: "img/icons" },
  ]);
  expect(fileURL(site, "img/a b.png", 8443)).toBe("https://docs.example.com:8443/img/a%20b.png");
  expect(fileURL(site, "", 443)).toBe("https://docs.example.com/");
});

test("a site's state says whether it is served and what to do", () => {
  expect(siteState(site).label).toBe("Live");
  expect(siteState({ ...site, type: "custom", dnsVerified: false, certIssued: false })).toMatchObject({ label: "Waiting for DNS", tone: "amber" });
  expect(siteState({ ...site, type: "custom", dnsVerified: true, certIssued: false }).hint).toMatch(/verify DNS again/);
});

test("a DNS check is explained: missing record, wrong address, success", () => {
  const missing = explainDNS({ ok: false, fqdn: "www.example.org", expectedIp: "203.0.113.10", resolvedIps: [], message: "DNS does not resolve to this server" }, "www.example.org");
  expect(missing.tone).toBe("warning");
  expect(missing.text).toMatch(/www\.example\.org has no A record yet\. Create an A record for www\.example\.org pointing to 203\.0\.113\.10/);
  const wrong = explainDNS({ ok: false, fqdn: "www.example.org", expectedIp: "203.0.113.10", resolvedIps: ["198.51.100.1", "198.51.100.2"], message: "" }, "www.example.org");
  expect(wrong.text).toMatch(/points to 198\.51\.100\.1, 198\.51\.100\.2, not to 203\.0\.113\.10/);
  expect(explainDNS({ ok: false, message: "DNS lookup failed" }, "www.example.org")).toEqual({ tone: "warning", title: "DNS is not ready", text: "DNS lookup failed" });
  expect(explainDNS({ ok: true, message: "DNS verified, certificate issued, and site is now live." }, "x")).toEqual({
    tone: "success",
    title: "The site is live",
    text: "DNS verified, certificate issued, and site is now live.",
  });
});

test("settings send only what changed; user order does not count", () => {
  const s = { ...site, autheliaProtected: true, allowedUsers: ["bob", "alice"] };
  expect(settingsPatch(s, { spaMode: false, autheliaProtected: true, allowedUsers: ["alice", "bob"] })).toBeNull();
  expect(settingsPatch(s, { spaMode: true, autheliaProtected: true, allowedUsers: ["bob", "alice"] })).toEqual({ spaMode: true });
  expect(settingsPatch(s, { spaMode: false, autheliaProtected: false, allowedUsers: ["alice"] })).toEqual({ autheliaProtected: false, allowedUsers: ["alice"] });
});

test("names, custom domains and where login protection works", () => {
  expect(checkSiteName("my-site")).toBe("");
  expect(checkSiteName("-x")).toMatch(/Lower-case/);
  expect(checkSiteName("a".repeat(101))).toMatch(/100/);
  expect(checkCustomDomain("www.example.org")).toBe("");
  expect(checkCustomDomain("localhost")).toMatch(/A domain like/);
  expect(checkCustomDomain("https://x.org")).toMatch(/without https/);
  expect(checkCustomDomain("a..b.org")).toMatch(/A domain like/);
  expect(protectable("blog.example.com", "example.com")).toBe(true);
  expect(protectable("example.com", "example.com")).toBe(true);
  expect(protectable("notexample.com", "example.com")).toBe(false);
  expect(protectable("www.example.org", "example.com")).toBe(false);
});
