package nginx

import (
	"crypto/sha256"
	"encoding/base64"
	"regexp"
	"sync"
)

// cookieFilterJS is snippets/portlama.js, nginx's header filter for the
// responses of relay ports (tunnelled apps, agent panels); see
// docs/security.md, "Cookies of apps". It reads every Set-Cookie line the
// way a browser does (RFC 6265 §5.2: split at ';', names trimmed of spaces
// and tabs) — nginx's own proxy_cookie_domain does not: it misses a tab
// before "Domain", which browsers accept — and
//   - drops a cookie named portlama_session (the relay's login cookie, in
//     any letter case): an app must not replace the visitor's session;
//   - removes every Domain attribute: the cookie stays on the app's host
//     and never reaches the parent domain (the portal, panel.<d>, other
//     apps).
//
// Its trim is wider than a browser's (any white space), so it drops and
// removes at least what a browser would see.
const cookieFilterJS = `// Managed by Portlama. Changes are overwritten.
// Set-Cookie of tunnelled apps and agent panels: no login cookie, no Domain.
var LOGIN = "portlama_session";

function trim(s) {
    return s.replace(/^\s+|\s+$/g, "");
}

function clean(line) {
    var parts = line.split(";");
    var eq = parts[0].indexOf("=");
    var name = eq < 0 ? "" : trim(parts[0].slice(0, eq));
    if (name.toLowerCase() === LOGIN) {
        return null;
    }
    var out = [parts[0]];
    for (var i = 1; i < parts.length; i++) {
        var k = parts[i].indexOf("=");
        var key = trim(k < 0 ? parts[i] : parts[i].slice(0, k)).toLowerCase();
        if (key !== "domain") {
            out.push(parts[i]);
        }
    }
    return out.join(";");
}

function setCookie(r) {
    var lines = r.headersOut["Set-Cookie"];
    if (!lines || lines.length === 0) {
        return;
    }
    var out = [];
    for (var i = 0; i < lines.length; i++) {
        var c = clean(lines[i]);
        if (c === null) {
            r.warn("portlama: dropped the backend's Set-Cookie for the relay's login cookie");
            continue;
        }
        out.push(c);
    }
    r.headersOut["Set-Cookie"] = out;
}

export default {setCookie};
`

// cookieHelpHTML is <www>/cookie-help.html, nginx's answer (431) when a
// request's headers do not fit: too many or too large cookies, which any
// page under the domain can set from JavaScript. It is served at the URL
// that failed, so its script sees exactly the cookies sent there (those not
// HttpOnly) and expires them on this host and each parent domain, for this
// path and its prefixes; then it retries once. The portal removes the rest
// (HttpOnly ones) when it is opened: the page links to it.
const cookieHelpHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Too many cookies — Portlama</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#222}</style>
</head>
<body>
<h1>Too many cookies for this site</h1>
<p>Your browser sent more cookie data than this site accepts. This happens when a site under
the same domain stored many or very large cookies.</p>
<p id="retry" hidden>The cookies this page can reach were removed. <a id="retry-link" href="/">Try again</a>.</p>
<p id="portal" hidden>If this page comes back, open the <a id="portal-link" href="/">sign-in page</a> once:
it removes the remaining cookies. Then come back here.</p>
<noscript><p>Turn on JavaScript so this page can remove the cookies, or delete this site's cookies
in your browser's settings.</p></noscript>
<script>
(function () {
  "use strict";
  var host = location.hostname, labels = host.split(".");
  var ip = /^[0-9.]+$/.test(host) || host.indexOf(":") >= 0 || host.charAt(0) === "[";
  var domains = [""];
  for (var i = 0; !ip && i < labels.length - 1; i++) { domains.push(labels.slice(i).join(".")); }
  var paths = ["/"], segs = location.pathname.split("/"), cur = "";
  for (var j = 1; j < segs.length && j <= 8 && segs[j]; j++) { cur += "/" + segs[j]; paths.push(cur, cur + "/"); }
  var before = document.cookie.length;
  document.cookie.split(";").forEach(function (c) {
    var name = c.split("=")[0].trim();
    if (!name) { return; }
    domains.forEach(function (d) {
      paths.forEach(function (p) {
        document.cookie = name + "=; Max-Age=0; Path=" + p + (d ? "; Domain=" + d : "") + "; Secure; SameSite=Lax";
      });
    });
  });
  document.getElementById("retry-link").href = location.href;
  document.getElementById("retry").hidden = false;
  if (!ip && labels.length >= 3) {
    document.getElementById("portal-link").href = "https://auth." + labels.slice(1).join(".") +
      (location.port ? ":" + location.port : "") + "/?rd=" + encodeURIComponent(location.href);
    document.getElementById("portal").hidden = false;
  }
  // Retry by itself when something was removed, at most once a minute.
  var key = "portlama-cookie-retry", last = 0;
  try { last = Number(sessionStorage.getItem(key)) || 0; } catch (e) {}
  if (document.cookie.length < before && Date.now() - last > 60000) {
    try { sessionStorage.setItem(key, String(Date.now())); } catch (e) {}
    location.reload();
  }
})();
</script>
</body>
</html>
`

// cookiePageCSP admits the cookie page's one inline script and style by
// their hashes, and nothing else.
var cookiePageCSP = sync.OnceValue(func() string {
	hash := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(cookieHelpHTML)
		sum := sha256.Sum256([]byte(m[1]))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; script-src " + hash(`(?s)<script>(.*?)</script>`) +
		"; style-src " + hash(`(?s)<style>(.*?)</style>`) +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
})
