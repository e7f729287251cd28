package cni

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
)

// A runtime asking for unexpected IPv6 addresses, through each of the
// three ways a static address arrives (runtimeConfig "ips", args.cni
// "ips", CNI_ARGS IP=), on a dual-stack node (fd10:244:0:7::/64, gateway
// ::1): every address a container may not have is refused with an
// invalid-config error and reserves nothing; a usable address is reserved
// once, and a second container asking for it is refused.
func TestStaticIPv6UnexpectedAddresses(t *testing.T) {
	refused := []struct{ ip, want string }{
		{"fd10:244:0:9::5", "not a usable address"},                       // another node's subnet
		{"fd10:244:1::5", "not a usable address"},                         // outside the IPv6 network
		{"fd10:244:0:7::1", "not a usable address"},                       // the node's gateway
		{"fd10:244:0:7::", "not a usable address"},                        // the subnet-router anycast (network address)
		{"fd10:244:0:7:ffff:ffff:ffff:ffff", "not a usable address"},      // the last address
		{"fe80::9", "not a usable address"},                               // link-local
		{"fe80::9%eth0", "is not an IP address"},                          // link-local with a zone
		{"::ffff:10.244.7.5", "IPv4-mapped"},                              // IPv4-mapped
		{"::ffff:fd10:244", "IPv4-mapped"},                                // ::ffff:253.16.2.68
		{"::a0a:705", "not a usable address"},                             // IPv4-compatible ::10.10.7.5
		{"::", "not a usable address"},                                    // unspecified
		{"::1", "not a usable address"},                                   // loopback
		{"ff02::1", "not a usable address"},                               // all-nodes multicast
		{"fd10:244:0:7::9/56", "this node's subnet is fd10:244:0:7::/64"}, // another length
		{"fd10:244:0:7::9/129", "is not an IP address"},
		{"fd10:244:0:7::9 fd10:244:0:7::8", "is not an IP address"},
	}
	sources := []struct {
		name string
		conf func(ip string) string
		args func(ip string) string
	}{
		{"runtimeConfig", func(ip string) string { return `,"runtimeConfig":{"ips":["` + ip + `"]}` }, func(string) string { return "" }},
		{"args.cni", func(ip string) string { return `,"args":{"cni":{"ips":["` + ip + `"]}}` }, func(string) string { return "" }},
		{"CNI_ARGS IP", func(string) string { return "" }, func(ip string) string { return "IP=" + ip }},
	}
	pool6, err := NewPool(dualEnv.IPv6Subnet)
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenLockedStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, src := range sources {
		for _, tc := range refused {
			if src.name == "CNI_ARGS IP" && strings.Contains(tc.ip, " ") {
				continue // CNI_ARGS has no JSON string to carry a space through
			}
			att := Attachment{ContainerID: "c-" + src.name + "-" + tc.ip, IfName: "eth0"}
			err := func() error {
				req, err := requestedAddress(mustConf(t, src.conf(tc.ip)), src.args(tc.ip))
				if err != nil {
					return err
				}
				if err := req.checkSubnets(dualEnv); err != nil {
					return err
				}
				if !req.IP6.IsValid() {
					t.Fatalf("%s %q: no IPv6 request and no error", src.name, tc.ip)
				}
				_, err = allocateFor(store, att, pool6, req.static(pool6))
				return err
			}()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %q: %v, want an error with %q", src.name, tc.ip, err, tc.want)
				continue
			}
			if cerr := (*types.Error)(nil); !errors.As(err, &cerr) || cerr.Code != types.ErrInvalidNetworkConfig {
				t.Errorf("%s %q: %v is not an invalid-config error", src.name, tc.ip, err)
			}
			if held, err := store.Lookup(att); err != nil || len(held) != 0 {
				t.Errorf("%s %q: refused but holds %v (%v)", src.name, tc.ip, held, err)
			}
		}
	}
	all, err := store.List()
	if err != nil || len(all) != 0 {
		t.Fatalf("the store after the refused requests: %v %v", all, err)
	}

	// A usable address, then another container asking for it.
	good := netip.MustParseAddr("fd10:244:0:7::9")
	req, err := requestedAddress(mustConf(t, `,"runtimeConfig":{"ips":["fd10:244:0:7::9/64"]}`), "")
	if err != nil || req.checkSubnets(dualEnv) != nil {
		t.Fatalf("usable static IPv6: %+v %v", req, err)
	}
	first := Attachment{ContainerID: "first", IfName: "eth0"}
	if got, err := allocateFor(store, first, pool6, req.static(pool6)); err != nil || got != good {
		t.Fatalf("usable static IPv6: %v %v", got, err)
	}
	req2, err := requestedAddress(mustConf(t, ""), "IP="+good.String())
	if err != nil {
		t.Fatal(err)
	}
	second := Attachment{ContainerID: "second", IfName: "eth0"}
	if _, err := allocateFor(store, second, pool6, req2.static(pool6)); err == nil || !strings.Contains(err.Error(), "held by container first") {
		t.Fatalf("a second container asking for the first one's IPv6 address: %v", err)
	}
	if held, _ := store.Lookup(second); len(held) != 0 {
		t.Fatalf("the refused second container holds %v", held)
	}
	if held, _ := store.Lookup(first); len(held) != 1 || held[0] != good {
		t.Fatalf("the first container holds %v after the second's attempt", held)
	}
}
