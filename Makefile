# mecorch: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
STATE ?= .mecorch
LISTEN ?= 127.0.0.1:8080
BIN := bin

.PHONY: generate bench-latency bench-classify all build run serve test deps vet fuzz bench load failover clean $(LABPKG)

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# run: the whole system on this machine. lab/mec-3site.clab.yml is realized in network namespaces
# (mecorch on its embedded store in $(STATE)/lab-store, three edge hosts with mec-agent, gNB, UPF, DN and
# UE simulators, the links' delays); mecorch's API is published at $(LISTEN); the lab's sites, cells and
# hosts are registered and the sample app (its echoapp build) is onboarded and instantiated. Ctrl-C tears
# it all down. The operator token is generated once into $(STATE)/admin-token. Needs root.
LABPKG := $(BIN)/edge-echo-lab.zip
run: build $(LABPKG)
	@if [ "$$(id -u)" != 0 ]; then \
		echo "make run brings a lab up in network namespaces: it needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN). Try: sudo make run"; exit 1; fi
	@mkdir -p $(STATE)
	@test -s $(STATE)/admin-token || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(STATE)/admin-token
	@echo "operator token: export TOKEN=$$(cat $(STATE)/admin-token)"
	MECORCH_ADMIN_TOKEN=$$(cat $(STATE)/admin-token) MECORCH_LAB_TOKEN_FILE=$(abspath $(STATE)/admin-token) \
	MECORCH_LAB_STORE=$(abspath $(STATE)/lab-store) \
		./$(BIN)/mecorch lab up lab/mec-3site.clab.yml --state-dir $(abspath $(STATE)/lab) \
		--publish $(LISTEN)=orchestrator:8080 --bootstrap $(LABPKG)

# serve: mecorch alone on the embedded store in $(STATE)/store, without a lab (no root needed); the
# README's walkthrough uses it.
serve: build
	@mkdir -p $(STATE)
	@test -s $(STATE)/admin-token || head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(STATE)/admin-token
	@echo "operator token: export TOKEN=$$(cat $(STATE)/admin-token)"
	@echo "API: http://$(LISTEN)   health: http://$(LISTEN)/healthz   metrics: http://$(LISTEN)/metrics"
	MECORCH_ADMIN_TOKEN=$$(cat $(STATE)/admin-token) ./$(BIN)/mecorch serve --listen $(LISTEN) --store $(STATE)/store

# The sample app with the self-contained echoapp binary as its image (the
# shell script of examples/edge-echo.zip needs socat on the host).
$(LABPKG): build
	rm -rf $(BIN)/labpkg && cp -r examples/sample-app $(BIN)/labpkg && rm $(BIN)/labpkg/Artifacts/edge-echo.sh
	CGO_ENABLED=0 $(GO) build -o $(BIN)/labpkg/Artifacts/edge-echo ./examples/echoapp
	sed -i 's|Artifacts/edge-echo.sh|Artifacts/edge-echo|' $(BIN)/labpkg/Definitions/edge-echo.yaml $(BIN)/labpkg/edge-echo.mf
	$(GO) run ./examples/mkpkg $(BIN)/labpkg $@ >/dev/null

# deps: what the tests need on a fresh Debian machine (PostgreSQL for the
# store tests; iproute2, whose `ip` the lab topologies' exec commands run).
# Installs only what is missing.
deps:
	@if ! command -v ip >/dev/null; then \
		echo "installing iproute2 (the lab topologies' exec commands use ip)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq iproute2 >/dev/null; \
	fi
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing postgresql (store tests start a throwaway cluster)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; \
	fi

vet:
	$(GO) vet ./...

# generate: rebuild the eBPF objects (bpf2go) from their C sources under traffic/. It needs clang-14,
# llvm-14 and libbpf-dev (installed with apt when missing). The outputs are committed, so building and
# testing need no clang; a test fails when they are older than their sources.
generate:
	@if ! command -v clang-14 >/dev/null || ! command -v llvm-strip-14 >/dev/null || ! test -d /usr/include/bpf; then \
		echo "installing clang-14, llvm-14 and libbpf-dev (for bpf2go)"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq clang-14 llvm-14 libbpf-dev >/dev/null; \
	fi
	$(GO) generate ./traffic/...

# test: everything, with the race detector, on both store engines. Each Postgres test package starts
# its own throwaway cluster in a temp dir and removes it afterwards. The lab's end-to-end tests (./lab)
# and the STAMP accuracy test (./lab/stamplab) measure link delays made by a user-space relay: they run
# last, one package at a time, and without the race detector, which would slow the relay they measure
# (lab/linkemu's own tests run with it).
test: deps vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -race -count=1 -timeout 12m $$($(GO) list ./... | grep -v -e '^github.com/mecorch/mecorch/lab$$' -e '^github.com/mecorch/mecorch/lab/stamplab$$')
	$(GO) test -count=1 -p 1 -timeout 9m ./lab ./lab/stamplab

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
	$(GO) test -run=NONE -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./lab/topology
	$(GO) test -run=NONE -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./lab/ransim/gtpu
	$(GO) test -run=NONE -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./latency/stamp
	$(GO) test -run=NONE -fuzz='^FuzzRulesJSON$$' -fuzztime=$(FUZZTIME) ./traffic/dns
	$(GO) test -run=NONE -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./lab/ransim/ipv4udp

# bench: the Go benchmarks behind docs/BENCHMARKS.md. bench-latency: the UE-session assignment
# suite (100,000 sessions over 10,000 hosts, quality against baselines and oracles; about a minute).
bench:
	$(GO) test -run=NONE -bench=. -benchmem -count=5 ./mec/placement ./mec/store/... ./latency ./latency/rttmap ./latency/vivaldi ./latency/probeplan

bench-latency:
	$(GO) test -run=NONE -bench=. -timeout 20m ./latency/assign

# bench-classify: our eBPF classifier against nftables (a linear chain, and a set) on the same frames
# through a real veth, in one run (root; installs nftables when nft is missing; about 4 minutes).
bench-classify:
	@command -v nft >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null)
	$(GO) test ./bench/classifynft/ -run '^$$' -bench BenchmarkClassifyNFT -benchtime 1x -timeout 20m \
		-args -classifynft.interval=1.5s -classifynft.rounds=3

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

# bench-steer: throughput of the GTP-U decap/redirect path (traffic/classify, FORWARD_DECAPSULATED) between
# three network namespaces, against a bare tcx redirect in the same run, inline on one CPU and with the
# receive side on a second CPU (root; 3 to 7 minutes, longer while the machine is busy).
.PHONY: bench-steer
bench-steer:
	$(GO) test ./bench/steerpath/ -run '^$$' -bench BenchmarkSteer -benchtime 1x -timeout 60m \
		-args -steer.interval=1s -steer.rounds=5 -steer.modes=inline,pipeline
