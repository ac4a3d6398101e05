import { fireEvent, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { Route, Router } from "wouter";
import { memoryLocation } from "wouter/memory-location";
import type { Site } from "../api/types.gen";
import { keys } from "../api/queries";
import { managedSite } from "../test/fixtures";
import { renderWithClient } from "../test/render";
import { stubXHR } from "../test/xhr";
import { SiteFilesPage, Sites } from "./Sites";

const ob = { status: "COMPLETED", domain: "example.com", ip: "203.0.113.10", httpsPort: 443, panelIpUrl: "https://203.0.113.10:9292" };
const managed = managedSite;
const custom: Site = { ...managed, id: "22222222-2222-4222-8222-222222222222", name: "blog", fqdn: "www.example.org", type: "custom", dnsVerified: false, certIssued: false };

function json(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

afterEach(() => vi.unstubAllGlobals());

function renderFilesPage() {
  const { hook } = memoryLocation({ path: `/sites/${managed.id}` });
  return renderWithClient(
    <Router hook={hook}>
      <Route path="/sites/:id" component={SiteFilesPage} />
    </Router>,
    (qc) => {
      qc.setQueryData(keys.onboarding, ob);
      qc.setQueryData(keys.sites, [managed]);
    },
  );
}

test("a new custom site opens its DNS dialog; a failed check says what to fix, a good one that it is live", async () => {
  const calls: [string, string, unknown][] = [];
  let dnsAnswers = 0;
  vi.stubGlobal(
    "fetch",
    vi.fn(async (path: string, init: RequestInit) => {
      calls.push([init.method ?? "GET", path, init.body ? JSON.parse(init.body as string) : undefined]);
      if (path === "/api/sites" && init.method === "POST") return json(201, { ok: true, site: custom, message: "Site created. Add an A record for your domain, then verify DNS." });
      if (path.endsWith("/verify-dns")) {
        dnsAnswers++;
        return dnsAnswers === 1
          ? json(200, { ok: false, fqdn: "www.example.org", expectedIp: "203.0.113.10", resolvedIps: ["198.51.100.7"], message: "DNS does not point to this server" })
          : json(200, { ok: true, message: "DNS verified, certificate issued, and site is now live." });
      }
      if (path === "/api/sites") return json(200, { sites: [custom, managed] });
      return json(404, { error: "Not found" });
    }),
  );
  renderWithClient(<Sites />, (qc) => {
    qc.setQueryData(keys.onboarding, ob);
    qc.setQueryData(keys.sites, [managed]);
  });
  const user = userEvent.setup();
  expect(screen.getAllByTestId("site-row")).toHaveLength(1);
  await user.click(screen.getByRole("button", { name: "New site" }));
  // Client-side checks first.
  await user.click(screen.getByRole("radio", { name: /A domain of your own/ }));
  await user.click(screen.getByRole("button", { name: "Create site" }));
  expect(screen.getByText("Enter a name.")).toBeInTheDocument();
  expect(screen.getByText("Enter the domain the site is served at.")).toBeInTheDocument();
  expect(calls.filter((c) => c[0] === "POST")).toHaveLength(0);
  await user.type(screen.getByRole("textbox", { name: /^Name/ }), "blog");
  await user.type(screen.getByRole("textbox", { name: /^Domain/ }), "www.example.org");
  // Login protection is refused for a domain outside example.com.
  expect(screen.getByRole("checkbox", { name: /Require login/ })).toBeDisabled();
  await user.click(screen.getByRole("button", { name: "Create site" }));
  expect(calls.find((c) => c[0] === "POST")?.[2]).toEqual({ name: "blog", type: "custom", customDomain: "www.example.org" });
  const dialog = await screen.findByRole("dialog", { name: "DNS for www.example.org" });
  expect(within(dialog).getByLabelText("record value")).toHaveTextContent("203.0.113.10");
  await user.click(within(dialog).getByRole("button", { name: "Verify DNS" }));
  expect(await within(dialog).findByText(/points to 198\.51\.100\.7, not to 203\.0\.113\.10/)).toBeInTheDocument();
  await user.click(within(dialog).getByRole("button", { name: "Verify DNS" }));
  expect(await within(dialog).findByText("The site is live")).toBeInTheDocument();
  expect(within(dialog).queryByRole("button", { name: "Verify DNS" })).toBeNull();
});

test("settings send only the change; deleting asks first", async () => {
  const calls: [string, string, unknown][] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (path: string, init: RequestInit) => {
      calls.push([init.method ?? "GET", path, init.body ? JSON.parse(init.body as string) : undefined]);
      if (init.method === "PATCH") return json(200, { ok: true, site: { ...managed, autheliaProtected: true, allowedUsers: ["alice"] }, warning: "The auth server did not confirm the new access rules in time." });
      if (init.method === "DELETE") return json(200, { ok: true });
      if (path === "/api/users") return json(200, { users: [{ username: "alice", displayname: "Alice", email: "a@x.org", groups: [] }] });
      return json(200, { sites: [managed] });
    }),
  );
  renderWithClient(<Sites />, (qc) => {
    qc.setQueryData(keys.onboarding, ob);
    qc.setQueryData(keys.sites, [managed]);
  });
  const user = userEvent.setup();
  await user.click(screen.getByRole("button", { name: "Settings of docs.example.com" }));
  const dialog = screen.getByRole("dialog");
  expect(within(dialog).getByRole("button", { name: "Save settings" })).toBeDisabled();
  await user.click(within(dialog).getByRole("checkbox", { name: /Require login/ }));
  await user.click(await within(dialog).findByRole("checkbox", { name: /alice/ }));
  await user.click(within(dialog).getByRole("button", { name: "Save settings" }));
  await waitFor(() => expect(calls.find((c) => c[0] === "PATCH")?.[2]).toEqual({ autheliaProtected: true, allowedUsers: ["alice"] }));
  // The API's warning becomes a warning toast.
  expect((await screen.findByText("The auth server did not confirm the new access rules in time.")).closest("[data-tone]")).toHaveAttribute("data-tone", "warning");
  expect(await screen.findByText("Login: 1 user")).toBeInTheDocument();

  await user.click(screen.getByRole("button", { name: "Delete docs.example.com" }));
  expect(calls.some((c) => c[0] === "DELETE")).toBe(false);
  await user.click(within(screen.getByRole("dialog", { name: "Delete site?" })).getByRole("button", { name: "Delete site" }));
  await waitFor(() => expect(screen.queryAllByTestId("site-row")).toHaveLength(0));
  expect(calls.find((c) => c[0] === "DELETE")?.[1]).toBe(`/api/sites/${managed.id}`);
});

