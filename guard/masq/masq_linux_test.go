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
	network, subnet := netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.244.7.0/24")
	inNetns(t, ns, func() {
		// Twice: a table left by a crashed weftd is replaced, not doubled.
		for range 2 {
			if err = Install(network, subnet); err != nil {
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
		if err := Install(network, subnet); err != nil {
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
	network, subnet := netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.244.7.0/24")
	var k Keeper
	inNetns(t, ns, func() {
		if gone, err := k.Restore(); gone || err != nil {
			t.Fatalf("Restore before Install: %v %v", gone, err)
		}
		if err := k.Install(network, subnet); err != nil {
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
		if ok, err := Present(); !ok || err != nil {
			t.Fatalf("after Restore: present %v %v", ok, err)
		}
		if err := k.Remove(); err != nil {
			t.Fatal(err)
		}
		if gone, err := k.Restore(); gone || err != nil {
			t.Fatalf("Restore after Remove: %v %v", gone, err)
		}
		if ok, _ := Present(); ok {
			t.Fatal("the table came back after Remove")
		}
	})
}
