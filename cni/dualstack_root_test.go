//go:build !unit

package cni_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
)

// dualEnv is a dual-stack subnet file as weftd writes it; v6OnlyEnv an
// IPv6-only one.
const (
	dualEnv   = "WEFT_NETWORK=10.244.0.0/16\nWEFT_SUBNET=10.244.7.1/24\nWEFT_IPV6_NETWORK=fd10:244::/56\nWEFT_IPV6_SUBNET=fd10:244:0:7::1/64\nWEFT_MTU=1450\nWEFT_IPMASQ=false\n"
	v6OnlyEnv = "WEFT_IPV6_NETWORK=fd10:244::/56\nWEFT_IPV6_SUBNET=fd10:244:0:7::1/64\nWEFT_MTU=1450\nWEFT_IPMASQ=false\n"
)

// newHostWithEnv is newHost with the subnet file's content given.
func newHostWithEnv(t *testing.T, env string, opts map[string]any) *host {
	t.Helper()
	h := newHost(t, "", opts)
	if err := os.WriteFile(h.subnetFile, []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	return h
}

// allAllocations lists the address files of both families, sorted.
func (h *host) allAllocations(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(h.dataDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var addrs []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			addrs = append(addrs, e.Name())
		}
	}
	slices.Sort(addrs)
	return addrs
}

func mustPing6(t *testing.T, n netns, addr string) {
	t.Helper()
	if out, err := n.execErr("ping", "-6", "-c", "1", "-W", "2", addr); err != nil {
		t.Fatalf("ping -6 %s from %s: %v\n%s", addr, n.name, err, out)
	}
}

