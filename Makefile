# tradeops — every target works on a fresh machine: the database comes from
# scripts/devdb.sh (DATABASE_URL, else 127.0.0.1:5432, else a private cluster
# under .data/pg), tools are installed into ./bin by the Makefile itself.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
STATICCHECK_VERSION := v0.8.2
STATICCHECK := bin/staticcheck-$(STATICCHECK_VERSION)
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT := bin/actionlint-$(ACTIONLINT_VERSION)
TEST_TIMEOUT ?= 12m
FUZZTIME ?= 5s
# package:target pairs; `go test -fuzz` takes one package and one target at a time
FUZZ_TARGETS := ./cmd/tradeops:FuzzLoginForm ./cmd/tradeops:FuzzAuditQuery

.PHONY: build run test fuzz bench lint shellcheck screenshot vendor-console stop-db clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/tradeops ./cmd/tradeops

## run: the server on a local PostgreSQL with development secrets and demo users
run: build
	eval "$$(scripts/devsecrets.sh)"; DATABASE_URL="$$(scripts/devdb.sh tradeops_dev)" ./bin/tradeops serve --dev

## test: every package against real PostgreSQL (one fresh database per test),
## then a few seconds of each fuzz target
test:
	DATABASE_URL="$$(scripts/devdb.sh postgres)" $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(MAKE) fuzz

## screenshot: remakes docs/console.png (the README's picture of the console)
## with the browser tests' own setup: serve on a fresh database, headless
## Chromium from scripts/chromium.sh, the admin's risk comparison view
screenshot:
	DATABASE_URL="$$(scripts/devdb.sh postgres)" CONSOLE_SCREENSHOT="$(CURDIR)/docs/console.png" \
		$(GO) test -count=1 -run '^TestConsole$$/^AdminChartTableAuditProjections$$' -v ./cmd/tradeops

## vendor-console: downloads the console's Chart.js and QR code library
## from the npm registry and rewrites their manifest (versions, licenses,
## SHA-256); the console's tests check the embedded files against it
vendor-console:
	scripts/vendor_console.sh

## fuzz: each fuzz target for FUZZTIME, one worker (new inputs go to the Go
## build cache; a failing input is written to the package's testdata/fuzz/)
fuzz:
	export DATABASE_URL="$$(scripts/devdb.sh postgres)"; \
	for pt in $(FUZZ_TARGETS); do \
		$(GO) test -run '^$$' -fuzz "^$${pt#*:}\$$" -fuzztime $(FUZZTIME) -parallel 1 "$${pt%%:*}"; \
	done

## bench: throughput tables (append vs plain INSERT, replay vs plain SELECT,
## read side vs plain SELECT, rebuild vs a plain read+COPY pipeline into an
## audit_log twin, client and server CPU, live lag, audit query latency),
## identity benchmarks, execution endpoints against the built server (latency
## at 100/s, prepare at saturation, peak RSS), the export to NATS JetStream vs
## a plain scan and its live lag (a private nats-server)
bench: build
	export DATABASE_URL="$$(scripts/devdb.sh postgres)"; \
	$(GO) run ./internal/bench; \
	$(GO) run ./internal/benchprojections; \
	$(GO) run ./internal/benchexport; \
	$(GO) test -run '^$$' -bench 'AuthMiddleware|LoginConcurrent20' -benchtime 200x ./cmd/tradeops; \
	$(GO) run ./internal/benchexec -bin bin/tradeops

$(STATICCHECK):
	GOBIN="$(CURDIR)/bin" $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv bin/staticcheck $@

$(ACTIONLINT):
	GOBIN="$(CURDIR)/bin" $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv bin/actionlint $@

## shellcheck: from PATH; when missing, installed with apt-get if we are root
## (as scripts/devdb.sh does for PostgreSQL), else the command to run is printed
shellcheck:
	@command -v shellcheck >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "shellcheck is not installed; installing it with apt-get" >&2; \
			apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >&2; \
		else \
			echo "shellcheck is not installed. Run: sudo apt-get install -y shellcheck" >&2; exit 1; \
		fi; }

lint: $(STATICCHECK) $(ACTIONLINT) shellcheck
	scripts/check_tracked_sizes.sh
	shellcheck scripts/*.sh .ci/run
	$(ACTIONLINT)
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run ./internal/layercheck
	$(STATICCHECK) ./...

stop-db:
	scripts/devdb.sh --stop

clean:
	rm -rf bin
