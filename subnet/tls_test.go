//go:build !unit

package subnet_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/etcdtest"
)

func TestTLSClientCertAuth(t *testing.T) {
	ts := etcdtest.StartTLS(t)
	cli := ts.Client(t)
	m := newManager(t, cli, subnet.Options{})
	cfg := mustConfig(t, `{"Network":"10.244.0.0/16"}`)
	ctx := etcdtest.Context(t, 10*time.Second)
	if created, err := m.EnsureConfig(ctx, cfg); err != nil || !created {
		t.Fatalf("EnsureConfig over TLS: %v, %v", created, err)
	}
	if _, err := m.AcquireLease(ctx, cfg, attrs(1), netip.Prefix{}); err != nil {
		t.Fatalf("AcquireLease over TLS: %v", err)
	}
}

func TestTLSFailures(t *testing.T) {
	t.Parallel()
	ts := etcdtest.StartTLS(t)
	tests := []struct {
		name    string
		opts    subnet.ClientOptions
		wantErr string
	}{
		{"wrong CA", subnet.ClientOptions{Endpoints: ts.Endpoints(), CAFile: ts.WrongCAFile, CertFile: ts.CertFile, KeyFile: ts.KeyFile}, "certificate signed by unknown authority"},
		{"no client certificate", subnet.ClientOptions{Endpoints: ts.Endpoints(), CAFile: ts.CAFile}, "certificate required"},
		{"plain http to a TLS server", subnet.ClientOptions{Endpoints: []string{strings.Replace(ts.Endpoints()[0], "https", "http", 1)}}, "use an https:// endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.DialTimeout = 2 * time.Second
			start := time.Now()
			cli, err := subnet.Connect(context.Background(), tt.opts)
			if err == nil {
				cli.Close()
				t.Fatal("Connect succeeded")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("failure took %s, not bounded by the 2s timeout", d)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not mention %q", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
		})
	}
	// Bad files fail at once with the file named.
	_, err := subnet.NewClient(subnet.ClientOptions{Endpoints: ts.Endpoints(), CAFile: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ca.pem") {
		t.Errorf("missing CA file: err = %v", err)
	}
	_, err = subnet.NewClient(subnet.ClientOptions{Endpoints: ts.Endpoints(), CertFile: ts.CertFile})
	if err == nil {
		t.Errorf("certificate without key accepted")
	}
}
