# blobcopy: `make run` starts Azurite and the handler; `make test` runs every test.
# Everything a fresh machine lacks is installed here (Azurite via npm into .tools,
# Debian's python3-azure for the independent-client tests, Go modules).

AZURITE_VERSION := 3.37.0
GO        ?= go
TOOLS     := .tools
AZURITE   := $(TOOLS)/node_modules/.bin/azurite
FUZZTIME  ?= 10s
GO_SOURCES := $(shell find cmd internal -name '*.go' -not -name '*_test.go' 2>/dev/null)

.PHONY: stress all build run test unit fuzz bench deps azurite python-deps go-deps ensure-storage deploy clean vet

all: build

## build: the Linux amd64 binary Azure Functions runs (custom handler "handler")
build: handler
handler: $(GO_SOURCES) go.mod go.sum
	GOOS=linux GOARCH=amd64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o handler ./cmd/handler

deps: azurite python-deps go-deps

azurite: $(AZURITE)
$(AZURITE):
	mkdir -p $(TOOLS)
	npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error azurite@$(AZURITE_VERSION)

# The Python client (Debian's azure-storage-blob) is the independent client of the tests
# and the peer baseline of the benchmarks.
python-deps:
	@/usr/bin/python3 -c 'import azure.storage.blob' 2>/dev/null || { \
		echo "installing python3-azure (Debian)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q python3-azure >/dev/null || \
		{ $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q python3-azure >/dev/null; }; }

go-deps:
	$(GO) mod download

## run: Azurite on loopback (data in .azurite/) + the handler standalone on 127.0.0.1:7071
run: deps build
	AZURITE=$(AZURITE) ./scripts/run-local.sh

## test: vet, unit and integration tests (each starts its own Azurite), then brief fuzzing
test: deps vet unit fuzz

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal)" || { echo "gofmt needed:"; gofmt -l cmd internal; exit 1; }

unit:
	$(GO) test -count=1 -timeout 10m ./...
	$(GO) test -count=1 -race -timeout 5m ./internal/copyjob/... ./internal/funchost/... ./internal/api/...

## stress: the randomized concurrency tests with many random seeds (not in CI: minutes)
STRESS_RUNS ?= 200
STRESS_STORAGE_RUNS ?= 20
stress: deps
	$(GO) test -count=1 -race -timeout 60m -run TestInvariantsUnderConcurrency ./internal/copyjob -stress.runs=$(STRESS_RUNS)
	$(GO) test -count=1 -timeout 60m -run TestInvariantsOnStorage ./internal/app -stress.runs=$(STRESS_STORAGE_RUNS)

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParseDelivery -fuzztime=$(FUZZTIME) ./internal/eventgrid
	$(GO) test -run='^$$' -fuzz=FuzzCopyRequest -fuzztime=$(FUZZTIME) ./internal/api

## bench: storage requests, latency, tick throughput, cold start, RSS, Python baseline
bench: deps build
	$(GO) run ./bench/cmd/blobcopy-bench -handler ./handler -azurite $(AZURITE) -out bench/results

ensure-storage: build
	./handler -ensure-storage

## deploy: publish with Core Tools (func) after a Linux build; see README "Deploy"
deploy: build
	@command -v func >/dev/null || { echo "Azure Functions Core Tools (func) is not installed; use 'azd up' (README)"; exit 1; }
	func azure functionapp publish $${FUNCTION_APP:?set FUNCTION_APP to the function app name}

clean:
	rm -rf handler .azurite bench/results/*.tmp
