//go:build !unit

package subnet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/addrtest"
	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/embedded"
	"github.com/weftnet/weft/subnet/etcdtest"
)

func TestConfigInEtcd(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newManager(t, cli, subnet.Options{Prefix: "/test/net/"})
	ctx := etcdtest.Context(t, 10*time.Second)
	if m.ConfigKey() != "/test/net/config" {
		t.Errorf("ConfigKey = %s", m.ConfigKey())
	}
	_, err := m.GetConfig(ctx)
	if err == nil || !strings.Contains(err.Error(), "no network config at /test/net/config; set one with weftctl config set") {
		t.Fatalf("missing config: err = %v", err)
	}
	a := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	b := mustConfig(t, `{"Network":"10.9.0.0/16"}`)
	if created, err := m.EnsureConfig(ctx, a); err != nil || !created {
		t.Fatalf("EnsureConfig = %v, %v", created, err)
	}
	if created, err := m.EnsureConfig(ctx, b); err != nil || created {
		t.Fatalf("second EnsureConfig = %v, %v; want not created", created, err)
	}
	got, err := m.GetConfig(ctx)
	if err != nil || *got != *a {
		t.Fatalf("GetConfig = %+v, %v", got, err)
	}
	if err := m.SetConfig(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, err := m.GetConfig(ctx); err != nil || *got != *b {
		t.Fatalf("after SetConfig: %+v, %v", got, err)
	}
	bad := *b
	bad.SubnetLen = 40
	if err := m.SetConfig(ctx, &bad); err == nil {
		t.Error("SetConfig wrote an invalid config")
	}
	etcdtest.Put(t, cli, m.ConfigKey(), `{"Network":"10.9.0.0/16","Bogus":1}`)
	if _, err := m.GetConfig(ctx); err == nil || !strings.Contains(err.Error(), "Bogus") {
		t.Errorf("bad stored config: err = %v", err)
	}
	if m.LastContact().IsZero() {
		t.Error("LastContact not set")
	}
}

func TestRoundTrip(t *testing.T) {
	srv := etcdtest.Start(t)
	cli := srv.Client(t)
	m := newManager(t, cli, subnet.Options{Prefix: "/test/net"})
	if err := m.RoundTrip(etcdtest.Context(t, 10*time.Second)); err != nil {
		t.Fatalf("RoundTrip with etcd up (and no config yet): %v", err)
	}
	if m.LastContact().IsZero() {
		t.Error("RoundTrip did not set LastContact")
	}
	before, err := m.Revision(etcdtest.Context(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	etcdtest.Put(t, cli, "/elsewhere", "x")
	if after, err := m.Revision(etcdtest.Context(t, 10*time.Second)); err != nil || after <= before {
		t.Errorf("Revision after a write = %d, %v; want above %d", after, err, before)
	}
	srv.Stop()
	ctx := etcdtest.Context(t, 10*time.Second)
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err = m.RoundTrip(rctx)
	if err == nil || !strings.Contains(err.Error(), "/test/net/config") {
		t.Fatalf("RoundTrip with etcd stopped: err = %v, want an error naming the key", err)
	}
}

func TestEmbeddedDefaultsAndRestart(t *testing.T) {
	dir := t.TempDir()
	url := "http://" + addrtest.FreeTCP(t)
	opts := embedded.Options{Dir: dir, ClientURL: url, Logger: testLogger(t), UnsafeNoFsync: true}
	e, err := embedded.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	cli := etcdtest.NewClient(t, subnet.ClientOptions{Endpoints: e.Endpoints()})
	etcdtest.Put(t, cli, "/k", "v")
	e.Close()
	e, err = embedded.Start(opts)
	if err != nil {
		t.Fatalf("restart on the same dir: %v", err)
	}
	defer e.Close()
	if resp := etcdtest.Get(t, cli, "/k"); len(resp.Kvs) != 1 {
		t.Errorf("data lost across restart")
	}
	if _, err := embedded.Start(embedded.Options{}); err == nil {
		t.Error("StartEmbedded without a dir succeeded")
	}
}
