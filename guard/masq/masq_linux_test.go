//go:build !unit

package masq

import (
	"context"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/testbed"
)

// inNetns runs f on a thread switched into ns (a test namespace), so that
// nftables changes land there and nowhere else.
func inNetns(t *testing.T, ns *testbed.NS, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open(ns.Path())
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with the goroutine.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
}

func TestIPMasqRulesInstalledAndRemoved(t *testing.T) {
	ns, err := testbed.NewNS("wm")
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Delete()
	list := func() (string, error) {
		return ns.Run(context.Background(), "nft", "list", "table", "ip", Table)
	}
	p := Prefixes{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.7.0/24")}
	inNetns(t, ns, func() {
		// Twice: a table left by a crashed weftd is replaced, not doubled.
		for range 2 {
			if err = Install(p); err != nil {
				t.Fatal(err)
			}
		}
	})
	out, err := list()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"type nat hook postrouting priority srcnat; policy accept;",
		"ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 return",
		"ip saddr 10.244.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
		"ip saddr != 10.244.0.0/16 ip daddr 10.244.7.0/24 return",
		"ip saddr != 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade fully-random",
	}
	for _, w := range want {
		if strings.Count(out, w) != 1 {
			t.Fatalf("table lacks (or repeats) %q:\n%s", w, out)
		}
	}
	inNetns(t, ns, func() {
		if err := Remove(); err != nil {
			t.Fatal(err)
		}
		if err := Remove(); err != nil {
			t.Fatalf("second remove: %v", err)
		}
	})
	if out, err := list(); err == nil {
		t.Fatalf("table still there after remove:\n%s", out)
	}

	// A table left by a killed weftd --ip-masq goes when weftd starts
	// without the flag.
	inNetns(t, ns, func() {
		if err := Install(p); err != nil {
			t.Fatal(err)
		}
		if removed, err := RemoveStale(); err != nil || !removed {
			t.Fatalf("RemoveStale: %v %v", removed, err)
		}
		if removed, err := RemoveStale(); err != nil || removed {
			t.Fatalf("RemoveStale with no table: %v %v", removed, err)
		}
	})
	if out, err := list(); err == nil {
		t.Fatalf("stale table still there:\n%s", out)
	}
}

// The Keeper puts a table that went missing back, and not after Remove.
func TestKeeperRestores(t *testing.T) {
	ns := testbed.NSForTest(t, "wmk")
	p := Prefixes{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.7.0/24"),
		Network6: netip.MustParsePrefix("fd10:244::/56"), Subnet6: netip.MustParsePrefix("fd10:244:0:7::/64")}
	var k Keeper
	inNetns(t, ns, func() {
		if gone, err := k.Restore(); gone || err != nil {
			t.Fatalf("Restore before Install: %v %v", gone, err)
		}
		if err := k.Install(p); err != nil {
			t.Fatal(err)
		}
		if gone, err := k.Restore(); gone || err != nil {
			t.Fatalf("Restore with the table there: %v %v", gone, err)
		}
		if err := Remove(); err != nil { // nft flush ruleset, say
			t.Fatal(err)
		}
		if gone, err := k.Restore(); !gone || err != nil {
			t.Fatalf("Restore of a missing table: %v %v", gone, err)
		}
		if ok, err := Present(p); !ok || err != nil {
			t.Fatalf("after Restore: present %v %v", ok, err)
		}
		if err := k.Remove(); err != nil {
			t.Fatal(err)
		}
		if gone, err := k.Restore(); gone || err != nil {
			t.Fatalf("Restore after Remove: %v %v", gone, err)
		}
		if ok, _ := Present(p); ok {
			t.Fatal("the table came back after Remove")
		}
	})
}

// TestIPMasqIPv6: flanneld's IPv6 --ip-masq rules (ff00::/8 for multicast)
// in table ip6 weft-masq beside the IPv4 ones; an IPv6-only network has no
// IPv4 table; the Keeper puts back the IPv6 table alone when only it went;
// RemoveStale finds an IPv6 table left alone.
func TestIPMasqIPv6(t *testing.T) {
	ns := testbed.NSForTest(t, "wm6")
	list := func(family string) (string, error) {
		return ns.Run(context.Background(), "nft", "list", "table", family, Table)
	}
	dual := Prefixes{Network: netip.MustParsePrefix("10.244.0.0/16"), Subnet: netip.MustParsePrefix("10.244.7.0/24"),
		Network6: netip.MustParsePrefix("fd10:244::/56"), Subnet6: netip.MustParsePrefix("fd10:244:0:7::/64")}
	var k Keeper
	inNetns(t, ns, func() {
		if err := k.Install(dual); err != nil {
			t.Fatal(err)
		}
	})
	out, err := list("ip6")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		"type nat hook postrouting priority srcnat; policy accept;",
		"ip6 saddr fd10:244::/56 ip6 daddr fd10:244::/56 return",
		"ip6 saddr fd10:244::/56 ip6 daddr != ff00::/8 masquerade fully-random",
		"ip6 saddr != fd10:244::/56 ip6 daddr fd10:244:0:7::/64 return",
		"ip6 saddr != fd10:244::/56 ip6 daddr fd10:244::/56 masquerade fully-random",
	} {
		if strings.Count(out, w) != 1 {
			t.Fatalf("table ip6 lacks (or repeats) %q:\n%s", w, out)
		}
	}
	if _, err := list("ip"); err != nil {
		t.Fatalf("no IPv4 table beside: %v", err)
	}
	if _, err := ns.Run(context.Background(), "nft", "delete", "table", "ip6", Table); err != nil {
		t.Fatal(err)
	}
	inNetns(t, ns, func() {
		if gone, err := k.Restore(); !gone || err != nil {
			t.Fatalf("Restore with the IPv6 table gone: %v %v", gone, err)
		}
	})
	if _, err := list("ip6"); err != nil {
		t.Fatalf("IPv6 table not put back: %v", err)
	}
	v6only := Prefixes{Network6: dual.Network6, Subnet6: dual.Subnet6}
	inNetns(t, ns, func() {
		if err := Install(v6only); err != nil {
			t.Fatal(err)
		}
	})
	if out, err := list("ip"); err == nil {
		t.Fatalf("IPv6-only network: an IPv4 table is left:\n%s", out)
	}
	inNetns(t, ns, func() {
		if removed, err := RemoveStale(); err != nil || !removed {
			t.Fatalf("RemoveStale of an IPv6 table: %v %v", removed, err)
		}
		for _, bad := range []Prefixes{{}, {Network6: dual.Network6}, {Network6: dual.Network, Subnet6: dual.Subnet},
			{Network6: dual.Network6, Subnet6: netip.MustParsePrefix("fd10:245::/64")}} {
			if err := Install(bad); err == nil {
				t.Errorf("Install(%+v) accepted", bad)
			}
		}
	})
	if _, err := list("ip6"); err == nil {
		t.Fatal("IPv6 table after RemoveStale")
	}
}
