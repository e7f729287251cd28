package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/weftnet/weft/addrtest"
)

// weftctl runs the CLI's main logic and returns exit code and output.
func weftctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"config"},
		{"config", "set"},
		{"leases", "-o", "yaml"},
		{"--no-such-flag", "leases"},
	} {
		code, _, stderr := weftctl(t, args...)
		if code == 0 || stderr == "" {
			t.Errorf("weftctl %q: code %d, stderr %q", args, code, stderr)
		}
	}
	// etcd down: a clear error, bounded by the dial timeout.
	code, _, stderr := weftctl(t, "--etcd-endpoints=http://"+addrtest.FreeTCP(t), "--etcd-dial-timeout=1s", "leases")
	if code != 1 || !strings.Contains(stderr, "connection refused") {
		t.Errorf("etcd down: code %d, stderr %q", code, stderr)
	}
}

const sampleStatus = `{"node":{"subnet":"10.244.7.0/24","publicIP":"192.0.2.1","port":8285,"leaseExpiry":"2026-01-02T03:04:05Z"},
 "peers":[{"subnet":"10.244.9.0/24","endpoint":"192.0.2.2:8285","mode":"udp"},{"subnet":"10.244.10.0/24","endpoint":"192.0.2.3","mode":"direct"},{"subnet":"10.244.11.0/24","endpoint":"","mode":"unreachable"}],
 "counters":{"tx_packets":1,"rx_packets":2,"drops":{"unknown_peer":3}}}`

func TestStatus(t *testing.T) {
	daemon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(sampleStatus))
	}))
	defer daemon.Close()

	code, stdout, stderr := weftctl(t, "status", "--daemon-url", daemon.URL)
	if code != 0 {
		t.Fatalf("status: code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"10.244.7.0/24", "192.0.2.1", "8285", "2026-01-02T03:04:05Z",
		"Peers (3)", "SUBNET          MODE         ENDPOINT",
		"10.244.9.0/24   udp          192.0.2.2:8285", "10.244.10.0/24  direct       192.0.2.3", "10.244.11.0/24  unreachable  -", "tx_packets: 1", "rx_packets: 2", "drops.unknown_peer: 3"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, stdout)
		}
	}
	t.Logf("status:\n%s", stdout)
	code, stdout, _ = weftctl(t, "status", "--daemon-url", daemon.URL, "-o", "json")
	if code != 0 || strings.TrimSpace(stdout) != strings.TrimSpace(sampleStatus) {
		t.Errorf("status -o json: code %d, %q", code, stdout)
	}
	code, _, stderr = weftctl(t, "status", "--daemon-url", daemon.URL+"/nope")
	if code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("status 404: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = weftctl(t, "status", "--daemon-url", "http://"+addrtest.FreeTCP(t))
	if code != 1 || !strings.Contains(stderr, "is weftd running") {
		t.Errorf("status, daemon down: code %d, stderr %q", code, stderr)
	}
}

// What weftd serves before it holds a lease (etcd not reachable yet).
const statusBeforeLease = `{"node":{"subnet":"","publicIP":"","port":0,"leaseExpiry":""},"peers":[],"counters":{},
 "readiness":{"status":"not-ready","lease":false,"dataPath":false,"reason":"no subnet lease held"}}`

func TestStatusBeforeLease(t *testing.T) {
	daemon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(statusBeforeLease))
	}))
	defer daemon.Close()
	code, stdout, stderr := weftctl(t, "status", "--daemon-url", daemon.URL)
	if code != 1 || !strings.Contains(stdout, "no lease yet") || !strings.Contains(stderr, "no subnet lease yet") {
		t.Errorf("status before lease: code %d (want 1), stdout %q, stderr %q", code, stdout, stderr)
	}
	if strings.Contains(stdout, "never (reservation)") {
		t.Errorf("a node without a lease shown as holding a reservation:\n%s", stdout)
	}
	code, stdout, _ = weftctl(t, "status", "--daemon-url", daemon.URL, "-o", "json")
	if code != 1 || !strings.Contains(stdout, `"not-ready"`) {
		t.Errorf("status -o json before lease: code %d (want 1), %q", code, stdout)
	}
}

const dualStatus = `{"node":{"subnet":"10.244.7.0/24","ipv6Subnet":"fd10:244:0:7::/64","publicIP":"192.0.2.1","publicIPv6":"2001:db8::1","port":8285,"leaseExpiry":""},
 "peers":[{"subnet":"10.244.9.0/24","ipv6Subnet":"fd10:244:0:9::/64","endpoint":"192.0.2.2:8285","mode":"udp"}],"counters":{},
 "readiness":{"status":"Ready","lease":true,"dataPath":true}}`

func TestStatusDualStack(t *testing.T) {
	daemon := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(dualStatus))
	}))
	defer daemon.Close()
	code, stdout, stderr := weftctl(t, "status", "--daemon-url", daemon.URL)
	if code != 0 {
		t.Fatalf("status: %d %s", code, stderr)
	}
	for _, want := range []string{"IPv6 subnet:  fd10:244:0:7::/64", "public IPv6:  2001:db8::1", "SUBNET         IPV6 SUBNET        MODE  ENDPOINT",
		"10.244.9.0/24  fd10:244:0:9::/64  udp   192.0.2.2:8285"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, stdout)
		}
	}
}
