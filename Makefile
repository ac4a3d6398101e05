# Portlama — see README.md.
GO      ?= go
BIN     := bin
DEMODIR ?=
AGENT_TARGETS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: all build ui ui-test generate screenshots demo deps test-deps lab-deps test check unit cross bench bench-scale lab clean

all: build

# The web UI (web/, Node.js 20+ and npm) is built into internal/webui/dist,
# which the portlama binary embeds. A plain `go build` without it still
# works and serves a page that says how to build the UI.
build: ui
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/portlama ./cmd/portlama
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/portlama-agent ./cmd/portlama-agent

web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

ui: web/node_modules/.package-lock.json
	cd web && npm run build

# The UI's unit and component tests (Vitest).
ui-test: web/node_modules/.package-lock.json
	cd web && npx vitest run

# Regenerates the UI's TypeScript types from internal/api (a test fails
# when they are stale).
generate:
	$(GO) generate ./internal/api/...

# Runs the browser tests and saves a screenshot of every page into
# docs/screenshots.
screenshots: ui
	PORTLAMA_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -timeout 10m ./test/browser/...

deps:
	scripts/deps.sh

test-deps:
	scripts/deps.sh --test

lab-deps:
	scripts/deps.sh --lab

# Runs the relay locally on loopback with a sample app behind a tunnel.
demo: deps build
	$(BIN)/portlama demo $(if $(DEMODIR),--dir $(DEMODIR))

# The whole test suite: formatting, vet, the UI's build and Vitest tests,
# unit + integration tests (real nginx, tunnel server, agent, auth server,
# the UI in headless Chromium) with the race detector, and the agent's
# cross-compilation for every supported platform.
test: test-deps check ui ui-test unit cross

check:
	@out=$$(gofmt -l cmd internal test tools 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GO=$(GO) scripts/deadcode.sh

unit:
	$(GO) test -race -count=1 -timeout 15m ./...

cross:
	@for t in $(AGENT_TARGETS); do \
	  echo "build portlama-agent for $$t"; \
	  CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -trimpath -o /dev/null ./cmd/portlama-agent || exit 1; \
	done

# Benchmarks print ratios measured in one run (tunnel vs direct etc.).
bench: test-deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./test/bench/...

# 1,000 tunnels over 10 agents through the API (minutes; not part of bench).
bench-scale: test-deps
	$(GO) test -run '^$$' -bench APIScale -benchtime 1x -timeout 60m ./test/bench/ -args -api-scale

# The lab (needs root): boots a Debian 12 "droplet" with systemd-nspawn on a
# namespaced network with a visitor and a home behind NAT, runs the real
# portlama install there and checks the result. The droplet's root file
# system is cached in /var/cache/portlama-lab (PORTLAMA_LAB_CACHE).
lab: lab-deps
	PORTLAMA_LAB=1 $(GO) test -count=1 -timeout 30m -v -run 'TestRelayLab|TestProvisionLab' ./test/lab/

clean:
	rm -rf $(BIN)
	find internal/webui/dist internal/homeui/dist -mindepth 1 ! -name README.md -delete
