//go:build !unit

package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/subnet/etcdtest"
)

func TestConfigRoundTripAndLeases(t *testing.T) {
	srv := etcdtest.Start(t)
	ep := "--etcd-endpoints=" + srv.Endpoints()[0]

	code, _, stderr := weftctl(t, ep, "config", "get")
	if code != 1 || !strings.Contains(stderr, "no network config at /weft/network/config") {
		t.Fatalf("config get before set: code %d, stderr %q", code, stderr)
	}
	code, stdout, stderr := weftctl(t, ep, "config", "set", `{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":9000}}`)
	if code != 0 || !strings.Contains(stdout, "wrote /weft/network/config: ") || !strings.Contains(stdout, "restart weftd on every host") {
		t.Fatalf("config set: code %d, stdout %q, stderr %q (want the key written and that weftd needs a restart)", code, stdout, stderr)
	}
	code, stdout, stderr = weftctl(t, "config", "get", ep) // flags after the command work too
	want := `{"Network":"10.244.0.0/16","SubnetLen":24,"SubnetMin":"10.244.1.0","SubnetMax":"10.244.255.0","Backend":{"Type":"udp","Port":9000}}` + "\n"
	if code != 0 || stdout != want {
		t.Fatalf("config get: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// Bad configs are rejected before anything is written, naming the field.
	for cfg, field := range map[string]string{
		`{"Network":"10.244.0.0/16","Bogus":1}`:                 `"Bogus"`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":"ipip"}}`: "Backend.Type",
		`{"Network":"10.244.0.0/16","EnableIPv6":true}`:         "EnableIPv6",
		`{"Network":`: "malformed JSON",
		// Issue 25 item 6: networks no container can use.
		`{"Network":"127.0.0.0/8"}`:    "overlaps loopback",
		`{"Network":"169.254.0.0/16"}`: "overlaps link-local",
		`{"Network":"224.0.0.0/8"}`:    "overlaps multicast",
		`{"Network":"240.0.0.0/8"}`:    "overlaps reserved",
		`{"Network":"0.0.0.0/8"}`:      `overlaps "this network"`,
	} {
		code, _, stderr := weftctl(t, ep, "config", "set", cfg)
		if code == 0 || !strings.Contains(stderr, field) {
			t.Errorf("config set %s: code %d, stderr %q (want %s named)", cfg, code, stderr, field)
		}
	}
	if _, stdout, _ := weftctl(t, ep, "config", "get"); stdout != want {
		t.Errorf("a rejected config changed the stored one: %s", stdout)
	}

	// Leases: one with a TTL, one reservation.
	cli := srv.Client(t)
	ctx := context.Background()
	grant, err := cli.Grant(ctx, 3600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/weft/network/subnets/10.244.7.0-24", `{"PublicIP":"192.0.2.7","BackendType":"udp","BackendData":{"Port":8285}}`, clientv3.WithLease(grant.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/weft/network/subnets/10.244.9.0-24", `{"PublicIP":"192.0.2.9","BackendType":"udp","BackendData":{"Port":9000}}`); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = weftctl(t, ep, "leases")
	if code != 0 {
		t.Fatalf("leases: code %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SUBNET") ||
		!strings.Contains(lines[1], "10.244.7.0/24") || !strings.Contains(lines[1], "192.0.2.7") || !strings.Contains(lines[1], "8285") || !strings.HasSuffix(lines[1], "no") ||
		!strings.Contains(lines[2], "10.244.9.0/24") || !strings.Contains(lines[2], "never") || !strings.HasSuffix(lines[2], "yes") {
		t.Fatalf("leases table:\n%s", stdout)
	}
	t.Logf("leases table:\n%s", stdout)

	code, stdout, _ = weftctl(t, ep, "leases", "-o", "json")
	var rows []leaseJSON
	if err := json.Unmarshal([]byte(stdout), &rows); code != 0 || err != nil {
		t.Fatalf("leases -o json: code %d, %v: %s", code, err, stdout)
	}
	if len(rows) != 2 || rows[0].Subnet != "10.244.7.0/24" || rows[0].Port != 8285 || rows[0].Expiration == "" || rows[0].Reservation ||
		rows[1].Subnet != "10.244.9.0/24" || !rows[1].Reservation || rows[1].Expiration != "" {
		t.Errorf("leases json: %+v", rows)
	}

	// Environment variables set flags, WEFTCTL_<FLAG>.
	t.Setenv("WEFTCTL_ETCD_ENDPOINTS", srv.Endpoints()[0])
	t.Setenv("WEFTCTL_ETCD_PREFIX", "/other")
	code, _, stderr = weftctl(t, "config", "get")
	if code != 1 || !strings.Contains(stderr, "no network config at /other/config") {
		t.Errorf("env flags: code %d, stderr %q", code, stderr)
	}
}
