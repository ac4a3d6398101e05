package nginx

import (
	"bytes"
	"fmt"
	"sync"
	"text/template"
)

// All templates share the helper definitions below. Every value they print
// was validated by the Renderer (fqdn, subdomain, agent label, UUID, int
// port, clean absolute path, ip:port, 64-hex secret) or is a fixed string.
// They are parsed on first use: the tunnel and auth servers run the same
// binary and never render (parsed, they are about 0.1 MB of heap).
var templates = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("nginx").Funcs(template.FuncMap{
		"connPerAddr":         func() int { return ConnPerAddr },
		"cookiePageCSP":       cookiePageCSP,
		"portalHeaderBuffers": func() string { return PortalHeaderBuffers },
	}).Parse(tmplHelpers + tmplConfD + tmplSnippets + tmplVhosts))
})

func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := templates().ExecuteTemplate(&b, name, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

const tmplHelpers = `
{{- define "header"}}# Managed by Portlama. Changes are overwritten.
{{end}}

{{- define "blankRemote"}}
        proxy_set_header Remote-User "";
        proxy_set_header Remote-Groups "";
        proxy_set_header Remote-Name "";
        proxy_set_header Remote-Email "";
{{- end}}

{{- define "blankClientCert"}}
        proxy_set_header X-SSL-Client-Verify "";
        proxy_set_header X-SSL-Client-DN "";
        proxy_set_header X-SSL-Client-Serial "";
{{- end}}

{{- /* Non-panel backends never get the secret, not even one a client sent. */}}
{{- define "blankSecret"}}
        proxy_set_header X-Portlama-Proxy-Secret "";
{{- end}}

{{- define "standardHeaders"}}
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
{{- end}}

{{- define "tls"}}
    ssl_certificate {{.TLS.Cert}};
    ssl_certificate_key {{.TLS.Key}};
    include {{.Env.Snippets}}/portlama-tls.conf;
{{- end}}

{{- define "requireCert"}}
        if ($ssl_client_verify != SUCCESS) {
            return 496;
        }
{{- end}}

{{- /* Only a WebSocket handshake may upgrade (conf.d's maps): a backend that
       answers 101 to anything else would get a raw pipe past nginx. */}}
{{- define "refuseUpgrade"}}
        if ($portlama_upgrade_refused) {
            return 400;
        }
{{- end}}

{{- /* The URI may carry an invitation or enrollment token: never logged,
       not even by the locations that answer its errors. */}}
{{- define "noLog"}}
        access_log off;
        error_log /dev/null;
        error_page 413 = @portlama_413_unlogged;
        error_page 429 = @portlama_429_unlogged;
{{- end}}

{{- define "noLogErrorLocations"}}
    location @portlama_413_unlogged {
        access_log off;
        error_log /dev/null;
        default_type application/json;
        return 413 '{"error":"Request body is too large"}\n';
    }

    location @portlama_429_unlogged {
        access_log off;
        error_log /dev/null;
        default_type application/json;
        return 429 '{"error":"Rate limit exceeded, retry in 1 minute"}\n';
    }
{{- end}}

{{- /* What every public server has (docs/security.md): the per-address
       connection limit and nginx's own error answers, JSON for API clients
       ($portlama_json) and pages for browsers. A request whose headers do
       not fit (too many or too large cookies, which any app under the
       domain can set from JavaScript) gets a page that removes them. */}}
{{- define "serverBasics"}}
    limit_conn portlama_addr {{connPerAddr}};
    error_page 413 = @portlama_413;
    error_page 429 = @portlama_429;
    error_page 494 =431 @portlama_431;

    location @portlama_413 {
        default_type application/json;
        if ($portlama_json) {
            return 413 '{"error":"Request body is too large"}\n';
        }
        return 413;
    }

    location @portlama_429 {
        default_type application/json;
        if ($portlama_json) {
            return 429 '{"error":"Rate limit exceeded, retry in 1 minute"}\n';
        }
        return 429;
    }

    # Not logged: the request line may be a token location's (they are
    # chosen after the headers are read), and the auth server logs the
    # clean-up.
    location @portlama_431 {
        access_log off;
        default_type application/json;
        if ($portlama_json) {
            return 431 '{"error":"Request headers too large: the browser sent too many or too large cookies. Remove the cookies of this site and try again."}\n';
        }
        root {{.Env.WWW}};
        charset utf-8;
        include {{.Env.Snippets}}/portlama-hsts.conf;
        add_header Content-Security-Policy "{{cookiePageCSP}}" always;
        add_header Cache-Control no-store always;
        add_header X-Content-Type-Options nosniff always;
        add_header Referrer-Policy no-referrer always;
        try_files /cookie-help.html =404;
    }
{{- end}}

{{- /* A location with an error_page of its own loses the server's. */}}
{{- define "locationErrorPages"}}
        error_page 413 = @portlama_413;
        error_page 429 = @portlama_429;
{{- end}}

{{- /* mTLS servers: no or a bad client certificate (docs/architecture.md, "mTLS vhosts") gets
       403, {"error":"mTLS certificate required"} like the panel's own
       answer for API clients, the help page for browsers. */}}
{{- define "noCert"}}
    error_page 495 496 =403 @portlama_no_cert;

    location @portlama_no_cert {
        default_type application/json;
        if ($portlama_json) {
            return 403 '{"error":"mTLS certificate required","details":{"hint":"Access to the Portlama panel requires a valid client certificate."}}\n';
        }
        root {{.Env.WWW}};
        charset utf-8;
        try_files /cert-help.html =404;
    }
{{- end}}

{{- /* A panel location reachable without a certificate: the secret proves
       the origin, the certificate headers are blanked so the panel treats
       the caller as anonymous. */}}
{{- define "panelNoCert"}}
        proxy_pass http://portlama_panel;
        proxy_http_version 1.1;
        include {{.Env.Snippets}}/portlama-proxy-secret.conf;
{{- template "blankClientCert"}}
{{- template "blankRemote"}}
{{- template "standardHeaders"}}
        proxy_set_header Upgrade "";
        proxy_set_header Connection "";
{{- end}}

{{- define "panelLocations"}}
{{- template "noLogErrorLocations"}}

    location = /api/enroll {
        limit_req zone=portlama_enroll burst=5 nodelay;
{{- template "noLog"}}
{{- template "panelNoCert" .}}
    }

    # Trailing slash: /api/invitations (admin) must not match.
    location /api/invite/ {
{{- template "noLog"}}
{{- template "panelNoCert" .}}
    }

    location /api {
{{- template "requireCert"}}
        include {{.Env.Snippets}}/portlama-panel-proxy.conf;
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
    }

    location / {
{{- template "requireCert"}}
        include {{.Env.Snippets}}/portlama-panel-proxy.conf;
    }
{{- end}}

{{- /* Forward authentication (docs/architecture.md, "Forward authentication"). .FQDN is written into
       X-Original-URL, never taken from the client. */}}
{{- define "authzLocations"}}
    location = /internal/portlama/authz {
        internal;
        proxy_pass http://portlama_auth/api/authz/auth-request;
        proxy_http_version 1.1;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Original-Method $request_method;
{{- if .Wildcard}}
        # $host matched a route of the host map exactly (else 404 above).
        proxy_set_header X-Original-URL "https://$host{{.Env.HTTPSPortSuffix}}$request_uri";
{{- else}}
        proxy_set_header X-Original-URL "https://{{.FQDN}}{{.Env.HTTPSPortSuffix}}$request_uri";
{{- end}}
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-Proto https;
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header X-Portlama-Proxy-Secret "";
        # nginx does not pass Upgrade to a subrequest: the auth server needs
        # it to apply its Origin check to WebSocket handshakes.
        proxy_set_header X-Original-Upgrade $http_upgrade;
    }

    location = /internal/portlama/denied {
        internal;
        proxy_pass http://portlama_auth/denied;
        proxy_http_version 1.1;
        proxy_method GET;
        proxy_pass_request_body off;
        proxy_set_header Content-Length "";
        proxy_set_header Connection "";
        proxy_set_header Host $host;
    }
{{- end}}

{{- define "authzRequest"}}
        auth_request /internal/portlama/authz;
        auth_request_set $portlama_user $upstream_http_remote_user;
        auth_request_set $portlama_groups $upstream_http_remote_groups;
        auth_request_set $portlama_name $upstream_http_remote_name;
        auth_request_set $portlama_email $upstream_http_remote_email;
        auth_request_set $portlama_login $upstream_http_location;
        error_page 401 =302 $portlama_login;
        error_page 403 /internal/portlama/denied;
{{- template "locationErrorPages"}}
{{- end}}
`

const tmplConfD = `
{{- define "confd"}}{{template "header"}}# http context, docs/architecture.md, "Shared pieces".

# Enrollment without a certificate: 5 requests per minute per client address.
limit_req_zone $binary_remote_addr zone=portlama_enroll:1m rate=5r/m;

# Limits and timeouts (docs/security.md, "Connection limits"): every public
# server admits {{connPerAddr}} requests in progress per client address, and a
# connection that sends no complete request header within 10 s, or stays idle
# for 30 s between requests, is closed.
limit_conn_zone $binary_remote_addr zone=portlama_addr:10m;
limit_conn_status 429;
limit_conn_log_level warn;
limit_req_status 429;
client_header_timeout 10s;
client_body_timeout 30s;
send_timeout 30s;
keepalive_timeout 30s;
keepalive_requests 1000;
reset_timedout_connection on;
# Room for the cookies an app under the domain may set (three of 4,000
# bytes pass); the portal accepts more (portlama-auth) to clean them up.
large_client_header_buffers 4 16k;

# Upgrades towards backends: only a WebSocket handshake (GET with Upgrade:
# websocket) upgrades; vhosts refuse any other Upgrade (h2c, ...), since a
# backend answering 101 would turn the connection into a raw pipe that no
# longer passes through auth_request.
map "$request_method:$http_upgrade" $portlama_upgrade {
    default             "";
    "~*^GET:websocket$" websocket;
}
map "$http_upgrade:$portlama_upgrade" $portlama_upgrade_refused {
    default        1;
    "~^:"          0;
    "~:websocket$" 0;
}

# Connection header towards backends.
# DELIBERATE DIFFERENCE from the origin spec (docs/architecture.md, "Shared pieces"), which says "close" without an
# Upgrade header: an empty value makes nginx omit the Connection header, so
# with proxy_http_version 1.1 and "keepalive" in an upstream block the
# connection to the backend is reused instead of closed after every request.
map $portlama_upgrade $connection_upgrade {
    websocket upgrade;
    default   "";
}

# Whether nginx's own error answers are JSON: for clients that ask for it
# or call the API.
map "$http_accept $request_uri" $portlama_json {
    default              0;
    "~*application/json" 1;
    "~ /api(/|\?|$)"     1;
}

# The request's Cookie header without the auth server's session cookie, so
# tunnelled apps and sites never see it. Two or more occurrences: drop every
# cookie rather than forward one of them.
map $http_cookie $portlama_backend_cookie {
    default $http_cookie;
    "~portlama_session\s*=.*portlama_session\s*=" "";
    "~^\s*portlama_session\s*=[^;]*;?\s*(?<portlama_ck_rest>.*)$" "$portlama_ck_rest";
    "~^(?<portlama_ck_pre>.*?)\s*;\s*portlama_session\s*=[^;]*(?<portlama_ck_post>.*)$" "$portlama_ck_pre$portlama_ck_post";
}

# Set-Cookie from tunnelled apps and agent panels, read as a browser reads
# it: the login cookie is dropped, Domain attributes are removed
# (portlama.js; nginx's proxy_cookie_domain misses a tab before Domain).
js_import portlama from {{.Snippets}}/portlama.js;

ssl_session_cache shared:portlama_tls:10m;
ssl_session_timeout 1d;
server_names_hash_bucket_size 128;

upstream portlama_panel {
    server {{.Panel}};
    keepalive 16;
}

upstream portlama_auth {
    server {{.Auth}};
    keepalive 32;
}
{{end}}`

const tmplSnippets = `
{{- define "snippet-tls"}}{{template "header"}}ssl_protocols TLSv1.2 TLSv1.3;
ssl_ciphers HIGH:!aNULL:!MD5;
ssl_prefer_server_ciphers on;
{{end}}

{{- define "snippet-mtls"}}{{template "header"}}ssl_client_certificate {{.CACert}};
ssl_verify_client optional;
ssl_crl {{.CRL}};
ssl_verify_depth 1;
{{end}}

{{- define "snippet-secret"}}{{template "header"}}proxy_set_header X-Portlama-Proxy-Secret "{{.Secret}}";
{{end}}

{{- define "snippet-tunnel-secret"}}{{template "header"}}proxy_set_header X-Portlama-Tunnel-Secret "{{.Secret}}";
{{end}}

{{- define "snippet-panel-proxy"}}{{template "header"}}# For locations that proxy to the panel (docs/architecture.md, "Shared pieces"; docs/api.md, "Headers nginx sets").
proxy_pass http://portlama_panel;
proxy_http_version 1.1;
# Unbuffered: nginx 1.22 drops a buffered response that is still arriving
# when a reload makes the worker shut down (its upstream timer is removed
# and the worker exits): an API call that reloads nginx itself (admin
# rotation, revocation, tunnel changes) lost its answer.
proxy_buffering off;
client_max_body_size 200m;
include {{.Snippets}}/portlama-proxy-secret.conf;
proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
proxy_set_header X-SSL-Client-DN $ssl_client_s_dn;
proxy_set_header X-SSL-Client-Serial $ssl_client_serial;
proxy_set_header Remote-User "";
proxy_set_header Remote-Groups "";
proxy_set_header Remote-Name "";
proxy_set_header Remote-Email "";
proxy_set_header Host $host;
proxy_set_header X-Real-IP $remote_addr;
proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
proxy_set_header X-Forwarded-Proto $scheme;
proxy_set_header Upgrade $portlama_upgrade;
proxy_set_header Connection $connection_upgrade;
{{end}}

{{- define "snippet-hsts"}}{{template "header"}}add_header Strict-Transport-Security "max-age=31536000" always;
{{end}}
`

const tmplVhosts = `
{{- define "vhost-http"}}{{template "header"}}server {
    listen {{.HTTPListen}} default_server;
    server_name _;
    limit_conn portlama_addr {{connPerAddr}};

    location ^~ /.well-known/acme-challenge/ {
        root {{.ACMEWebroot}};
        default_type text/plain;
        try_files $uri =404;
    }

    location / {
        return 301 https://$host{{.HTTPSPortSuffix}}$request_uri;
    }
}
{{end}}

{{- define "vhost-default"}}{{template "header"}}# Names the relay does not serve get no certificate.
server {
    listen {{.HTTPSListen}} ssl default_server;
    server_name _;
    ssl_reject_handshake on;
}
{{end}}

{{- define "vhost-panel-ip"}}{{template "header"}}server {
    listen {{.Env.PanelIPListen}} ssl default_server;
    server_name _;
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-mtls.conf;
{{template "serverBasics" .}}
{{template "noCert" .}}
{{template "panelLocations" .}}
}
{{end}}

{{- define "vhost-panel-domain"}}{{template "header"}}server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-mtls.conf;
    include {{.Env.Snippets}}/portlama-hsts.conf;
{{template "serverBasics" .}}
{{template "noCert" .}}
{{template "panelLocations" .}}
}
{{end}}

{{- define "vhost-auth"}}{{template "header"}}server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-hsts.conf;
    # The portal must answer whatever cookies a browser holds for the
    # domain (about 180 of 4 KiB at most), so it can remove foreign ones.
    large_client_header_buffers {{portalHeaderBuffers}};
{{template "serverBasics" .}}
{{template "noLogErrorLocations"}}

    location /invite/ {
{{- template "noLog"}}
        root {{.Env.WWW}};
        try_files $uri /invite/index.html;
        # add_header here replaces the server level, so HSTS is repeated.
        include {{.Env.Snippets}}/portlama-hsts.conf;
        add_header Content-Security-Policy "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" always;
        add_header Referrer-Policy no-referrer always;
    }

    location /api/invite/ {
{{- template "noLog"}}
{{- template "panelNoCert" .}}
    }

    # The auth-request endpoint is only for nginx's internal subrequests.
    location /api/authz/ {
        return 404;
    }

    location / {
        proxy_pass http://portlama_auth;
        proxy_http_version 1.1;
{{- template "blankClientCert"}}
{{- template "blankSecret"}}
{{- template "blankRemote"}}
{{- template "standardHeaders"}}
        proxy_set_header X-Forwarded-Host $host;
        proxy_set_header Upgrade "";
        proxy_set_header Connection "";
        # Room for the Set-Cookie lines that remove foreign cookies.
        proxy_buffer_size 32k;
        proxy_buffers 4 32k;
    }
}
{{end}}

{{- define "vhost-tunnel"}}{{template "header"}}server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-mtls.conf;
    include {{.Env.Snippets}}/portlama-hsts.conf;

    location / {
{{- template "requireCert"}}
        proxy_pass http://{{.Env.Tunnel}};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection "upgrade";
        # The tunnel server serves only requests with this secret (proof that
        # nginx forwarded them) and takes the agent from the verified client
        # certificate; each header replaces whatever the client sent.
        include {{.Env.Snippets}}/portlama-tunnel-secret.conf;
        proxy_set_header X-Portlama-Tunnel-Client-Verify $ssl_client_verify;
        proxy_set_header X-Portlama-Tunnel-Client-DN $ssl_client_s_dn;
{{- template "blankClientCert"}}
{{- template "blankSecret"}}
{{- template "blankRemote"}}
{{- template "standardHeaders"}}
        proxy_read_timeout 86400s;
        proxy_send_timeout 86400s;
        proxy_buffering off;
        # Unbuffered, nginx relays at most proxy_buffer_size per read (4k by
        # default); a few long-lived tunnel connections can afford 64k,
        # which lifts tunnel throughput markedly (see test/bench).
        proxy_buffer_size 64k;
        proxy_buffers 4 64k;
    }
}
{{end}}

{{- /* Backends of relay ports (tunnelled apps, agent panels) are not
       trusted: they never steer nginx (X-Accel-*) and their cookies stay on
       their own host (portlama.js). */}}
{{- define "relayPortProxy"}}
        proxy_set_header Cookie $portlama_backend_cookie;
        proxy_ignore_headers X-Accel-Redirect X-Accel-Expires X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset;
        js_header_filter portlama.setCookie;
        # Pass responses and uploads through as they arrive (server-sent
        # events, long polls, large files) instead of spooling them to disk.
        proxy_buffering off;
        proxy_request_buffering off;
        # 16k per read instead of 4k: most of the throughput gain of larger
        # buffers (test/bench) at a memory cost a 512 MB relay can carry.
        proxy_buffer_size 16k;
        proxy_buffers 4 16k;
        proxy_read_timeout 86400s;
        proxy_send_timeout 86400s;
{{- end}}

{{- define "vhost-app"}}{{template "header"}}# Reused connections to the relay port (keepalive; see the
# $connection_upgrade map in conf.d/portlama.conf).
upstream {{.Upstream}} {
    server 127.0.0.1:{{.RelayPort}};
    keepalive 32;
}

server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-hsts.conf;
    client_max_body_size 100m;
{{template "serverBasics" .}}
{{- if .Protected}}
{{template "authzLocations" .}}
{{- end}}

    location / {
{{- template "refuseUpgrade"}}
{{- if .Protected}}
{{- template "authzRequest"}}
{{- template "remoteFromAuth"}}
{{- else}}
{{- template "blankRemote"}}
{{- end}}
        proxy_pass http://{{.Upstream}};
{{- template "appProxyHeaders"}}
    }
}
{{end}}

{{- define "remoteFromAuth"}}
        proxy_set_header Remote-User $portlama_user;
        proxy_set_header Remote-Groups $portlama_groups;
        proxy_set_header Remote-Name $portlama_name;
        proxy_set_header Remote-Email $portlama_email;
{{- end}}

{{- define "appProxyHeaders"}}
        proxy_http_version 1.1;
        proxy_set_header Upgrade $portlama_upgrade;
        proxy_set_header Connection $connection_upgrade;
{{- template "standardHeaders"}}
{{- template "blankClientCert"}}
{{- template "blankSecret"}}
{{- template "relayPortProxy"}}
{{- end}}

{{- /* The shared server's upstream is the route's (an upstream block, so
       keepalive applies; never a name nginx would resolve). */}}
{{- define "appProxy"}}
        proxy_pass http://$portlama_route_upstream;
{{- template "appProxyHeaders"}}
{{- end}}

{{- /* An app served by the shared wildcard server (docs/architecture.md,
       "Scale"): only its upstream, and its route in the host map. */}}
{{- define "vhost-app-upstream"}}{{template "header"}}# Served by portlama-apps (the shared wildcard server); reused connections
# to the relay port (keepalive; see $connection_upgrade in conf.d).
upstream {{.Upstream}} {
    server 127.0.0.1:{{.RelayPort}};
    keepalive 32;
}
{{end}}

{{- define "app-route"}}{{template "header"}}{{.FQDN}} {{if .Protected}}protected{{else}}public{{end}}:{{.Upstream}};
{{end}}

{{- /* Every app under the wildcard certificate: one server block and one
       TLS context for all of them. The host map selects the access class
       and the upstream; a host without a route (unknown, disabled,
       removed) is 404 and never reaches another app. Exact server_names
       (panel, auth, tunnel, sites, apps with their own certificate, agent
       panels) win over the wildcard. */}}
{{- define "vhost-apps"}}{{template "header"}}# Routes: one file per app, "<fqdn> <public|protected>:<upstream>;".
map $host $portlama_route {
    default "";
    include {{.Routes}}/*;
}

map $portlama_route $portlama_route_class {
    default       "";
    "~^public:"    public;
    "~^protected:" protected;
}

map $portlama_route $portlama_route_upstream {
    default "";
    "~^[a-z]+:(?<portlama_route_up>portlama_app_[a-z0-9_]+)$" $portlama_route_up;
}

server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name *.{{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-hsts.conf;
    client_max_body_size 100m;
{{template "serverBasics" .}}
{{template "authzLocations" .}}

    # Dispatch by class through named locations: "if" only returns here
    # (the safe use of if). recursive_error_pages lets the protected
    # location's own error_page 401/403 apply after this redirect.
    location / {
        recursive_error_pages on;
        error_page 418 = @portlama_public;
        error_page 419 = @portlama_protected;
{{- template "locationErrorPages"}}
        if ($portlama_route_class = public) {
            return 418;
        }
        if ($portlama_route_class = protected) {
            return 419;
        }
        return 404;
    }

    location @portlama_public {
{{- template "refuseUpgrade"}}
{{- template "blankRemote"}}
{{- template "appProxy"}}
    }

    location @portlama_protected {
{{- template "refuseUpgrade"}}
{{- template "authzRequest"}}
{{- template "remoteFromAuth"}}
{{- template "appProxy"}}
    }
}
{{end}}

{{- define "vhost-agent-panel"}}{{template "header"}}upstream {{.Upstream}} {
    server 127.0.0.1:{{.RelayPort}};
    keepalive 8;
}

server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-mtls.conf;
    include {{.Env.Snippets}}/portlama-hsts.conf;
{{template "serverBasics" .}}
{{template "noCert" .}}
    error_page 403 = @portlama_not_owner;

    location @portlama_not_owner {
        default_type application/json;
        if ($portlama_json) {
            return 403 '{"error":"Only the admin and the agent {{.Owner}} may open this agent panel"}\n';
        }
        return 403;
    }

    location / {
{{- template "requireCert"}}
        # The admin and the agent that exposes this panel; no other agent.
        if ($ssl_client_s_dn !~ "^CN=(admin|agent:{{.Owner}}),O=Portlama$") {
            return 403;
        }
{{- template "refuseUpgrade"}}
        proxy_pass http://{{.Upstream}};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $portlama_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
        proxy_set_header X-SSL-Client-DN $ssl_client_s_dn;
        proxy_set_header X-SSL-Client-Serial $ssl_client_serial;
{{- template "blankSecret"}}
{{- template "blankRemote"}}
{{- template "standardHeaders"}}
{{- template "relayPortProxy"}}
    }
}
{{end}}

{{- /* Static sites (docs/security.md, "Static sites"): the headers every
       location repeats (add_header is not inherited into a location that
       sets its own). */}}
{{- define "siteHeaders"}}
        include {{.Env.Snippets}}/portlama-hsts.conf;
        add_header X-Content-Type-Options nosniff always;
        add_header X-Frame-Options SAMEORIGIN always;
        add_header Content-Security-Policy "frame-ancestors 'self'; object-src 'none'; base-uri 'self'" always;
        add_header Referrer-Policy strict-origin-when-cross-origin always;
        add_header Cross-Origin-Opener-Policy same-origin always;
{{- end}}

{{- /* Revalidated on every use (ETag / Last-Modified): a deploy shows at
       once. Protected content is never kept by shared caches. */}}
{{- define "siteRevalidate"}}
{{- if .Protected}}
        add_header Cache-Control "private, no-cache" always;
{{- else}}
        add_header Cache-Control "no-cache" always;
{{- end}}
{{- end}}

{{- define "siteLocation"}}
{{- if .Protected}}
{{- template "authzRequest"}}
{{- end}}
{{- template "siteHeaders" .}}
{{- end}}

{{- define "vhost-site"}}{{template "header"}}server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-hsts.conf;
{{template "serverBasics" .}}
{{- if .Protected}}
{{template "authzLocations" .}}
{{- end}}

    root {{.Root}};
    # The site file rules' types only: nothing else can be uploaded.
    types {
{{- range .Site.Types}}
        {{.Type}} {{.Exts}};
{{- end}}
    }
    default_type application/octet-stream;
    charset utf-8;
    gzip on;
    gzip_vary on;
    gzip_min_length 256;
    gzip_types {{.Site.GzipTypes}};

    # Dot files and directories are never served.
    location ~ /\. {
        return 404;
    }

    # A directory: its index.html, never a listing.
    location ~ /$ {
{{- template "siteLocation" .}}
{{- template "siteRevalidate" .}}
{{- if .SPA}}
        try_files ${uri}index.html /index.html;
{{- else}}
        try_files ${uri}index.html =404;
{{- end}}
    }

    # Files whose name carries a content hash never change.
    location ~* "{{.Site.AssetPattern}}" {
{{- template "siteLocation" .}}
{{- if .Protected}}
        add_header Cache-Control "private, max-age=31536000, immutable" always;
{{- else}}
        add_header Cache-Control "public, max-age=31536000, immutable" always;
{{- end}}
        try_files $uri =404;
    }

    # Any other file with an allowed extension; a missing one is 404, also
    # in SPA mode.
    location ~* "{{.Site.FilePattern}}" {
{{- template "siteLocation" .}}
{{- template "siteRevalidate" .}}
        try_files $uri =404;
    }

    location / {
{{- template "siteLocation" .}}
{{- template "siteRevalidate" .}}
{{- if .SPA}}
        try_files $uri $uri/ /index.html;
{{- else}}
        try_files $uri $uri/ =404;
{{- end}}
    }
}
{{end}}
`
