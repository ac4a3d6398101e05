import { Link, Route, Switch as Routes, useLocation } from "wouter";
import { NavLink } from "../components/Layout";
import { Cable, CloudUpload, KeyRound, Radar, ScrollText, Server } from "lucide-react";
import { isApiError } from "../api/client";
import { Loading, Notice } from "../components/ui";
import { useStatus } from "./queries";
import { AppsPage } from "./Apps";
import { TunnelsPage } from "./Tunnels";
import { ServersPage } from "./Servers";
import { LogPage } from "./Log";
import { CloudPage } from "./Cloud";

const nav = [
  { href: "/", label: "Apps", icon: Radar },
  { href: "/tunnels", label: "Tunnels", icon: Cable },
  { href: "/servers", label: "Servers", icon: Server },
  { href: "/cloud", label: "New relay", icon: CloudUpload },
  { href: "/log", label: "Log", icon: ScrollText },
];

export function HomeApp() {
  const [location] = useLocation();
  const status = useStatus();
  const active = (href: string) => (href === "/" ? location === "/" : location.startsWith(href));
  if (isApiError(status.error, 401)) {
    return (
      <main id="main" className="mx-auto max-w-xl px-4 py-16">
        <Notice tone="warning" title="Open the control UI with its link">
          <p>
            This page needs the one-time link that <code>portlama-agent ui</code> prints and opens. Run it again for a new link.
          </p>
        </Notice>
      </main>
    );
  }
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only z-50 rounded bg-white px-3 py-2 focus:not-sr-only focus:fixed focus:top-2 focus:left-2 dark:bg-zinc-900">
        Skip to content
      </a>
      <header className="border-b border-zinc-200 bg-white dark:border-zinc-800 dark:bg-zinc-900">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center justify-between gap-3 px-4 py-3 sm:px-6">
          <span className="flex items-center gap-2 font-semibold">
            <span aria-hidden className="flex size-7 items-center justify-center rounded-md bg-teal-700 text-white dark:bg-teal-500 dark:text-zinc-950">
              <KeyRound className="size-4" />
            </span>
            Portlama Home
          </span>
          <nav aria-label="Main">
            <ul className="flex flex-wrap gap-1">
              {nav.map((item) => (
                <li key={item.href}>
                  <NavLink {...item} active={active(item.href)} />
                </li>
              ))}
            </ul>
          </nav>
          <p className="text-xs text-zinc-600 dark:text-zinc-400">
            {status.data?.server ? (
              <>
                Relay <span className="font-medium text-zinc-800 dark:text-zinc-200">{status.data.server.id}</span>
              </>
            ) : status.data ? (
              "No relay yet"
            ) : null}
          </p>
        </div>
      </header>
      <main id="main" tabIndex={-1} className="mx-auto max-w-6xl px-4 py-6 sm:px-6 lg:py-8">
        {status.isPending ? (
          <Loading />
        ) : (
          <Routes>
            <Route path="/" component={AppsPage} />
            <Route path="/tunnels" component={TunnelsPage} />
            <Route path="/servers" component={ServersPage} />
            <Route path="/cloud" component={CloudPage} />
            <Route path="/log" component={LogPage} />
            <Route>
              <Notice tone="warning" title="Page not found">
                <Link href="/" className="underline">
                  Back to the apps
                </Link>
              </Notice>
            </Route>
          </Routes>
        )}
      </main>
    </div>
  );
}

/** NeedsServer explains what to do before a relay is set up. */
export function NeedsServer() {
  return (
    <Notice title="Add a relay first">
      <p>
        Tunnels go through your Portlama relay. Add it on the{" "}
        <Link href="/servers" className="font-medium underline">
          Servers
        </Link>{" "}
        page with an enrollment token from the relay's panel (Agents → Add agent).
      </p>
    </Notice>
  );
}
