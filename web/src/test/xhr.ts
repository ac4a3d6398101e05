// A stand-in for XMLHttpRequest (uploads): each send reports the progress
// steps given, then answers what answer() returns for its URL and form.
import { vi } from "vitest";

export interface FakeAnswer {
  status: number;
  body: unknown;
  /** Upload progress reported before the answer, as [sent, total]. */
  progress?: [number, number][];
}

export function stubXHR(answer: (url: string, form: FormData) => FakeAnswer) {
  class FakeXHR {
    status = 0;
    responseText = "";
    upload: { onprogress: ((e: { loaded: number; total: number; lengthComputable: boolean }) => void) | null } = { onprogress: null };
    onload: (() => void) | null = null;
    onerror: (() => void) | null = null;
    onabort: (() => void) | null = null;
    withCredentials = false;
    url = "";
    open(_method: string, url: string) {
      this.url = url;
    }
    setRequestHeader() {}
    getResponseHeader() {
      return "application/json";
    }
    abort() {}
    send(form: FormData) {
      const a = answer(this.url, form);
      for (const [loaded, total] of a.progress ?? []) this.upload.onprogress?.({ loaded, total, lengthComputable: true });
      this.status = a.status;
      this.responseText = JSON.stringify(a.body);
      setTimeout(() => this.onload?.(), 0);
    }
  }
  vi.stubGlobal("XMLHttpRequest", FakeXHR);
}
