// The UI's building blocks: one visual language for every page.
import { useEffect, useId, useRef, useState, type ReactNode, type ButtonHTMLAttributes, type InputHTMLAttributes } from "react";
import { AlertTriangle, Check, CheckCircle2, Copy, Eye, EyeOff, Info, Loader2, RefreshCw, Search, Trash2, X, XCircle } from "lucide-react";

export function cx(...c: unknown[]) {
  return c.filter((x) => typeof x === "string" && x).join(" ");
}

type Variant = "primary" | "secondary" | "danger" | "ghost";
const variants: Record<Variant, string> = {
  primary: "bg-teal-700 text-white hover:bg-teal-800 dark:bg-teal-500 dark:text-zinc-950 dark:hover:bg-teal-400",
  secondary:
    "bg-white text-zinc-900 ring-1 ring-inset ring-zinc-300 hover:bg-zinc-100 dark:bg-zinc-900 dark:text-zinc-100 dark:ring-zinc-700 dark:hover:bg-zinc-800",
  danger: "bg-red-700 text-white hover:bg-red-800 dark:bg-red-500 dark:text-zinc-950 dark:hover:bg-red-400",
  ghost: "text-zinc-700 hover:bg-zinc-200/70 dark:text-zinc-300 dark:hover:bg-zinc-800",
};

export interface ButtonProps extends ButtonHTMLAttributes<HTMLButtonElement> {
  variant?: Variant;
  size?: "sm" | "md";
  loading?: boolean;
  icon?: ReactNode;
}

export function Button({ variant = "secondary", size = "md", loading, icon, className, children, disabled, type = "button", ...rest }: ButtonProps) {
  return (
    <button
      type={type}
      disabled={disabled || loading}
      aria-busy={loading || undefined}
      className={cx(
        "inline-flex items-center justify-center gap-1.5 rounded-md font-medium transition-colors disabled:cursor-not-allowed disabled:opacity-50",
        size === "sm" ? "px-2.5 py-1 text-sm" : "px-3.5 py-2 text-sm",
        variants[variant],
        className,
      )}
      {...rest}
    >
      {loading ? <Loader2 aria-hidden className="size-4 animate-spin" /> : icon}
      {children}
    </button>
  );
}

