//go:build !unit

package e2e

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
)

// Issue 24 item 5: a host with no default route and no --iface is a
// configuration weftd cannot work with: exit 78 (weftd.service does not
// restart on it) with a message that says what to set, not exit 1 and a
// restart every two seconds forever.
func TestNoDefaultRouteNoIfaceExits78(t *testing.T) {
	bed := testbed.ForTest(t, "wnr", 2)
	dir := t.TempDir()
	p, err := bed.Start(bed.Hosts[0], filepath.Join(dir, "weftd.log"), filepath.Join(binDir, "weftd"),
		"--healthz-port", "0", "--subnet-file", filepath.Join(dir, "subnet.env"),
		"--cni-socket", filepath.Join(dir, "cni.sock"), "--endpoints-file", filepath.Join(dir, "endpoints.json"),
		"--embedded-etcd-dir", filepath.Join(dir, "etcd"), "--network-config", `{"Network":"10.244.0.0/16"}`)
	if err != nil {
		t.Fatal(err)
	}
	if code := exitStatus(t, p, 60*time.Second); code != 78 {
		t.Fatalf("exit code %d, want 78 (EX_CONFIG)\n%s", code, tailFile(p.LogPath))
	}
	if log := tailFile(p.LogPath); !strings.Contains(log, "no default route (IPv4 or IPv6)") || !strings.Contains(log, "set --iface") {
		t.Fatalf("exit 78 without saying what to set:\n%s", log)
	}
	// Issue 24 item 6: the run (it took the lock before it looked for the
	// underlay) leaves no lock file behind.
	fi, err := os.Stat(bed.Hosts[0].NS.Path())
	if err != nil {
		t.Fatal(err)
	}
	lock := fmt.Sprintf("/run/weft/weftd-netns-%d.lock", fi.Sys().(*syscall.Stat_t).Ino)
	if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("weftd left its lock file %s: %v", lock, err)
	}
	if log := tailFile(p.LogPath); !strings.Contains(log, "embedded etcd running") {
		t.Fatalf("weftd stopped before it took its lock:\n%s", log)
	}
}
