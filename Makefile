# mecorch: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
STATE ?= .mecorch
LISTEN ?= 127.0.0.1:8080
BIN := bin

.PHONY: all build run test deps vet fuzz bench load failover clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# run: mecorch on the embedded store in $(STATE)/store, with an operator
# token generated once into $(STATE)/admin-token (printed at start).
run: build
	@mkdir -p $(STATE)
	@test -s $(STATE)/admin-token || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(STATE)/admin-token
	@echo "operator token: export TOKEN=$$(cat $(STATE)/admin-token)"
	@echo "API: http://$(LISTEN)   health: http://$(LISTEN)/healthz   metrics: http://$(LISTEN)/metrics"
	MECORCH_ADMIN_TOKEN=$$(cat $(STATE)/admin-token) ./$(BIN)/mecorch serve --listen $(LISTEN) --store $(STATE)/store

# deps: what the tests need on a fresh Debian machine (PostgreSQL for the
# store tests). Installs only what is missing.
deps:
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing postgresql (store tests start a throwaway cluster)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

vet:
	$(GO) vet ./...

# test: everything, with the race detector, on both store engines. Each Postgres test package starts
# its own throwaway cluster in a temp dir and removes it afterwards.
test: deps vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -race -count=1 -timeout 12m ./...

# fuzz: a short run of every fuzz target (long runs: FUZZTIME=10m). The
# seed corpora also run in every `make test`.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=NONE -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./appd
	$(GO) test -run=NONE -fuzz='^FuzzReadPackage$$' -fuzztime=$(FUZZTIME) ./appd
	$(GO) test -run=NONE -fuzz='^FuzzRequestBodies$$' -fuzztime=$(FUZZTIME) ./etsi-api/operator
	$(GO) test -run=NONE -fuzz='^FuzzDecodeCreateAppPkg$$' -fuzztime=$(FUZZTIME) ./etsi-api/apppkgm
	$(GO) test -run=NONE -fuzz='^FuzzDecodeInstantiate$$' -fuzztime=$(FUZZTIME) ./etsi-api/applcm
	$(GO) test -run=NONE -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./etsi-api/selector
	$(GO) test -run=NONE -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./mec/agentproto

# bench: the Go benchmarks behind docs/BENCHMARKS.md.
bench:
	$(GO) test -run=NONE -bench=. -benchmem -count=5 ./mec/placement ./mec/store/...

# load: API throughput of instance creation on each store engine.
load: build deps
	$(GO) run ./bench/mecload -engines embedded,postgres

# failover: time to detect a failed host and to have its instance running
# elsewhere, in a lab of real agents in network namespaces (root).
failover:
	$(GO) run ./bench/failover -runs 10 -heartbeat 2s -missed 3
	$(GO) run ./bench/failover -runs 10 -heartbeat 1s -missed 3

clean:
	rm -rf $(BIN)
