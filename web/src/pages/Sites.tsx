import { useRef, useState } from "react";
import { Link, useParams } from "wouter";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { ArrowLeft, ExternalLink, File as FileIcon, Folder, FolderOpen, FolderUp, Globe, Plus, Settings2, Upload } from "lucide-react";
import { del, isApiError, patch, post, seg, upload } from "../api/client";
import { keys, useOnboarding, useSiteFiles, useSites } from "../api/queries";
import { UserChecklist } from "../components/AccessPicker";
import type { CreateSiteRequest, Site, SiteDNSCheck, SiteFile, SiteResponse, SiteUpload } from "../api/types.gen";
import { MsgSiteNotFound, SiteCustom, SiteManaged, type SiteType } from "../api/types.gen";
import { useToast } from "../components/toast";
import { Badge, Button, DeleteButton, Card, Checkbox, CodeLine, ConfirmDialog, Dialog, Empty, ErrorState, FormActions, Loading, Notice, PageHeader, Pagination, RadioCard, SearchField, TextField, cx, usePaged } from "../components/ui";
import { useFormErrors, type FieldErrors, type MessageRule } from "../lib/fieldErrors";
import { formatBytes, formatDateTime, plural, relativeTime } from "../lib/format";
import { checkCustomDomain, checkSiteName, crumbs, explainDNS, fileURL, planUpload, protectable, settingsPatch, siteState, uploadName, type DNSExplanation, type SiteSettings } from "../lib/sites";

const siteRules: MessageRule[] = [
  [/^Site name|^Name '|is already in use by a tunnel$/, "name"],
  [/^Custom domain|^Domain '|^DNS for '/, "customDomain"],
  [/^Login protection/, "autheliaProtected"],
];

export function Sites() {
  const sites = useSites();
  const [creating, setCreating] = useState(false);
  const [settings, setSettings] = useState<Site | null>(null);
  const [dns, setDNS] = useState<Site | null>(null);
  const [deleting, setDeleting] = useState<Site | null>(null);
  const [query, setQuery] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const q = query.trim().toLowerCase();
  const list = (sites.data ?? []).filter((s) => !q || s.fqdn.includes(q) || s.name.includes(q));
  return (
    <>
      <PageHeader
        title="Sites"
        description="Static websites served by nginx from the relay's disk: they stay online when your home machines are off."
        actions={
          <Button variant="primary" icon={<Plus aria-hidden className="size-4" />} onClick={() => setCreating(true)}>
            New site
          </Button>
        }
      />
      {creating && (
        <NewSiteDialog
          onClose={() => setCreating(false)}
          onCreated={(s) => {
            setCreating(false);
            if (s.type === SiteCustom) setDNS(s);
          }}
        />
      )}
      <Card>
        {sites.isPending ? (
          <Loading label="Loading sites" />
        ) : sites.isError ? (
          <ErrorState what="Sites" error={sites.error} retry={() => sites.refetch()} />
        ) : sites.data.length === 0 ? (
          <Empty title="No sites yet" icon={<Globe className="size-8" />}>
            Create one at <em>name.your-domain</em> or at a domain of your own, then upload its files.
          </Empty>
        ) : (
          <>
            {sites.data.length > 5 && (
              <div className="mb-3">
                <SearchField label="Filter sites" placeholder="Filter by name or domain" value={query} onChange={setQuery} />
              </div>
            )}
            {list.length === 0 ? (
              <Empty title="No site matches the filter" />
            ) : (
              <ul className="divide-y divide-zinc-200 dark:divide-zinc-800">
                {list.map((s) => (
                  <SiteRow key={s.id} site={s} onSettings={() => setSettings(s)} onDNS={() => setDNS(s)} onDelete={() => setDeleting(s)} />
                ))}
              </ul>
            )}
          </>
        )}
      </Card>
      {settings && <SettingsDialog site={settings} onClose={() => setSettings(null)} />}
      {dns && <DNSDialog site={dns} onClose={() => setDNS(null)} />}
      <ConfirmDialog
        open={!!deleting}
        title="Delete site?"
        confirmLabel="Delete site"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await del(`/api/sites/${seg(deleting.id)}`);
          qc.setQueryData<Site[]>(keys.sites, (old) => old?.filter((s) => s.id !== deleting.id));
          toast(`${deleting.fqdn} deleted`);
        }}
      >
        <p>
          <strong>{deleting?.fqdn}</strong> stops answering at once. Its {deleting ? formatBytes(deleting.totalSize) : ""} of files on the relay are deleted; this cannot be undone.
        </p>
      </ConfirmDialog>
    </>
  );
}

