package subnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/subnet/etcdread"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrPoolExhausted means every subnet in [SubnetMin, SubnetMax] is taken.
	ErrPoolExhausted = errors.New("subnet pool exhausted")
	// ErrLeaseLost means this node's subnet was taken by another node and
	// cannot be re-taken; the daemon should exit rather than renumber.
	ErrLeaseLost = errors.New("subnet lease lost")
	// ErrWouldRenumber means this node cannot get back the subnet it used
	// before (held by another node, unreadable, or no longer in the
	// network) and must not come up on a new one.
	ErrWouldRenumber = errors.New("starting would renumber this host")
)

// MaxLeaseValueSize bounds a lease value. A lease is about 80 bytes of JSON;
// anything longer than this is refused before it is decoded.
const MaxLeaseValueSize = 4 << 10

// quoteValue renders a value from etcd for a log line (etcdread.Quote).
func quoteValue(v []byte) string { return etcdread.Quote(v) }

// LeaseAttrs is the value of a lease key, in flannel's schema.
type LeaseAttrs struct {
	PublicIP    string          `json:"PublicIP"`
	BackendType string          `json:"BackendType"`
	BackendData json.RawMessage `json:"BackendData,omitempty"`
}

// udpBackendData is BackendData for the udp backend.
type udpBackendData struct {
	Port int `json:"Port"`
}

// NewLeaseAttrs builds the attributes of a udp-backend lease.
func NewLeaseAttrs(publicIP netip.Addr, port int) LeaseAttrs {
	data, _ := json.Marshal(udpBackendData{Port: port})
	return LeaseAttrs{PublicIP: publicIP.String(), BackendType: BackendUDP, BackendData: data}
}

// LeaseAttrsFor builds the attributes this node publishes for backend b:
// a udp lease carries the port, a host-gw lease only the PublicIP (as in
// flannel).
func LeaseAttrsFor(b Backend, publicIP netip.Addr) LeaseAttrs {
	if b.Type == BackendHostGW {
		return LeaseAttrs{PublicIP: publicIP.String(), BackendType: BackendHostGW}
	}
	return NewLeaseAttrs(publicIP, b.Port)
}

// Port returns the UDP port from BackendData ({"Port":N}).
func (a LeaseAttrs) Port() (int, error) {
	if len(a.BackendData) == 0 {
		return 0, errors.New("lease has no BackendData")
	}
	var d udpBackendData
	if err := json.Unmarshal(a.BackendData, &d); err != nil {
		return 0, fmt.Errorf("lease BackendData: %w", err)
	}
	if d.Port <= 0 || d.Port > 65535 {
		return 0, fmt.Errorf("lease BackendData: Port %d out of range", d.Port)
	}
	return d.Port, nil
}

// validate checks the fields the data path relies on.
func (a LeaseAttrs) validate() error {
	ip, err := netip.ParseAddr(a.PublicIP)
	if err != nil || !ip.Is4() {
		return fmt.Errorf("PublicIP %q is not an IPv4 address", a.PublicIP)
	}
	if err := checkUnicast(ip); err != nil {
		return err
	}
	switch a.BackendType {
	case BackendUDP, "", BackendWireGuard:
		if _, err := a.Port(); err != nil {
			return err
		}
	}
	// host-gw needs the address only; the BackendData of other types
	// (vxlan's VNI and VtepMAC) is for their backend to check: a node
	// of another backend holds its subnet all the same.
	return nil
}

// Validate checks that the attributes make a usable lease: an IPv4 unicast
// PublicIP (see checkUnicast) and a port in BackendData.
func (a LeaseAttrs) Validate() error { return a.validate() }

func (a LeaseAttrs) marshal() (string, error) {
	data, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("encode lease attrs: %w", err)
	}
	return string(data), nil
}

func (a LeaseAttrs) equal(b LeaseAttrs) bool {
	return a.PublicIP == b.PublicIP && a.BackendType == b.BackendType && string(a.BackendData) == string(b.BackendData)
}

// reservedIPv4 are the IPv4 ranges a peer's PublicIP may not lie in, beyond
// what netip's IsGlobalUnicast refuses (unspecified, loopback, link-local,
// multicast, 255.255.255.255): sending to them would not reach a peer but
// this host ("this network", 0.0.0.0/8) or nothing routable (240.0.0.0/4).
var reservedIPv4 = [...]netip.Prefix{
	netip.PrefixFrom(netip.AddrFrom4([4]byte{0, 0, 0, 0}), 8),
	netip.PrefixFrom(netip.AddrFrom4([4]byte{240, 0, 0, 0}), 4),
}

