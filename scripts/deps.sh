#!/usr/bin/env bash
# Installs what Portlama needs on a Debian/Ubuntu machine, shared by
# `make demo`, `make test` and .ci/run.
#   scripts/deps.sh          run-time dependencies (nginx)
#   scripts/deps.sh --test   plus everything the test suite starts
set -euo pipefail

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

pkgs=(nginx)
if [ "$want_test" = 1 ]; then
  # systemd: systemd-analyze verifies generated units; node runs the
  # invitation page's script against the real panel; wrk and curl drive
  # the benchmarks.
  pkgs+=(systemd curl ca-certificates wrk)
  command -v node >/dev/null || pkgs+=(nodejs)
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

if ! command -v go >/dev/null && [ ! -x /usr/local/go/bin/go ]; then
  echo "error: Go is not installed; install Go 1.26 from go.dev/dl into /usr/local/go" >&2
  exit 1
fi

go_bin=go
command -v go >/dev/null || go_bin=/usr/local/go/bin/go

# Pebble (Let's Encrypt's test CA) and its DNS test server: `portlama demo`
# gets real ACME certificates from them, and the ACME tests run against
# them. Built from the pinned module version, installed into /usr/local/bin.
pebble_version=v2.10.3
if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then
  echo "installing: pebble and pebble-challtestsrv $pebble_version"
  tmp=$(mktemp -d)
  GOBIN="$tmp" "$go_bin" install "github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version" \
    "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$pebble_version"
  "${sudo[@]}" install -m 0755 "$tmp/pebble" "$tmp/pebble-challtestsrv" /usr/local/bin/
  rm -rf "$tmp"
fi

# The test suite's static checks build deadcode from the pinned tools module
# (make check runs it).
if [ "$want_test" = 1 ]; then
  (cd "$(dirname "$0")/.." && "$go_bin" build -C tools -o ../bin/deadcode golang.org/x/tools/cmd/deadcode)
fi
