//go:build !unit

package e2e

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
	"github.com/weftnet/weft/workload"
)

// addWorkload attaches a container with an identity and removes it at
// cleanup.
func addWorkload(t *testing.T, n *cluster.Node, name string, w cluster.Workload) *cluster.Container {
	t.Helper()
	c, err := n.AddWorkload(ctxFor(t, 30*time.Second), name, w)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Remove(ctxFor(t, 30*time.Second)); err != nil {
			t.Errorf("remove container %s: %v", c.Name, err)
		}
	})
	return c
}

// attachmentSummary lists the published endpoints as "ip ns/pod labels node"
// lines, via weftctl endpoints -o json run on the first node.
func attachmentSummary(t *testing.T, c *cluster.Cluster) (string, error) {
	n := c.Nodes[0]
	out, err := n.Host.NS.Run(ctxFor(t, 30*time.Second), filepath.Join(binDir, "weftctl"),
		"--etcd-endpoints", c.EtcdEndpoint(), "endpoints", "-o", "json")
	if err != nil {
		return "", fmt.Errorf("weftctl endpoints: %w: %s", err, out)
	}
	var eps []workload.Attachment
	if err := json.Unmarshal([]byte(out), &eps); err != nil {
		return "", fmt.Errorf("weftctl endpoints: %w: %s", err, out)
	}
	var lines []string
	for _, e := range eps {
		var labels []string
		for k, v := range e.Labels {
			labels = append(labels, k+"="+v)
		}
		lines = append(lines, fmt.Sprintf("%s %s/%s [%s] %s", e.IP, e.Namespace, e.Pod, strings.Join(labels, ","), e.Node))
	}
	return strings.Join(lines, "\n"), nil
}

func waitAttachments(t *testing.T, c *cluster.Cluster, within time.Duration, what, want string) {
	t.Helper()
	var last string
	err := testbed.WaitFor(ctxFor(t, within), 200*time.Millisecond, func() error {
		got, err := attachmentSummary(t, c)
		if err != nil {
			return err
		}
		last = got
		if got != want {
			return fmt.Errorf("endpoints:\n%s\nwant:\n%s", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v (last seen:\n%s)", what, err, last)
	}
}

// Containers attached with cnitool are published with their identity; a
// restarted weftd publishes them again and drops one deleted while it was
// down; ADD fails while weftd is down; a dead node's endpoints vanish
// with its liveness lease while the others stay.
func TestEndpointsFollowContainersAndNodes(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{ExtraArgs: []string{"--endpoint-ttl", "3s"}})
	n1, n2 := c.Nodes[0], c.Nodes[1]
	a := addWorkload(t, n1, "wa", cluster.Workload{Namespace: "x", Pod: "a", Labels: map[string]string{"app": "web"}})
	b := addWorkload(t, n2, "wb", cluster.Workload{Namespace: "y", Pod: "db_1", Labels: map[string]string{"app": "db"}})
	d, err := n2.AddWorkload(ctxFor(t, 30*time.Second), "wd", cluster.Workload{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.NS.Delete() })

	line := func(ctr *cluster.Container, nsPod, labels string) string {
		return fmt.Sprintf("%s %s [%s] %s", ctr.IP, nsPod, labels, ctr.Node.Host.IP)
	}
	all := []string{line(a, "x/a", "app=web"), line(b, "y/db_1", "app=db"), line(d, "default/", "")}
	sortByIP(all, a, b, d)
	waitAttachments(t, c, 10*time.Second, "after ADDs", strings.Join(all, "\n"))

	// weftd on node 2 stops: ADD fails clearly, DEL works.
	if err := n2.Stop(syscall.SIGTERM, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.AddWorkload(ctxFor(t, 30*time.Second), "wf", cluster.Workload{}); err == nil ||
		!strings.Contains(err.Error(), "cannot register the container with weftd, so it is not attached") {
		t.Fatalf("ADD without weftd: %v", err)
	}
	if err := d.Remove(ctxFor(t, 30*time.Second)); err != nil {
		t.Fatalf("DEL without weftd: %v", err)
	}
	// The stopped node's endpoints stay while its lease lives (a restart
	// does not open or close anything elsewhere) ...
	if got, err := attachmentSummary(t, c); err != nil || got != strings.Join(all, "\n") {
		t.Fatalf("endpoints while node 2 restarts: %v\n%s", err, got)
	}
	// ... and after the restart, the container deleted meanwhile is gone.
	if err := n2.Start(); err != nil {
		t.Fatal(err)
	}
	if err := n2.WaitReady(ctxFor(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	rest := []string{line(a, "x/a", "app=web"), line(b, "y/db_1", "app=db")}
	sortByIP(rest, a, b)
	waitAttachments(t, c, 10*time.Second, "after node 2 restarted", strings.Join(rest, "\n"))
	// Its endpoints are alive on the new lease, well past the TTL.
	time.Sleep(5 * time.Second)
	waitAttachments(t, c, 5*time.Second, "5 s after the restart", strings.Join(rest, "\n"))

	// Node 2 dies: its endpoints vanish once its liveness lease expires.
	if err := n2.Stop(syscall.SIGKILL, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	waitAttachments(t, c, 30*time.Second, "after node 2 died", line(a, "x/a", "app=web"))
}

// sortByIP orders lines made for ctrs (same order) by the containers' IPs.
func sortByIP(lines []string, ctrs ...*cluster.Container) {
	for i := range ctrs {
		for j := i + 1; j < len(ctrs); j++ {
			if ctrs[j].IP.Less(ctrs[i].IP) {
				ctrs[i], ctrs[j] = ctrs[j], ctrs[i]
				lines[i], lines[j] = lines[j], lines[i]
			}
		}
	}
}
