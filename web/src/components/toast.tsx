// Short confirmations ("Tunnel created") in a polite live region, and the
// warnings of mutations that were saved but not confirmed by a daemon
// (every API call's "warning", registered with the client once here).
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { AlertTriangle, CheckCircle2, X } from "lucide-react";
import { setWarningHandler } from "../api/client";

type Tone = "success" | "warning";
interface Toast {
  id: number;
  text: string;
  tone: Tone;
}
const Ctx = createContext<(text: string, tone?: Tone) => void>(() => {});

export function useToast() {
  return useContext(Ctx);
}

// A warning asks for something to be checked: it stays longer.
const lifetime: Record<Tone, number> = { success: 5000, warning: 20000 };

let next = 1;
export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((text: string, tone: Tone = "success") => {
    const id = next++;
    setToasts((t) => [...t.slice(-2), { id, text, tone }]);
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), lifetime[tone]);
  }, []);
  // The API's warnings say what happened themselves ("Saved, but …").
  useEffect(() => setWarningHandler((w) => push(w, "warning")), [push]);
  return (
    <Ctx.Provider value={push}>
      {children}
      <div aria-live="polite" className="pointer-events-none fixed right-4 bottom-4 z-50 flex w-80 max-w-[calc(100%-2rem)] flex-col gap-2">
        {toasts.map((t) => (
          <div
            key={t.id}
            role="status"
            data-tone={t.tone}
            className={
              t.tone === "warning"
                ? "pointer-events-auto flex items-start gap-2 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-950 shadow-lg ring-1 ring-amber-400 dark:bg-amber-950 dark:text-amber-100 dark:ring-amber-600"
                : "pointer-events-auto flex items-start gap-2 rounded-md bg-zinc-900 px-3 py-2 text-sm text-white shadow-lg dark:bg-zinc-100 dark:text-zinc-900"
            }
          >
            {t.tone === "warning" ? (
              <AlertTriangle aria-hidden className="mt-0.5 size-4 shrink-0 text-amber-700 dark:text-amber-300" />
            ) : (
              <CheckCircle2 aria-hidden className="mt-0.5 size-4 shrink-0 text-green-400 dark:text-green-700" />
            )}
            <span className="flex-1">{t.text}</span>
            <button type="button" aria-label="Dismiss" className="rounded p-0.5 hover:bg-black/10 dark:hover:bg-white/10" onClick={() => setToasts((x) => x.filter((y) => y.id !== t.id))}>
              <X aria-hidden className="size-4" />
            </button>
          </div>
        ))}
      </div>
    </Ctx.Provider>
  );
}