// Issue 21: on a dual-stack node each container gets an address of each
// family (IPv6 from ::2 upward, gateway ::1 on the bridge without DAD),
// routes of both, a result with both; containers reach their gateways and
// each other over IPv6 at once; CHECK verifies both families, DEL and GC
// release both.
func TestDualStackAddCheckDelGC(t *testing.T) {
	t.Parallel()
	h := newHostWithEnv(t, dualEnv, nil)
	ctr1, res1 := h.add(t)
	ctr2, res2 := h.add(t)

	if len(res1.IPs) != 2 {
		t.Fatalf("result ips %+v, want one per family", res1.IPs)
	}
	v4, v6 := res1.IPs[0], res1.IPs[1]
	if v4.Address.String() != "10.244.7.2/24" || v4.Gateway.String() != "10.244.7.1" ||
		v6.Address.String() != "fd10:244:0:7::2/64" || v6.Gateway.String() != "fd10:244:0:7::1" ||
		v6.Interface == nil || *v6.Interface != 2 {
		t.Fatalf("result ips %+v %+v", v4, v6)
	}
	if got := res2.IPs[1].Address.String(); got != "fd10:244:0:7::3/64" {
		t.Fatalf("second container's IPv6 %s, want fd10:244:0:7::3/64", got)
	}
	var routes []string
	for _, r := range res1.Routes {
		routes = append(routes, r.Dst.String()+" via "+r.GW.String())
	}
	if want := []string{"10.244.0.0/16 via 10.244.7.1", "0.0.0.0/0 via 10.244.7.1", "fd10:244::/56 via fd10:244:0:7::1", "::/0 via fd10:244:0:7::1"}; !slices.Equal(routes, want) {
		t.Fatalf("result routes %v, want %v", routes, want)
	}

	// At once: no DAD wait on either side.
	mustPing6(t, ctr1, "fd10:244:0:7::1")
	mustPing6(t, ctr1, "fd10:244:0:7::3")
	mustPing6(t, ctr2, "fd10:244:0:7::2")
	mustPing(t, ctr1, "10.244.7.1")
	mustPing(t, ctr2, "10.244.7.2")

	if addrs := ctr1.exec(t, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"); !strings.Contains(addrs, "inet6 fd10:244:0:7::2/64 scope global nodad") || strings.Contains(addrs, "tentative") {
		t.Fatalf("container IPv6 addresses (want fd10:244:0:7::2/64 without DAD):\n%s", addrs)
	}
	r6 := ctr1.exec(t, "ip", "-6", "route", "show", "dev", "eth0")
	for _, want := range []string{"fd10:244::/56 via fd10:244:0:7::1", "default via fd10:244:0:7::1"} {
		if !strings.Contains(r6, want) {
			t.Fatalf("container IPv6 routes lack %q:\n%s", want, r6)
		}
	}
	if ra := ctr1.exec(t, "cat", "/proc/sys/net/ipv6/conf/eth0/accept_ra"); strings.TrimSpace(ra) != "0" {
		t.Fatalf("container accept_ra %q, want 0", ra)
	}
	if br := h.ns.exec(t, "ip", "-6", "addr", "show", "dev", "weftbr0"); !strings.Contains(br, "inet6 fd10:244:0:7::1/64 scope global nodad") {
		t.Fatalf("bridge IPv6 addresses:\n%s", br)
	}
	if fwd := h.ns.exec(t, "cat", "/proc/sys/net/ipv6/conf/all/forwarding"); strings.TrimSpace(fwd) != "1" {
		t.Fatalf("IPv6 forwarding in the node namespace is %q, want 1", fwd)
	}
	if got, want := h.allAllocations(t), []string{"10.244.7.2", "10.244.7.3", "fd10:244:0:7::2", "fd10:244:0:7::3"}; !slices.Equal(got, want) {
		t.Fatalf("allocations %v, want %v", got, want)
	}

	// CHECK: both families pass, a missing IPv6 route or gateway fails.
	if out, err := h.cnitool("check", ctr1.path()); err != nil {
		t.Fatalf("cnitool check: %v\n%s", err, out)
	}
	ctr1.exec(t, "ip", "-6", "route", "del", "default")
	if out, err := h.cnitool("check", ctr1.path()); err == nil || !strings.Contains(out, "route ::/0 via fd10:244:0:7::1 missing") {
		t.Fatalf("check without the IPv6 default route: %v\n%s", err, out)
	}
	ctr1.exec(t, "ip", "-6", "route", "add", "default", "via", "fd10:244:0:7::1", "dev", "eth0")
	h.ns.exec(t, "ip", "-6", "addr", "del", "fd10:244:0:7::1/64", "dev", "weftbr0")
	if out, err := h.cnitool("check", ctr2.path()); err == nil || !strings.Contains(out, "does not hold the gateway fd10:244:0:7::1/64") {
		t.Fatalf("check without the bridge's IPv6 gateway: %v\n%s", err, out)
	}
	ctr3, _ := h.add(t) // puts the gateway back
	mustPing6(t, ctr2, "fd10:244:0:7::1")
	mustPing6(t, ctr3, "fd10:244:0:7::3")
	ctr2.exec(t, "ip", "-6", "addr", "del", "fd10:244:0:7::3/64", "dev", "eth0")
	if out, err := h.cnitool("check", ctr2.path()); err == nil || !strings.Contains(out, "fd10:244:0:7::3") {
		t.Fatalf("check without the container's IPv6 address: %v\n%s", err, out)
	}

	// DEL releases both of ctr1's addresses.
	if out, err := h.cnitool("del", ctr1.path()); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	if got, want := h.allAllocations(t), []string{"10.244.7.3", "10.244.7.4", "fd10:244:0:7::3", "fd10:244:0:7::4"}; !slices.Equal(got, want) {
		t.Fatalf("allocations after DEL %v, want %v", got, want)
	}
	// GC without valid attachments releases everything of both families.
	if out, err := h.cnitool("gc", "/var/run/netns/unused"); err != nil {
		t.Fatalf("cnitool gc: %v\n%s", err, out)
	}
	if got := h.allAllocations(t); len(got) != 0 {
		t.Fatalf("allocations after GC: %v", got)
	}
	if links := h.ns.exec(t, "ip", "-br", "link"); strings.Contains(links, "wv") {
		t.Fatalf("host veths left after GC:\n%s", links)
	}
}

