# blobcopy: `make run` starts the local stack; `make test` runs every test.
# `make run` needs Go, Node/npm, make and bash (scripts/check-prereqs.sh says what is
# missing); it installs Azurite with npm into .tools and downloads Go modules. `make test`
# also needs Debian's python3-azure (the tests' independent client), installed here.

AZURITE_VERSION := 3.37.0
GO        ?= go
TOOLS     := .tools
AZURITE   := $(TOOLS)/node_modules/.bin/azurite
# Fuzz budgets are execution counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can fail a clean run with "context deadline exceeded" when its workers are
# starved at the deadline (golang/go#75804, fixed in Go 1.27). About 10 s each here.
FUZZ_EVENTGRID ?= 200000x
FUZZ_API       ?= 50000x
FUZZ_PROBE     ?= 100000x

# Everything a Go binary is built from: sources and the files they embed (go:embed,
# e.g. internal/api/openapi.json), so editing either rebuilds.
GO_INPUTS := $(shell find cmd internal -type f -not -name '*_test.go' -not -path '*/testdata/*' \
               \( -name '*.go' -o -name '*.json' \) 2>/dev/null) go.mod go.sum

# make run's ports (README "Ports"): make run HANDLER_PORT=17071 BLOB_PORT=20000 ...
BLOB_PORT     ?= 10000
QUEUE_PORT    ?= 10001
TABLE_PORT    ?= 10002
HANDLER_PORT  ?= 7071
SLOWDEMO_PORT ?= 10005
CALLBACK_PORT ?= 10006
# make run DEBUG=1 writes Azurite's debug log to .azurite/debug.log (it holds SAS tokens).
DEBUG ?=

# The platforms developers run `make run` on; `make test` checks they compile.
CROSS_PLATFORMS := darwin/arm64 darwin/amd64 linux/arm64

.PHONY: all build host run test unit fuzz cross bench stress deps azurite python-deps go-deps \
        prereqs test-prereqs ensure-storage deploy clean vet

all: build bin/blobcopy

## build: the Linux amd64 binary Azure Functions runs (custom handler "handler")
build: handler
handler: $(GO_INPUTS)
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o handler ./cmd/handler

## host: the handler, the CLI and the local stack supervisor for this machine, in bin/
host: bin/handler bin/blobcopy bin/devstack
bin/handler: $(GO_INPUTS)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/handler
bin/blobcopy: $(GO_INPUTS)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./cmd/blobcopy
bin/devstack: $(GO_INPUTS)
	CGO_ENABLED=0 $(GO) build -trimpath -o $@ ./internal/testenv/cmd/devstack

prereqs:
	@./scripts/check-prereqs.sh run

test-prereqs:
	@./scripts/check-prereqs.sh test

deps: azurite python-deps go-deps

azurite: $(AZURITE)
$(AZURITE):
	@command -v npm >/dev/null || { echo "npm is needed to install Azurite (it comes with Node.js >= 22: https://nodejs.org/)"; exit 1; }
	mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)

# The Python client (Debian's azure-storage-blob) is the independent client of the tests
# and the peer baseline of the benchmarks; `make run` does not need it.
python-deps:
	@/usr/bin/python3 -c 'import azure.storage.blob' 2>/dev/null || { \
		echo "installing python3-azure (Debian)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q python3-azure >/dev/null || \
		{ $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q python3-azure >/dev/null; }; }

go-deps:
	$(GO) mod download

## run: Azurite (devstoreaccount1, acct2), the slowdemo copy simulator, demo blobs and the
## handler on 127.0.0.1:$(HANDLER_PORT); Ctrl-C or SIGTERM stops them all.
# devstack watches make ($$PPID of the recipe's shell): make, signalled alone, does not
# pass SIGINT on to its children.
run: prereqs azurite go-deps host
	@AZURITE=$(AZURITE) BLOB_PORT=$(BLOB_PORT) QUEUE_PORT=$(QUEUE_PORT) TABLE_PORT=$(TABLE_PORT) \
	 HANDLER_PORT=$(HANDLER_PORT) SLOWDEMO_PORT=$(SLOWDEMO_PORT) CALLBACK_PORT=$(CALLBACK_PORT) DEBUG=$(DEBUG) \
	 ./scripts/run-local.sh -watch-pid $$PPID

## test: vet, cross-compile check, unit and integration tests (each starts its own
## Azurite), then brief fuzzing
test: test-prereqs deps vet cross unit fuzz

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt needed:"; gofmt -l cmd internal; exit 1; }

# The binaries developers run locally must compile for every platform they use.
cross:
	@for p in $(CROSS_PLATFORMS); do \
		echo "cross-compile $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/handler || exit 1; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/blobcopy || exit 1; \
		GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 $(GO) build -o /dev/null ./internal/testenv/cmd/devstack || exit 1; \
	done

unit:
	$(GO) test -count=1 -timeout 10m ./...
	$(GO) test -count=1 -race -timeout 5m ./internal/copyjob/... ./internal/funchost/... ./internal/api/...

## stress: the randomized concurrency tests with many random seeds (not in CI: minutes)
STRESS_RUNS ?= 200
STRESS_STORAGE_RUNS ?= 20
STRESS_BATCH_SEEDS ?= 2000
stress: deps
	$(GO) test -count=1 -race -timeout 60m -run TestInvariantsUnderConcurrency ./internal/copyjob -stress.runs=$(STRESS_RUNS)
	$(GO) test -count=1 -timeout 60m -run TestInvariantsOnStorage ./internal/app -stress.runs=$(STRESS_STORAGE_RUNS)
	$(GO) test -count=1 -timeout 60m -run TestBatchInvariants ./internal/batch -stress.seeds=$(STRESS_BATCH_SEEDS)

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParseDelivery -fuzztime=$(FUZZ_EVENTGRID) ./internal/eventgrid
	$(GO) test -run='^$$' -fuzz=FuzzCopyRequest -fuzztime=$(FUZZ_API) ./internal/api
	$(GO) test -run='^$$' -fuzz=FuzzSpecVersionProbe -fuzztime=$(FUZZ_PROBE) ./internal/eventgrid

## bench: storage requests, latency, tick throughput, cold start, RSS, Python baseline
bench: deps build
	$(GO) run ./bench/cmd/blobcopy-bench -handler ./handler -azurite $(AZURITE) -out bench/results

ensure-storage: host
	./bin/handler -ensure-storage

## deploy: publish with Core Tools (func) after a Linux build; see docs/deploy.md
deploy: build
	@command -v func >/dev/null || { echo "Azure Functions Core Tools (func) is not installed: docs/deploy.md, or use 'azd up'"; exit 1; }
	@command -v az >/dev/null || { echo "the Azure CLI (az) is not installed; func publishes with its login: docs/deploy.md"; exit 1; }
	@test -n "$(FUNCTION_APP)" || { echo "set FUNCTION_APP to the function app's name: make deploy FUNCTION_APP=<name> (docs/deploy.md)"; exit 1; }
	func azure functionapp publish "$(FUNCTION_APP)"

clean:
	rm -rf handler bin .azurite build bench/results/*.tmp
