//go:build !unit

package guard

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
)

// TestInstallReplaceRemove works in a namespace of its own: Install writes
// the rules, a second Install replaces them (one table, new values), another
// table in the namespace is left alone, Remove deletes only the guard's.
func TestInstallReplaceRemove(t *testing.T) {
	ns := testbed.NSForTest(t, "wg")
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
	nft("add", "table", "ip", "someone-else")
	opts := Options{NetNS: int(f.Fd())}
	spec := Spec{Bridge: "weftbr0", Subnet: netip.MustParsePrefix("10.244.7.0/24"), Network: netip.MustParsePrefix("10.244.0.0/16"), Port: 8285}
	if err := Install(spec, opts); err != nil {
		t.Fatal(err)
	}
	if ok, err := Present(spec, opts); err != nil || !ok {
		t.Fatalf("Present after Install = %v, %v", ok, err)
	}
	out := nft("list", "table", "ip", DefaultTable)
	for _, want := range []string{
		`iifname "weftbr0" ip saddr != 10.244.7.0/24 counter name "bridge_spoofed_source" drop`,
		`iifname "weftbr0" ip daddr != 10.244.0.0/16 udp dport 8285 counter name "bridge_to_weft_port" drop`,
		`iifname "weftbr0" udp dport 8285 counter name "bridge_to_weft_port" drop`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rule %q missing:\n%s", want, out)
		}
	}
	if strings.Contains(out, "tcp dport") {
		t.Errorf("etcd rules without an embedded etcd:\n%s", out)
	}
	// IPv6: no IPv6 in the network, so no global IPv6 source may leave
	// the bridge, nor UDP to weft's port.
	out6 := nft("list", "table", "ip6", DefaultTable)
	for _, want := range []string{
		`iifname "weftbr0" ip6 saddr != fe80::/10 ip6 saddr != :: counter name "bridge_spoofed_source" drop`,
		`iifname "weftbr0" udp dport 8285 counter name "bridge_to_weft_port" drop`,
	} {
		if !strings.Contains(out6, want) {
			t.Errorf("rule %q missing:\n%s", want, out6)
		}
	}
	if strings.Contains(out6, "tcp dport") {
		t.Errorf("etcd rules without an embedded etcd:\n%s", out6)
	}
	spec.Subnet, spec.Port, spec.EtcdPorts = netip.MustParsePrefix("10.244.9.0/24"), 9000, []uint16{2379, 2380}
	if err := Install(spec, opts); err != nil {
		t.Fatal(err)
	}
	out = nft("list", "table", "ip", DefaultTable)
	if strings.Contains(out, "10.244.7.0/24") || !strings.Contains(out, "ip saddr != 10.244.9.0/24") || !strings.Contains(out, "dport 9000") {
		t.Fatalf("the second Install did not replace the rules:\n%s", out)
	}
	out6 = nft("list", "table", "ip6", DefaultTable)
	for _, port := range []string{"2379", "2380"} {
		want := `iifname != "lo" ip saddr 10.244.0.0/16 tcp dport ` + port + ` counter name "container_to_embedded_etcd" drop`
		if !strings.Contains(out, want) {
			t.Errorf("rule %q missing:\n%s", want, out)
		}
		// IPv6: containers' link-local addresses on the bridge.
		want6 := `iifname "weftbr0" tcp dport ` + port + ` counter name "container_to_embedded_etcd" drop`
		if !strings.Contains(out6, want6) {
			t.Errorf("rule %q missing:\n%s", want6, out6)
		}
	}
	drops, err := Drops(opts)
	if err != nil || len(drops) != len(Reasons) {
		t.Fatalf("Drops = %v, %v", drops, err)
	}
	if err := Remove(opts); err != nil {
		t.Fatal(err)
	}
	if ok, err := Present(spec, opts); err != nil || ok {
		t.Fatalf("Present after Remove = %v, %v", ok, err)
	}
	tables := nft("list", "tables")
	if strings.Contains(tables, DefaultTable) || !strings.Contains(tables, "someone-else") {
		t.Fatalf("after Remove: %s", tables)
	}
	if drops, err := Drops(opts); err != nil || drops[ReasonSpoofedSource] != 0 {
		t.Fatalf("Drops without a table = %v, %v", drops, err)
	}
}

// Present looks at both chains: with the input chain flushed (or deleted)
// the rules keeping containers from weft's port on this host and from the
// embedded etcd are gone, and the table check must put them back. Contents
// sees those and one deleted or inserted rule too.
func TestPresentSeesEveryChain(t *testing.T) {
	ns := testbed.NSForTest(t, "wg")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts := Options{NetNS: int(f.Fd())}
	spec := Spec{Bridge: "weftbr0", Subnet: netip.MustParsePrefix("10.244.7.0/24"), Network: netip.MustParsePrefix("10.244.0.0/16"),
		Port: 8285, EtcdPorts: []uint16{2379, 2380}}
	for _, damage := range [][]string{
		{"flush", "chain", "ip", DefaultTable, "input"},
		{"flush", "chain", "ip", DefaultTable, "prerouting"},
		{"delete", "table", "ip", DefaultTable},
		{"delete", "table", "ip6", DefaultTable},
		{"delete", "rule", "ip", DefaultTable, "input", "handle", "@2380"},
		{"delete", "rule", "ip", DefaultTable, "prerouting", "handle", "@8285"},
		{"insert", "rule", "ip", DefaultTable, "prerouting", "accept"},
		{"delete", "rule", "ip6", DefaultTable, "input", "handle", "@2379"},
	} {
		if err := Install(spec, opts); err != nil {
			t.Fatal(err)
		}
		if ok, err := Present(spec, opts); err != nil || !ok {
			t.Fatalf("Present after Install = %v, %v", ok, err)
		}
		installed, err := Contents(opts)
		if err != nil {
			t.Fatal(err)
		}
		if again, err := Contents(opts); err != nil || again != installed {
			t.Fatalf("two reads of an untouched guard differ (%v):\n%s\n%s", err, installed, again)
		}
		damage = slices.Clone(damage)
		if n := len(damage); damage[n-2] == "handle" {
			damage[n-1] = handleOf(t, ns, damage[2], damage[4], damage[n-1][1:])
		}
		if out, err := ns.Run(ctx, "nft", damage...); err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(damage, " "), err, out)
		}
		if now, err := Contents(opts); err != nil || now == installed {
			t.Errorf("Contents after nft %s unchanged (%v)", strings.Join(damage, " "), err)
		}
	}
}

// handleOf is the handle of the rule of family/table chain whose listing
// contains want (a port number).
func handleOf(t *testing.T, ns *testbed.NS, family, chain, want string) string {
	t.Helper()
	out, err := ns.Run(context.Background(), "nft", "-a", "list", "chain", family, DefaultTable, chain)
	if err != nil {
		t.Fatalf("list chain: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, want) {
			if _, h, ok := strings.Cut(line, "# handle "); ok {
				return strings.TrimSpace(h)
			}
		}
	}
	t.Fatalf("no rule with %q in:\n%s", want, out)
	return ""
}