export function Card({ title, actions, children, className, id }: { title?: ReactNode; actions?: ReactNode; children: ReactNode; className?: string; id?: string }) {
  return (
    <section aria-labelledby={title && id ? id : undefined} className={cx("rounded-lg bg-white shadow-sm ring-1 ring-zinc-200 dark:bg-zinc-900 dark:ring-zinc-800", className)}>
      {(title || actions) && (
        <div className="flex flex-wrap items-center justify-between gap-2 border-b border-zinc-200 px-4 py-3 dark:border-zinc-800">
          {title && (
            <h2 id={id} className="text-base font-semibold">
              {title}
            </h2>
          )}
          {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
        </div>
      )}
      <div className="p-4">{children}</div>
    </section>
  );
}

export function PageHeader({ title, description, actions }: { title: string; description?: ReactNode; actions?: ReactNode }) {
  useEffect(() => {
    document.title = `${title} · Portlama`;
  }, [title]);
  return (
    <div className="mb-6 flex flex-wrap items-end justify-between gap-3">
      <div>
        <h1 className="text-2xl font-semibold tracking-tight">{title}</h1>
        {description && <p className="mt-1 max-w-3xl text-sm text-zinc-600 dark:text-zinc-400">{description}</p>}
      </div>
      {actions && <div className="flex flex-wrap gap-2">{actions}</div>}
    </div>
  );
}

type Tone = "neutral" | "green" | "amber" | "red" | "teal" | "blue";
const tones: Record<Tone, string> = {
  neutral: "bg-zinc-100 text-zinc-700 ring-zinc-300 dark:bg-zinc-800 dark:text-zinc-300 dark:ring-zinc-700",
  green: "bg-green-50 text-green-800 ring-green-600/30 dark:bg-green-950 dark:text-green-300 dark:ring-green-500/30",
  amber: "bg-amber-50 text-amber-900 ring-amber-600/30 dark:bg-amber-950 dark:text-amber-300 dark:ring-amber-500/30",
  red: "bg-red-50 text-red-800 ring-red-600/30 dark:bg-red-950 dark:text-red-300 dark:ring-red-500/30",
  teal: "bg-teal-50 text-teal-800 ring-teal-600/30 dark:bg-teal-950 dark:text-teal-300 dark:ring-teal-500/30",
  blue: "bg-sky-50 text-sky-800 ring-sky-600/30 dark:bg-sky-950 dark:text-sky-300 dark:ring-sky-500/30",
};

export function Badge({ tone = "neutral", children }: { tone?: Tone; children: ReactNode }) {
  return <span className={cx("inline-flex items-center gap-1 rounded-full px-2 py-0.5 text-xs font-medium ring-1 ring-inset whitespace-nowrap", tones[tone])}>{children}</span>;
}

export function Spinner({ label = "Loading" }: { label?: string }) {
  return (
    <span role="status" className="inline-flex items-center gap-2 text-sm text-zinc-600 dark:text-zinc-400">
      <Loader2 aria-hidden className="size-4 animate-spin" />
      {label}…
    </span>
  );
}

export function Loading({ label }: { label?: string }) {
  return (
    <div className="flex min-h-24 items-center justify-center py-6">
      <Spinner label={label} />
    </div>
  );
}

export function Empty({ title, children, icon }: { title: string; children?: ReactNode; icon?: ReactNode }) {
  return (
    <div className="flex flex-col items-center gap-2 px-4 py-10 text-center">
      {icon && <div className="text-zinc-400 dark:text-zinc-500">{icon}</div>}
      <p className="font-medium">{title}</p>
      {children && <div className="max-w-md text-sm text-zinc-600 dark:text-zinc-400">{children}</div>}
    </div>
  );
}

export function ErrorState({ error, retry, what = "This section" }: { error: unknown; retry?: () => void; what?: string }) {
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" className="flex flex-wrap items-center justify-between gap-3 rounded-md bg-red-50 p-3 text-sm text-red-800 ring-1 ring-red-600/20 dark:bg-red-950 dark:text-red-200 dark:ring-red-500/30">
      <span className="flex items-center gap-2">
        <XCircle aria-hidden className="size-4 shrink-0" />
        <span>
          {what} could not be loaded: {msg}
        </span>
      </span>
      {retry && (
        <Button size="sm" onClick={retry} icon={<RefreshCw aria-hidden className="size-3.5" />}>
          Try again
        </Button>
      )}
    </div>
  );
}

export function Notice({ tone = "info", title, children }: { tone?: "info" | "warning" | "danger" | "success"; title?: ReactNode; children?: ReactNode }) {
  const style = {
    info: "bg-sky-50 text-sky-900 ring-sky-600/20 dark:bg-sky-950 dark:text-sky-100 dark:ring-sky-500/30",
    warning: "bg-amber-50 text-amber-950 ring-amber-600/30 dark:bg-amber-950 dark:text-amber-100 dark:ring-amber-500/30",
    danger: "bg-red-50 text-red-900 ring-red-600/20 dark:bg-red-950 dark:text-red-100 dark:ring-red-500/30",
    success: "bg-green-50 text-green-900 ring-green-600/20 dark:bg-green-950 dark:text-green-100 dark:ring-green-500/30",
  }[tone];
  const Icon = { info: Info, warning: AlertTriangle, danger: XCircle, success: CheckCircle2 }[tone];
  return (
    <div role={tone === "danger" ? "alert" : undefined} className={cx("flex gap-3 rounded-md p-3 text-sm ring-1", style)}>
      <Icon aria-hidden className="mt-0.5 size-4 shrink-0" />
      <div className="min-w-0 space-y-1">
        {title && <p className="font-semibold">{title}</p>}
        {children}
      </div>
    </div>
  );
}

