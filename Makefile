# circlegate: the two quickstart commands are `make run` and `make test`.
GO        ?= go
BIN       := bin/circlegate
GOFLAGS_T ?= -race -count=1 -timeout 15m
# Programs the tests start, as program:debian-package (installed by `make deps`).
TEST_DEPS := wat2wasm:wabt redis-server:redis-server

.PHONY: all build apps run test check fuzz bench deps clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/circlegate

## apps: build the example applications into bin/apps/*.wasm (Go for wasip1, WAT with wabt).
GO_APPS  := $(filter-out watcounter,$(notdir $(wildcard examples/apps/*)))
apps: deps
	@mkdir -p bin/apps
	@for app in $(GO_APPS); do \
	  echo "app $$app"; GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -o bin/apps/$$app.wasm ./examples/apps/$$app || exit 1; \
	done
	wat2wasm examples/apps/watcounter/watcounter.wat -o bin/apps/watcounter.wasm

## run: start the gateway on the embedded default with a demo tenant (key pair printed).
run: build
	./$(BIN) serve --demo

## deps: install what the tests need (apt-get when root), or say what to install.
deps:
	@CIRCLEGATE_DEPS="$(TEST_DEPS)" ./scripts/deps.sh

## test: every test, with the race detector.
test: deps
	$(GO) test $(GOFLAGS_T) ./...

## check: formatting, vet, go.mod tidiness, then the tests.
check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	$(GO) mod tidy -diff
	$(MAKE) test

## fuzz: run every fuzzer for FUZZTIME each (default 20s); see scripts/fuzz.sh.
FUZZTIME ?= 20s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## bench: the load scenarios (prints a table), the floors of the fan-out, the paced calls, mutate and the fleet, and the Go micro-benchmarks.
bench: build apps
	$(GO) run ./bench/cmd/cgbench -gateway $(BIN) -app-dir bin/apps
	$(GO) run ./bench/cmd/loopfloor
	$(GO) build -o bin/rpcfloor ./bench/cmd/rpcfloor
	@echo "The floor of whoami and query: bench/cmd/rpcfloor in the gateway's place (docs/benchmarks.md)"
	$(GO) run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios whoami,query
	@echo "The floor of mutate: bench/cmd/rpcfloor with Pebble, without then with the counter's guest (docs/benchmarks.md)"
	RPCFLOOR_MUTATE_ROUNDS=1 $(GO) run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios mutate
	RPCFLOOR_MUTATE_ROUNDS=1 RPCFLOOR_MUTATE_GUEST=1 $(GO) run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios mutate
	@echo "The floor of fleet-mutate: bench/cmd/rpcfloor as the fleet's gateway and workers (docs/benchmarks.md)"
	$(GO) run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios fleet-mutate
	RPCFLOOR_FLEET_GUEST=1 RPCFLOOR_FLEET_KEEP=key:1:300,field:1:250,overwrite:1:100,overwrite:3:8 $(GO) run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios fleet-mutate
	@echo "The same floor keeping everything issue 4 asks for: the history event, and a job record besides the result's"
	RPCFLOOR_FLEET_GUEST=1 RPCFLOOR_FLEET_KEEP=key:2:300,field:1:250,entry:1:150,overwrite:1:100,overwrite:3:8 $(GO) run ./bench/cmd/cgbench -gateway bin/rpcfloor -scenarios fleet-mutate
	$(GO) test -run '^$$' -bench . -benchmem ./rpc/ ./tenant/
	$(GO) test -run '^$$' -bench 'Noop|FleetMutate|JobJSON|RecordJSON' -benchmem ./execution/
	$(GO) test -run '^$$' -bench CommitCounter -benchtime 50000x ./store/
	$(GO) test -run '^$$' -bench RedisCommitMany -benchtime 2000x ./store/
	$(GO) test -run '^$$' -bench Events -benchmem ./store/
	$(GO) test -run '^$$' -bench Fanout -benchtime 500000x ./ws/
	$(GO) test -run '^$$' -bench Verify -benchmem ./webhooks/
	$(GO) test -run '^$$' -bench DeliverStripe -benchtime 10000x ./webhooks/

clean:
	rm -rf bin data