// checkUnicast accepts only a global or private unicast address as a
// node's PublicIP: a loopback, unspecified, broadcast, multicast or
// link-local one would make every node send container-chosen datagrams to
// its own loopback services or to the whole link.
func checkUnicast(ip netip.Addr) error {
	if !ip.IsGlobalUnicast() {
		return fmt.Errorf("PublicIP %s is not a unicast address a peer can have (loopback, unspecified, broadcast, multicast and link-local are refused)", ip)
	}
	for _, p := range reservedIPv4 {
		if p.Contains(ip) {
			return fmt.Errorf("PublicIP %s is in reserved range %s", ip, p)
		}
	}
	return nil
}

// sameEndpoint tells whether a and b send peers to the same place: same
// PublicIP, backend type, (for udp and wireguard) port and (for wireguard)
// PublicKey; BackendData may differ in spelling.
func (a LeaseAttrs) sameEndpoint(b LeaseAttrs) bool {
	if a.PublicIP != b.PublicIP || a.BackendType != b.BackendType {
		return false
	}
	switch a.BackendType {
	case BackendHostGW:
		return true
	case BackendUDP, "", BackendWireGuard:
	default:
		// Another type (vxlan): the same BackendData, spelling aside.
		return sameJSON(a.BackendData, b.BackendData)
	}
	pa, erra := a.Port()
	pb, errb := b.Port()
	if a.BackendType == BackendWireGuard && a.rawPublicKey() != b.rawPublicKey() {
		return false // peers would encrypt to another key
	}
	return erra == nil && errb == nil && pa == pb
}

// endpoint names where peers reach the lease's node, for logs and for
// spotting changes: PublicIP:Port, or the PublicIP and backend when the
// backend has no port.
func (a LeaseAttrs) endpoint() string {
	if p, err := a.Port(); err == nil {
		return netip.AddrPortFrom(netip.MustParseAddr(a.PublicIP), uint16(p)).String()
	}
	return a.PublicIP + " (" + a.BackendType + ")"
}

// sameJSON tells whether a and b are the same JSON value, whitespace aside
// (both invalid or empty: the same).
func sameJSON(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

func parseLeaseAttrs(value []byte) (LeaseAttrs, error) {
	if len(value) > MaxLeaseValueSize {
		return LeaseAttrs{}, fmt.Errorf("malformed lease value: %d bytes, more than %d", len(value), MaxLeaseValueSize)
	}
	var a LeaseAttrs
	if err := json.Unmarshal(value, &a); err != nil {
		return LeaseAttrs{}, fmt.Errorf("malformed lease value %s: %w", quoteValue(value), err)
	}
	if err := a.validate(); err != nil {
		return LeaseAttrs{}, fmt.Errorf("malformed lease value %s: %w", quoteValue(value), err)
	}
	return a, nil
}

// Lease is one node's subnet.
type Lease struct {
	Subnet netip.Prefix
	Attrs  LeaseAttrs
	// Expiration is when the etcd lease runs out (zero for reservations and
	// for leases delivered by WatchLeases, which does not look TTLs up).
	Expiration time.Time
	// Reservation is true for keys without an etcd lease: they never
	// expire and are never taken by another node.
	Reservation bool
}

// Endpoint returns the peer's UDP endpoint (PublicIP:Port).
func (l Lease) Endpoint() (netip.AddrPort, error) {
	ip, err := netip.ParseAddr(l.Attrs.PublicIP)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lease %s: PublicIP: %w", l.Subnet, err)
	}
	port, err := l.Attrs.Port()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lease %s: %w", l.Subnet, err)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// EventType says whether a lease appeared (or changed) or went away.
type EventType int

// Event types.
const (
	EventAdded EventType = iota
	EventRemoved
)

func (t EventType) String() string {
	switch t {
	case EventAdded:
		return "added"
	case EventRemoved:
		return "removed"
	}
	return "EventType(" + strconv.Itoa(int(t)) + ")"
}

// Event is one change of the lease table.
type Event struct {
	Type  EventType
	Lease Lease
}

// subnetKeyName renders 10.244.30.0/24 as "10.244.30.0-24" (flannel's form).
func subnetKeyName(p netip.Prefix) string {
	return p.Addr().String() + "-" + strconv.Itoa(p.Bits())
}

// parseSubnetKeyName parses "10.244.30.0-24".
func parseSubnetKeyName(name string) (netip.Prefix, error) {
	addr, bits, ok := strings.Cut(name, "-")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("malformed lease key %s: want ADDR-BITS", quoteValue([]byte(name)))
	}
	p, err := netip.ParsePrefix(addr + "/" + bits)
	if err != nil || !p.Addr().Is4() || p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("malformed lease key %s", quoteValue([]byte(name)))
	}
	return p, nil
}
