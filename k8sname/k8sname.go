// Package k8sname holds the rules for names that weft's parts must agree
// on: the CNI plugin decides with them which name it reports as a pod name,
// and the workload store accepts exactly what passes ValidatePodName.
// Standard library only, so the CNI plugin stays small.
package k8sname

import (
	"fmt"
	"regexp"
)

// MaxPodName is the longest pod name Kubernetes allows.
const MaxPodName = 253

var (
	// podNameRE: Kubernetes' pod names (DNS-1123 subdomains) and the
	// container names podman sends as K8S_POD_NAME ("nice_lovelace").
	podNameRE = regexp.MustCompile(`^[A-Za-z0-9][-A-Za-z0-9_.]*$`)
	// dnsLabelRE is a DNS-1123 label (length checked apart): namespaces.
	dnsLabelRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	// dnsSubdomainRE is a DNS-1123 subdomain (length checked apart).
	dnsSubdomainRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ValidatePodName is weft's one pod-name rule: letters, digits, '_', '.'
// and '-', starting alphanumeric, at most 253 characters. Every pod name
// Kubernetes allows passes; so do podman's container names.
func ValidatePodName(name string) error {
	if name == "" || len(name) > MaxPodName || !podNameRE.MatchString(name) {
		return fmt.Errorf("pod name %q: want letters, digits, '_', '.' and '-', starting alphanumeric, at most %d characters", name, MaxPodName)
	}
	return nil
}

// IsKubernetesName reports whether name is a Kubernetes object name (a
// DNS-1123 subdomain of at most 253 characters). The CNI plugin uses it to
// tell a pod name from a container name podman generated ("hungry_ride")
// when no K8S_POD_NAMESPACE says the runtime is Kubernetes'.
func IsKubernetesName(name string) bool {
	return name != "" && len(name) <= MaxPodName && dnsSubdomainRE.MatchString(name)
}

// MaxNamespace is the longest namespace name Kubernetes allows.
const MaxNamespace = 63

// ValidateNamespace is weft's one namespace rule, Kubernetes' (a DNS-1123
// label): lower-case letters, digits and '-', starting and ending
// alphanumeric, at most 63 characters. The CNI plugin refuses a bad one at
// once; the workload store refuses what the plugin would.
func ValidateNamespace(name string) error {
	if name == "" || len(name) > MaxNamespace || !dnsLabelRE.MatchString(name) {
		return fmt.Errorf("namespace %q: want lower-case letters, digits and '-', starting and ending alphanumeric, at most %d characters", name, MaxNamespace)
	}
	return nil
}
