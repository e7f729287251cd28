//go:build !unit

package nfttable

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/weftnet/weft/testbed"
)

// Contents must change for every tampering that changes a packet's fate
// while the table, its chains, rules and sets stay as they were: a table
// made dormant (`flags dormant`) keeps every rule but none is evaluated.
func TestContentsSeesTampering(t *testing.T) {
	tbl := &nftables.Table{Name: "weft-contents-test", Family: nftables.TableFamilyIPv4}
	ns := testbed.NSForTest(t, "wc")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nft := func(args ...string) {
		t.Helper()
		if out, err := ns.Run(ctx, "nft", args...); err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	contents := func() string {
		t.Helper()
		c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Contents(c, tbl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const ruleset = `
table ip weft-contents-test
delete table ip weft-contents-test
table ip weft-contents-test {
	set peers { type ipv4_addr; flags interval; elements = { 10.1.0.0/16 } }
	chain filt {
		type filter hook forward priority 0; policy drop;
		ip saddr @peers accept
	}
}
`
	load := func() string {
		t.Helper()
		p := t.TempDir() + "/r.nft"
		if err := os.WriteFile(p, []byte(ruleset), 0o600); err != nil {
			t.Fatal(err)
		}
		nft("-f", p)
		return contents()
	}
	for _, tamper := range [][]string{
		{"add", "table", "ip", tbl.Name, "{", "flags", "dormant", ";", "}"},
		{"add", "element", "ip", tbl.Name, "peers", "{", "128.0.0.0/1", "}"},
		{"flush", "chain", "ip", tbl.Name, "filt"},
		{"chain", "ip", tbl.Name, "filt", "{", "policy", "accept", ";", "}"},
	} {
		want := load()
		if again := contents(); again != want {
			t.Fatalf("two reads of unchanged tables differ: %s", Diff(want, again))
		}
		nft(tamper...)
		got := contents()
		if got == want {
			t.Errorf("nft %s: Contents unchanged", strings.Join(tamper, " "))
		}
		if slices.Contains(tamper, "dormant") && !strings.Contains(got, " flags 0x1\n") {
			t.Errorf("a dormant table reads:\n%s", got)
		}
	}
}
