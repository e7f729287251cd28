//go:build !unit

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/testbed"
)

// The test binary doubles as the traffic tools run inside namespaces:
// `ip netns exec NS <test binary>` with roleEnv set runs one of these roles
// instead of the tests.
const roleEnv = "WEFT_E2E_ROLE"

func runRole(role string, args []string) int {
	var err error
	switch role {
	case "sink":
		err = sink(args)
	case "source":
		err = source(args)
	case "etcd":
		err = etcdRole(args)
	case "udpcount":
		err = udpCount(args)
	case "udpblast":
		err = udpBlast(args)
	case "udpecho":
		err = udpEcho(args)
	case "udpask":
		err = udpAsk(args)
	case "rawsend":
		err = rawSend(args)
	case "rawflood":
		err = rawFlood(args)
	case "arpsend":
		err = arpSend(args)
	case "udpbcast":
		err = udpBroadcast(args)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		return 1
	}
	return 0
}

// sink ADDR: accept one TCP connection, read it to the end, print the
// byte count and SHA-256.
func sink(args []string) error {
	ln, err := net.Listen("tcp", args[0])
	if err != nil {
		return err
	}
	fmt.Println("listening")
	conn, err := ln.Accept()
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(h, conn)
	if err != nil {
		return err
	}
	fmt.Printf("bytes=%d sha256=%s\n", n, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// source ADDR BYTES [RATE [WAIT]]: connect and send BYTES pseudo-random
// bytes, print the byte count and SHA-256. With RATE (bytes per second, 0
// none) the kernel paces the connection (SO_MAX_PACING_RATE: TCP's internal
// pacing); with WAIT (a duration) it sends only that long after connecting.
func source(args []string) error {
	total, err := strconv.ParseInt(args[1], 10, 64)
	if err != nil {
		return err
	}
	var rate int64
	var wait time.Duration
	if len(args) > 2 {
		if rate, err = strconv.ParseInt(args[2], 10, 64); err != nil {
			return err
		}
	}
	if len(args) > 3 {
		if wait, err = time.ParseDuration(args[3]); err != nil {
			return err
		}
	}
	var conn net.Conn
	for i := 0; i < 50; i++ {
		conn, err = net.DialTimeout("tcp", args[0], 2*time.Second)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if rate > 0 {
		if err := setPacingRate(conn.(*net.TCPConn), rate); err != nil {
			return err
		}
	}
	time.Sleep(wait)
	rng := rand.NewChaCha8([32]byte{'w', 'e', 'f', 't'})
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var sent int64
	for sent < total {
		chunk := buf[:min(int64(len(buf)), total-sent)]
		rng.Read(chunk)
		h.Write(chunk)
		if _, err := conn.Write(chunk); err != nil {
			return err
		}
		sent += int64(len(chunk))
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	io.Copy(io.Discard, conn)
	conn.Close()
	fmt.Printf("bytes=%d sha256=%s\n", sent, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// floodArgs parses "DST COUNT HEXPAYLOAD..." of the flood roles.
func floodArgs(args []string) (count int, payloads [][]byte, err error) {
	if len(args) < 3 {
		return 0, nil, fmt.Errorf("usage: DST COUNT HEXPAYLOAD..., got %q", args)
	}
	if count, err = strconv.Atoi(args[1]); err != nil {
		return 0, nil, err
	}
	for _, a := range args[2:] {
		p, err := hex.DecodeString(a)
		if err != nil {
			return 0, nil, err
		}
		payloads = append(payloads, p)
	}
	return count, payloads, nil
}

// transfer sends size bytes over TCP from srcNS to dst:port and checks that
// the same bytes arrived.
func transfer(t *testing.T, srcNS, dstNS *testbed.NS, dst string, size int64) {
	t.Helper()
	transferPaced(t, srcNS, dstNS, dst, size, 0, 0)
}

// transferPaced is transfer with the sender paced at rate bytes per second
// (0: as fast as it goes), sending only wait after it connected.
func transferPaced(t *testing.T, srcNS, dstNS *testbed.NS, dst string, size, rate int64, wait time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort(dst, "5201")
	sinkCmd := dstNS.Command(ctx, "env", roleEnv+"=sink", self, addr)
	stdout, err := sinkCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	sinkCmd.Stderr = os.Stderr
	if err := sinkCmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer sinkCmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("sink did not start: %q", lines.Text())
	}
	out, err := srcNS.Run(ctx, "env", roleEnv+"=source", self, addr, strconv.FormatInt(size, 10), strconv.FormatInt(rate, 10), wait.String())
	if err != nil {
		t.Fatalf("source: %v", err)
	}
	if !lines.Scan() {
		t.Fatalf("sink printed nothing: %v", lines.Err())
	}
	got := lines.Text()
	sinkCmd.Wait()
	want := strings.TrimSpace(out)
	if got != want {
		t.Fatalf("transfer corrupted: sent %s, received %s", want, got)
	}
	if !strings.HasPrefix(want, fmt.Sprintf("bytes=%d ", size)) {
		t.Fatalf("sent %s, want %d bytes", want, size)
	}
	t.Logf("transfer %s -> %s: %s", srcNS.Name, dst, got)
}

// runIn runs a command in ns and fails the test on error.
func runIn(t *testing.T, ctx context.Context, ns *testbed.NS, name string, args ...string) string {
	t.Helper()
	out, err := ns.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), ns.Name, err, out)
	}
	return out
}

// setPacingRate caps conn's sending rate in the kernel (SO_MAX_PACING_RATE).
func setPacingRate(conn *net.TCPConn, rate int64) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, uint64(rate))
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("SO_MAX_PACING_RATE %d: %w", rate, serr)
	}
	return nil
}
