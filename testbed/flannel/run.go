package flannel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/testbed"
)

// DefaultPrefix is flannel's etcd prefix, which weft shares.
const DefaultPrefix = "/coreos.com/network"

// Options is how a flanneld is started on a testbed host.
type Options struct {
	// Etcd is the etcd endpoint (--etcd-endpoints), reachable from the host.
	Etcd string
	// Prefix is --etcd-prefix (default DefaultPrefix).
	Prefix string
	// SubnetFile is --subnet-file (required: flannel's default
	// /run/flannel/subnet.env is the machine's, shared by every namespace).
	SubnetFile string
	// Extra flags appended to the command line.
	Extra []string
}

// Args is the flanneld command line for host h: etcd as the subnet
// manager (no Kubernetes), the host's underlay device, no masquerading.
func Args(h *testbed.Host, o Options) []string {
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	args := []string{
		"--etcd-endpoints=" + o.Etcd,
		"--etcd-prefix=" + prefix,
		"--iface=" + h.Dev,
		"--public-ip=" + h.IP.String(),
		"--ip-masq=false",
		"--kube-subnet-mgr=false",
		"--subnet-file=" + o.SubnetFile,
	}
	return append(args, o.Extra...)
}

// Start runs flanneld (bin, from Flanneld) on host h of bed b, logging to
// logPath; the bed stops it on Close.
func Start(b *testbed.Bed, h *testbed.Host, bin, logPath string, o Options) (*testbed.Proc, error) {
	if o.Etcd == "" || o.SubnetFile == "" {
		return nil, errors.New("flannel: Etcd and SubnetFile are required")
	}
	if err := os.MkdirAll(filepath.Dir(o.SubnetFile), 0o755); err != nil {
		return nil, fmt.Errorf("flannel: %w", err)
	}
	return b.Start(h, logPath, bin, Args(h, o)...)
}

// WaitSubnetFile waits until flanneld has written its subnet file (after
// it holds its lease and its backend is up) and returns it; it fails early
// when p exits.
func WaitSubnetFile(ctx context.Context, p *testbed.Proc, path string, since time.Time) (subnetfile.Env, error) {
	var env subnetfile.Env
	err := testbed.WaitFor(ctx, 100*time.Millisecond, func() error {
		if p.Exited() {
			return fmt.Errorf("flanneld exited: %v", p.Wait(0))
		}
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		if fi.ModTime().Before(since) {
			return fmt.Errorf("%s is from an earlier run", path)
		}
		env, err = subnetfile.ReadFlannel(path)
		return err
	})
	if err != nil {
		return env, fmt.Errorf("flanneld (log %s): %w", p.LogPath, err)
	}
	return env, nil
}
