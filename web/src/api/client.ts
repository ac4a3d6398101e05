// The one way the UI talks to the panel: JSON over fetch on the page's own
// origin (the browser presents the client certificate). A call that answers
// 401 {"error":"2fa_required"} waits for the panel 2FA code (one dialog for
// all calls that hit it at once, see setTwoFactorHandler) and is then
// repeated.
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

export interface RequestOptions {
  /** Skip the 2FA prompt (the verify call itself). */
  noTwoFactor?: boolean;
  signal?: AbortSignal;
}

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

/** send performs the request and returns the 2xx response. */
export async function send(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<Response> {
  for (let attempt = 0; ; attempt++) {
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
      throw new ApiError(0, {}, "The panel cannot be reached. Check your connection and that the relay is running.");
    }
    if (res.ok) return res;
    const err = await readError(res);
    if (res.status === 401 && err.message === MsgTwoFARequired && !opts.noTwoFactor && attempt < 3) {
      try {
        await waitForCode();
      } catch {
        throw err;
      }
      continue;
    }
    throw err;
  }
}

/** api performs a JSON request and decodes the JSON answer. */
export async function api<T>(method: string, path: string, body?: unknown, opts?: RequestOptions): Promise<T> {
  const res = await send(method, path, body, opts);
  const text = await res.text();
  return (text ? JSON.parse(text) : {}) as T;
}

export const get = <T,>(path: string, opts?: RequestOptions) => api<T>("GET", path, undefined, opts);
export const post = <T,>(path: string, body?: unknown, opts?: RequestOptions) => api<T>("POST", path, body, opts);
export const patch = <T,>(path: string, body: unknown) => api<T>("PATCH", path, body);
export const put = <T,>(path: string, body: unknown) => api<T>("PUT", path, body);
export const del = <T,>(path: string) => api<T>("DELETE", path);

/** getBlob downloads a file answer (a P12 bundle). */
export async function getBlob(path: string): Promise<Blob> {
  const res = await send("GET", path);
  return res.blob();
}

/** A path segment, encoded. */
export const seg = (s: string) => encodeURIComponent(s);
