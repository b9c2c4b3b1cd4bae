# secrets-agent — see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export CGO_ENABLED ?= 0

.PHONY: all build test test-short test-live lint demo bench install clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# The race detector needs cgo, so a C compiler; without one the suite runs
# without it and says so (CI has gcc: there it always runs with -race).
RACE := $(shell command -v $${CC:-gcc} >/dev/null 2>&1 && echo -race)

# The whole suite, with the race detector, plus the lint checks. It prints
# what go test prints (each package's ok/FAIL line, failing tests' output) and
# ends with the tests skipped for a missing tool (internal/testsummary).
test: lint
	@[ -n "$(RACE)" ] || echo "make test: no C compiler (gcc), so running without -race"
	CGO_ENABLED=$(if $(RACE),1,0) GO=$(GO) $(GO) run ./internal/testsummary $(RACE) -count=1 -timeout 15m ./...

# The live tests (build tag "live"): the agent under real systemd as PID 1
# (systemd-nspawn), a real dockerd and registry, a real dev container. They
# need root and the tools .ci/run installs; what is slow to make (a Debian
# rootfs, docker images, the devcontainer CLI) is cached in
# /var/cache/secrets-agent-test ($LIVE_TEST_CACHE) and rebuilt when
# missing.
test-live:
	$(GO) vet -tags live ./test/
	CGO_ENABLED=$(if $(RACE),1,0) GO=$(GO) $(GO) run ./internal/testsummary $(RACE) -tags live -count=1 -timeout 15m \
	  -run '^TestLive' ./test/

test-short:
	$(GO) test -short -count=1 ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

demo: build
	./scripts/demo.sh

bench: build
	./scripts/bench.sh

install: build
	./systemd/install.sh

clean:
	rm -rf $(BIN)
