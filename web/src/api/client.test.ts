import { stubXHR } from "../test/xhr";
import { ApiError, del, get, post, setTwoFactorHandler, setWarningHandler, upload } from "./client";

function json(status: number, body: unknown) {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json; charset=utf-8" } });
}

afterEach(() => vi.unstubAllGlobals());

test("2fa_required opens one prompt for all waiting calls, then repeats them", async () => {
  let verified = false;
  const fetchMock = vi.fn(async (path: string) => (verified ? json(200, { path }) : json(401, { error: "2fa_required" })));
  vi.stubGlobal("fetch", fetchMock);
  let prompts = 0;
  const off = setTwoFactorHandler(async () => {
    prompts++;
    await new Promise((r) => setTimeout(r, 5));
    verified = true;
  });
  const [a, b] = await Promise.all([get<{ path: string }>("/api/tunnels"), get<{ path: string }>("/api/users")]);
  off();
  expect(prompts).toBe(1);
  expect(a.path).toBe("/api/tunnels");
  expect(b.path).toBe("/api/users");
  expect(fetchMock).toHaveBeenCalledTimes(4);
});

test("a dismissed prompt fails the call with the API's error", async () => {
  vi.stubGlobal("fetch", vi.fn(async () => json(401, { error: "2fa_required" })));
  const off = setTwoFactorHandler(() => Promise.reject(new Error("cancelled")));
  await expect(get("/api/tunnels")).rejects.toMatchObject({ status: 401, message: "2fa_required" });
  off();
});

test("the verify call itself never prompts", async () => {
  vi.stubGlobal("fetch", vi.fn(async () => json(401, { error: "Invalid TOTP code" })));
  const handler = vi.fn(async () => {});
  const off = setTwoFactorHandler(handler);
  await expect(post("/api/settings/2fa/verify", { code: "123456" }, { noTwoFactor: true })).rejects.toBeInstanceOf(ApiError);
  expect(handler).not.toHaveBeenCalled();
  off();
});

test("POST without a body sends {} as JSON; errors keep details", async () => {
  const fetchMock = vi.fn(async (_path: string, init: RequestInit) => {
    expect(init.body).toBe("{}");
    expect((init.headers as Record<string, string>)["Content-Type"]).toBe("application/json");
    return json(400, { error: "Validation failed", details: { issues: [{ path: ["label"], message: "Required" }] } });
  });
  vi.stubGlobal("fetch", fetchMock);
  const err = (await post("/api/x").catch((e) => e)) as ApiError;
  expect(err.status).toBe(400);
  expect(err.issues).toEqual([{ path: ["label"], message: "Required" }]);
});

test("a network failure is an ApiError with advice; nginx's certificate page is explained", async () => {
  vi.stubGlobal("fetch", vi.fn(async () => Promise.reject(new TypeError("Failed to fetch"))));
  await expect(get("/api/health")).rejects.toMatchObject({ status: 0, message: expect.stringMatching(/cannot be reached/) });
  vi.stubGlobal("fetch", vi.fn(async () => new Response("<html>", { status: 400, headers: { "Content-Type": "text/html" } })));
  await expect(get("/api/health")).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/client certificate/) });
});

test("a mutation's warning reaches the warning handler once; reads and ownWarning do not", async () => {
  const seen: string[] = [];
  const off = setWarningHandler((w) => seen.push(w));
  vi.stubGlobal("fetch", vi.fn(async () => json(200, { ok: true, warning: "The tunnel server did not confirm the change in time." })));
  await post("/api/tunnels", { subdomain: "a" });
  await get("/api/tunnels");
  await post("/api/certs/mtls/rotate", undefined, { ownWarning: true });
  vi.stubGlobal("fetch", vi.fn(async () => json(200, { ok: true, warning: "" })));
  await del("/api/tunnels/x");
  off();
  await post("/api/tunnels", { subdomain: "b" });
  expect(seen).toEqual(["The tunnel server did not confirm the change in time."]);
});

test("upload reports progress, repeats after the 2FA code and reports the warning", async () => {
  const sent: FormData[] = [];
  let verified = false;
  stubXHR((_url, form) => {
    sent.push(form);
    return verified
      ? { status: 200, body: { ok: true, files: ["a.html"], warning: "Site size (600 MB) exceeds the 500 MB limit." }, progress: [[50, 100], [100, 100]] }
      : { status: 401, body: { error: "2fa_required" }, progress: [[50, 100], [100, 100]] };
  });
  const offCode = setTwoFactorHandler(async () => {
    verified = true;
  });
  const warnings: string[] = [];
  const offWarn = setWarningHandler((w) => warnings.push(w));
  const progress: number[] = [];
  const form = new FormData();
  form.append("file", new Blob(["<p>"]), "a.html");
  const res = await upload<{ files: string[] }>("/api/sites/x/files?path=.", form, (s, t) => progress.push(s / t));
  offCode();
  offWarn();
  expect(res.files).toEqual(["a.html"]);
  expect(sent).toHaveLength(2);
  expect(progress).toEqual([0.5, 1, 0.5, 1]);
  expect(warnings).toEqual(["Site size (600 MB) exceeds the 500 MB limit."]);
});

test("a refused upload is an ApiError with the API's message", async () => {
  stubXHR(() => ({ status: 400, body: { error: "Upload failed: File 'a.exe' has disallowed extension '.exe'" } }));
  await expect(upload("/api/sites/x/files", new FormData())).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/disallowed extension/) });
});
