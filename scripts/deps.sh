#!/usr/bin/env bash
# Installs what Portlama needs on a Debian/Ubuntu machine, shared by
# `make demo`, `make test` and .ci/run.
#   scripts/deps.sh          run-time and build dependencies (nginx and its
#                            njs module; Node.js and npm build the web UI)
#   scripts/deps.sh --test   plus everything the test suite starts
#   scripts/deps.sh --lab    plus what the lab (make lab) needs to build and
#                            boot a systemd droplet and its network
#
# Versions: apt packages come from the distribution's release; npm packages
# are pinned by web/package-lock.json (make ui runs npm ci) and Go modules by
# go.sum.
set -euo pipefail

want_test=0
want_lab=0
case "${1:-}" in
  --test) want_test=1 ;;
  --lab) want_test=1; want_lab=1 ;;
esac

# libnginx-mod-http-js: njs runs the relay's cookie filter (portlama.js).
pkgs=(nginx libnginx-mod-http-js)
# The web UI's build needs Node.js 20.19+ (Vite 8) and npm.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
if [ "$want_test" = 1 ]; then
  # systemd: systemd-analyze verifies generated units; node runs the
  # invitation page's script against the real panel; wrk and curl drive
  # the benchmarks; util-linux: flock(1) holds the nginx lock in a test;
  # chromium (driven by chromedp), libnss3-tools (the client certificate in
  # Chromium's NSS database) and a font run the browser tests of the web UI.
  pkgs+=(systemd curl ca-certificates wrk util-linux chromium libnss3-tools fonts-dejavu-core)
  # dbus-daemon and gnome-keyring: the keychain tests (internal/keychain)
  # run a real Secret Service on a private session bus.
  pkgs+=(dbus-daemon gnome-keyring)
fi
if [ "$want_lab" = 1 ]; then
  # debootstrap builds the droplet's Debian 12 root file system,
  # systemd-container boots it (systemd-nspawn), iproute2 and nftables make
  # the lab's network and the home's NAT router.
  pkgs+=(debootstrap systemd-container iproute2 nftables util-linux)
fi

sudo=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo=(sudo); fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "error: missing packages ${missing[*]} and no apt-get here; install them with your package manager" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ] && [ "${#sudo[@]}" = 0 ]; then
    echo "error: missing packages ${missing[*]}; run as root or install sudo" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged nginx on :80; Portlama runs its own instances.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    "${sudo[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
node_minor=$(node -p 'process.versions.node.split(".")[1]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ] || { [ "$node_major" = 20 ] && [ "$node_minor" -lt 19 ]; }; then
  echo "error: the web UI needs Node.js 20.19 or newer (found $(node --version 2>/dev/null || echo none)); install it from nodejs.org or your distribution's backports" >&2
  exit 1
fi

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "error: Go is not installed; install Go 1.26 from go.dev/dl into /usr/local/go" >&2
  exit 1
fi

go=$(command -v go || echo /usr/local/go/bin/go)
root=$(cd "$(dirname "$0")/.." && pwd)

# Pebble (Let's Encrypt's test CA) and its DNS test server: `portlama demo`
# gets real ACME certificates from them, and the ACME tests run against
# them. Built from the pinned module version, installed into /usr/local/bin.
pebble_version=v2.10.3
if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then
  echo "installing: pebble and pebble-challtestsrv $pebble_version"
  tmp=$(mktemp -d)
  GOBIN="$tmp" "$go" install "github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version" \
    "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$pebble_version"
  "${sudo[@]}" install -m 0755 "$tmp/pebble" "$tmp/pebble-challtestsrv" /usr/local/bin/
  rm -rf "$tmp"
fi

if [ "$want_test" = 1 ]; then
  # The test suite's static checks build deadcode from the pinned tools
  # module (make check runs it).
  (cd "$root" && "$go" build -C tools -o ../bin/deadcode golang.org/x/tools/cmd/deadcode)
  # Stock chisel clients for the compatibility tests (internal/tunnel): the
  # pinned release and an older one, built from tools/chisel (go install
  # pkg@version is refused by this proxy; a module that requires the
  # version builds it).
  for v in v1.12.0:go.mod v1.9.1:v1.9.1.mod; do
    bin="$root/bin/chisel-${v%%:*}"
    if [ ! -x "$bin" ]; then
      echo "building $(basename "$bin")"
      (cd "$root/tools/chisel" && CGO_ENABLED=0 "$go" build -modfile="${v#*:}" -trimpath -o "$bin" github.com/jpillora/chisel)
    fi
  done
fi