const inputClass =
  "block w-full rounded-md border-0 bg-white px-3 py-2 text-sm text-zinc-900 shadow-sm ring-1 ring-inset ring-zinc-300 placeholder:text-zinc-500 focus:ring-2 focus:ring-teal-600 focus-visible:outline-none disabled:bg-zinc-100 dark:bg-zinc-950 dark:text-zinc-100 dark:ring-zinc-700 dark:placeholder:text-zinc-500 dark:focus:ring-teal-400 dark:disabled:bg-zinc-900";

export interface FieldProps extends Omit<InputHTMLAttributes<HTMLInputElement>, "onChange" | "prefix"> {
  label: ReactNode;
  hint?: ReactNode;
  error?: string;
  onChange?: (v: string) => void;
  suffix?: ReactNode;
  prefix?: ReactNode;
}

export function TextField({ label, hint, error, onChange, suffix, prefix, className, id, ...rest }: FieldProps) {
  const auto = useId();
  const fid = id ?? auto;
  const hintId = `${fid}-hint`;
  const errId = `${fid}-err`;
  return (
    <div className={className}>
      <label htmlFor={fid} className="mb-1 block text-sm font-medium">
        {label}
      </label>
      <div className={cx("flex items-stretch", (suffix || prefix) && "rounded-md")}>
        {prefix && <span className="inline-flex items-center rounded-l-md bg-zinc-100 px-3 text-sm text-zinc-600 ring-1 ring-inset ring-zinc-300 dark:bg-zinc-800 dark:text-zinc-400 dark:ring-zinc-700">{prefix}</span>}
        <input
          id={fid}
          className={cx(inputClass, suffix && "rounded-r-none", prefix && "rounded-l-none", error && "ring-red-600 dark:ring-red-400")}
          aria-invalid={error ? true : undefined}
          aria-describedby={cx(hint && hintId, error && errId) || undefined}
          onChange={(e) => onChange?.(e.target.value)}
          {...rest}
        />
        {suffix && (
          <span className="inline-flex max-w-[55%] items-center truncate rounded-r-md bg-zinc-100 px-3 text-sm text-zinc-600 ring-1 ring-inset ring-zinc-300 dark:bg-zinc-800 dark:text-zinc-400 dark:ring-zinc-700">
            {suffix}
          </span>
        )}
      </div>
      {hint && !error && (
        <p id={hintId} className="mt-1 text-xs text-zinc-600 dark:text-zinc-400">
          {hint}
        </p>
      )}
      {error && (
        <p id={errId} className="mt-1 text-xs font-medium text-red-700 dark:text-red-400">
          {error}
        </p>
      )}
    </div>
  );
}

export function SelectField({
  label,
  value,
  onChange,
  options,
  error,
  hint,
  disabled,
  name,
}: {
  label: ReactNode;
  value: string;
  onChange: (v: string) => void;
  options: { value: string; label: string }[];
  error?: string;
  hint?: ReactNode;
  disabled?: boolean;
  name?: string;
}) {
  const fid = useId();
  return (
    <div>
      <label htmlFor={fid} className="mb-1 block text-sm font-medium">
        {label}
      </label>
      <select
        id={fid}
        name={name}
        className={cx(inputClass, error && "ring-red-600")}
        value={value}
        disabled={disabled}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${fid}-err` : hint ? `${fid}-hint` : undefined}
        onChange={(e) => onChange(e.target.value)}
      >
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {hint && !error && (
        <p id={`${fid}-hint`} className="mt-1 text-xs text-zinc-600 dark:text-zinc-400">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${fid}-err`} className="mt-1 text-xs font-medium text-red-700 dark:text-red-400">
          {error}
        </p>
      )}
    </div>
  );
}

