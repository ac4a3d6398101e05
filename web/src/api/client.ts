// The one way the UI talks to the panel: JSON over fetch on the page's own
// origin (the browser presents the client certificate). A call that answers
// 401 {"error":"2fa_required"} waits for the panel 2FA code (one dialog for
// all calls that hit it at once, see setTwoFactorHandler) and is then
// repeated. A mutation answered 200 with "warning" (saved, but a daemon did
// not confirm it in time) is reported to the warning handler (a toast, see
// setWarningHandler), so no page has to look for it.
import type { Error as ErrorBody, Issue, ValidationDetails } from "./types.gen";
import { MsgTwoFARequired, MsgValidation } from "./types.gen";

/** An API answer other than 2xx, or a network failure (status 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly body: Partial<ErrorBody> & Record<string, unknown>;
  constructor(status: number, body: Partial<ErrorBody> & Record<string, unknown>, fallback?: string) {
    super(body.error || fallback || `Request failed (HTTP ${status})`);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
  /** The validation issues of a 400 "Validation failed". */
  get issues(): Issue[] {
    if (this.message !== MsgValidation) return [];
    const d = this.body.details as ValidationDetails | undefined;
    return Array.isArray(d?.issues) ? d.issues : [];
  }
  /** String details ("Failed to …" answers) or details.hint. */
  get detail(): string {
    const d = this.body.details as unknown;
    if (typeof d === "string") return d;
    if (d && typeof d === "object" && typeof (d as { hint?: unknown }).hint === "string") return (d as { hint: string }).hint;
    return "";
  }
}

export function isApiError(e: unknown, status?: number): e is ApiError {
  return e instanceof ApiError && (status === undefined || e.status === status);
}

type TwoFactorHandler = () => Promise<void>;
let twoFactorHandler: TwoFactorHandler | null = null;
let pendingCode: Promise<void> | null = null;

/**
 * Registers what runs when a call needs the panel 2FA code: it resolves once
 * the code was verified (the session cookie is set) and rejects when the
 * user gives up. Returns the function that unregisters it.
 */
export function setTwoFactorHandler(h: TwoFactorHandler): () => void {
  twoFactorHandler = h;
  return () => {
    if (twoFactorHandler === h) twoFactorHandler = null;
  };
}

function waitForCode(): Promise<void> {
  if (!twoFactorHandler) return Promise.reject(new Error("no 2FA handler"));
  if (!pendingCode) {
    pendingCode = twoFactorHandler().finally(() => {
      pendingCode = null;
    });
  }
  return pendingCode;
}

type WarningHandler = (warning: string) => void;
let warningHandler: WarningHandler | null = null;

/**
 * Registers what shows the "warning" of a successful mutation (the toast).
 * Returns the function that unregisters it.
 */
export function setWarningHandler(h: WarningHandler): () => void {
  warningHandler = h;
  return () => {
    if (warningHandler === h) warningHandler = null;
  };
}

/** reportWarning passes a mutation answer's "warning" to the handler. */
export function reportWarning(method: string, body: unknown, opts: RequestOptions = {}) {
  if (method === "GET" || method === "HEAD" || opts.ownWarning) return;
  const w = body && typeof body === "object" ? (body as { warning?: unknown }).warning : undefined;
  if (typeof w === "string" && w.trim()) warningHandler?.(w);
}

export interface RequestOptions {
  /** Skip the 2FA prompt (the verify call itself). */
  noTwoFactor?: boolean;
  /** The page shows the answer's "warning" itself (no toast). */
  ownWarning?: boolean;
  signal?: AbortSignal;
}

const unreachable = "The panel cannot be reached. Check your connection and that the relay is running.";

async function readError(res: Response): Promise<ApiError> {
  let body: Record<string, unknown> = {};
  if ((res.headers.get("Content-Type") || "").includes("json")) {
    try {
      body = await res.json();
    } catch {
      body = {};
    }
  }
  return new ApiError(res.status, body, res.status === 400 || res.status === 496 ? "This browser did not present a valid client certificate" : undefined);
}

/**
 * withCode runs attempt; when it fails with 2fa_required it waits for the
 * code (one dialog for every waiting call) and runs it again, up to three
 * times.
 */
async function withCode<T>(opts: RequestOptions, attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 401 || err.message !== MsgTwoFARequired || opts.noTwoFactor || n >= 3) throw err;
      try {
        await waitForCode();
      } catch {
        throw err;
      }
    }
  }
}

/** send performs the request and returns the 2xx response. */
export function send(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<Response> {
  return withCode(opts, async () => {
    const init: RequestInit = { method, credentials: "same-origin", signal: opts.signal, headers: { Accept: "application/json" } };
    if (method !== "GET" && method !== "HEAD") {
      init.headers = { ...init.headers, "Content-Type": "application/json" };
      init.body = JSON.stringify(body ?? {});
    }
    let res: Response;
    try {
      res = await fetch(path, init);
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      throw new ApiError(0, {}, unreachable);
    }
    if (res.ok) return res;
    throw await readError(res);
  });
}

/** api performs a JSON request and decodes the JSON answer. */
export async function api<T>(method: string, path: string, body?: unknown, opts?: RequestOptions): Promise<T> {
  const res = await send(method, path, body, opts);
  const text = await res.text();
  const out = (text ? JSON.parse(text) : {}) as T;
  reportWarning(method, out, opts);
  return out;
}

export const get = <T,>(path: string, opts?: RequestOptions) => api<T>("GET", path, undefined, opts);
export const post = <T,>(path: string, body?: unknown, opts?: RequestOptions) => api<T>("POST", path, body, opts);
export const patch = <T,>(path: string, body: unknown, opts?: RequestOptions) => api<T>("PATCH", path, body, opts);
export const put = <T,>(path: string, body: unknown, opts?: RequestOptions) => api<T>("PUT", path, body, opts);
export const del = <T,>(path: string, body?: unknown, opts?: RequestOptions) => api<T>("DELETE", path, body, opts);

/** getBlob downloads a file answer (a P12 bundle). */
export async function getBlob(path: string): Promise<Blob> {
  const res = await send("GET", path);
  return res.blob();
}

/** A path segment, encoded. */
export const seg = (s: string) => encodeURIComponent(s);

/**
 * upload POSTs a multipart form with XMLHttpRequest (fetch cannot report
 * upload progress): onProgress gets the bytes sent so far and the total.
 * It answers like api(): 2FA prompt and repeat, warnings reported, ApiError
 * on failure.
 */
export function upload<T>(path: string, form: FormData, onProgress?: (sent: number, total: number) => void, opts: RequestOptions = {}): Promise<T> {
  return withCode(opts, async () => {
    const { status, type, text } = await new Promise<{ status: number; type: string; text: string }>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", path);
      xhr.withCredentials = true;
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : 0);
      xhr.onload = () => resolve({ status: xhr.status, type: xhr.getResponseHeader("Content-Type") || "", text: xhr.responseText });
      xhr.onerror = () => reject(new ApiError(0, {}, unreachable));
      xhr.onabort = () => reject(new DOMException("The upload was cancelled", "AbortError"));
      opts.signal?.addEventListener("abort", () => xhr.abort(), { once: true });
      xhr.send(form);
    });
    if (status < 200 || status > 299) throw await readError(new Response(text, { status, headers: { "Content-Type": type } }));
    const out = (text ? JSON.parse(text) : {}) as T;
    reportWarning("POST", out, opts);
    return out;
  });
}
