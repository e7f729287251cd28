// Package backend is the seam between the control plane (subnet: this
// node's lease, the network config, the lease events of the other nodes)
// and a data path. One Backend per Backend.Type of the network config
// ("udp", "host-gw", and the ones to come); weftd picks it from a Registry
// and drives it through the same few calls whatever it is:
//
//	b, err := registry.New(node)         // validates the Backend section; touches nothing
//	attrs, err := b.LeaseAttrs()         // published in this node's lease
//	... acquire the lease ...
//	err = b.Start(ctx, lease)            // devices, sockets, routes for this lease
//	go mgr.WatchLeases(..., b.Apply)     // the other nodes, as they come and go
//	err = b.Run(ctx)                     // forwards until ctx ends or the device is lost
//	b.Close()                            // removes what Start made
//
// Data flows one way: subnet hands lease events to Apply; the backend turns
// them into peers of its data path or kernel state; nothing here reaches
// back up into subnet or weftd.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/weftnet/weft/subnet"
	"github.com/weftnet/weft/subnet/subnetfile"
)

// Node is what a backend is made with.
type Node struct {
	// Config is the network config. Config.Backend.Type chose the backend;
	// Config.Backend.Raw is the section as written, from which a backend
	// decodes its own fields (see Factory.Check).
	Config *subnet.Config
	// Underlay is the interface other nodes reach this one on.
	Underlay Underlay
	// Options are weftd's settings a backend may need.
	Options Options
	Log     *slog.Logger
}

// OutgoingMTU is the MTU of the packets this node sends to the underlay:
// the network config's Backend.MTU (flannel's override) when set, else the
// underlay interface's. A backend gives its containers OutgoingMTU less
// its overhead.
func (n Node) OutgoingMTU() int {
	if n.Config != nil && n.Config.Backend.MTU != 0 {
		return n.Config.Backend.MTU
	}
	return n.Underlay.MTU
}

// CheckMTU checks a Backend.MTU override for a backend whose containers
// get containerMTU(outgoing MTU): their MTU must stay within what the
// subnet file takes. An unset MTU (0) passes; the underlay's is checked at
// start. Backends call it from Factory.Check.
func CheckMTU(b subnet.Backend, containerMTU func(outgoing int) int) error {
	if b.MTU == 0 {
		return nil
	}
	if m := containerMTU(b.MTU); m < subnet.MinMTU || m > subnetfile.MaxMTU {
		return fmt.Errorf("Backend.MTU %d: containers of Type %q would get MTU %d, out of range [%d, %d]",
			b.MTU, b.Type, m, subnet.MinMTU, subnetfile.MaxMTU)
	}
	return nil
}

// Underlay is the interface and address other nodes reach this node on.
type Underlay struct {
	Name     string     // e.g. "eth0"
	Index    int        // its interface index (0: unknown)
	PublicIP netip.Addr // the address published in this node's lease (invalid when none: an IPv6-only underlay)
	// PublicIPv6 is the IPv6 address published in this node's lease
	// (PublicIPv6); invalid when none.
	PublicIPv6 netip.Addr
	MTU        int
}

// Options are the weftd flags a backend may need.
type Options struct {
	// DeviceName is the name of the device the backend creates for
	// container traffic (--tun-name, "weft0").
	DeviceName string
	// Queues is the number of TUN queues and UDP sockets (--queues, udp).
	Queues int
	// AQMTarget and AQMInterval set CoDel on each TUN queue
	// (--aqm-target, --aqm-interval; udp); a zero target is off.
	AQMTarget, AQMInterval time.Duration
	// StateDir is where a backend keeps state across restarts (e.g. a
	// private key); "" when weftd has none to give.
	StateDir string
	// UAPIName names the wireguard backend's UAPI socket
	// (/var/run/wireguard/NAME.sock, what `wg show NAME` reads); "" means
	// DeviceName.
	UAPIName string
}

// Backend is one node's data path for one Backend.Type. Its methods are
// called in the order of the package comment; Apply from one goroutine (the
// lease watcher's) only, Peers and MTU from anywhere and at any time after
// New.
type Backend interface {
	// LeaseAttrs is what this node publishes in its lease (BackendType and
	// BackendData: a port, a VTEP MAC, a public key...). Called before
	// Start, possibly more than once.
	LeaseAttrs() (subnet.LeaseAttrs, error)
	// Start brings the data path up for this node's lease: devices,
	// sockets, routes. On error what it made is removed by Close.
	Start(ctx context.Context, lease subnet.Lease) error
	// Apply takes the whole lease table (snapshot non-nil, after a
	// (re-)list) or a batch of lease events; this node's own lease is not
	// in either. A lease the backend cannot use is logged and left out.
	// Called on the lease watcher's goroutine only.
	Apply(snapshot []subnet.Lease, events []subnet.Event)
	// Run forwards (or keeps kernel state) until ctx ends, then returns
	// nil. It returns an error when it cannot go on; one wrapping
	// ErrDeviceLost when its device was deleted, renamed or set down
	// (weftd then exits non-zero so that a restart builds it again).
	Run(ctx context.Context) error
	// Peers are the other nodes as this backend reaches them, sorted by
	// subnet, for /status and weft_peers{mode}. The slice is immutable.
	Peers() []Peer
	// MTU is the MTU containers get (the subnet file's), valid after Start.
	MTU() int
	// Close removes what Start made (devices, routes, tables), leaving
	// nothing behind but what must survive a restart; safe to call once
	// after New whether or not Start ran or succeeded.
	Close() error
}