export function Checkbox({ label, description, checked, onChange, disabled, name }: { label: ReactNode; description?: ReactNode; checked: boolean; onChange: (v: boolean) => void; disabled?: boolean; name?: string }) {
  const fid = useId();
  return (
    <div className="flex gap-2.5">
      <input
        id={fid}
        name={name}
        type="checkbox"
        className="mt-0.5 size-4 shrink-0 rounded border-zinc-300 accent-teal-700 dark:accent-teal-400"
        checked={checked}
        disabled={disabled}
        aria-describedby={description ? `${fid}-d` : undefined}
        onChange={(e) => onChange(e.target.checked)}
      />
      <div className="text-sm">
        <label htmlFor={fid} className="font-medium">
          {label}
        </label>
        {description && (
          <p id={`${fid}-d`} className="text-xs text-zinc-600 dark:text-zinc-400">
            {description}
          </p>
        )}
      </div>
    </div>
  );
}

/** DeleteButton is the small red trash-can button of a list row; label says what it deletes. */
export function DeleteButton({ label, onClick }: { label: string; onClick: () => void }) {
  return <Button size="sm" variant="ghost" aria-label={label} onClick={onClick} icon={<Trash2 aria-hidden className="size-4 text-red-700 dark:text-red-400" />} />;
}

/** RadioCard is one choice of a radio group drawn as a card with a description. */
export function RadioCard({ name, value, checked, onChange, label, description }: { name: string; value: string; checked: boolean; onChange: () => void; label: ReactNode; description: ReactNode }) {
  return (
    <label
      className={cx(
        "flex cursor-pointer flex-col gap-1 rounded-md p-3 text-sm ring-1 has-[:focus-visible]:outline-2 has-[:focus-visible]:outline-teal-600",
        checked ? "bg-teal-50 ring-teal-600 dark:bg-teal-950 dark:ring-teal-400" : "ring-zinc-300 dark:ring-zinc-700",
      )}
    >
      <span className="flex items-center gap-2 font-medium break-all">
        <input type="radio" name={name} value={value} className="accent-teal-700 focus-visible:outline-none" checked={checked} onChange={onChange} />
        {label}
      </span>
      <span className="text-xs text-zinc-600 dark:text-zinc-400">{description}</span>
    </label>
  );
}

/** SearchField filters a list as one types. */
export function SearchField({ label, placeholder, value, onChange }: { label: string; placeholder: string; value: string; onChange: (v: string) => void }) {
  return (
    <div className="relative w-full max-w-xs">
      <Search aria-hidden className="pointer-events-none absolute top-2.5 left-2.5 size-4 text-zinc-500" />
      <input
        type="search"
        aria-label={label}
        placeholder={placeholder}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        className="block w-full rounded-md border-0 bg-white py-2 pr-3 pl-8 text-sm ring-1 ring-inset ring-zinc-300 placeholder:text-zinc-500 focus:ring-2 focus:ring-teal-600 dark:bg-zinc-950 dark:ring-zinc-700"
      />
    </div>
  );
}

export function Switch({ checked, onChange, label, disabled }: { checked: boolean; onChange: (v: boolean) => void; label: string; disabled?: boolean }) {
  return (
    <button
      type="button"
      role="switch"
      aria-checked={checked}
      aria-label={label}
      disabled={disabled}
      onClick={() => onChange(!checked)}
      className={cx(
        "relative inline-flex h-6 w-11 shrink-0 items-center rounded-full transition-colors disabled:opacity-50",
        checked ? "bg-teal-700 dark:bg-teal-500" : "bg-zinc-300 dark:bg-zinc-700",
      )}
    >
      <span aria-hidden className={cx("inline-block size-5 rounded-full bg-white shadow transition-transform", checked ? "translate-x-5" : "translate-x-0.5")} />
    </button>
  );
}

