//go:build !unit

package flannel

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/weftnet/weft/testbed"
)

// etcdClient talks to an etcd that only h's namespace reaches.
func etcdClient(t *testing.T, h *testbed.Host, url string) *clientv3.Client {
	t.Helper()
	dial := func(ctx context.Context, addr string) (net.Conn, error) { return h.NS.DialContext(ctx, "tcp", addr) }
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// The harness itself: flanneld built from the module proxy (or the cache)
// runs the vxlan backend against etcd on two hosts, publishes a VtepMAC in
// its lease, writes its subnet file, and the two flannel.1 devices reach
// each other.
func TestFlanneldVXLANOnTwoHosts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := Flanneld(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bed := testbed.ForTest(t, "wfl", 2)
	url := StartEtcd(t, bed.Hosts[0])
	cli := etcdClient(t, bed.Hosts[0], url)
	if err := PutConfig(ctx, bed.Hosts[0], url, DefaultPrefix, `{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}`); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now().Add(-time.Second)
	var subnets []string
	for i, h := range bed.Hosts {
		sf := filepath.Join(dir, h.NS.Name, "subnet.env")
		p, err := Start(bed, h, bin, filepath.Join(dir, h.NS.Name, "flanneld.log"), Options{Etcd: url, SubnetFile: sf})
		if err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		env, err := WaitSubnetFile(wctx, p, sf, start)
		wcancel()
		if err != nil {
			log, _ := os.ReadFile(p.LogPath)
			t.Fatalf("host %d: %v\n%s", i+1, err, log)
		}
		if env.MTU != h.MTU-50 {
			t.Errorf("host %d: FLANNEL_MTU %d, want %d", i+1, env.MTU, h.MTU-50)
		}
		subnets = append(subnets, env.Subnet.Masked().Addr().String())
	}
	resp, err := cli.Get(ctx, DefaultPrefix+"/subnets/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 2 {
		t.Fatalf("leases: %v %v", resp, err)
	}
	for _, kv := range resp.Kvs {
		var l struct {
			BackendType string
			BackendData struct {
				VNI     int
				VtepMAC string
			}
		}
		if err := json.Unmarshal(kv.Value, &l); err != nil || l.BackendType != "vxlan" || l.BackendData.VNI != 1 || l.BackendData.VtepMAC == "" {
			t.Fatalf("lease %s = %s (%v)", kv.Key, kv.Value, err)
		}
	}
	err = testbed.WaitFor(ctx, 200*time.Millisecond, func() error {
		_, err := bed.Hosts[0].NS.Run(ctx, "ping", "-c", "1", "-W", "1", subnets[1])
		return err
	})
	if err != nil {
		t.Fatalf("flannel.1 of host 1 cannot reach host 2's VTEP address %s: %v", subnets[1], err)
	}
}

// flannel's CNI plugin builds from the module proxy (or comes from the
// cache) and answers as a CNI plugin: CNI_COMMAND=VERSION lists the spec
// versions it speaks.
func TestCNIPluginBuilds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err := CNIPlugin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(bin) != "flannel" {
		t.Fatalf("%s: the binary must be named after its CNI type, flannel", bin)
	}
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{"CNI_COMMAND=VERSION"}
	cmd.Stdin = strings.NewReader(`{"cniVersion":"0.3.1"}`)
	out, err := cmd.Output()
	var v struct {
		SupportedVersions []string `json:"supportedVersions"`
	}
	if err != nil || json.Unmarshal(out, &v) != nil || !slices.Contains(v.SupportedVersions, "0.3.1") {
		t.Fatalf("%s VERSION: %s (%v)", bin, out, err)
	}
}
