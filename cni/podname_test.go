package cni

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/weftnet/weft/workload"
)

// One pod-name rule (k8sname.ValidatePodName): from a Kubernetes runtime
// (K8S_POD_NAMESPACE given) the plugin reports a K8S_POD_NAME exactly when
// weftd's workload store accepts it; from podman (no namespace) it reports
// only Kubernetes names, all of which the store accepts. Before, the two
// had rules of their own, and a name the store refused failed the ADD.
func TestPodNameRuleIsTheStores(t *testing.T) {
	names := []string{"web-1", "web.v2", "a", "db_1", "hungry_ride", "nice_lovelace", "My.App", "-x", "x-", "bad/name", strings.Repeat("p", 253), strings.Repeat("p", 254)}
	for _, name := range names {
		stored := workload.Attachment{IP: netip.MustParseAddr("10.244.1.5"), Namespace: "default", Pod: name, Node: "192.0.2.1"}.Validate() == nil
		k8s, err := identityOf(&NetConf{DefaultNamespace: "default"}, "K8S_POD_NAMESPACE=web;K8S_POD_NAME="+name)
		if err != nil {
			t.Fatal(err)
		}
		if reported := k8s.pod == name; reported != stored {
			t.Errorf("%q from Kubernetes: reported %v, stored %v", name, reported, stored)
		}
		podman, err := identityOf(&NetConf{DefaultNamespace: "default"}, "K8S_POD_NAME="+name)
		if err != nil {
			t.Fatal(err)
		}
		if podman.pod == name && !stored {
			t.Errorf("%q from podman: reported, but the store refuses it", name)
		}
	}
	for name, want := range map[string]string{"hungry_ride": "", "My.App": "", "web-1": "web-1"} {
		if w, _ := identityOf(&NetConf{DefaultNamespace: "default"}, "K8S_POD_NAME="+name); w.pod != want {
			t.Errorf("podman %q: pod %q, want %q", name, w.pod, want)
		}
	}
}

// One namespace rule (k8sname.ValidateNamespace): the plugin refuses at
// once exactly the namespaces the workload store would refuse.
func TestNamespaceRuleIsTheStores(t *testing.T) {
	for _, name := range []string{"default", "a", "web-1", "x9", "", "-x", "x-", "Web", "a.b", "a_b", strings.Repeat("n", 63), strings.Repeat("n", 64)} {
		plugin := validateNamespace(name) == nil
		stored := workload.ValidateNamespaceName(name) == nil
		if plugin != stored {
			t.Errorf("namespace %q: the plugin accepts it %v, the store %v", name, plugin, stored)
		}
	}
}
