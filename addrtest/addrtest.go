// Package addrtest finds loopback addresses for tests. It imports nothing
// heavier than net, so a pure-logic test that needs "an address where
// nothing listens" does not link a real etcd (subnet/etcdtest does).
package addrtest

import (
	"net"
	"testing"
)

// FreeTCP returns a 127.0.0.1:port that was free a moment ago.
func FreeTCP(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("addrtest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