/** Dialog is a native modal <dialog>: focus is trapped, Escape closes it. */
export function Dialog({ open, onClose, title, children, footer, wide }: { open: boolean; onClose: () => void; title: ReactNode; children: ReactNode; footer?: ReactNode; wide?: boolean }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) {
      if (typeof d.showModal === "function") d.showModal();
      else d.setAttribute("open", "");
    } else if (!open && d.open) {
      if (typeof d.close === "function") d.close();
      else d.removeAttribute("open");
    }
  }, [open]);
  if (!open) return null;
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onCancel={(e) => {
        e.preventDefault();
        onClose();
      }}
      className={cx(
        "m-auto w-[calc(100%-2rem)] rounded-lg bg-white p-0 text-zinc-900 shadow-xl ring-1 ring-zinc-200 dark:bg-zinc-900 dark:text-zinc-100 dark:ring-zinc-700",
        wide ? "max-w-2xl" : "max-w-lg",
      )}
    >
      <div className="flex items-start justify-between gap-4 border-b border-zinc-200 px-5 py-4 dark:border-zinc-800">
        <h2 id={titleId} className="text-lg font-semibold">
          {title}
        </h2>
        <button type="button" onClick={onClose} className="rounded p-1 text-zinc-600 hover:bg-zinc-100 dark:text-zinc-400 dark:hover:bg-zinc-800" aria-label="Close">
          <X aria-hidden className="size-5" />
        </button>
      </div>
      <div className="max-h-[70vh] overflow-y-auto px-5 py-4">{children}</div>
      {footer && <div className="flex flex-wrap justify-end gap-2 border-t border-zinc-200 px-5 py-3 dark:border-zinc-800">{footer}</div>}
    </dialog>
  );
}

/** ConfirmDialog asks before a destructive action and shows its failure. */
export function ConfirmDialog({
  open,
  title,
  children,
  confirmLabel,
  onConfirm,
  onClose,
  danger = true,
}: {
  open: boolean;
  title: string;
  children: ReactNode;
  confirmLabel: string;
  onConfirm: () => Promise<unknown>;
  onClose: () => void;
  danger?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState("");
  useEffect(() => {
    if (open) setErr("");
  }, [open]);
  return (
    <Dialog
      open={open}
      onClose={() => !busy && onClose()}
      title={title}
      footer={
        <>
          <Button onClick={onClose} disabled={busy}>
            Cancel
          </Button>
          <Button
            variant={danger ? "danger" : "primary"}
            loading={busy}
            onClick={async () => {
              setBusy(true);
              setErr("");
              try {
                await onConfirm();
                onClose();
              } catch (e) {
                setErr(e instanceof Error ? e.message : String(e));
              } finally {
                setBusy(false);
              }
            }}
          >
            {confirmLabel}
          </Button>
        </>
      }
    >
      <div className="space-y-3 text-sm">
        {children}
        {err && <Notice tone="danger">{err}</Notice>}
      </div>
    </Dialog>
  );
}

export function CopyButton({ text, label = "Copy", className }: { text: string; label?: string; className?: string }) {
  const [done, setDone] = useState(false);
  useEffect(() => {
    if (!done) return;
    const t = setTimeout(() => setDone(false), 1500);
    return () => clearTimeout(t);
  }, [done]);
  return (
    <Button
      size="sm"
      variant="ghost"
      className={className}
      aria-label={done ? "Copied" : label}
      title={label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          // No clipboard access (an old browser): the text is selectable.
        }
        setDone(true);
      }}
      icon={done ? <Check aria-hidden className="size-4 text-green-700 dark:text-green-400" /> : <Copy aria-hidden className="size-4" />}
    >
      <span aria-live="polite" className="sr-only">
        {done ? "Copied" : ""}
      </span>
    </Button>
  );
}

export function CodeLine({ text, label }: { text: string; label?: string }) {
  return (
    <div className="flex items-center gap-1 rounded-md bg-zinc-100 py-1 pr-1 pl-3 ring-1 ring-zinc-200 dark:bg-zinc-950 dark:ring-zinc-800">
      <code className="min-w-0 flex-1 overflow-x-auto font-mono text-sm whitespace-pre" tabIndex={0} aria-label={label}>
        {text}
      </code>
      <CopyButton text={text} label={label ? `Copy ${label}` : "Copy"} />
    </div>
  );
}

