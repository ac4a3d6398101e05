package nginx

import (
	"bytes"
	"fmt"
	"text/template"
)

// All templates share the helper definitions below. Every value they print
// was validated by the Renderer (fqdn, subdomain, UUID, int port, clean
// absolute path, ip:port, 64-hex secret) or is a fixed string.
var tmpl = template.Must(template.New("nginx").Parse(tmplHelpers + tmplConfD + tmplSnippets + tmplVhosts))

func render(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, name, data); err != nil {
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
    location = /api/enroll {
        limit_req zone=portlama_enroll burst=5 nodelay;
        limit_req_status 429;
{{- template "panelNoCert" .}}
    }

    # Trailing slash: /api/invitations (admin) must not match.
    location /api/invite/ {
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

{{- /* Forward authentication (contract §19.3). .FQDN is written into
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
        proxy_set_header X-Original-URL "https://{{.FQDN}}{{.Env.HTTPSPortSuffix}}$request_uri";
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
{{- end}}
`

const tmplConfD = `
{{- define "confd"}}{{template "header"}}# http context, contract §19.1.

# Enrollment without a certificate: 5 requests per minute per client address.
limit_req_zone $binary_remote_addr zone=portlama_enroll:1m rate=5r/m;

# Connection header towards backends.
# DELIBERATE DIFFERENCE from contract §19.1, which says "close" without an
# Upgrade header: an empty value makes nginx omit the Connection header, so
# with proxy_http_version 1.1 and "keepalive" in an upstream block the
# connection to the backend is reused instead of closed after every request.
map $http_upgrade $connection_upgrade {
    default upgrade;
    ""      "";
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

{{- define "snippet-panel-proxy"}}{{template "header"}}# For locations that proxy to the panel (contract §19.1, §3.2).
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
proxy_set_header Upgrade $http_upgrade;
proxy_set_header Connection $connection_upgrade;
{{end}}

{{- define "snippet-hsts"}}{{template "header"}}add_header Strict-Transport-Security "max-age=31536000" always;
{{end}}
`

const tmplVhosts = `
{{- define "vhost-http"}}{{template "header"}}server {
    listen {{.HTTPListen}} default_server;
    server_name _;

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

    # No or a bad client certificate: nginx answers 400 with this page.
    error_page 495 496 /cert-help.html;
    location = /cert-help.html {
        internal;
        root {{.Env.WWW}};
        default_type text/html;
        charset utf-8;
    }
{{template "panelLocations" .}}
}
{{end}}

{{- define "vhost-panel-domain"}}{{template "header"}}server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-mtls.conf;
    include {{.Env.Snippets}}/portlama-hsts.conf;
{{template "panelLocations" .}}
}
{{end}}

{{- define "vhost-auth"}}{{template "header"}}server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-hsts.conf;

    location /invite/ {
        root {{.Env.WWW}};
        try_files $uri /invite/index.html;
        # add_header here replaces the server level, so HSTS is repeated.
        include {{.Env.Snippets}}/portlama-hsts.conf;
        add_header Content-Security-Policy "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" always;
        add_header Referrer-Policy no-referrer always;
    }

    location /api/invite/ {
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

{{- define "relayPortProxy"}}
        proxy_set_header Cookie $portlama_backend_cookie;
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
{{- if .Protected}}
{{template "authzLocations" .}}
{{- end}}

    location / {
{{- if .Protected}}
{{- template "authzRequest"}}
        proxy_set_header Remote-User $portlama_user;
        proxy_set_header Remote-Groups $portlama_groups;
        proxy_set_header Remote-Name $portlama_name;
        proxy_set_header Remote-Email $portlama_email;
{{- else}}
{{- template "blankRemote"}}
{{- end}}
        proxy_pass http://{{.Upstream}};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
{{- template "standardHeaders"}}
{{- template "blankClientCert"}}
{{- template "blankSecret"}}
{{- template "relayPortProxy"}}
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

    location / {
{{- template "requireCert"}}
        proxy_pass http://{{.Upstream}};
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
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

{{- define "vhost-site"}}{{template "header"}}server {
    listen {{.Env.HTTPSListen}} ssl;
    server_name {{.FQDN}};
{{- template "tls" .}}
    include {{.Env.Snippets}}/portlama-hsts.conf;
    add_header X-Frame-Options SAMEORIGIN always;
    add_header X-Content-Type-Options nosniff always;

    root {{.Root}};
    index index.html;
{{- if .Protected}}
{{template "authzLocations" .}}
{{- end}}

    location / {
{{- if .Protected}}
{{- template "authzRequest"}}
{{- end}}
{{- if .SPA}}
        try_files $uri $uri/ /index.html;
{{- else}}
        try_files $uri $uri/ =404;
{{- end}}
    }
}
{{end}}
`
