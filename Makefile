# nxtcron: run `make help` for the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/nxtcron
# End-to-end tests build and run the real binary; on two cores they need room.
TEST_TIMEOUT ?= 20m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/nxtcron
	$(GO) build -o $(BIN) ./cmd/nxtcron

.PHONY: demo
demo: build ## Run the daemon on its embedded defaults (SQLite, built-in sandbox) and show it working
	@scripts/demo.sh $(BIN)

.PHONY: test
test: ## Run the whole test suite (race detector on; needs Postgres, see README)
	$(GO) vet ./...
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

.PHONY: test-race
test-race: test ## Same as test: the suite always runs with the race detector

.PHONY: test-short
test-short: ## Unit tests only, without the race detector (fast feedback)
	$(GO) test -short ./...

.PHONY: lint
lint: ## gofmt, go vet, and golangci-lint when installed
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v golangci-lint >/dev/null; then golangci-lint run; else echo "golangci-lint not installed; skipped"; fi

# make bench: the real binary against the sandbox and Postgres (TEST_DATABASE_URL,
# or BENCH_DATABASE_URL); BENCH_FLAGS passes flags to ./bench (go run ./bench -h).
BENCH_FLAGS ?=

.PHONY: bench
bench: build ## Import benchmarks: nxtcron vs its limits, the budget at 600/min (a few minutes; docs/performance.md)
	$(GO) run ./bench -nxtcron $(BIN) $(BENCH_FLAGS)

.PHONY: bench-go
bench-go: ## The Go micro-benchmarks of every package (go test -bench)
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: clean
clean: ## Remove build output, demo state and demo output
	rm -rf bin var out