test("the file browser uploads several files with progress, skips refused ones and walks folders", async () => {
  const uploads: string[] = [];
  stubXHR((url, form) => {
    const f = form.get("file") as File;
    uploads.push(`${url} ${f.name}`);
    return { status: 200, body: { ok: true, files: [f.name] }, progress: [[1, 2]] };
  });
  vi.stubGlobal(
    "fetch",
    vi.fn(async (path: string) => {
      if (path.includes("/files?path=img")) return json(200, { path: "img", files: [{ name: "a.png", type: "file", size: 10, modifiedAt: "2026-01-01T00:00:00Z", relativePath: "img/a.png" }] });
      if (path.includes("/files")) return json(200, { path: ".", files: [
        { name: "img", type: "directory", size: 0, modifiedAt: "2026-01-01T00:00:00Z", relativePath: "img" },
        { name: "index.html", type: "file", size: 1536, modifiedAt: "2026-01-01T00:00:00Z", relativePath: "index.html" },
      ] });
      return json(200, { sites: [managed] });
    }),
  );
  renderFilesPage();
  const user = userEvent.setup({ applyAccept: false });
  expect(await screen.findByRole("heading", { name: "docs.example.com" })).toBeInTheDocument();
  const rows = await screen.findAllByTestId("file-row");
  expect(rows[1]).toHaveTextContent("1.5 KB");
  expect(within(rows[1]).getByRole("link")).toHaveAttribute("href", "https://docs.example.com/index.html");
  await user.upload(screen.getByLabelText("Files to upload"), [new File(["<p>"], "about.html"), new File(["x"], "run.sh"), new File(["{}"], "data.json")]);
  const list = await screen.findByTestId("upload-list");
  await waitFor(() => expect(within(list).getAllByText("Uploaded")).toHaveLength(2));
  expect(within(list).getByText("Not sent: File 'run.sh' has disallowed extension '.sh'")).toBeInTheDocument();
  expect(uploads).toEqual([`/api/sites/${managed.id}/files?path=. about.html`, `/api/sites/${managed.id}/files?path=. data.json`]);
  expect(screen.getByText("2 of 2 uploaded")).toBeInTheDocument();
  // Progress counts the files' bytes (3 + 2), not the multipart framing.
  expect(screen.getByText("5 B of 5 B")).toBeInTheDocument();
  expect(await screen.findByText("2 files uploaded to docs.example.com")).toBeInTheDocument();
  // Into a folder: the upload goes there.
  await user.click(screen.getByRole("button", { name: "img" }));
  expect(await screen.findByText("a.png")).toBeInTheDocument();
  expect(screen.getByRole("navigation", { name: "Folder" })).toHaveTextContent("docs.example.com/img");
  await user.upload(screen.getByLabelText("Files to upload"), [new File(["x"], "b.svg")]);
  await waitFor(() => expect(uploads).toContain(`/api/sites/${managed.id}/files?path=img b.svg`));
});

test("a big folder is paged; files dropped on the list are uploaded", async () => {
  const many = Array.from({ length: 250 }, (_, i) => ({ name: `f${String(i).padStart(3, "0")}.txt`, type: "file", size: 1, modifiedAt: "2026-01-01T00:00:00Z", relativePath: `f${String(i).padStart(3, "0")}.txt` }));
  const uploads: string[] = [];
  stubXHR((_url, form) => {
    uploads.push((form.get("file") as File).name);
    return { status: 200, body: { ok: true, files: ["x"] } };
  });
  vi.stubGlobal("fetch", vi.fn(async (path: string) => (path.includes("/files") ? json(200, { path: ".", files: many }) : json(200, { sites: [managed] }))));
  renderFilesPage();
  expect(await screen.findAllByTestId("file-row")).toHaveLength(100);
  expect(screen.getByText("Page 1 of 3")).toBeInTheDocument();
  await userEvent.setup().click(screen.getByRole("button", { name: "Next" }));
  expect(screen.getAllByTestId("file-row")[0]).toHaveTextContent("f100.txt");
  const list = screen.getAllByTestId("file-row")[0].closest("table")!;
  const files = [new File(["a"], "dropped.html")];
  fireEvent.dragOver(list, { dataTransfer: { types: ["Files"], files } });
  fireEvent.drop(list, { dataTransfer: { types: ["Files"], files } });
  await waitFor(() => expect(uploads).toEqual(["dropped.html"]));
});
