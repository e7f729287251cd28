// Package cluster runs weft on a testbed: weftd on every host (the first
// with the embedded etcd), readiness through a real NOTIFY_SOCKET, and
// containers attached with the real cnitool and the weft CNI plugin. The
// demo, the e2e tests and the benchmark share it.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/testbed"
)

// DefaultNetworkConfig is the flannel-schema config the first node stores.
const DefaultNetworkConfig = `{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"udp","Port":8285}}`

// HealthzPort is where every node serves /healthz, /readyz, /metrics and
// /status (on 127.0.0.1 inside its own namespace).
const HealthzPort = 8286

// Options configure a cluster.
type Options struct {
	// Bin is the directory holding weftd, weftctl and the plugin weft
	// (weftd alone with DaemonOnly).
	Bin string
	// DaemonOnly: only weftd runs, no container is attached (the
	// benchmark's paths between the nodes' own addresses): weftctl and the
	// plugin weft need not be built, and CNI fails with a clear error.
	DaemonOnly bool
	// WorkDir holds each node's data, logs and subnet file.
	WorkDir string
	// NetworkConfig is stored in etcd by the first node (default DefaultNetworkConfig).
	NetworkConfig string
	// LeaseTTL is passed as --subnet-lease-ttl when set.
	LeaseTTL time.Duration
	// Queues is passed as --queues when set (TUN queues, UDP sockets and
	// forwarding workers per node).
	Queues int
	// ExtraArgs are appended to every weftd command line.
	ExtraArgs []string
	// EtcdEndpoint overrides the etcd all nodes use; when empty the first
	// node runs the embedded etcd on its underlay address.
	EtcdEndpoint string
	// FlannelSubnetFile makes every node also write its subnet in
	// flannel's format (--flannel-subnet-file Node.FlannelSubnetFile).
	FlannelSubnetFile bool
}

// Cluster is weft running on the hosts of a testbed.
type Cluster struct {
	Bed   *testbed.Bed
	Nodes []*Node
	opts  Options
}

// Node is one host running weftd.
type Node struct {
	Index      int
	Host       *testbed.Host
	Dir        string
	SubnetFile string
	LogPath    string
	// CNISocket is where this node's weftd takes the plugin's requests
	// (--cni-socket, the conflist's daemonSocket).
	CNISocket string
	// EndpointsFile is weftd's --endpoints-file.
	EndpointsFile string
	proc          *testbed.Proc
	notify        *notifySocket
	cluster       *Cluster

	// FlannelSubnetFile is where weftd writes flannel's subnet.env when
	// Options.FlannelSubnetFile is set.
	FlannelSubnetFile string
	// StateDir is weftd's --state-dir (the wireguard backend's key).
	StateDir string
	// WireGuardName names the wireguard backend's UAPI socket
	// (--wireguard-uapi-name; `wg show WireGuardName`): unique, as all
	// namespaces share /var/run/wireguard.
	WireGuardName string
}

// requiredBins are the files a cluster with opts runs from opts.Bin.
func requiredBins(opts Options) []string {
	if opts.DaemonOnly {
		return []string{"weftd"}
	}
	return []string{"weftd", "weftctl", "weft"}
}

// New prepares a cluster on bed without starting anything.
func New(bed *testbed.Bed, opts Options) (*Cluster, error) {
	if opts.Bin == "" || opts.WorkDir == "" {
		return nil, errors.New("cluster: Bin and WorkDir are required")
	}
	if opts.NetworkConfig == "" {
		opts.NetworkConfig = DefaultNetworkConfig
	}
	for _, name := range requiredBins(opts) {
		if _, err := os.Stat(filepath.Join(opts.Bin, name)); err != nil {
			return nil, fmt.Errorf("cluster: %s not built (run make build): %w", name, err)
		}
	}
	c := &Cluster{Bed: bed, opts: opts}
	for i, h := range bed.Hosts {
		dir := filepath.Join(opts.WorkDir, fmt.Sprintf("node%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		c.Nodes = append(c.Nodes, &Node{
			Index:         i,
			Host:          h,
			Dir:           dir,
			SubnetFile:    filepath.Join(dir, "subnet.env"),
			LogPath:       filepath.Join(dir, "weftd.log"),
			CNISocket:     filepath.Join(dir, "cni.sock"),
			EndpointsFile: filepath.Join(dir, "endpoints.json"),
			cluster:       c,

			FlannelSubnetFile: filepath.Join(dir, "flannel", "subnet.env"),
			StateDir:          filepath.Join(dir, "state"),
		})
		var r [4]byte
		if _, err := rand.Read(r[:]); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		c.Nodes[i].WireGuardName = "wgt" + hex.EncodeToString(r[:])
		if n := c.Nodes[i]; len(n.CNISocket) > maxSocketPath {
			return nil, fmt.Errorf("cluster: socket path %s longer than %d bytes; use a shorter WorkDir", n.CNISocket, maxSocketPath)
		}
	}
	return c, nil
}

