//go:build !unit

package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/weftnet/weft/subnet/etcdtest"
)

// Issue 21: config set/get with IPv6, a note when IPv6 is turned on or
// off, clear errors for IPv6 fields that do not fit, leases with both
// subnets.
func TestDualStackConfigAndLeases(t *testing.T) {
	srv := etcdtest.Start(t)
	ep := "--etcd-endpoints=" + srv.Endpoints()[0]
	if code, _, stderr := weftctl(t, ep, "config", "set", `{"Network":"10.244.0.0/16"}`); code != 0 {
		t.Fatal(stderr)
	}
	const dual = `{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"Backend":{"Type":"udp"}}`
	code, stdout, stderr := weftctl(t, ep, "config", "set", dual)
	if code != 0 || !strings.Contains(stdout, "IPv6 turned on: each weftd keeps its IPv4 subnet and adds an IPv6 one when it restarts") {
		t.Fatalf("config set dual: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = weftctl(t, ep, "config", "get")
	want := `{"EnableIPv6":true,"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","IPv6Network":"fd10:244::/56","IPv6SubnetLen":64,"IPv6SubnetMin":"fd10:244:0:1::","IPv6SubnetMax":"fd10:244:0:ff::","Backend":{"Type":"udp","Port":8285}}` + "\n"
	if code != 0 || stdout != want {
		t.Fatalf("config get: %d %q", code, stdout)
	}
	for cfg, msg := range map[string]string{
		`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":48}`:  "IPv6SubnetLen 48 does not fit IPv6Network fd10:244::/56: it must hold at least four subnets (IPv6SubnetLen >= 58)",
		`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd10:244::/56","IPv6SubnetLen":130}`: "IPv6SubnetLen 130: must be /126 or shorter",
		`{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fe80::/64"}`:                         "overlaps link-local",
		`{"Network":"10.244.0.0/16","IPv6Network":"fd10:244::/56"}`:                                       `need "EnableIPv6": true`,
	} {
		code, _, stderr := weftctl(t, ep, "config", "set", cfg)
		if code == 0 || !strings.Contains(stderr, msg) {
			t.Errorf("config set %s: code %d, stderr %q (want %q)", cfg, code, stderr, msg)
		}
	}
	if _, stdout, _ = weftctl(t, ep, "config", "get"); stdout != want {
		t.Errorf("a refused config changed the stored one: %s", stdout)
	}

	cli := srv.Client(t)
	for k, v := range map[string]string{
		"/weft/network/subnets/10.244.5.0-24&fd10:244:0:5::-64": `{"PublicIP":"192.0.2.5","PublicIPv6":"2001:db8::5","BackendType":"udp","BackendData":{"Port":8285}}`,
		"/weft/network/subnets/10.244.6.0-24":                   `{"PublicIP":"192.0.2.6","BackendType":"udp","BackendData":{"Port":8285}}`,
	} {
		if _, err := cli.Put(t.Context(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, _ = weftctl(t, ep, "leases")
	if code != 0 || !strings.Contains(stdout, "IPV6 SUBNET") || !strings.Contains(stdout, "fd10:244:0:5::/64") || !strings.Contains(stdout, "2001:db8::5") {
		t.Fatalf("leases:\n%s", stdout)
	}
	t.Logf("leases:\n%s", stdout)
	code, stdout, _ = weftctl(t, ep, "leases", "-o", "json")
	var rows []leaseJSON
	if err := json.Unmarshal([]byte(stdout), &rows); code != 0 || err != nil || len(rows) != 2 {
		t.Fatalf("leases -o json: %d %v %s", code, err, stdout)
	}
	if rows[0].IPv6Subnet != "fd10:244:0:5::/64" || rows[0].PublicIPv6 != "2001:db8::5" || rows[1].IPv6Subnet != "" {
		t.Errorf("rows %+v", rows)
	}
	if code, stdout, _ = weftctl(t, ep, "config", "set", `{"Network":"10.244.0.0/16"}`); code != 0 || !strings.Contains(stdout, "IPv6 turned off") {
		t.Errorf("config set IPv4 again: %q", stdout)
	}
}
