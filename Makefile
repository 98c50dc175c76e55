# herald — the two commands a newcomer needs are `make run` and `make test`.
GO      ?= go
PKGS    := ./...
BIN     := bin/herald
# The same flags the container image uses: static, stripped, reproducible.
LDFLAGS := -s -w
export CGO_ENABLED ?= 0

.PHONY: run test deps vet fmt-check build fuzz clean deploy-test image-binary bench bench-compare chaos

## run: the whole fleet in one process on embedded parts (herald dev); outbox at http://127.0.0.1:8025
run:
	$(GO) run ./cmd/herald dev

## test: install what the tests need, then vet, format check, template lint and golden files, the race-enabled suite (with the browser test required), the deploy/ module and the chaos test
test: deps vet fmt-check
	$(GO) run ./cmd/herald templates lint
	$(GO) run ./cmd/herald templates test templates
	HERALD_REQUIRE_BROWSER=1 HERALD_REQUIRE_KCAT=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) deploy-test
	$(MAKE) chaos

## deploy-test: the Kubernetes manifests (every overlay built with Kustomize, decoded strictly,
## checked against the config registry and topics) and the image binary (image-binary)
deploy-test:
	cd deploy && $(GO) vet ./... && $(GO) test -count=1 -timeout 10m ./...

## image-binary: build herald with the Dockerfile's exact go build line; check it is static, stripped, runs
image-binary:
	cd deploy && $(GO) test -count=1 -run '^TestImageBinary$$' -v ./...

## deps: redis-server for the tests that start a real Redis, chromium for the browser tests, kcat for the README's produce command (Debian packages)
deps:
	@command -v redis-server >/dev/null 2>&1 || { \
	  echo "installing redis-server (Debian package) for the tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	}
	@redis-server --version
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (Debian package) for the preview page's browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	}
	@chromium --version
	@command -v kcat >/dev/null 2>&1 || { \
	  echo "installing kcat (Debian package) for the dev outbox test, which produces as the README says"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq kcat >/dev/null; \
	}
	@kcat -V | head -1

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## build: the static binary the Dockerfile builds
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/herald

## fuzz: a short run of every fuzz target (decoders of outside input)
FUZZTIME ?= 30s
fuzz:
	@# Every Fuzz target in the module, found rather than listed, so a new
	@# decoder (a channel's, say) is fuzzed without editing this file.
	@set -e; grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./deploy/' | xargs -n1 dirname | sort -u | while read -r dir; do \
		for target in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$dir $$target"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) $$dir/; \
		done; \
	done

clean:
	rm -rf bin

## chaos: three herald processes killed (SIGKILL, SIGTERM), restarted and joined by a fourth while events stream; nothing lost, duplicates reported with and without idempotency keys; then a crash loop (nine SIGKILLs in a minute) and the time to recover after the last kill
chaos: deps
	$(GO) vet -tags chaos ./chaos/
	$(GO) test -tags chaos -count=1 -timeout 12m -run '^TestChaos(Burst)?$$' -v ./chaos/

## bench: every herald bench scenario against its baseline on loopback, then anchor, pipeline and latency with a 0.5 ms round trip on every Kafka and Redis connection; writes the table into BENCHMARKS.md
bench: deps build
	$(BIN) bench --rtt 0,0.5ms --update BENCHMARKS.md

## bench-compare: BASE=<git revision> [SCENARIO=pipeline] [ROUNDS=2] [ARGS='--rtt 0.5ms']: herald bench on BASE's build (A, left in bin/herald-base) and the working tree's (B, bin/herald), alternated A B B A per round; each figure's range and median per build and B's median over A's (BENCHMARKS.md, "Comparing two builds")
SCENARIO ?= pipeline
ROUNDS   ?= 2
ARGS     ?=
bench-compare:
	@test -n "$(BASE)" || { echo "make bench-compare: set BASE to the git revision to compare with, e.g. BASE=HEAD~1" >&2; exit 2; }
	@git rev-parse --verify -q "$(BASE)^{commit}" >/dev/null || { echo "make bench-compare: BASE=$(BASE) is not a commit here" >&2; exit 2; }
	@$(MAKE) --no-print-directory deps build
	@# dash (make's /bin/sh) runs no EXIT trap when a signal ends it: the
	@# worktree is removed on INT and TERM as well.
	@set -e; dir=$$(mktemp -d); \
	cleanup() { git worktree remove --force "$$dir" 2>/dev/null || true; rm -rf "$$dir"; git worktree prune; }; \
	trap cleanup EXIT; trap 'cleanup; exit 130' INT TERM; \
	git worktree add -q --detach "$$dir" "$(BASE)"; \
	echo "building $(BASE) ($$(git rev-parse --short "$(BASE)")) in $$dir as bin/herald-base"; \
	(cd "$$dir" && $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o "$(CURDIR)/bin/herald-base" ./cmd/herald)
	@echo "A = $(BASE) ($$(git rev-parse --short "$(BASE)")), B = the working tree ($$(git rev-parse --short HEAD)$$([ -z "$$(git status --porcelain)" ] || echo ' with changes not committed'))"
	@# Built, not go run: go run's launcher would stand between a signal and the runner.
	$(GO) build -o bin/benchcompare ./internal/tools/benchcompare
	bin/benchcompare -rounds $(ROUNDS) -scenario $(SCENARIO) -args '$(ARGS)' bin/herald-base $(BIN)
