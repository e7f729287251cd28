//go:build !unit

package nfttable

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"

	"github.com/weftnet/weft/testbed"
)

// In a namespace of its own: Replace creates a table or replaces one that
// exists (rules gone, one table), HasRules follows it (no table, a table
// with an empty chain, with a rule), Delete removes it whether or not it
// exists, and another table is never touched.
func TestReplaceDeleteHasRules(t *testing.T) {
	tbl := &nftables.Table{Name: "weft-nfttable-test", Family: nftables.TableFamilyIPv4}
	ns := testbed.NSForTest(t, "wn")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nft := func(args ...string) string {
		t.Helper()
		out, err := ns.Run(ctx, "nft", args...)
		if err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	conn := func() *nftables.Conn {
		t.Helper()
		c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	flush := func(c *nftables.Conn) {
		t.Helper()
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	hasRules := func(want bool) {
		t.Helper()
		got, err := HasRules(conn(), tbl, "in")
		if err != nil || got != want {
			t.Fatalf("HasRules = %v, %v; want %v", got, err, want)
		}
	}
	nft("add", "table", "ip", "someone-else")
	hasRules(false) // no table

	install := func(withRule bool) {
		t.Helper()
		c := conn()
		Replace(c, tbl)
		accept := nftables.ChainPolicyAccept
		ch := c.AddChain(&nftables.Chain{Name: "in", Table: tbl, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		if withRule {
			c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{&expr.Counter{}}})
		}
		flush(c)
	}
	install(false)
	hasRules(false) // a chain without rules (a flushed chain)
	install(true)
	install(true) // replaced, not added to
	hasRules(true)
	nft("add", "table", "ip", tbl.Name, "{ flags dormant; }") // rules kept, none evaluated
	hasRules(false)
	install(true) // Replace makes it evaluated again
	hasRules(true)
	if out := nft("list", "table", "ip", tbl.Name); strings.Count(out, "counter") != 1 {
		t.Fatalf("after two Replace: want one rule:\n%s", out)
	}
	for range 2 { // the second time there is no table
		c := conn()
		Delete(c, tbl)
		flush(c)
		hasRules(false)
	}
	if tables := nft("list", "tables"); strings.Contains(tables, tbl.Name) || !strings.Contains(tables, "someone-else") {
		t.Fatalf("after Delete: %s", tables)
	}
}

// Diff is empty for equal texts and otherwise names the first differing
// line, cut to a log line's length.
func TestDiff(t *testing.T) {
	a := "table 2 t\n chain c\n  rule x\n"
	if d := Diff(a, a); d != "" {
		t.Fatalf("Diff of equal texts = %q", d)
	}
	if d := Diff(a, "table 2 t\n chain c\n"); !strings.Contains(d, "line 3") || !strings.Contains(d, `want "rule x", found ""`) {
		t.Fatalf("Diff of a lost rule = %q", d)
	}
	long := strings.Repeat("y", 1000)
	if d := Diff(a, "table 2 t\n"+long); len(d) > 500 || !strings.Contains(d, "line 2") {
		t.Fatalf("Diff of a long line = %d bytes: %.100q", len(d), d)
	}
}