function SiteRow({ site: s, onSettings, onDNS, onDelete }: { site: Site; onSettings: () => void; onDNS: () => void; onDelete: () => void }) {
  const { data: ob } = useOnboarding();
  const state = siteState(s);
  return (
    <li className="flex flex-wrap items-center justify-between gap-3 py-3" data-testid="site-row">
      <div className="min-w-0 space-y-1">
        <div className="flex flex-wrap items-center gap-2">
          {s.certIssued ? (
            <a href={fileURL(s, "", ob?.httpsPort)} target="_blank" rel="noreferrer noopener" className="inline-flex items-center gap-1 font-medium text-teal-700 hover:underline dark:text-teal-400">
              {s.fqdn}
              <ExternalLink aria-hidden className="size-3.5" />
              <span className="sr-only">(opens in a new tab)</span>
            </a>
          ) : (
            <span className="font-medium">{s.fqdn}</span>
          )}
          <Badge tone={state.tone}>{state.label}</Badge>
          <Badge>{s.type === SiteCustom ? "Own domain" : "Subdomain"}</Badge>
          {s.spaMode && <Badge tone="blue">SPA</Badge>}
          {s.autheliaProtected && <Badge tone="teal">{s.allowedUsers?.length ? `Login: ${plural(s.allowedUsers.length, "user")}` : "Login required"}</Badge>}
        </div>
        <p className="text-xs text-zinc-600 dark:text-zinc-400">
          {formatBytes(s.totalSize)} · created {relativeTime(s.createdAt)}
          {!s.certIssued && <> · {state.hint}</>}
        </p>
      </div>
      <div className="flex flex-wrap gap-1">
        {s.type === SiteCustom && !s.certIssued && (
          <Button size="sm" variant="primary" onClick={onDNS} aria-label={`Verify DNS of ${s.fqdn}`}>
            Verify DNS
          </Button>
        )}
        <Link href={`/sites/${s.id}`} className="inline-flex items-center gap-1.5 rounded-md px-2.5 py-1 text-sm font-medium text-zinc-700 hover:bg-zinc-200/70 dark:text-zinc-300 dark:hover:bg-zinc-800" aria-label={`Files of ${s.fqdn}`}>
          <FolderOpen aria-hidden className="size-4" />
          Files
        </Link>
        <Button size="sm" variant="ghost" aria-label={`Settings of ${s.fqdn}`} onClick={onSettings} icon={<Settings2 aria-hidden className="size-4" />} />
        <DeleteButton label={`Delete ${s.fqdn}`} onClick={onDelete} />
      </div>
    </li>
  );
}

