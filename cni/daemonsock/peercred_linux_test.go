//go:build !unit

package daemonsock_test

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/cni/daemonsock"
)

// peerClientEnv makes the test binary a one-shot client (see TestPeerClient).
const peerClientEnv = "DAEMONSOCK_PEER_CLIENT"

// TestMain makes the test binary a one-shot client when peerClientEnv names
// a socket (TestOtherUserRefused runs it so, as another user): it sends one
// request, prints the outcome and exits without running the tests.
func TestMain(m *testing.M) {
	if path := os.Getenv(peerClientEnv); path != "" {
		peerClient(path)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func peerClient(path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := daemonsock.Send(ctx, path, daemonsock.Request{Op: daemonsock.OpDel, ContainerID: "c1", IfName: "eth0", Network: "weft", DataDir: "/d"})
	var refused *daemonsock.RefusedError
	switch {
	case err == nil:
		os.Stdout.WriteString("PEER-ACCEPTED\n")
	case errors.As(err, &refused):
		os.Stdout.WriteString("PEER-REFUSED: " + refused.Msg + "\n")
	default:
		os.Stdout.WriteString("PEER-ERROR: " + err.Error() + "\n")
	}
}

// A process of another user is refused even when the socket file lets it
// connect (the moment between creating the socket and restricting it to
// 0600, under a umask of 000); weftd's own user is served.
func TestOtherUserRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root: it runs a client as uid 65534 (make test runs as root)")
	}
	dir, err := os.MkdirTemp("", "daemonsock-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary, where uid 65534 may run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "client")
	copyFile(t, self, client, 0o755)

	path := filepath.Join(dir, "weftd.sock")
	ln, err := daemonsock.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil { // the window the check closes
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan daemonsock.Request, 4)
	done := make(chan error, 1)
	go func() {
		done <- daemonsock.Serve(ctx, ln, 5*time.Second, func(_ context.Context, r daemonsock.Request) error {
			served <- r
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })

	run := func(cred *syscall.Credential) string {
		cmd := exec.Command(client)
		cmd.Env = append(os.Environ(), peerClientEnv+"="+path)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client: %v\n%s", err, out)
		}
		return string(out)
	}
	out := run(&syscall.Credential{Uid: 65534, Gid: 65534})
	if !strings.Contains(out, "PEER-REFUSED") || !strings.Contains(out, "uid 65534") {
		t.Fatalf("uid 65534 was not refused by weftd:\n%s", out)
	}
	select {
	case r := <-served:
		t.Fatalf("a request of uid 65534 reached the handler: %+v", r)
	default:
	}
	if out := run(nil); !strings.Contains(out, "PEER-ACCEPTED") {
		t.Fatalf("root (weftd's own user) was not served:\n%s", out)
	}
	if r := <-served; r.ContainerID != "c1" {
		t.Fatalf("served %+v", r)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