// Peer is another node as a backend reaches it.
type Peer struct {
	// Subnet and IPv6Subnet are the peer's subnets (IPv4, IPv6), each
	// invalid when the network has no such family.
	Subnet     netip.Prefix
	IPv6Subnet netip.Prefix
	PublicIP   netip.Addr
	// Endpoint is where packets for the peer go: "ip:port" for an
	// encapsulating mode, the next hop for a route, "" when unreachable.
	Endpoint string
	// Mode names how the peer is reached: "udp", "direct", "unreachable"
	// (udp and host-gw); "vxlan", "wireguard" for those backends.
	Mode string
}

// Optional interfaces a Backend may implement.
type (
	// Modes lists every mode a backend reports (weft_peers{mode} is
	// exported for each, 0 when no peer has it).
	Modes interface{ Modes() []string }
	// Counters are backend-specific counters for /status ("counters").
	// The values must never go backwards. (For /metrics a backend
	// implements prometheus.Collector; weftd registers it.)
	Counters interface{ Counters() map[string]any }
	// PortChecker says whether the UDP ports the backend will hold are
	// free, before the lease is taken (weftd: a second weftd that the
	// lock does not stop gives up there, before it touches the first
	// one's lease, tables and routes). It changes nothing.
	PortChecker interface{ CheckPortsFree() error }
)

// ErrDeviceLost is wrapped by Run's error when the backend's device was
// deleted, renamed or set down under it, or taken over (a foreign queue).
var ErrDeviceLost = errors.New("TUN device removed or down")

// Factory makes the backends of one Backend.Type.
type Factory struct {
	// Check validates the Backend section of a network config of this type
	// (cfg.Backend, its Raw JSON for backend-specific fields) without
	// touching the host; weftctl config set and weftd call it. Its error
	// is a configuration error.
	Check func(cfg *subnet.Config) error
	// New makes a backend for node (Config already checked). It must not
	// change the host: that is Start's job.
	New func(node Node) (Backend, error)
}

// Registry holds the backends weft can run, by Backend.Type. It is built
// by whoever runs backends (see backend/all); there is no global one.
type Registry map[string]Factory

// Types returns the registered types, sorted.
func (r Registry) Types() []string {
	var ts []string
	for t := range r {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// Check validates cfg's Backend section with its type's Factory.Check. Its
// error is a configuration error.
func (r Registry) Check(cfg *subnet.Config) error {
	if cfg == nil {
		return ConfigError(errors.New("network config is nil"))
	}
	f, ok := r[cfg.Backend.Type]
	if !ok {
		quoted := make([]string, 0, len(r))
		for _, t := range r.Types() {
			quoted = append(quoted, fmt.Sprintf("%q", t))
		}
		return ConfigError(fmt.Errorf("Backend.Type %q is not supported (only %s)", cfg.Backend.Type, strings.Join(quoted, ", ")))
	}
	if f.Check != nil {
		if err := f.Check(cfg); err != nil {
			return ConfigError(err)
		}
	}
	return nil
}

// ParseConfig parses a network config (subnet.ParseConfig) and checks its
// Backend section with Check: what weftctl config set and weftd
// --network-config accept.
func (r Registry) ParseConfig(data []byte) (*subnet.Config, error) {
	cfg, err := subnet.ParseConfig(data)
	if err != nil {
		return nil, err
	}
	if err := r.Check(cfg); err != nil {
		return nil, ConfigError(fmt.Errorf("network config: %w", err))
	}
	return cfg, nil
}

// New checks node.Config and makes its backend.
func (r Registry) New(node Node) (Backend, error) {
	if err := r.Check(node.Config); err != nil {
		return nil, err
	}
	if node.Log == nil {
		node.Log = slog.Default()
	}
	f := r[node.Config.Backend.Type]
	if f.New == nil {
		return nil, fmt.Errorf("backend %s: no constructor registered", node.Config.Backend.Type)
	}
	b, err := f.New(node)
	if err != nil {
		return nil, fmt.Errorf("backend %s: %w", node.Config.Backend.Type, err)
	}
	return b, nil
}

// configError marks an error only a change of configuration can fix.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// ConfigError marks err (nil stays nil) as one only a change of
// configuration can fix: weftd exits 78 and systemd does not restart it.
// The message is err's, unchanged.
func ConfigError(err error) error {
	if err == nil {
		return nil
	}
	return &configError{err}
}

// IsConfigError reports whether err, or an error it wraps, was marked
// with ConfigError.
func IsConfigError(err error) bool {
	var c *configError
	return errors.As(err, &c)
}
