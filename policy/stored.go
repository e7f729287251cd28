package policy

import (
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
)

// CheckStored parses a policy as stored under namespace/name (one
// NetworkPolicy of that namespace and name) and validates it with its
// defaults set, as Compile would. A value another writer put there that
// fails is an error naming why; weftd leaves such a policy out and
// isolates its namespace (fails closed), weftctl shows it.
func CheckStored(namespace, name string, data []byte) (networkingv1.NetworkPolicy, error) {
	nps, err := ParseManifests(data)
	if err != nil {
		return networkingv1.NetworkPolicy{}, err
	}
	if len(nps) != 1 || nps[0].Namespace != namespace || nps[0].Name != name {
		return networkingv1.NetworkPolicy{}, fmt.Errorf("stored under %s/%s but holds another object", namespace, name)
	}
	np := nps[0].DeepCopy()
	SetDefaults(np)
	if err := Validate(np); err != nil {
		return networkingv1.NetworkPolicy{}, err
	}
	return nps[0], nil
}
