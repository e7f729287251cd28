// Package nodestatus is the document weftd serves on GET /status (and,
// its Readiness part, on GET /readyz): weftd writes it, weftctl and
// testbed/cluster read it. One declaration, so a field added here is seen
// by all three.
package nodestatus

// Readiness states.
const (
	Ready    = "ready"     // lease held, data path running, etcd seen within the grace period
	Degraded = "degraded"  // forwarding on the last known peers, etcd unreachable too long
	NotReady = "not-ready" // not forwarding (no lease yet, data path down, TUN lost)
)

// Status is the whole /status document.
type Status struct {
	Node      Node           `json:"node"`
	Peers     []Peer         `json:"peers"`
	Counters  map[string]any `json:"counters"` // overlay counters, nested by direction
	Readiness Readiness      `json:"readiness"`
	// Policy is network policy's state (absent when enforcement is off).
	Policy *Policy `json:"policy,omitempty"`
}

// Policy is the rules in force on this node.
type Policy struct {
	// Revision is the etcd revision of the view they were built from (0
	// before the first).
	Revision int64 `json:"revision"`
	// Rejected lists stored policies left out because they do not parse or
	// validate: their namespaces are isolated (fail closed) until fixed.
	Rejected []RejectedPolicy `json:"rejected"`
}

// RejectedPolicy is one stored policy weftd could not use, and why.
type RejectedPolicy struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Reason    string `json:"reason"`
}

// Node is this node's lease and endpoint. Subnet (IPv4) and IPv6Subnet
// are empty until weftd holds a lease, and each when the network has no
// such family; PublicIP is empty on an IPv6-only underlay, PublicIPv6 when
// the node has none.
type Node struct {
	Subnet      string `json:"subnet"`
	IPv6Subnet  string `json:"ipv6Subnet,omitempty"`
	PublicIP    string `json:"publicIP"`
	PublicIPv6  string `json:"publicIPv6,omitempty"`
	Port        int    `json:"port"`
	LeaseExpiry string `json:"leaseExpiry"` // RFC 3339; empty for a reservation (or no lease)
}

// Peer is one other node as this node reaches it.
type Peer struct {
	Subnet     string `json:"subnet"`
	IPv6Subnet string `json:"ipv6Subnet,omitempty"`
	Endpoint   string `json:"endpoint"`
	// Mode is udp, direct (a kernel route) or unreachable (host-gw, the
	// peer is not on this node's L2).
	Mode string `json:"mode"`
}

// Readiness is /readyz's document.
type Readiness struct {
	Status       string `json:"status"` // Ready, Degraded or NotReady
	Lease        bool   `json:"lease"`
	DataPath     bool   `json:"dataPath"`
	EtcdLastSeen string `json:"etcdLastSeen,omitempty"`
	Reason       string `json:"reason,omitempty"`
}

// HasLease reports whether the node holds a subnet lease: before it does
// (weftd is still starting) Node is empty, and the document must not be
// read as "subnet ” that never expires".
func (s Status) HasLease() bool { return s.Node.Subnet != "" || s.Node.IPv6Subnet != "" }
