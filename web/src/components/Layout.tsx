import { useState, type ReactNode } from "react";
import { Link, useLocation } from "wouter";
import { Cable, Gauge, Globe, KeyRound, Menu, Monitor, Server, Settings, ShieldCheck, Users, X, type LucideIcon } from "lucide-react";
import { useHealth, useOnboarding } from "../api/queries";
import { cx } from "./ui";

export const nav = [
  { href: "/", label: "Dashboard", icon: Gauge },
  { href: "/tunnels", label: "Tunnels", icon: Cable },
  { href: "/sites", label: "Sites", icon: Globe },
  { href: "/agents", label: "Agents", icon: Monitor },
  { href: "/users", label: "Users", icon: Users },
  { href: "/certificates", label: "Certificates", icon: ShieldCheck },
  { href: "/services", label: "Services", icon: Server },
  { href: "/settings", label: "Settings", icon: Settings },
];

export function Logo() {
  return (
    <span className="flex items-center gap-2 font-semibold">
      <span aria-hidden className="flex size-7 items-center justify-center rounded-md bg-teal-700 text-white dark:bg-teal-500 dark:text-zinc-950">
        <KeyRound className="size-4" />
      </span>
      Portlama
    </span>
  );
}

/** NavLink is one entry of a navigation bar (the panel's and the home UI's). */
export function NavLink({ href, label, icon: Icon, active, onClick, className }: { href: string; label: string; icon: LucideIcon; active: boolean; onClick?: () => void; className?: string }) {
  return (
    <Link
      href={href}
      onClick={onClick}
      aria-current={active ? "page" : undefined}
      className={cx(
        "flex items-center rounded-md px-3 py-2 text-sm font-medium",
        active ? "bg-teal-50 text-teal-800 dark:bg-teal-950 dark:text-teal-200" : "text-zinc-700 hover:bg-zinc-100 dark:text-zinc-300 dark:hover:bg-zinc-800",
        className ?? "gap-2",
      )}
    >
      <Icon aria-hidden className="size-4" />
      {label}
    </Link>
  );
}

export function Layout({ children }: { children: ReactNode }) {
  const [location] = useLocation();
  const [open, setOpen] = useState(false);
  const { data: ob } = useOnboarding();
  const { data: health } = useHealth();
  const active = (href: string) => (href === "/" ? location === "/" : location.startsWith(href));
  const links = (
    <ul className="space-y-1">
      {nav.map((item) => (
        <li key={item.href}>
          <NavLink {...item} active={active(item.href)} onClick={() => setOpen(false)} className="gap-3" />
        </li>
      ))}
    </ul>
  );
  const footer = (
    <div className="space-y-0.5 px-3 text-xs text-zinc-600 dark:text-zinc-400">
      {ob?.domain && <p className="truncate">{ob.domain}</p>}
      {health && <p>Relay {health.version}</p>}
    </div>
  );
  return (
    <div className="min-h-screen lg:flex">
      <a href="#main" className="sr-only z-50 rounded bg-white px-3 py-2 focus:not-sr-only focus:fixed focus:top-2 focus:left-2 dark:bg-zinc-900">
        Skip to content
      </a>
      <header className="sticky top-0 z-30 flex items-center justify-between border-b border-zinc-200 bg-white px-4 py-3 lg:hidden dark:border-zinc-800 dark:bg-zinc-900">
        <Logo />
        <button type="button" className="rounded-md p-2 hover:bg-zinc-100 dark:hover:bg-zinc-800" aria-expanded={open} aria-controls="mobile-nav" aria-label={open ? "Close menu" : "Open menu"} onClick={() => setOpen(!open)}>
          {open ? <X aria-hidden className="size-5" /> : <Menu aria-hidden className="size-5" />}
        </button>
      </header>
      {open && (
        <nav id="mobile-nav" aria-label="Main" className="border-b border-zinc-200 bg-white p-3 lg:hidden dark:border-zinc-800 dark:bg-zinc-900">
          {links}
          <div className="mt-3">{footer}</div>
        </nav>
      )}
      <aside className="hidden w-60 shrink-0 border-r border-zinc-200 bg-white lg:flex lg:flex-col dark:border-zinc-800 dark:bg-zinc-900">
        <div className="px-5 py-5">
          <Logo />
        </div>
        <nav aria-label="Main" className="flex-1 px-3">
          {links}
        </nav>
        <div className="py-4">{footer}</div>
      </aside>
      <main id="main" tabIndex={-1} className="min-w-0 flex-1 px-4 py-6 sm:px-6 lg:px-10 lg:py-8">
        <div className="mx-auto max-w-6xl">{children}</div>
      </main>
    </div>
  );
}