function NewSiteDialog({ onClose, onCreated }: { onClose: () => void; onCreated: (s: Site) => void }) {
  const { data: ob } = useOnboarding();
  const [name, setName] = useState("");
  const [type, setType] = useState<CreateSiteRequest["type"]>(SiteManaged);
  const [customDomain, setCustomDomain] = useState("");
  const [spaMode, setSPA] = useState(false);
  const [protect, setProtect] = useState(false);
  const { errors, setErrors, formErr, setFormErr, onError } = useFormErrors(siteRules);
  const qc = useQueryClient();
  const toast = useToast();
  const domain = ob?.domain ?? "your-domain";
  const canProtect = type === SiteManaged || !customDomain || protectable(customDomain, ob?.domain ?? undefined);
  const m = useMutation({
    mutationFn: (body: CreateSiteRequest) => post<SiteResponse>("/api/sites", body),
    onSuccess: (r) => {
      qc.setQueryData<Site[]>(keys.sites, (old) => [r.site, ...(old ?? [])]);
      qc.invalidateQueries({ queryKey: keys.sites });
      toast(r.site.type === SiteCustom ? `${r.site.fqdn} created: add its A record, then verify DNS` : `${r.site.fqdn} created`);
      onCreated(r.site);
    },
    onError,
  });
  const submit = () => {
    const errs: FieldErrors = {};
    const n = checkSiteName(name);
    if (n) errs.name = n;
    if (type === SiteCustom) {
      const d = checkCustomDomain(customDomain);
      if (d) errs.customDomain = d;
    }
    if (protect && !canProtect) errs.autheliaProtected = `Login protection is only available for sites under ${domain}.`;
    setErrors(errs);
    setFormErr("");
    if (Object.keys(errs).length) return;
    const body: CreateSiteRequest = { name, type };
    if (type === SiteCustom) body.customDomain = customDomain;
    if (spaMode) body.spaMode = true;
    if (protect) body.autheliaProtected = true;
    m.mutate(body);
  };
  return (
    <Dialog open onClose={onClose} title="New site" wide>
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <TextField label="Name" name="name" autoFocus autoComplete="off" spellCheck={false} value={name} onChange={(v) => setName(v.toLowerCase())} error={errors.name} hint="Lower-case letters, digits and hyphens; it names the site in lists." />
        <fieldset>
          <legend className="mb-2 text-sm font-medium">Address</legend>
          <div className="grid gap-2 sm:grid-cols-2">
            {([
              { v: SiteManaged, label: `${name || "name"}.${domain}`, d: "A subdomain of your relay. Live at once, with its certificate." },
              { v: SiteCustom, label: "A domain of your own", d: "You add an A record at your DNS provider; the site goes live once DNS is verified." },
            ] satisfies { v: SiteType; label: string; d: string }[]).map((o) => (
              <RadioCard key={o.v} name="type" value={o.v} checked={type === o.v} onChange={() => setType(o.v)} label={o.label} description={o.d} />
            ))}
          </div>
        </fieldset>
        {type === SiteCustom && (
          <TextField label="Domain" name="customDomain" autoComplete="off" spellCheck={false} value={customDomain} onChange={(v) => setCustomDomain(v.toLowerCase().trim())} error={errors.customDomain} hint="For example www.example.org." />
        )}
        <div className="space-y-3">
          <Checkbox label="Single-page app" description="Paths without a file answer with index.html (for apps that route in the browser)." checked={spaMode} onChange={setSPA} />
          <Checkbox
            label="Require login"
            description={canProtect ? "Visitors sign in with a relay user (password and two-factor code) first." : `Only for sites under ${domain}: the login session belongs to that domain.`}
            checked={protect}
            onChange={setProtect}
            disabled={!canProtect}
          />
          {errors.autheliaProtected && <p className="text-xs font-medium text-red-700 dark:text-red-400">{errors.autheliaProtected}</p>}
        </div>
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending}>
            Create site
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}

