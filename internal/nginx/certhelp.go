package nginx

// certHelpHTML is served by the panel-ip vhost instead of nginx's plain 400
// page when no valid client certificate was presented (error_page 495 496).
// It is static: no scripts, no external resources. It tells where the admin
// certificate and its password are and how to import the bundle.
const certHelpHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>Client certificate required — Portlama</title>
<style>
:root { color-scheme: light dark; --fg: #18181b; --muted: #52525b; --bg: #fafafa; --card: #fff; --line: #e4e4e7; --code: #f4f4f5; --accent: #0f766e; }
@media (prefers-color-scheme: dark) { :root { --fg: #f4f4f5; --muted: #a1a1aa; --bg: #09090b; --card: #18181b; --line: #27272a; --code: #09090b; --accent: #2dd4bf; } }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; background: var(--bg); color: var(--fg); line-height: 1.55; }
main { max-width: 46rem; margin: 0 auto; padding: 2.5rem 1.25rem 4rem; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; }
h2 { font-size: 1.1rem; margin: 2rem 0 .5rem; }
h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; }
p, li { color: var(--fg); }
.lead { color: var(--muted); }
section { background: var(--card); border: 1px solid var(--line); border-radius: .5rem; padding: .25rem 1.25rem 1rem; margin-top: 1rem; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .9em; background: var(--code); border-radius: .25rem; }
code { padding: .1rem .3rem; }
pre { padding: .7rem .9rem; overflow-x: auto; border: 1px solid var(--line); }
ol, ul { padding-left: 1.3rem; }
a { color: var(--accent); }
.note { border-left: 3px solid var(--accent); padding: .25rem .9rem; color: var(--muted); }
</style>
</head>
<body>
<main>
<h1>Client certificate required</h1>
<p class="lead">This Portlama panel opens only for a browser that presents a client certificate
issued by this relay. Your browser sent none, or one that is expired, revoked (for example after
the admin certificate was rotated) or from another relay.</p>

<section>
<h2>1. Get the certificate and its password</h2>
<p>The installer created the admin certificate, <code>client.p12</code>, on the server. Copy it
to your computer; its password was printed at the end of <code>portlama install</code> and is
also stored on the server (readable by root only):</p>
<pre>scp root@&lt;server-ip&gt;:/etc/portlama/pki/client.p12 .
ssh root@&lt;server-ip&gt; cat /etc/portlama/pki/.p12-password</pre>
<p>After a rotation in the panel (Certificates → Rotate admin certificate) the new
<code>client.p12</code> was saved by your browser and its password shown once on that page;
the server's <code>.p12-password</code> holds the new password too.</p>
</section>

<section>
<h2>2. Import it</h2>
<h3>macOS (Safari, Chrome, Edge)</h3>
<ol>
<li>Double-click <code>client.p12</code>; Keychain Access opens.</li>
<li>Choose the <em>login</em> keychain and enter the certificate's password.</li>
<li>Quit and reopen the browser. Firefox uses its own store: see below.</li>
</ol>
<h3>Windows (Edge, Chrome)</h3>
<ol>
<li>Double-click <code>client.p12</code>; the Certificate Import Wizard opens.</li>
<li>Store location <em>Current User</em>, keep the file, enter the password.</li>
<li>Let Windows choose the store (it goes to <em>Personal</em>), finish, restart the browser.</li>
</ol>
<h3>Linux (Chrome, Chromium)</h3>
<ol>
<li>Settings → Privacy and security → Security → Manage certificates → Your certificates → Import.</li>
<li>Pick <code>client.p12</code> and enter the password.</li>
</ol>
<p>Or from a terminal (package <code>libnss3-tools</code>):</p>
<pre>pk12util -i client.p12 -d sql:$HOME/.pki/nssdb</pre>
<h3>Firefox (every system)</h3>
<p>Settings → Privacy &amp; Security → Certificates → View Certificates → Your Certificates →
Import, then pick <code>client.p12</code> and enter the password.</p>
</section>

<section>
<h2>3. Reload this page</h2>
<p>The browser asks which certificate to present: choose the one issued by <em>Portlama</em>.
If it does not ask, restart the browser. The panel's own TLS certificate on
<code>https://&lt;server-ip&gt;:9292</code> is self-signed, so the browser warns once about it;
once onboarding is done, use <code>https://panel.&lt;your-domain&gt;</code>, which has a
regular certificate.</p>
</section>

<section>
<h2>Without a browser</h2>
<pre>curl --cert-type P12 --cert client.p12:&lt;password&gt; -k https://&lt;server-ip&gt;:9292/api/health</pre>
<p class="note">Lost the certificate or its password? On the server, run
<code>portlama reset-admin</code>: it issues a new admin certificate, revokes the old one,
turns panel two-factor authentication off and prints the new password.</p>
</section>
</main>
</body>
</html>
`
