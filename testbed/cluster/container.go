package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	// IP is its first IPv4 address (its first address in an IPv6-only
	// network), IPv6 its first IPv6 one (invalid when it has none).
	IP   netip.Addr
	IPv6 netip.Addr
	Node *Node
	// Result is cnitool's raw CNI result.
	Result []byte
	// Workload is the identity it was attached with.
	Workload Workload
	confDir  string
}

// CNIConfDir is the node's NETCONFPATH, with a conflist for its subnet file.
func (n *Node) CNIConfDir() (string, error) {
	return n.writeConflist(filepath.Join(n.Dir, "cni"), nil)
}

// writeConflist writes the node's conflist into dir, with labels in
// args.cni.labels (the CNI conventions) when there are any.
func (n *Node) writeConflist(dir string, labels map[string]string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	plugin := map[string]any{
		"type":         "weft",
		"subnetFile":   n.SubnetFile,
		"dataDir":      filepath.Join(n.Dir, "ipam"),
		"daemonSocket": n.CNISocket,
	}
	if len(labels) > 0 {
		keys := slices.Sorted(maps.Keys(labels))
		list := make([]any, 0, len(keys))
		for _, k := range keys {
			list = append(list, map[string]string{"key": k, "value": labels[k]})
		}
		plugin["args"] = map[string]any{"cni": map[string]any{"labels": list}}
	}
	conf := map[string]any{
		"cniVersion": "1.1.0",
		"name":       NetworkName,
		"plugins":    []any{plugin},
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
	confDir, err := n.CNIConfDir()
	if err != nil {
		return nil, err
	}
	return n.cnitool(ctx, verb, ctr, confDir, "")
}

// cnitool runs cnitool with NETCONFPATH=confDir and CNI_ARGS=cniArgs.
func (n *Node) cnitool(ctx context.Context, verb string, ctr *testbed.NS, confDir, cniArgs string) ([]byte, error) {
	if n.cluster.opts.DaemonOnly {
		return nil, fmt.Errorf("node %d: cnitool %s: the cluster runs weftd only (Options.DaemonOnly), without the plugin weft", n.Index+1, verb)
	}
	tool, err := Cnitool()
	if err != nil {
		return nil, err
	}
	cmd := n.Host.NS.Command(ctx, "env",
		"CNI_PATH="+n.cluster.opts.Bin,
		"NETCONFPATH="+confDir,
		"CNI_ARGS="+cniArgs,
		tool, verb, NetworkName, ctr.Path())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("node %d: cnitool %s %s: %w: %s", n.Index+1, verb, ctr.Name, err, out)
	}
	return out, nil
}

// Workload is a container's identity for network policy: Namespace and
// Pod go to the plugin in CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME), as a
// Kubernetes runtime passes them; Labels in the network config's
// args.cni.labels. The zero value is a container in the plugin's default
// namespace without labels.
type Workload struct {
	Namespace string
	Pod       string
	Labels    map[string]string
}

func (w Workload) cniArgs() string {
	var args []string
	if w.Namespace != "" {
		args = append(args, "K8S_POD_NAMESPACE="+w.Namespace)
	}
	if w.Pod != "" {
		args = append(args, "K8S_POD_NAME="+w.Pod)
	}
	return strings.Join(args, ";")
}

// AddContainer creates a namespace and attaches it with cnitool add.
func (n *Node) AddContainer(ctx context.Context, name string) (*Container, error) {
	return n.AddWorkload(ctx, name, Workload{})
}

// AddWorkload creates a namespace and attaches it with cnitool add, as the
// workload w (its own conflist directory carries w's labels).
func (n *Node) AddWorkload(ctx context.Context, name string, w Workload) (*Container, error) {
	ctrNS, err := testbed.NewNS(name)
	if err != nil {
		return nil, err
	}
	confDir, err := n.CNIConfDir()
	if err == nil && len(w.Labels) > 0 {
		confDir, err = n.writeConflist(filepath.Join(n.Dir, "cni-"+ctrNS.Name), w.Labels)
	}
	if err != nil {
		ctrNS.Delete()
		return nil, err
	}
	ctr := &Container{Name: ctrNS.Name, NS: ctrNS, Node: n, Workload: w, confDir: confDir}
	out, err := n.cnitool(ctx, "add", ctrNS, confDir, w.cniArgs())
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
		ctr.del(ctx)
		ctrNS.Delete()
		return nil, fmt.Errorf("node %d: cnitool add: unexpected result %q: %v", n.Index+1, out, err)
	}
	for _, ip := range res.IPs {
		p, err := netip.ParsePrefix(ip.Address)
		if err != nil {
			ctr.del(ctx)
			ctrNS.Delete()
			return nil, fmt.Errorf("node %d: cnitool add: bad address %q: %w", n.Index+1, ip.Address, err)
		}
		switch a := p.Addr(); {
		case a.Is4() && !ctr.IP.Is4():
			ctr.IP = a
		case a.Is6() && !ctr.IPv6.IsValid():
			ctr.IPv6 = a
		}
	}
	if !ctr.IP.IsValid() {
		ctr.IP = ctr.IPv6 // an IPv6-only network
	}
	ctr.Result = out
	return ctr, nil
}

// del runs cnitool del with the container's own conflist and CNI_ARGS.
func (c *Container) del(ctx context.Context) ([]byte, error) {
	return c.Node.cnitool(ctx, "del", c.NS, c.confDir, c.Workload.cniArgs())
}

// Remove detaches the container with cnitool del and deletes its namespace.
func (c *Container) Remove(ctx context.Context) error {
	_, err := c.del(ctx)
	if derr := c.NS.Delete(); err == nil {
		err = derr
	}
	return err
}

// Ping sends count pings from the container to dst and returns the output.
func (c *Container) Ping(ctx context.Context, dst netip.Addr, count int) (string, error) {
	return c.NS.Run(ctx, "ping", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "2", dst.String())
}
