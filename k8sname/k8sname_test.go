package k8sname

import (
	"strings"
	"testing"
)

func TestValidatePodName(t *testing.T) {
	for _, name := range []string{"web-1", "a", "web.v2", "0abc", "nice_lovelace", "My.App", strings.Repeat("a", 253)} {
		if err := ValidatePodName(name); err != nil {
			t.Errorf("ValidatePodName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "-web", "_web", ".web", "bad/name", "web 1", "wéb", strings.Repeat("a", 254)} {
		if err := ValidatePodName(name); err == nil || !strings.Contains(err.Error(), "pod name ") {
			t.Errorf("ValidatePodName(%q) = %v, want an error naming the pod name", name, err)
		}
	}
}

// Every Kubernetes name is a valid pod name; podman's generated names are
// valid pod names but no Kubernetes names.
func TestIsKubernetesName(t *testing.T) {
	for name, want := range map[string]bool{"web-1": true, "web.v2": true, "a": true, strings.Repeat("a", 253): true,
		"": false, "hungry_ride": false, "My.App": false, "web-": false, "web..1": false, strings.Repeat("a", 254): false} {
		if got := IsKubernetesName(name); got != want {
			t.Errorf("IsKubernetesName(%q) = %v, want %v", name, got, want)
		}
		if want && ValidatePodName(name) != nil {
			t.Errorf("Kubernetes name %q is no valid pod name", name)
		}
	}
}