function SettingsDialog({ site, onClose }: { site: Site; onClose: () => void }) {
  const { data: ob } = useOnboarding();
  const [v, setV] = useState<SiteSettings>({ spaMode: site.spaMode, autheliaProtected: site.autheliaProtected, allowedUsers: site.allowedUsers ?? [] });
  const { errors, formErr, onError } = useFormErrors(siteRules);
  const qc = useQueryClient();
  const toast = useToast();
  const canProtect = protectable(site.fqdn, ob?.domain ?? undefined);
  const change = settingsPatch(site, v);
  const m = useMutation({
    mutationFn: () => patch<SiteResponse>(`/api/sites/${seg(site.id)}`, change ?? {}),
    onSuccess: (r) => {
      qc.setQueryData<Site[]>(keys.sites, (old) => old?.map((s) => (s.id === r.site.id ? r.site : s)));
      toast(r.message === "No changes" ? "No changes" : `Settings of ${r.site.fqdn} saved`);
      onClose();
    },
    onError,
  });
  return (
    <Dialog open onClose={onClose} title={`Settings of ${site.fqdn}`} wide>
      <form
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          m.mutate();
        }}
      >
        <Checkbox label="Single-page app" description="Paths without a file answer with index.html." checked={v.spaMode} onChange={(spaMode) => setV({ ...v, spaMode })} />
        <Checkbox
          label="Require login"
          description={canProtect ? "Visitors sign in with a relay user first." : `Only for sites under ${ob?.domain ?? "your domain"}.`}
          checked={v.autheliaProtected}
          disabled={!canProtect && !v.autheliaProtected}
          onChange={(autheliaProtected) => setV({ ...v, autheliaProtected })}
        />
        {errors.autheliaProtected && <p className="text-xs font-medium text-red-700 dark:text-red-400">{errors.autheliaProtected}</p>}
        {v.autheliaProtected && (
          <fieldset className="rounded-md p-3 ring-1 ring-zinc-200 dark:ring-zinc-800">
            <legend className="px-1 text-sm font-medium">Allowed users</legend>
            <p className="mb-2 text-xs text-zinc-600 dark:text-zinc-400">With nobody picked, every signed-in user may open it; with users picked, only they (and group admins) may.</p>
            <UserChecklist value={v.allowedUsers} onChange={(allowedUsers) => setV({ ...v, allowedUsers })} />
            {errors.allowedUsers && <p className="mt-1 text-xs font-medium text-red-700 dark:text-red-400">{errors.allowedUsers}</p>}
          </fieldset>
        )}
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending} disabled={!change}>
            Save settings
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}

function DNSDialog({ site, onClose }: { site: Site; onClose: () => void }) {
  const { data: ob } = useOnboarding();
  const [result, setResult] = useState<DNSExplanation | null>(null);
  const [checked, setChecked] = useState<string>("");
  const qc = useQueryClient();
  const toast = useToast();
  const m = useMutation({
    mutationFn: () => post<SiteDNSCheck>(`/api/sites/${seg(site.id)}/verify-dns`),
    onSuccess: (r) => {
      setResult(explainDNS(r, site.fqdn));
      setChecked(new Date().toISOString());
      if (r.ok) {
        qc.invalidateQueries({ queryKey: keys.sites });
        toast(`${site.fqdn} is live`);
      }
    },
  });
  const ip = ob?.ip ?? "<server-ip>";
  return (
    <Dialog
      open
      onClose={onClose}
      wide
      title={`DNS for ${site.fqdn}`}
      footer={
        <>
          <Button onClick={onClose}>{result?.tone === "success" ? "Done" : "Close"}</Button>
          {result?.tone !== "success" && (
            <Button variant="primary" loading={m.isPending} onClick={() => m.mutate()}>
              Verify DNS
            </Button>
          )}
        </>
      }
    >
      <div className="space-y-4 text-sm">
        <p>At your DNS provider, create this record, then verify. The site gets its certificate and goes live once the record points here.</p>
        <div className="overflow-x-auto">
          <table className="w-full text-left text-sm">
            <thead className="text-xs text-zinc-600 uppercase dark:text-zinc-400">
              <tr>
                <th scope="col" className="py-1 pr-3 font-medium">Type</th>
                <th scope="col" className="py-1 pr-3 font-medium">Name</th>
                <th scope="col" className="py-1 font-medium">Value</th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <td className="py-1 pr-3 font-mono">A</td>
                <td className="py-1 pr-3">
                  <CodeLine text={site.fqdn} label="record name" />
                </td>
                <td className="py-1">
                  <CodeLine text={ip} label="record value" />
                </td>
              </tr>
            </tbody>
          </table>
        </div>
        {m.isError && <Notice tone="danger">{m.error.message}</Notice>}
        {result && (
          <div data-testid="dns-result">
            <Notice tone={result.tone} title={result.title}>
              <p>{result.text}</p>
              <p className="mt-1 text-xs opacity-80">Checked {formatDateTime(checked)}.</p>
            </Notice>
          </div>
        )}
      </div>
    </Dialog>
  );
}

