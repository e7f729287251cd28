package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/weftnet/weft/testbed"
)

// NetworkName is the CNI network name in the conflist the cluster writes.
const NetworkName = "weft"

// Container is a network namespace attached to a node by cnitool and the
// weft plugin.
type Container struct {
	Name string
	NS   *testbed.NS
	IP   netip.Addr
	Node *Node
	// Result is cnitool's raw CNI result.
	Result []byte
}

// CNIConfDir is the node's NETCONFPATH, with a conflist for its subnet file.
func (n *Node) CNIConfDir() (string, error) {
	dir := filepath.Join(n.Dir, "cni")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	conf := map[string]any{
		"cniVersion": "1.1.0",
		"name":       NetworkName,
		"plugins": []any{map[string]any{
			"type":         "weft",
			"subnetFile":   n.SubnetFile,
			"dataDir":      filepath.Join(n.Dir, "ipam"),
			"daemonSocket": n.CNISocket,
		}},
	}
	data, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "10-weft.conflist"), data, 0o644); err != nil {
		return "", err
	}
	return dir, nil
}

// Cnitool finds the cnitool binary (PATH, then GOPATH/bin).
func Cnitool() (string, error) {
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p, nil
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "cnitool")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("cnitool not found on PATH or in GOPATH/bin; run scripts/deps.sh (go install github.com/containernetworking/cni/cnitool)")
}

// CNI runs `cnitool <verb> weft <netns>` inside the node's namespace.
func (n *Node) CNI(ctx context.Context, verb string, ctr *testbed.NS) ([]byte, error) {
	tool, err := Cnitool()
	if err != nil {
		return nil, err
	}
	confDir, err := n.CNIConfDir()
	if err != nil {
		return nil, err
	}
	cmd := n.Host.NS.Command(ctx, "env",
		"CNI_PATH="+n.cluster.opts.Bin,
		"NETCONFPATH="+confDir,
		tool, verb, NetworkName, ctr.Path())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("node %d: cnitool %s %s: %w: %s", n.Index+1, verb, ctr.Name, err, out)
	}
	return out, nil
}

// AddContainer creates a namespace and attaches it with cnitool add.
func (n *Node) AddContainer(ctx context.Context, name string) (*Container, error) {
	ctrNS, err := testbed.NewNS(name)
	if err != nil {
		return nil, err
	}
	out, err := n.CNI(ctx, "add", ctrNS)
	if err != nil {
		ctrNS.Delete()
		return nil, err
	}
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.IPs) == 0 {
		n.CNI(ctx, "del", ctrNS)
		ctrNS.Delete()
		return nil, fmt.Errorf("node %d: cnitool add: unexpected result %q: %v", n.Index+1, out, err)
	}
	p, err := netip.ParsePrefix(res.IPs[0].Address)
	if err != nil {
		n.CNI(ctx, "del", ctrNS)
		ctrNS.Delete()
		return nil, fmt.Errorf("node %d: cnitool add: bad address %q: %w", n.Index+1, res.IPs[0].Address, err)
	}
	return &Container{Name: ctrNS.Name, NS: ctrNS, IP: p.Addr(), Node: n, Result: out}, nil
}

// Remove detaches the container with cnitool del and deletes its namespace.
func (c *Container) Remove(ctx context.Context) error {
	_, err := c.Node.CNI(ctx, "del", c.NS)
	if derr := c.NS.Delete(); err == nil {
		err = derr
	}
	return err
}

// Ping sends count pings from the container to dst and returns the output.
func (c *Container) Ping(ctx context.Context, dst netip.Addr, count int) (string, error) {
	return c.NS.Run(ctx, "ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "2", dst.String())
}
