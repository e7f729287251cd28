//go:build !unit

package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
)

// unreachableEtcd is a TEST-NET address nobody answers on: connections
// neither succeed nor get refused.
const unreachableEtcd = "http://203.0.113.250:2379"

// startLoneWeftd starts weftd with args on the first host of a fresh bed
// (so it runs in a namespace of its own) and returns it with its log path.
func startLoneWeftd(t *testing.T, args ...string) *testbed.Proc {
	t.Helper()
	p, _ := startLoneWeftdOn(t, args...)
	return p
}

// startLoneWeftdOn is startLoneWeftd that also returns weftd's host.
func startLoneWeftdOn(t *testing.T, args ...string) (*testbed.Proc, *testbed.Host) {
	t.Helper()
	bed := testbed.ForTest(t, "wx", 2)
	dir := t.TempDir()
	base := []string{"--healthz-port", "0", "--iface", bed.Hosts[0].Dev,
		"--subnet-file", filepath.Join(dir, "subnet.env"),
		"--cni-socket", filepath.Join(dir, "cni.sock"), "--endpoints-file", filepath.Join(dir, "endpoints.json")}
	p, err := bed.Start(bed.Hosts[0], filepath.Join(dir, "weftd.log"), filepath.Join(binDir, "weftd"), append(base, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p, bed.Hosts[0]
}

// exitStatus waits for p and returns its exit code.
func exitStatus(t *testing.T, p *testbed.Proc, within time.Duration) int {
	t.Helper()
	err := p.Wait(within)
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("weftd did not exit: %v\n%s", err, tailFile(p.LogPath))
	}
	return ee.ExitCode()
}

// waitLog waits until weftd's log contains every one of want, and returns
// the log.
func waitLog(t *testing.T, p *testbed.Proc, within time.Duration, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		data, _ := os.ReadFile(p.LogPath)
		log := string(data)
		missing := ""
		for _, w := range want {
			if !strings.Contains(log, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return log
		}
		if time.Now().After(deadline) {
			t.Fatalf("weftd's log lacks %q after %s:\n%s", missing, within, log)
		}
		if p.Exited() {
			t.Fatalf("weftd exited (%v) before logging %q:\n%s", p.Wait(0), missing, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A configuration that cannot work ends with EX_CONFIG (78), the code
// weftd.service does not restart on, before weftd touches anything.
func TestConfigErrorsExit78(t *testing.T) {
	for name, args := range map[string][]string{
		"bad flag value":     {"--subnet-lease-ttl", "banana"},
		"unknown flag":       {"--no-such-flag"},
		"bad network config": {"--network-config", `{"Network":"10.244.0.0/16"`},
		"bad log level":      {"--log-level", "loud"},
		// Issue 25 item 6: loopback, and a Network holding the underlay.
		"loopback network": {"--network-config", `{"Network":"127.0.0.0/8"}`},
		"network holding the underlay": {"--network-config", `{"Network":"192.0.0.0/16"}`,
			"--embedded-etcd-dir", "ETCDDIR", "--embedded-etcd-listen", "http://127.0.0.1:2379"},
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			etcd := unreachableEtcd
			for i, a := range args {
				if a == "ETCDDIR" {
					args[i], etcd = filepath.Join(t.TempDir(), "etcd"), "http://127.0.0.1:2379"
				}
			}
			p := startLoneWeftd(t, append([]string{"--etcd-endpoints", etcd}, args...)...)
			if code := exitStatus(t, p, 30*time.Second); code != 78 {
				t.Fatalf("exit code %d, want 78 (EX_CONFIG)\n%s", code, tailFile(p.LogPath))
			}
			if log := tailFile(p.LogPath); name == "network holding the underlay" && !strings.Contains(log, "contains this node's PublicIP 192.0.2.1") {
				t.Fatalf("exit 78 for another reason:\n%s", log)
			}
		})
	}
}

// SIGTERM while weftd still waits for etcd (before READY) is a requested
// stop: exit 0, so `systemctl stop` of a starting unit does not leave it
// failed.
func TestSignalBeforeReadyExitsCleanly(t *testing.T) {
	p := startLoneWeftd(t, "--etcd-endpoints", unreachableEtcd)
	waitLog(t, p, 30*time.Second, "level=WARN")
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, p, 30*time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM while starting, want 0\n%s", code, tailFile(p.LogPath))
	}
}
