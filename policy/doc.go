// Package policy turns Kubernetes NetworkPolicy manifests into the rules one
// weft node enforces for its own containers.
//
// It is pure: ParseManifests reads and validates manifests, Compile resolves
// selectors against the endpoints and namespaces weftd knows and returns a
// per-node RuleSet. Only the linux files (nftables_linux.go) touch the kernel.
package policy
