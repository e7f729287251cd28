package cni

import (
	"net/netip"
	"strings"
	"testing"

	store "github.com/weftnet/weft/workload"
)

// One pod-name rule (k8sname.ValidatePodName): from a Kubernetes runtime
// (K8S_POD_NAMESPACE given) the plugin reports a K8S_POD_NAME exactly when
// weftd's workload store accepts it; from podman (no namespace) it reports
// only Kubernetes names, all of which the store accepts. Before, the two
// had rules of their own, and a name the store refused failed the ADD.
func TestPodNameRuleIsTheStores(t *testing.T) {
	names := []string{"web-1", "web.v2", "a", "db_1", "hungry_ride", "nice_lovelace", "My.App", "-x", "x-", "bad/name", strings.Repeat("p", 253), strings.Repeat("p", 254)}
	for _, name := range names {
		stored := store.Endpoint{IP: netip.MustParseAddr("10.244.1.5"), Namespace: "default", Pod: name, Node: "192.0.2.1"}.Validate() == nil
		k8s, err := workloadOf(&NetConf{DefaultNamespace: "default"}, "K8S_POD_NAMESPACE=web;K8S_POD_NAME="+name)
		if err != nil {
			t.Fatal(err)
		}
		if reported := k8s.pod == name; reported != stored {
			t.Errorf("%q from Kubernetes: reported %v, stored %v", name, reported, stored)
		}
		podman, err := workloadOf(&NetConf{DefaultNamespace: "default"}, "K8S_POD_NAME="+name)
		if err != nil {
			t.Fatal(err)
		}
		if podman.pod == name && !stored {
			t.Errorf("%q from podman: reported, but the store refuses it", name)
		}
	}
	for name, want := range map[string]string{"hungry_ride": "", "My.App": "", "web-1": "web-1"} {
		if w, _ := workloadOf(&NetConf{DefaultNamespace: "default"}, "K8S_POD_NAME="+name); w.pod != want {
			t.Errorf("podman %q: pod %q, want %q", name, w.pod, want)
		}
	}
}
