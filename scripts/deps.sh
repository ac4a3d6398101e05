#!/usr/bin/env bash
# Installs what Portlama needs on a Debian/Ubuntu machine, shared by
# `make demo`, `make test` and .ci/run.
#   scripts/deps.sh          run-time and build dependencies (nginx; Node.js
#                            and npm build the web UI)
#   scripts/deps.sh --test   plus everything the test suite starts
#
# Versions: apt packages come from the distribution's release; npm packages
# are pinned by web/package-lock.json (make ui runs npm ci) and Go modules by
# go.sum.
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=(nginx)
# The web UI's build needs Node.js 20.19+ (Vite 8) and npm.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
if [ "$want_test" = 1 ]; then
  # systemd: systemd-analyze verifies generated units; node runs the
  # invitation page's script against the real panel; wrk and curl drive
  # the benchmarks; chromium (driven by chromedp), libnss3-tools (the
  # client certificate in Chromium's NSS database) and a font run the
  # browser tests of the web UI.
  pkgs+=(systemd curl ca-certificates wrk chromium libnss3-tools fonts-dejavu-core)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "error: missing packages ${missing[*]} and no apt-get here; install them with your package manager" >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo=(sudo); else
      echo "error: missing packages ${missing[*]}; run as root or install sudo" >&2
      exit 1
    fi
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

# The test suite's static checks build deadcode from the pinned tools module
# (make check runs it).
if [ "$want_test" = 1 ]; then
  go_bin=go
  command -v go >/dev/null || go_bin=/usr/local/go/bin/go
  (cd "$(dirname "$0")/.." && "$go_bin" build -C tools -o ../bin/deadcode golang.org/x/tools/cmd/deadcode)
fi
