//go:build !unit

package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
)

// (A short name: podman refuses a runroot over 50 characters, and the
// test's temporary directory is named after it.)
// docs/cni.md and docs/policy.md: a CNI_ARGS in podman's environment
// reaches the plugin, so WEFT_LABELS (and K8S_POD_NAMESPACE) label one
// podman container for network policy; weftctl endpoints shows them.
func TestPodLabel(t *testing.T) {
	c := newCluster(t, 2, cluster.Options{})
	ctx := ctxFor(t, 5*time.Minute)
	p := startPodman(t, c.Nodes[0])
	env := []string{"CNI_ARGS=K8S_POD_NAMESPACE=shop;WEFT_LABELS=app:web,tier:front"}
	if _, err := p.RunDetachedEnv(ctx, env, "--name", "labelled", "--network", "weft", cluster.PodmanImage, "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	ip, err := p.IP(ctx, "labelled", "weft")
	if err != nil {
		t.Fatal(err)
	}
	type endpoint struct {
		IP        string            `json:"ip"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	}
	var got []endpoint
	var out string
	err = testbed.WaitFor(ctx, 200*time.Millisecond, func() error {
		try, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		out, err = c.Nodes[0].Host.NS.Run(try, filepath.Join(binDir, "weftctl"), "--etcd-endpoints", c.EtcdEndpoint(), "endpoints", "-o", "json")
		if err != nil {
			return err
		}
		got = nil
		return json.Unmarshal([]byte(out), &got)
	})
	if err != nil {
		t.Fatalf("weftctl endpoints: %v: %s", err, out)
	}
	for _, ep := range got {
		if ep.IP != ip {
			continue
		}
		if ep.Namespace != "shop" || ep.Labels["app"] != "web" || ep.Labels["tier"] != "front" {
			t.Fatalf("podman container %s published as namespace %q labels %v; want shop, app=web, tier=front (CNI_ARGS from podman's environment)", ip, ep.Namespace, ep.Labels)
		}
		return
	}
	t.Fatalf("podman container %s not among the endpoints:\n%s", ip, strings.TrimSpace(out))
}
