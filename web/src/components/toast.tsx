// Short confirmations ("Tunnel created") in a polite live region.
import { createContext, useCallback, useContext, useState, type ReactNode } from "react";
import { CheckCircle2, X } from "lucide-react";

interface Toast {
  id: number;
  text: string;
}
const Ctx = createContext<(text: string) => void>(() => {});

export function useToast() {
  return useContext(Ctx);
}

let next = 1;
export function ToastProvider({ children }: { children: ReactNode }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const push = useCallback((text: string) => {
    const id = next++;
    setToasts((t) => [...t.slice(-2), { id, text }]);
    setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), 5000);
  }, []);
  return (
    <Ctx.Provider value={push}>
      {children}
      <div aria-live="polite" className="pointer-events-none fixed right-4 bottom-4 z-50 flex w-80 max-w-[calc(100%-2rem)] flex-col gap-2">
        {toasts.map((t) => (
          <div key={t.id} role="status" className="pointer-events-auto flex items-start gap-2 rounded-md bg-zinc-900 px-3 py-2 text-sm text-white shadow-lg dark:bg-zinc-100 dark:text-zinc-900">
            <CheckCircle2 aria-hidden className="mt-0.5 size-4 shrink-0 text-green-400 dark:text-green-700" />
            <span className="flex-1">{t.text}</span>
            <button type="button" aria-label="Dismiss" className="rounded p-0.5 hover:bg-white/10" onClick={() => setToasts((x) => x.filter((y) => y.id !== t.id))}>
              <X aria-hidden className="size-4" />
            </button>
          </div>
        ))}
      </div>
    </Ctx.Provider>
  );
}
