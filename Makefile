# weft — the two set-up commands on a fresh Debian machine (as root) are
# `make demo` and `make test`; both install what they need first.

GO       ?= go
BIN      := bin
VERSION  := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PREFIX   ?= /usr/local
CNI_BIN  ?= /opt/cni/bin
CNI_CONF ?= /etc/cni/net.d
# Fuzz budgets are execution counts, not durations: with a duration, Go 1.26's
# fuzz coordinator can report a spurious "context deadline exceeded" failure
# when -fuzztime expires (go.dev/issue/75804, fixed in Go 1.27). Each count is
# about 10 s of fuzzing on the 2-core development VM. FUZZTIME=30s (or 1000x)
# overrides all five.
FUZZ_DECAP     ?= 300000x
FUZZ_SUBNETCFG ?= 50000x
FUZZ_CNICFG    ?= 120000x
FUZZ_POLICY    ?= 60000x
FUZZ_WRITERUN  ?= 300000x
export PATH := $(shell $(GO) env GOPATH)/bin:$(PATH)

.PHONY: all build deps test unit unit-nobody fuzz demo bench bench-policy soak systemd-check install uninstall clean vet

all: build

# bin/wireguard-go is the standalone wireguard-go of the module weft embeds
# (same version): the interop test's hand-made peer, the benchmark's reference.
build:
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/weftd ./cmd/weftd
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/weftctl ./cmd/weftctl
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/weft ./cmd/weft-cni
	$(GO) build -trimpath -o $(BIN)/wireguard-go golang.zx2c4.com/wireguard

deps:
	@bash scripts/deps.sh

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# All tests: unit, integration (real etcd, TUN, namespaces) and e2e (real
# daemons, cnitool). Needs root; fails (never skips) without it.
test: deps vet build
	$(GO) test -count=1 -timeout 45m $(GOTESTFLAGS) ./...

# The tests that need no root, no network namespace, no network and no real
# etcd: any user, offline, a few minutes. A test file that needs root, a
# namespace or a real etcd member starts with `//go:build !unit`; -tags unit
# leaves it out, so it is not compiled here and nothing is skipped (make test
# compiles and runs it). Only packages that keep a test file under -tags unit
# are listed (UNIT_PKGS): go test would otherwise compile and vet the others
# and their dependencies (cmd/weftd links etcd's server), which is most of a
# cold run's time. GOTESTFLAGS goes to go test, e.g. GOTESTFLAGS='-v -run
# Config' (extra tags: -tags unit,<tag>). Needs only Go and a module cache: as
# a user who cannot read root's cache, point GOMODCACHE at a copy with
# GOPROXY=off, as `make unit-nobody` does.
UNIT_PKGS = {{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}
unit:
	$(GO) test -count=1 -tags unit -timeout 10m $(GOTESTFLAGS) $$($(GO) list -tags unit -f '$(UNIT_PKGS)' ./...)

# As root: `make unit` as uid 65534 with its own HOME, GOCACHE and a copy of
# root's module cache (copied offline), GOPROXY=off; prints the time taken
# and the number of tests that passed (scripts/unit-nobody.sh).
unit-nobody:
	bash scripts/unit-nobody.sh
	$(MAKE) fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecap$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_DECAP)) ./overlay
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_SUBNETCFG)) ./subnet
	$(GO) test -run '^$$' -fuzz '^FuzzParseConfig$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_CNICFG)) ./cni
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifests$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_POLICY)) ./policy
	$(GO) test -run '^$$' -fuzz '^FuzzWriteRun$$' -fuzztime $(or $(FUZZTIME),$(FUZZ_WRITERUN)) -fuzzminimizetime 5s ./overlay/tundev

# Three hosts as network namespaces, weftd on each (the first with the
# embedded etcd), two containers per host through the CNI plugin, a ping
# matrix and iperf3 between hosts; everything is removed on exit or Ctrl-C.
demo: deps build
	$(GO) run ./scripts/demo -bin $(BIN)

# weft (udp, DirectRouting, vxlan, wireguard) vs kernel VXLAN, raw veth, wireguard-go and flannel udp on two-host testbeds (about 22 minutes).
bench: deps build
	$(GO) run ./bench -bin $(BIN) -out bench/out

# What network policy costs: throughput with 200 endpoints + 50 policies, rebuild
# time with 1,000 endpoints (its section of docs/benchmarks.md).
bench-policy: deps build
	$(GO) run ./bench/policy -bin $(BIN)

# Ten minutes of mixed traffic through three hosts with restarts and an
# etcd bounce; not part of `make test`.
soak: deps build
	$(GO) test -count=1 -tags soak -run '^TestSoak$$' -timeout 30m -v ./e2e

# weftd.service under a real systemd 252: a Debian 12 rootfs (debootstrapped
# once from the Debian mirror, cached in .cache/systemd-check) booted with
# systemd-nspawn in a network namespace of its own; not part of `make test`.
systemd-check: build
	bash scripts/systemd-check.sh

install: build
	install -D -m 0755 $(BIN)/weftd $(DESTDIR)$(PREFIX)/bin/weftd
	install -D -m 0755 $(BIN)/weftctl $(DESTDIR)$(PREFIX)/bin/weftctl
	install -D -m 0755 $(BIN)/weft $(DESTDIR)$(CNI_BIN)/weft
	install -D -m 0644 scripts/weftd.service $(DESTDIR)/etc/systemd/system/weftd.service
	install -D -m 0644 scripts/weft-modules.conf $(DESTDIR)/etc/modules-load.d/weft.conf
	test -e $(DESTDIR)/etc/default/weftd || install -D -m 0644 scripts/weftd.default $(DESTDIR)/etc/default/weftd
	test -e $(DESTDIR)$(CNI_CONF)/10-weft.conflist || install -D -m 0644 scripts/10-weft.conflist $(DESTDIR)$(CNI_CONF)/10-weft.conflist
	@echo "installed; edit /etc/default/weftd, then: systemctl daemon-reload && systemctl enable --now weftd"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/weftd $(DESTDIR)$(PREFIX)/bin/weftctl $(DESTDIR)$(CNI_BIN)/weft
	rm -f $(DESTDIR)/etc/systemd/system/weftd.service $(DESTDIR)/etc/modules-load.d/weft.conf

clean:
	rm -rf $(BIN) bench/out