/** A folder of thousands of files stays quick to render. */
export const filesPerPage = 100;

interface Progress {
  name: string;
  sent: number;
  total: number;
  state: "waiting" | "sending" | "done" | "failed";
  error?: string;
}

/** SiteFilesPage is the file browser of one site (/sites/:id). */
export function SiteFilesPage() {
  const { id = "" } = useParams<{ id: string }>();
  const sites = useSites();
  const site = sites.data?.find((s) => s.id === id);
  if (sites.isPending) return <Loading label="Loading the site" />;
  if (sites.isError) return <ErrorState what="Sites" error={sites.error} retry={() => sites.refetch()} />;
  if (!site) {
    return (
      <>
        <PageHeader title="Site not found" />
        <Notice tone="warning">
          This site does not exist (any more).{" "}
          <Link href="/sites" className="font-medium underline">
            Back to the sites
          </Link>
        </Notice>
      </>
    );
  }
  return <FileBrowser site={site} />;
}

function FileBrowser({ site }: { site: Site }) {
  const { data: ob } = useOnboarding();
  const [path, setDir] = useState(".");
  const files = useSiteFiles(site.id, path);
  const paged = usePaged(files.data?.files ?? [], filesPerPage);
  const setPath = (p: string) => {
    setDir(p);
    paged.setPage(1);
  };
  const [dragging, setDragging] = useState(false);
  const [deleting, setDeleting] = useState<SiteFile | null>(null);
  const [progress, setProgress] = useState<Progress[]>([]);
  const [refused, setRefused] = useState<{ name: string; reason: string }[]>([]);
  const [busy, setBusy] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);
  const dirInput = useRef<HTMLInputElement>(null);
  const qc = useQueryClient();
  const toast = useToast();
  const refresh = () => {
    qc.invalidateQueries({ queryKey: ["sites", site.id] });
    qc.invalidateQueries({ queryKey: keys.sites, exact: true });
  };

  // One request per file: each has its own progress and its own error (the
  // panel keeps the parts it stored before a refused one).
  const send = async (picked: File[]) => {
    const plan = planUpload(picked);
    setRefused(plan.refused);
    if (plan.ok.length === 0) return;
    const rows: Progress[] = plan.ok.map((f) => ({ name: uploadName(f), sent: 0, total: f.size, state: "waiting" }));
    setProgress(rows);
    setBusy(true);
    const set = (i: number, p: Partial<Progress>) => setProgress((old) => old.map((r, j) => (j === i ? { ...r, ...p } : r)));
    let stored = 0;
    for (const [i, f] of plan.ok.entries()) {
      set(i, { state: "sending" });
      const form = new FormData();
      form.append("file", f, uploadName(f));
      try {
        // Progress in the file's bytes (the request also carries the multipart framing).
        await upload<SiteUpload>(`/api/sites/${seg(site.id)}/files?path=${encodeURIComponent(path)}`, form, (sent, total) => set(i, { sent: total ? Math.min(f.size, Math.round((f.size * sent) / total)) : 0 }));
        set(i, { state: "done", sent: f.size });
        stored++;
      } catch (e) {
        set(i, { state: "failed", error: e instanceof Error ? e.message : String(e) });
        if (isApiError(e, 404) && e.message === MsgSiteNotFound) {
          setProgress((old) => old.map((r) => (r.state === "waiting" ? { ...r, state: "failed", error: "Not sent: the site no longer exists" } : r)));
          break;
        }
      }
    }
    setBusy(false);
    refresh();
    if (stored) toast(`${plural(stored, "file")} uploaded to ${site.fqdn}`);
  };
  const totalSent = progress.reduce((n, p) => n + p.sent, 0);
  const totalSize = progress.reduce((n, p) => n + p.total, 0);

  return (
    <>
      <PageHeader
        title={site.fqdn}
        description={
          <>
            Files of the site, served as they are. {formatBytes(site.totalSize)} in total.{" "}
            <Link href="/sites" className="inline-flex items-center gap-1 font-medium text-teal-700 underline dark:text-teal-400">
              <ArrowLeft aria-hidden className="size-3.5" />
              All sites
            </Link>
          </>
        }
        actions={
          <>
            <Button variant="primary" icon={<Upload aria-hidden className="size-4" />} disabled={busy} onClick={() => fileInput.current?.click()}>
              Upload files
            </Button>
            <Button icon={<FolderUp aria-hidden className="size-4" />} disabled={busy} onClick={() => dirInput.current?.click()}>
              Upload folder
            </Button>
          </>
        }
      />
      <input
        ref={fileInput}
        type="file"
        multiple
        name="files"
        aria-label="Files to upload"
        className="sr-only"
        tabIndex={-1}
        onChange={(e) => {
          const list = [...(e.target.files ?? [])];
          e.target.value = "";
          void send(list);
        }}
      />
      <input
        ref={dirInput}
        type="file"
        multiple
        {...{ webkitdirectory: "" }}
        aria-label="Folder to upload"
        className="sr-only"
        tabIndex={-1}
        onChange={(e) => {
          const list = [...(e.target.files ?? [])];
          e.target.value = "";
          void send(list);
        }}
      />
      {!site.certIssued && (
        <div className="mb-4">
          <Notice tone="warning" title="Not live yet">
            {siteState(site).hint} Files uploaded now are served once it is.
          </Notice>
        </div>
      )}
      {(progress.length > 0 || refused.length > 0) && (
        <Card title="Upload" id="upload" className="mb-4" actions={!busy && <Button size="sm" variant="ghost" onClick={() => (setProgress([]), setRefused([]))}>Clear</Button>}>
          {progress.length > 0 && (
            <div className="mb-3">
              <div className="mb-1 flex justify-between text-sm">
                <span>{busy ? "Uploading…" : `${progress.filter((p) => p.state === "done").length} of ${progress.length} uploaded`}</span>
                <span className="tabular-nums">
                  {formatBytes(totalSent)} of {formatBytes(totalSize)}
                </span>
              </div>
              <progress className="h-2 w-full accent-teal-700" aria-label="Upload progress" max={totalSize || 1} value={totalSent} />
            </div>
          )}
          <ul className="max-h-64 space-y-1 overflow-y-auto text-sm" data-testid="upload-list">
            {progress.map((p) => (
              <li key={p.name} className="flex flex-wrap items-center justify-between gap-2" data-state={p.state}>
                <span className="min-w-0 truncate font-mono text-xs">{p.name}</span>
                <span className={cx("text-xs", p.state === "failed" ? "text-red-700 dark:text-red-400" : "text-zinc-600 dark:text-zinc-400")}>
                  {p.state === "failed" ? p.error : p.state === "done" ? "Uploaded" : p.state === "waiting" ? "Waiting" : `${Math.round((p.sent / (p.total || 1)) * 100)}%`}
                </span>
              </li>
            ))}
            {refused.map((r) => (
              <li key={"r" + r.name} className="flex flex-wrap items-center justify-between gap-2" data-state="refused">
                <span className="min-w-0 truncate font-mono text-xs">{r.name}</span>
                <span className="text-xs text-red-700 dark:text-red-400">Not sent: {r.reason}</span>
              </li>
            ))}
          </ul>
        </Card>
      )}
      <div
        className={cx("rounded-lg", dragging && "ring-2 ring-teal-600 ring-offset-2 dark:ring-teal-400 dark:ring-offset-zinc-950")}
        onDragOver={(e) => {
          if (busy || !e.dataTransfer.types.includes("Files")) return;
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          if (!busy) void send([...e.dataTransfer.files]);
        }}
      >
        <Card>
          <nav aria-label="Folder" className="mb-3 flex flex-wrap items-center gap-1 text-sm">
            {crumbs(path, site.fqdn).map((c, i, all) => (
              <span key={c.path} className="flex items-center gap-1">
                {i > 0 && <span aria-hidden className="text-zinc-400">/</span>}
                {i === all.length - 1 ? (
                  <span aria-current="location" className="font-medium">
                    {c.label}
                  </span>
                ) : (
                  <button type="button" className="rounded px-1 font-medium text-teal-700 hover:underline dark:text-teal-400" onClick={() => setPath(c.path)}>
                    {c.label}
                  </button>
                )}
              </span>
            ))}
          </nav>
          {files.isPending ? (
            <Loading label="Loading files" />
          ) : files.isError ? (
            <ErrorState what="Files" error={files.error} retry={() => files.refetch()} />
          ) : files.data.files.length === 0 ? (
            <Empty title={path === "." ? "No files yet" : "This folder is empty"} icon={<Folder className="size-8" />}>
              Upload an <code className="font-mono">index.html</code> and what it links to. Allowed: web pages, styles, scripts, images, fonts, media, PDF, text and data files.
            </Empty>
          ) : (
            <div className="-mx-4 overflow-x-auto">
              <table className="w-full min-w-[32rem] text-left text-sm">
                <thead className="border-b border-zinc-200 text-xs text-zinc-600 uppercase dark:border-zinc-800 dark:text-zinc-400">
                  <tr>
                    <th scope="col" className="px-4 py-2 font-medium">Name</th>
                    <th scope="col" className="px-4 py-2 text-right font-medium">Size</th>
                    <th scope="col" className="px-4 py-2 font-medium">Modified</th>
                    <th scope="col" className="px-4 py-2 font-medium"><span className="sr-only">Actions</span></th>
                  </tr>
                </thead>
                <tbody className="divide-y divide-zinc-200 dark:divide-zinc-800">
                  {paged.rows.map((f) => (
                    <tr key={f.relativePath} data-testid="file-row">
                      <td className="px-4 py-2">
                        {f.type === "directory" ? (
                          <button type="button" className="inline-flex items-center gap-2 font-medium text-teal-700 hover:underline dark:text-teal-400" onClick={() => setPath(f.relativePath)}>
                            <Folder aria-hidden className="size-4" />
                            {f.name}
                          </button>
                        ) : site.certIssued ? (
                          <a href={fileURL(site, f.relativePath, ob?.httpsPort)} target="_blank" rel="noreferrer noopener" className="inline-flex items-center gap-2 hover:underline">
                            <FileIcon aria-hidden className="size-4 text-zinc-500" />
                            {f.name}
                            <span className="sr-only">(opens in a new tab)</span>
                          </a>
                        ) : (
                          <span className="inline-flex items-center gap-2">
                            <FileIcon aria-hidden className="size-4 text-zinc-500" />
                            {f.name}
                          </span>
                        )}
                      </td>
                      <td className="px-4 py-2 text-right tabular-nums">{f.type === "directory" ? "—" : formatBytes(f.size)}</td>
                      <td className="px-4 py-2 text-xs text-zinc-600 dark:text-zinc-400">{relativeTime(f.modifiedAt)}</td>
                      <td className="px-4 py-2 text-right">
                        <DeleteButton label={`Delete ${f.relativePath}`} onClick={() => setDeleting(f)} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <Pagination page={paged.page} pages={paged.pages} onPage={paged.setPage} total={paged.total} from={paged.from} to={paged.to} />
          <p className="mt-3 text-xs text-zinc-600 dark:text-zinc-400">Drop files here to upload them into this folder.</p>
        </Card>
      </div>
      <ConfirmDialog
        open={!!deleting}
        title={deleting?.type === "directory" ? "Delete folder?" : "Delete file?"}
        confirmLabel="Delete"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await del(`/api/sites/${seg(site.id)}/files`, { path: deleting.relativePath });
          refresh();
          toast(`${deleting.relativePath} deleted`);
        }}
      >
        <p>
          <strong className="font-mono">{deleting?.relativePath}</strong>
          {deleting?.type === "directory" ? " and everything in it are" : " is"} deleted from {site.fqdn} at once.
        </p>
      </ConfirmDialog>
    </>
  );
}