/** Secret shows a one-time value masked, with show/hide and copy. */
export function Secret({ value, label }: { value: string; label: string }) {
  const [shown, setShown] = useState(false);
  return (
    <div className="flex items-center gap-1 rounded-md bg-zinc-100 py-1 pr-1 pl-3 ring-1 ring-zinc-200 dark:bg-zinc-950 dark:ring-zinc-800">
      <code className="min-w-0 flex-1 overflow-x-auto font-mono text-sm" aria-label={label} data-secret={shown ? value : undefined}>
        {shown ? value : "•".repeat(Math.min(24, value.length))}
      </code>
      <Button size="sm" variant="ghost" aria-label={shown ? `Hide ${label}` : `Show ${label}`} aria-pressed={shown} onClick={() => setShown(!shown)} icon={shown ? <EyeOff aria-hidden className="size-4" /> : <Eye aria-hidden className="size-4" />} />
      <CopyButton text={value} label={`Copy ${label}`} />
    </div>
  );
}

export function Meter({ value, label }: { value: number; label: string }) {
  const tone = value >= 90 ? "bg-red-600 dark:bg-red-500" : value >= 75 ? "bg-amber-500" : "bg-teal-600 dark:bg-teal-500";
  return (
    <div role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(value)} className="h-2 w-full overflow-hidden rounded-full bg-zinc-200 dark:bg-zinc-800">
      <div className={cx("h-full rounded-full transition-[width]", tone)} style={{ width: `${value}%` }} />
    </div>
  );
}

export function Pagination({ page, pages, onPage, total, from, to }: { page: number; pages: number; onPage: (p: number) => void; total: number; from: number; to: number }) {
  if (total === 0) return null;
  return (
    <nav aria-label="Pagination" className="flex flex-wrap items-center justify-between gap-2 pt-3 text-sm">
      <span className="text-zinc-600 dark:text-zinc-400">
        {from.toLocaleString("en")}–{to.toLocaleString("en")} of {total.toLocaleString("en")}
      </span>
      <div className="flex items-center gap-2">
        <Button size="sm" disabled={page <= 1} onClick={() => onPage(page - 1)}>
          Previous
        </Button>
        <span aria-current="page">
          Page {page} of {pages}
        </span>
        <Button size="sm" disabled={page >= pages} onClick={() => onPage(page + 1)}>
          Next
        </Button>
      </div>
    </nav>
  );
}

export function usePaged<T>(items: T[], pageSize: number) {
  const [page, setPage] = useState(1);
  const pages = Math.max(1, Math.ceil(items.length / pageSize));
  const p = Math.min(page, pages);
  const start = (p - 1) * pageSize;
  return {
    page: p,
    pages,
    setPage,
    rows: items.slice(start, start + pageSize),
    from: items.length ? start + 1 : 0,
    to: Math.min(items.length, start + pageSize),
    total: items.length,
  };
}

export function Stat({ label, value, sub, children }: { label: string; value: ReactNode; sub?: ReactNode; children?: ReactNode }) {
  return (
    <div className="rounded-lg bg-white p-4 shadow-sm ring-1 ring-zinc-200 dark:bg-zinc-900 dark:ring-zinc-800">
      <p className="text-sm font-medium text-zinc-600 dark:text-zinc-400">{label}</p>
      <p className="mt-1 text-2xl font-semibold tabular-nums">{value}</p>
      {sub && <p className="mt-0.5 text-xs text-zinc-600 dark:text-zinc-400">{sub}</p>}
      {children && <div className="mt-3">{children}</div>}
    </div>
  );
}

export function FormActions({ error, children }: { error?: string; children: ReactNode }) {
  return (
    <div className="space-y-3 pt-2">
      {error && <Notice tone="danger">{error}</Notice>}
      <div className="flex flex-wrap justify-end gap-2">{children}</div>
    </div>
  );
}