// maxSocketPath is the longest unix socket path the kernel takes.
const maxSocketPath = 107

// EtcdEndpoint is the etcd URL every node uses.
func (c *Cluster) EtcdEndpoint() string {
	if c.opts.EtcdEndpoint != "" {
		return c.opts.EtcdEndpoint
	}
	h := c.Bed.Hosts[0]
	if !h.IP.IsValid() {
		return "http://[" + h.IPv6.String() + "]:2379" // an IPv6-only underlay
	}
	return "http://" + h.IP.String() + ":2379"
}

// Start starts weftd on every node and waits until each is ready.
func (c *Cluster) Start(ctx context.Context) error {
	for _, n := range c.Nodes {
		if err := n.Start(); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		if err := n.WaitReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Args is the weftd command line of this node.
func (n *Node) Args() []string {
	c := n.cluster
	args := []string{
		"--etcd-endpoints", c.EtcdEndpoint(),
		"--iface", n.Host.Dev,
	}
	if n.Host.IP.IsValid() {
		args = append(args, "--public-ip", n.Host.IP.String())
	}
	if n.Host.IPv6.IsValid() {
		args = append(args, "--public-ipv6", n.Host.IPv6.String())
	}
	args = append(args,
		"--subnet-file", n.SubnetFile,
		"--cni-socket", n.CNISocket,
		"--endpoints-file", n.EndpointsFile,
		"--healthz-ip", "127.0.0.1",
		"--healthz-port", strconv.Itoa(HealthzPort),
		"--state-dir", n.StateDir,
		"--wireguard-uapi-name", n.WireGuardName,
	)
	if n.Index == 0 && c.opts.EtcdEndpoint == "" {
		args = append(args,
			"--embedded-etcd-dir", filepath.Join(n.Dir, "etcd"),
			"--embedded-etcd-listen", c.EtcdEndpoint(),
			"--network-config", c.opts.NetworkConfig,
		)
	}
	if c.opts.LeaseTTL > 0 {
		args = append(args, "--subnet-lease-ttl", c.opts.LeaseTTL.String())
	}
	if c.opts.FlannelSubnetFile {
		args = append(args, "--flannel-subnet-file", n.FlannelSubnetFile)
	}
	if c.opts.Queues > 0 {
		args = append(args, "--queues", strconv.Itoa(c.opts.Queues))
	}
	return append(args, c.opts.ExtraArgs...)
}

// Start launches weftd on this node with a fresh notify socket.
func (n *Node) Start() error {
	if n.proc != nil {
		return fmt.Errorf("node %d: weftd already running", n.Index+1)
	}
	started := time.Now()
	ns, err := newNotifySocket(func() error {
		fi, err := os.Stat(n.SubnetFile)
		if err != nil {
			return fmt.Errorf("READY=1 before the subnet file exists: %w", err)
		}
		if fi.ModTime().Before(started.Add(-time.Second)) {
			return fmt.Errorf("READY=1 while the subnet file is from an earlier run (%s)", fi.ModTime())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node %d: %w", n.Index+1, err)
	}
	args := append([]string{"NOTIFY_SOCKET=" + ns.path, filepath.Join(n.cluster.opts.Bin, "weftd")}, n.Args()...)
	proc, err := n.cluster.Bed.Start(n.Host, n.LogPath, "env", args...)
	if err != nil {
		ns.close()
		return fmt.Errorf("node %d: start weftd: %w", n.Index+1, err)
	}
	n.proc, n.notify = proc, ns
	return nil
}

// WaitReady waits for READY=1 on the node's notify socket.
func (n *Node) WaitReady(ctx context.Context) error {
	if n.notify == nil {
		return fmt.Errorf("node %d: not started", n.Index+1)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := n.notify.waitReady(ctx); err != nil {
		return fmt.Errorf("node %d: weftd not ready: %w; log %s:\n%s", n.Index+1, err, n.LogPath, tail(n.LogPath, 30))
	}
	return nil
}

// Notifications are the sd_notify messages weftd sent since its start.
func (n *Node) Notifications() []string {
	if n.notify == nil {
		return nil
	}
	return n.notify.messages()
}

// ReadyCheck tells what was true when READY=1 arrived: nil when the
// subnet file had been written by this run of weftd.
func (n *Node) ReadyCheck() error {
	if n.notify == nil {
		return fmt.Errorf("node %d: not started", n.Index+1)
	}
	return n.notify.readyCheck()
}

// ReadyAt is when READY=1 arrived (zero if not yet).
func (n *Node) ReadyAt() time.Time {
	if n.notify == nil {
		return time.Time{}
	}
	return n.notify.readyAt()
}

// Stop sends sig to weftd and waits for it to exit (SIGKILL after timeout).
func (n *Node) Stop(sig os.Signal, timeout time.Duration) error {
	if n.proc == nil {
		return nil
	}
	p := n.proc
	n.proc = nil
	defer func() {
		n.notify.close()
		n.notify = nil
	}()
	if err := p.Signal(sig); err != nil {
		p.Kill()
		return fmt.Errorf("node %d: signal weftd: %w", n.Index+1, err)
	}
	err := p.Wait(timeout)
	switch {
	case errors.Is(err, testbed.ErrWaitTimeout):
		p.Kill()
		return fmt.Errorf("node %d: weftd did not exit after %v: %w", n.Index+1, sig, err)
	case err != nil && sig != syscall.SIGKILL:
		// SIGKILL ends it with "signal: killed"; anything else should
		// make weftd stop cleanly.
		return fmt.Errorf("node %d: weftd exited badly after %v: %w", n.Index+1, sig, err)
	}
	return nil
}

// WaitExit waits up to timeout for weftd to exit on its own (a test that
// expects the daemon to give up uses it). It returns weftd's exit error
// (nil for status 0); once weftd has exited the node counts as stopped,
// so Start may run it again and Close skips it.
func (n *Node) WaitExit(timeout time.Duration) error {
	if n.proc == nil {
		return fmt.Errorf("node %d: weftd not running", n.Index+1)
	}
	err := n.proc.Wait(timeout)
	if errors.Is(err, testbed.ErrWaitTimeout) {
		return fmt.Errorf("node %d: %w", n.Index+1, err)
	}
	n.proc = nil
	n.notify.close()
	n.notify = nil
	return err
}

// Subnet reads the node's subnet file.
func (n *Node) Subnet() (subnetfile.Env, error) { return subnetfile.Read(n.SubnetFile) }

// TunAddr is the node's own overlay address (its subnet's network address,
// on weft0).
func (n *Node) TunAddr() (netip.Addr, error) {
	env, err := n.Subnet()
	if err != nil {
		return netip.Addr{}, err
	}
	return env.Subnet.Masked().Addr(), nil
}

// Pid is the process id of the node's running weftd, 0 when it is not running.
func (n *Node) Pid() int {
	if n.proc == nil || n.proc.Exited() {
		return 0
	}
	return n.proc.Pid
}

// Log returns the last lines of the node's weftd log.
func (n *Node) Log(lines int) string { return tail(n.LogPath, lines) }

// Close stops every node (SIGTERM, then SIGKILL).
func (c *Cluster) Close() error {
	var errs []error
	for _, n := range c.Nodes {
		if err := n.Stop(os.Interrupt, 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func tail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	end := len(data)
	for i := len(data) - 1; i >= 0 && lines > 0; i-- {
		if data[i] == '\n' && i != len(data)-1 {
			lines--
			if lines == 0 {
				return string(data[i+1 : end])
			}
		}
	}
	return string(data)
}
