package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/weftnet/weft/subnet/subnetfile"
	"github.com/weftnet/weft/testbed"
)

// weft path parameters.
const (
	weftNetworkConfig = `{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":8285}}`
	weftHealthzPort   = 8286
)

// weftNode is weftd running on one host.
type weftNode struct {
	host       *testbed.Host
	subnetFile string
	logPath    string
	proc       *testbed.Proc
}

// weftPath starts weftd on both hosts (host 1 also runs the embedded
// etcd) and returns the path between their weft0 addresses.
func weftPath(ctx context.Context, bed *testbed.Bed, weftd, stateDir, logDir string) (*path, error) {
	etcdURL := "http://" + bed.Hosts[0].IP.String() + ":2379"
	var nodes []*weftNode
	for i, h := range bed.Hosts[:2] {
		dir := filepath.Join(stateDir, fmt.Sprintf("host%d", i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("weft: %w", err)
		}
		n := &weftNode{host: h, subnetFile: filepath.Join(dir, "subnet.env"),
			logPath: filepath.Join(logDir, fmt.Sprintf("weftd-host%d.log", i+1))}
		args := []string{}
		if i == 0 {
			args = append(args,
				"--embedded-etcd-dir", filepath.Join(dir, "etcd"),
				"--embedded-etcd-listen", etcdURL,
				"--network-config", weftNetworkConfig)
		}
		args = append(args,
			"--etcd-endpoints", etcdURL,
			"--iface", h.Dev,
			"--public-ip", h.IP.String(),
			"--subnet-file", n.subnetFile,
			"--cni-socket", filepath.Join(dir, "cni.sock"),
			"--endpoints-file", filepath.Join(dir, "endpoints.json"),
			"--healthz-ip", "127.0.0.1",
			"--healthz-port", strconv.Itoa(weftHealthzPort))
		proc, err := bed.Start(h, n.logPath, weftd, args...)
		if err != nil {
			return nil, fmt.Errorf("weft: host %d: %w", i+1, err)
		}
		n.proc = proc
		// Host 1 serves etcd: let it come up before host 2 starts.
		if err := n.waitReady(ctx); err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	var addrs [2]netip.Addr
	for i, n := range nodes {
		env, err := subnetfile.Read(n.subnetFile)
		if err != nil {
			return nil, fmt.Errorf("weft: host %d: %w", i+1, err)
		}
		addrs[i] = env.Subnet.Masked().Addr()
	}
	return &path{Name: pathWeft, A: addrs[0], B: addrs[1],
		Note: fmt.Sprintf("weftd (UDP backend, port 8285) on both hosts; host-to-host between the weft0 addresses %s <-> %s on the hosts' own stacks", addrs[0], addrs[1])}, nil
}

// waitReady waits for the subnet file and a 200 from /readyz.
func (n *weftNode) waitReady(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := nsHTTPClient(n.host.NS.Path())
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", weftHealthzPort)
	err := testbed.WaitFor(wctx, 200*time.Millisecond, func() error {
		if n.proc.Exited() {
			return errors.New("weftd exited")
		}
		if _, err := os.Stat(n.subnetFile); err != nil {
			return fmt.Errorf("no subnet file yet: %w", err)
		}
		req, err := http.NewRequestWithContext(wctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("weft: weftd in %s not ready: %w; log %s:\n%s", n.host.NS.Name, err, n.logPath, tailFile(n.logPath, 20))
	}
	return nil
}

// nsHTTPClient makes its connections inside the namespace at nsPath (a
// socket keeps the namespace it was created in).
func nsHTTPClient(nsPath string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := ns.WithNetNSPath(nsPath, func(ns.NetNS) error {
			var err error
			conn, err = (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	return &http.Client{Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// tailFile returns the last lines of a file.
func tailFile(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
