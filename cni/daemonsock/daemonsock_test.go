package daemonsock_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
)

func TestSendServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "weftd.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := daemonsock.Request{Op: daemonsock.OpAdd, IP: netip.MustParseAddr("10.244.1.2"), Namespace: "x", Pod: "a",
		Labels: map[string]string{"app": "web"}, ContainerID: "c1", IfName: "eth0", Network: "weft", DataDir: "/d"}

	// Nobody listens: ErrUnreachable.
	if err := daemonsock.Send(ctx, path, req); !errors.Is(err, daemonsock.ErrUnreachable) {
		t.Fatalf("without weftd: %v", err)
	}

	ln, err := daemonsock.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	var mu sync.Mutex
	var got []daemonsock.Request
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- daemonsock.Serve(sctx, ln, 5*time.Second, func(_ context.Context, r daemonsock.Request) error {
			mu.Lock()
			got = append(got, r)
			mu.Unlock()
			if r.Namespace == "refuse" {
				return errors.New("namespace refused")
			}
			return nil
		})
	}()
	if _, err := daemonsock.Listen(path); err == nil || !strings.Contains(err.Error(), "another weftd") {
		t.Fatalf("second listener: %v", err)
	}
	if err := daemonsock.Send(ctx, path, req); err != nil {
		t.Fatal(err)
	}
	bad := req
	bad.Namespace = "refuse"
	var refused *daemonsock.RefusedError
	if err := daemonsock.Send(ctx, path, bad); !errors.As(err, &refused) || refused.Msg != "namespace refused" {
		t.Fatalf("refused: %v", err)
	}
	// Invalid requests are refused before sending, and by the server.
	if err := daemonsock.Send(ctx, path, daemonsock.Request{Op: "add", ContainerID: "c", IfName: "e"}); err == nil {
		t.Fatal("add without IP accepted")
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(`{"op":"frob","containerID":"c","ifName":"e"}` + "\n"))
	buf := make([]byte, 200)
	n, _ := conn.Read(buf)
	conn.Close()
	if !strings.Contains(string(buf[:n]), `unknown op \"frob\"`) {
		t.Fatalf("server answer to a bad op: %s", buf[:n])
	}
	mu.Lock()
	if len(got) != 2 || got[0].IP != req.IP || got[0].Labels["app"] != "web" || got[0].DataDir != "/d" {
		t.Fatalf("handler saw %+v", got)
	}
	mu.Unlock()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Listening again after the server stopped works; over a regular file not.
	ln2, err := daemonsock.Listen(path)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	ln2.Close()
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	if _, err := daemonsock.Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("over a file: %v", err)
	}
}

// An ADD carries one address, IPv4 or IPv6 (a dual-stack container is two
// requests); an IPv4-mapped, zoned or missing address is refused.
func TestRequestValidateFamilies(t *testing.T) {
	req := daemonsock.Request{Op: daemonsock.OpAdd, Namespace: "x", ContainerID: "c1", IfName: "eth0"}
	for _, ip := range []string{"10.244.1.2", "fd10:244:0:1::2"} {
		req.IP = netip.MustParseAddr(ip)
		if err := req.Validate(); err != nil {
			t.Errorf("%s: %v", ip, err)
		}
	}
	for _, ip := range []netip.Addr{{}, netip.MustParseAddr("::ffff:10.244.1.2"), netip.MustParseAddr("fe80::1%eth0")} {
		req.IP = ip
		if err := req.Validate(); err == nil || !strings.Contains(err.Error(), "not an IPv4 or IPv6 address") {
			t.Errorf("%v: %v", ip, err)
		}
	}
}
