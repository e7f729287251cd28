//go:build !unit

package main

import (
	"testing"

	"github.com/weftnet/weft/subnet/etcdtest"
)

// weftctl works with an etcd user whose role covers only weft's prefix
// (docs/reliability.md recommends one): its reachability check reads a key
// outside the prefix and must take "permission denied" as an answer.
func TestPrefixOnlyEtcdRole(t *testing.T) {
	srv := etcdtest.Start(t)
	etcdtest.EnableAuth(t, srv.Client(t), "/weft/network/", "weft-admin", "admin-secret")
	args := []string{"--etcd-endpoints=" + srv.Endpoints()[0], "--etcd-username=weft-admin", "--etcd-password=admin-secret"}
	if code, _, stderr := weftctl(t, append(args, "config", "set", `{"Network":"10.244.0.0/16"}`)...); code != 0 {
		t.Fatalf("config set with a prefix-only role: code %d, stderr %q", code, stderr)
	}
	if code, stdout, stderr := weftctl(t, append(args, "leases")...); code != 0 {
		t.Fatalf("leases with a prefix-only role: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, _, _ := weftctl(t, "--etcd-endpoints="+srv.Endpoints()[0], "--etcd-username=weft-admin", "--etcd-password=wrong", "leases"); code == 0 {
		t.Fatal("a wrong password worked: auth is not on")
	}
}
