package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

type demo struct {
	bin          string
	hosts        int
	perHost      int
	iperfSeconds int

	workDir    string
	bed        *testbed.Bed
	cluster    *cluster.Cluster
	containers []*cluster.Container
}

func (d *demo) run(ctx context.Context, keep bool) error {
	if err := testbed.CheckRoot(); err != nil {
		return err
	}
	var err error
	d.workDir, err = os.MkdirTemp("", "weft-demo-")
	if err != nil {
		return err
	}

	step("creating %d hosts as network namespaces on a bridged underlay (192.0.2.0/24)", d.hosts)
	d.bed, err = testbed.NewBed("wd", d.hosts, testbed.Options{})
	if err != nil {
		return err
	}
	for i, h := range d.bed.Hosts {
		fmt.Printf("    host%d  netns %-14s %s %s\n", i+1, h.NS.Name, h.Dev, h.IP)
	}

	d.cluster, err = cluster.New(d.bed, cluster.Options{Bin: d.bin, WorkDir: d.workDir})
	if err != nil {
		return err
	}
	step("starting weftd on every host (host1 runs the embedded etcd at %s)", d.cluster.EtcdEndpoint())
	if err := d.cluster.Start(ctx); err != nil {
		return err
	}
	for _, n := range d.cluster.Nodes {
		env, err := n.Subnet()
		if err != nil {
			return err
		}
		fmt.Printf("    host%d  subnet %-16s mtu %d  (READY=1 via NOTIFY_SOCKET)\n", n.Index+1, env.Subnet.Masked(), env.MTU)
	}

	step("attaching %d containers per host with cnitool and the weft CNI plugin", d.perHost)
	for _, n := range d.cluster.Nodes {
		for j := 0; j < d.perHost; j++ {
			c, err := n.AddContainer(ctx, fmt.Sprintf("wd%d%c", n.Index+1, 'a'+j))
			if err != nil {
				return err
			}
			d.containers = append(d.containers, c)
			fmt.Printf("    host%d  container %-14s %s\n", n.Index+1, c.Name, c.IP)
		}
	}
	if err := d.waitPeers(ctx); err != nil {
		return err
	}

	step("ping matrix (every container to every other)")
	if err := d.pingMatrix(ctx); err != nil {
		return err
	}

	step("iperf3 TCP, %d s, container on host1 -> container on host%d", d.iperfSeconds, d.hosts)
	if err := d.iperf(ctx); err != nil {
		return err
	}

	step("weftctl status on host1")
	out, err := d.bed.Hosts[0].NS.Run(ctx, filepath.Join(d.bin, "weftctl"), "status",
		"--daemon-url", fmt.Sprintf("http://127.0.0.1:%d", cluster.HealthzPort))
	fmt.Println(indent(out))
	if err != nil {
		return fmt.Errorf("weftctl status: %w", err)
	}
	if keep {
		step("running; explore with `ip netns exec %s bash`; Ctrl-C to stop and clean up", d.bed.Hosts[0].NS.Name)
		<-ctx.Done()
		return nil
	}
	return nil
}

// waitPeers waits until every node knows every other node.
func (d *demo) waitPeers(ctx context.Context) error {
	want := len(d.cluster.Nodes) - 1
	for _, n := range d.cluster.Nodes {
		err := testbed.WaitFor(ctx, 100*time.Millisecond, func() error {
			st, err := n.Status(ctx)
			if err != nil {
				return err
			}
			if len(st.Peers) != want {
				return fmt.Errorf("host%d knows %d peers, want %d", n.Index+1, len(st.Peers), want)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) pingMatrix(ctx context.Context) error {
	fmt.Printf("    %-14s", "from \\ to")
	for _, c := range d.containers {
		fmt.Printf(" %-12s", c.IP)
	}
	fmt.Println()
	failed := 0
	for _, src := range d.containers {
		fmt.Printf("    %-14s", src.IP)
		for _, dst := range d.containers {
			if src == dst {
				fmt.Printf(" %-12s", "-")
				continue
			}
			out, err := src.Ping(ctx, dst.IP, 1)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				failed++
				fmt.Printf(" %-12s", "FAIL")
				fmt.Fprintf(os.Stderr, "ping %s -> %s: %v\n%s\n", src.IP, dst.IP, err, out)
				continue
			}
			fmt.Printf(" %-12s", rtt(out))
		}
		fmt.Println()
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d pings failed", failed, len(d.containers)*(len(d.containers)-1))
	}
	fmt.Printf("    all %d pairs reachable\n", len(d.containers)*(len(d.containers)-1))
	return nil
}

// cleanup removes containers, stops the daemons and deletes the testbed.
func (d *demo) cleanup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errs []error
	if d.bed != nil || d.cluster != nil {
		step("cleaning up")
	}
	for _, c := range d.containers {
		if err := c.Remove(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if d.cluster != nil {
		for _, n := range d.cluster.Nodes {
			if err := n.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if d.bed != nil {
		if err := d.bed.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if d.workDir != "" {
		os.RemoveAll(d.workDir)
	}
	return errors.Join(errs...)
}

func rtt(pingOut string) string {
	i := strings.Index(pingOut, "time=")
	if i < 0 {
		return "ok"
	}
	rest := pingOut[i+5:]
	if j := strings.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	return strings.ReplaceAll(rest, " ", "")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
