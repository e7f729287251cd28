package flannel

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// flannel's CNI plugin ("type": "flannel"): it reads flanneld's subnet
// file, builds the bridge + host-local delegate config from it and calls
// the bridge plugin. Its source today is github.com/flannel-io/cni-plugin,
// but the Go module proxy refuses that module (403 "not available" for
// every version), so the tests build the plugin from the module it was
// split out of, containernetworking/plugins at CNIVersion
// (plugins/meta/flannel), the last release that ships it. What the tests
// rely on is the same in both: the subnet file's keys, the delegate it
// builds (type bridge, name, ipMasq = !FLANNEL_IPMASQ, mtu = FLANNEL_MTU,
// isGateway, host-local ranges from FLANNEL_SUBNET and FLANNEL_IPV6_SUBNET,
// routes to FLANNEL_NETWORK and FLANNEL_IPV6_NETWORK, the input ipam's
// other keys kept), and the delegate config kept in dataDir for DEL.
// (flannel-io/cni-plugin since added comma-separated networks, more
// logging and a DEL that ignores an unreadable kept config.)
const (
	CNIModule  = "github.com/containernetworking/plugins"
	CNIVersion = "v0.9.1"
	cniPackage = "./plugins/meta/flannel"
)

// CNIPlugin returns the path of flannel's CNI plugin binary, named
// "flannel" (its CNI type), building it first if the cache does not hold
// it. CNI_PATH is its directory followed by the directory of the bridge
// and host-local plugins.
func CNIPlugin(ctx context.Context) (string, error) {
	return cached(ctx, filepath.Join("flannel-cni", CNIVersion), "flannel", buildCNI)
}

// buildCNI builds plugins/meta/flannel of CNIModule@CNIVersion with the
// module's own go.mod and go.sum into dir/flannel.
func buildCNI(ctx context.Context, dir, bin string) error {
	start := time.Now()
	modDir, err := download(ctx, CNIModule, CNIVersion)
	if err != nil {
		return err
	}
	src := filepath.Join(dir, "src")
	if err := os.RemoveAll(src); err != nil {
		return fmt.Errorf("flannel CNI plugin: %w", err)
	}
	if err := copyTree(modDir, src); err != nil {
		return fmt.Errorf("flannel CNI plugin: copy %s: %w", modDir, err)
	}
	tmp := bin + ".tmp"
	cmd := exec.CommandContext(ctx, "go", "build", "-o", tmp, cniPackage)
	cmd.Dir = src
	// The module's vendor/modules.txt lists packages its zip does not hold:
	// build from the module cache instead (-mod=mod). Static, as the CNI
	// plugins are shipped.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("flannel CNI plugin: go build %s@%s %s: %w\n%s", CNIModule, CNIVersion, cniPackage, err, tail(out, 4096))
	}
	if err := os.Rename(tmp, bin); err != nil {
		return fmt.Errorf("flannel CNI plugin: %w", err)
	}
	fmt.Fprintf(os.Stderr, "flannel: built flannel's CNI plugin (%s@%s) in %v (cached in %s)\n", CNIModule, CNIVersion, time.Since(start).Round(time.Second), bin)
	return nil
}