// A runtime that made the namespace with IPv6 turned off (all and default
// disable_ipv6=1, as docker does without --ipv6) still gets a working IPv6
// address: ADD turns IPv6 on for the container interface.
func TestDualStackInNamespaceWithIPv6Off(t *testing.T) {
	t.Parallel()
	h := newHostWithEnv(t, dualEnv, nil)
	ctr := newNetns(t, "wtc")
	ctr.exec(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	out, err := h.cnitool("add", ctr.path())
	if err != nil {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	t.Cleanup(func() { h.cnitool("del", ctr.path()) })
	if res := parseResult(t, []byte(out)); len(res.IPs) != 2 {
		t.Fatalf("result ips %+v", res.IPs)
	}
	mustPing6(t, ctr, "fd10:244:0:7::1")
	if out, err := h.cnitool("check", ctr.path()); err != nil {
		t.Fatalf("cnitool check: %v\n%s", err, out)
	}
}

// An IPv6-only network: one IPv6 address, IPv6 routes only, no IPv4 on
// the bridge or in the container; CHECK and DEL work.
func TestIPv6OnlyNetwork(t *testing.T) {
	t.Parallel()
	h := newHostWithEnv(t, v6OnlyEnv, nil)
	// A bridge left from an IPv4 network loses its stale IPv4 address.
	h.ns.exec(t, "ip", "link", "add", "weftbr0", "type", "bridge")
	h.ns.exec(t, "ip", "addr", "add", "10.244.7.1/24", "dev", "weftbr0")
	ctr, res := h.add(t)
	if len(res.IPs) != 1 || res.IPs[0].Address.String() != "fd10:244:0:7::2/64" || res.IPs[0].Gateway.String() != "fd10:244:0:7::1" {
		t.Fatalf("result ips %+v", res.IPs)
	}
	if len(res.Routes) != 2 || res.Routes[0].Dst.String() != "fd10:244::/56" || res.Routes[1].Dst.String() != "::/0" {
		t.Fatalf("result routes %+v", res.Routes)
	}
	mustPing6(t, ctr, "fd10:244:0:7::1")
	if out := ctr.exec(t, "ip", "-4", "addr", "show", "dev", "eth0"); strings.Contains(out, "inet ") {
		t.Fatalf("IPv4 address in an IPv6-only container:\n%s", out)
	}
	if out := h.ns.exec(t, "ip", "-4", "addr", "show", "dev", "weftbr0"); strings.Contains(out, "inet ") {
		t.Fatalf("IPv4 address left on the bridge of an IPv6-only network:\n%s", out)
	}
	if mac := h.ns.exec(t, "cat", "/sys/class/net/weftbr0/address"); strings.TrimSpace(mac) != "0a:58:00:00:00:01" {
		t.Fatalf("bridge MAC %q, want 0a:58 and the gateway's last four bytes", mac)
	}
	if out, err := h.cnitool("check", ctr.path()); err != nil {
		t.Fatalf("cnitool check: %v\n%s", err, out)
	}
	if out, err := h.cnitool("del", ctr.path()); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	if got := h.allAllocations(t); len(got) != 0 {
		t.Fatalf("allocations after DEL: %v", got)
	}
}

// Bad input on a dual-stack node: a static IPv6 outside the node's subnet,
// a full IPv6 pool and CHECK of a container whose node gained IPv6 get
// clear errors; a failed ADD holds no address of either family, and the
// containers already there keep theirs (nothing renumbered).
func TestDualStackBadInput(t *testing.T) {
	t.Parallel()
	env := strings.Replace(dualEnv, "fd10:244:0:7::1/64", "fd10:244:0:7::1/126", 1) // one usable IPv6: ::2
	h := newHostWithEnv(t, env, nil)
	static := func(ips ...string) []byte {
		return h.confJSON(t, "1.1.0", map[string]any{"runtimeConfig": map[string]any{"ips": ips}})
	}
	add := func(id string, stdin []byte) (netns, []byte, *pluginError) {
		ctr := newNetns(t, "wtc")
		out, perr := invoke(t, pluginCall{command: "ADD", containerID: id, netns: ctr.path(), ifname: "eth0", stdin: stdin, inNetns: &h.ns})
		if perr == nil {
			t.Cleanup(func() {
				invoke(t, pluginCall{command: "DEL", containerID: id, netns: ctr.path(), ifname: "eth0", stdin: stdin, inNetns: &h.ns})
			})
		}
		return ctr, out, perr
	}
	if _, _, perr := add("outside", static("fd10:244:0:9::5")); perr == nil || !strings.Contains(perr.Msg, "fd10:244:0:9::5 is not a usable address of this node's subnet fd10:244:0:7::/126") {
		t.Fatalf("static IPv6 outside the subnet: %+v", perr)
	}
	if got := h.allAllocations(t); len(got) != 0 {
		t.Fatalf("a refused static IPv6 left allocations: %v", got)
	}
	first, out, perr := add("first", static("10.244.7.9", "fd10:244:0:7::2/126"))
	if perr != nil {
		t.Fatalf("static dual-stack ADD: %+v", perr)
	}
	if res := parseResult(t, out); len(res.IPs) != 2 || res.IPs[0].Address.String() != "10.244.7.9/24" || res.IPs[1].Address.String() != "fd10:244:0:7::2/126" {
		t.Fatalf("static dual-stack result %+v", res.IPs)
	}
	if _, _, perr := add("second", h.confJSON(t, "1.1.0", nil)); perr == nil || !strings.Contains(perr.Msg, "cannot allocate an IPv6 address") || !strings.Contains(perr.Msg, "no free address in fd10:244:0:7::/126") {
		t.Fatalf("ADD with the IPv6 pool full: %+v", perr)
	}
	if got, want := h.allAllocations(t), []string{"10.244.7.9", "fd10:244:0:7::2"}; !slices.Equal(got, want) {
		t.Fatalf("allocations after the failed ADD %v, want %v (its IPv4 address released)", got, want)
	}
	mustPing6(t, first, "fd10:244:0:7::1")

	// The node had no IPv6 when this container was attached: CHECK says so.
	h4 := newHost(t, "10.244.7.1/24", nil)
	ctr, _ := h4.add(t)
	if err := os.WriteFile(h4.subnetFile, []byte(dualEnv), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := h4.cnitool("check", ctr.path()); err == nil || !strings.Contains(out, "the container has no IPv6 address but this node's network has IPv6") {
		t.Fatalf("check of an IPv4-only container on a dual-stack node: %v\n%s", err, out)
	}
}

// A dual-stack container is registered with weftd once per address (same
// identity), so policy selects both; DEL withdraws both. When weftd
// refuses the IPv6 address after accepting the IPv4 one, the ADD fails,
// the IPv4 registration is withdrawn and nothing is left behind.
func TestDualStackRegistration(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "weftd.sock")
	ln, err := daemonsock.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reqs []daemonsock.Request
	refuse6 := false
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		daemonsock.Serve(ctx, ln, 10*time.Second, func(_ context.Context, r daemonsock.Request) error {
			mu.Lock()
			defer mu.Unlock()
			reqs = append(reqs, r)
			if refuse6 && r.Op == daemonsock.OpAdd && r.IP.Is6() {
				return errors.New("IPv6 endpoints refused")
			}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	take := func() []daemonsock.Request {
		mu.Lock()
		defer mu.Unlock()
		r := reqs
		reqs = nil
		return r
	}

	h := newHostWithEnv(t, dualEnv, map[string]any{"daemonSocket": path})
	ctr := newNetns(t, "wtc")
	if out, err := h.cnitoolArgs("add", ctr.path(), "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;WEFT_LABELS=app:web"); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	got := take()
	if len(got) != 2 || got[0].IP.String() != "10.244.7.2" || got[1].IP.String() != "fd10:244:0:7::2" {
		t.Fatalf("add requests %+v, want one per family", got)
	}
	for _, r := range got {
		if r.Op != "add" || r.Namespace != "shop" || r.Pod != "web-1" || r.Labels["app"] != "web" || r.ContainerID != containerIDOf(ctr) || r.IfName != "eth0" {
			t.Fatalf("add request %+v", r)
		}
	}
	if out, err := h.cnitool("del", ctr.path()); err != nil {
		t.Fatalf("del: %v\n%s", err, out)
	}
	var dels []string
	for _, r := range take() {
		if r.Op == "del" {
			dels = append(dels, r.IP.String())
		}
	}
	slices.Sort(dels)
	if !slices.Equal(dels, []string{"10.244.7.2", "fd10:244:0:7::2"}) {
		t.Fatalf("del requests for %v, want both addresses", dels)
	}

	mu.Lock()
	refuse6 = true
	mu.Unlock()
	ctr2 := newNetns(t, "wtc")
	out, err := h.cnitool("add", ctr2.path())
	if err == nil || !strings.Contains(out, "weftd refused the container, so it is not attached (address fd10:244:0:7::3)") {
		t.Fatalf("add with IPv6 refused: %v\n%s", err, out)
	}
	var ops []string
	for _, r := range take() {
		ops = append(ops, r.Op+" "+r.IP.String())
	}
	if !slices.Equal(ops, []string{"add 10.244.7.3", "add fd10:244:0:7::3", "del 10.244.7.3"}) {
		t.Fatalf("requests %v: the accepted IPv4 address must be withdrawn", ops)
	}
	if got := h.allAllocations(t); len(got) != 0 {
		t.Fatalf("allocations after the refused ADD: %v", got)
	}
	if out, err := ctr2.execErr("ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("refused ADD left eth0:\n%s", out)
	}
	if links := h.ns.exec(t, "ip", "-br", "link"); strings.Contains(links, "wv") {
		t.Fatalf("refused ADD left a host veth:\n%s", links)
	}
}

// ipMasq masquerades the container's IPv6 traffic leaving the IPv6
// overlay network (an outside namespace with no route back to
// fd10:244::/56 still answers), as flannel's bridge delegate does, and DEL
// removes the rules of both families.
func TestIPMasqIPv6(t *testing.T) {
	t.Parallel()
	if testTools.iptables == "" {
		t.Fatal("ipMasq needs the iptables command (Debian: apt-get install iptables); it is not on PATH")
	}
	h := newHostWithEnv(t, dualEnv, map[string]any{"ipMasq": true})
	outside := newNetns(t, "wto")
	connect(t, h.ns, outside, "2001:db8:1::1/64", "2001:db8:1::2/64")
	ctr, _ := h.add(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The outside link's own addresses may still be in DAD.
		if _, err := ctr.execErr("ping", "-6", "-c", "1", "-W", "1", "2001:db8:1::2"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			mustPing6(t, ctr, "2001:db8:1::2")
		}
		time.Sleep(200 * time.Millisecond)
	}
	rules := h.ns.exec(t, "ip6tables", "-t", "nat", "-S")
	if !strings.Contains(rules, "-s fd10:244:0:7::2/128") || !strings.Contains(rules, "-d fd10:244::/56") {
		t.Fatalf("ip6tables nat rules do not masquerade fd10:244:0:7::2 outside fd10:244::/56:\n%s", rules)
	}
	if out, err := h.cnitool("del", ctr.path()); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if rules := h.ns.exec(t, cmd, "-t", "nat", "-S"); strings.Contains(rules, "CNI-") {
			t.Fatalf("%s masquerading rules left after DEL:\n%s", cmd, rules)
		}
	}
}
