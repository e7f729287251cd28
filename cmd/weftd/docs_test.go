//go:build !unit

package main

import (
	"bytes"
	"errors"
	"flag"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/all"
	"github.com/weftnet/weft/guard"
	"github.com/weftnet/weft/policy/engine"
	"github.com/weftnet/weft/subnet"
)

// weftdFlags are the names of every flag weftd accepts, from its -h output.
func weftdFlags(t *testing.T) []string {
	t.Helper()
	var usage bytes.Buffer
	if _, err := parseFlags([]string{"-h"}, &usage); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseFlags -h: %v", err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(usage.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("found only %d flags in weftd -h:\n%s", len(names), usage.String())
	}
	return names
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// docs/flags.md's table names every flag, so a new flag is documented.
func TestDocsListEveryFlag(t *testing.T) {
	doc := readDoc(t, "../../docs/flags.md")
	for _, name := range weftdFlags(t) {
		if !strings.Contains(doc, "`--"+name+"`") {
			t.Errorf("docs/flags.md's weftd flag table lacks `--%s`", name)
		}
	}
}

// scripts/weftd.default sets only variables weftd reads (WEFTD_<FLAG>).
func TestWeftdDefaultNamesRealFlags(t *testing.T) {
	known := map[string]bool{}
	for _, name := range weftdFlags(t) {
		known["WEFTD_"+strings.ToUpper(strings.ReplaceAll(name, "-", "_"))] = true
	}
	vars := regexp.MustCompile(`(?m)^#?(WEFTD_[A-Z0-9_]+)=`).FindAllStringSubmatch(readDoc(t, "../../scripts/weftd.default"), -1)
	if len(vars) == 0 {
		t.Fatal("no WEFTD_ variables found in scripts/weftd.default")
	}
	for _, v := range vars {
		if !known[v[1]] {
			t.Errorf("scripts/weftd.default sets %s, which is no weftd flag", v[1])
		}
	}
}

// docs/metrics.md names every weft_ metric weftd serves.
func TestDocsListEveryMetric(t *testing.T) {
	state := newDaemon(&options{}, nil).state
	descs := make(chan *prometheus.Desc, 100)
	for _, c := range append([]prometheus.Collector{state.etcdLatency, newStatsCollector(state), &guard.Keeper{}, engine.NewCollector(state.policy.Load)},
		backendCollectors(t)...) {
		c.Describe(descs)
	}
	close(descs)
	doc := readDoc(t, "../../docs/metrics.md")
	fqName := regexp.MustCompile(`fqName: "([a-z0-9_]+)"`)
	n := 0
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("no fqName in %s", d)
		}
		n++
		if !strings.Contains(doc, "`"+m[1]+"`") && !strings.Contains(doc, "`"+m[1]+"{") {
			t.Errorf("docs/metrics.md does not list the metric %s", m[1])
		}
	}
	if n < 15 {
		t.Fatalf("only %d metrics described", n)
	}
}

// backendCollectors are the backends that export metrics of their own (a
// backend made for each registered type, not started).
func backendCollectors(t *testing.T) []prometheus.Collector {
	t.Helper()
	var out []prometheus.Collector
	reg := all.Registry()
	for _, typ := range reg.Types() {
		cfg, err := subnet.ParseConfig([]byte(`{"Network":"10.244.0.0/16","Backend":{"Type":"` + typ + `"}}`))
		if err != nil {
			t.Fatal(err)
		}
		be, err := reg.New(backend.Node{Config: cfg, Underlay: backend.Underlay{Name: "eth0", PublicIP: netip.MustParseAddr("192.0.2.1"), MTU: 1500},
			Options: backend.Options{StateDir: t.TempDir()}})
		if err != nil {
			t.Fatalf("backend %s: %v", typ, err)
		}
		if c, ok := be.(prometheus.Collector); ok {
			out = append(out, c)
		}
	}
	return out
}
