package nginx

// certHelpHTML is served by the panel-ip vhost instead of nginx's plain 400
// page when no valid client certificate was presented (error_page 495 496).
// It is static: no scripts, no external resources.
const certHelpHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Client certificate required — Portlama</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #222; }
code, pre { background: #f3f3f3; padding: 0.1rem 0.3rem; border-radius: 3px; }
pre { padding: 0.6rem; overflow-x: auto; }
h1 { font-size: 1.5rem; }
</style>
</head>
<body>
<h1>Client certificate required</h1>
<p>This Portlama panel only answers browsers and tools that present a valid client
certificate issued by this relay. Your request came without one, or with a certificate
that is expired, revoked or from another relay.</p>

<h2>1. Get <code>client.p12</code></h2>
<p>The installer created the admin certificate on the server. Copy it to your computer
and note its password (printed at the end of <code>portlama install</code>):</p>
<pre>scp root@&lt;server-ip&gt;:/etc/portlama/pki/client.p12 .
ssh root@&lt;server-ip&gt; cat /etc/portlama/pki/.p12-password</pre>

<h2>2. Import it</h2>
<ul>
<li><strong>macOS:</strong> double-click <code>client.p12</code>, enter the password, add it to the
<em>login</em> keychain.</li>
<li><strong>Windows:</strong> double-click <code>client.p12</code> and follow the import wizard
(current user, personal store).</li>
<li><strong>Linux (Chrome/Chromium):</strong> Settings → Privacy and security → Security → Manage
certificates → Your certificates → Import.</li>
<li><strong>Firefox:</strong> Settings → Privacy &amp; Security → Certificates → View Certificates →
Your Certificates → Import.</li>
</ul>

<h2>3. Reload this page</h2>
<p>Restart the browser if it does not ask for a certificate, then choose the
<em>Portlama</em> certificate when prompted.</p>

<p>With curl: <code>curl --cert-type P12 --cert client.p12:&lt;password&gt; -k https://&lt;server-ip&gt;:9292/api/health</code></p>

<p>Lost the certificate? On the server, run <code>portlama reset-admin</code> to issue a new one.</p>
</body>
</html>
`
