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
	"github.com/weftnet/weft/subnet/subnetfile"
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
//
// PublicIP is the node's IPv4 underlay address, PublicIPv6 its IPv6 one;
// a node has at least one. flanneld writes PublicIP "0.0.0.0" and
// PublicIPv6 null for an address it does not have; both read as absent
// (parseLeaseAttrs turns "0.0.0.0" into "" when there is a PublicIPv6).
// BackendV6Data is the backend's data for its IPv6 side (flannel's vxlan:
// the flannel-v6 device's VNI and MAC).
type LeaseAttrs struct {
	PublicIP      string          `json:"PublicIP,omitempty"`
	PublicIPv6    string          `json:"PublicIPv6,omitempty"`
	BackendType   string          `json:"BackendType"`
	BackendData   json.RawMessage `json:"BackendData,omitempty"`
	BackendV6Data json.RawMessage `json:"BackendV6Data,omitempty"`
}

// node is the address that identifies the lease's node: its PublicIP, or
// its PublicIPv6 when it has no IPv4 one.
func (a LeaseAttrs) node() string {
	if a.PublicIP != "" {
		return a.PublicIP
	}
	return a.PublicIPv6
}

// sameHost tells whether a and b share a public address: the same node,
// though it may have gained or lost an address family.
func (a LeaseAttrs) sameHost(b LeaseAttrs) bool {
	return a.PublicIP != "" && a.PublicIP == b.PublicIP || a.PublicIPv6 != "" && a.PublicIPv6 == b.PublicIPv6
}

// sameNode tells whether a and b are of the same node (same public
// addresses).
func (a LeaseAttrs) sameNode(b LeaseAttrs) bool {
	return a.PublicIP == b.PublicIP && a.PublicIPv6 == b.PublicIPv6
}

// udpBackendData is BackendData for the udp backend.
type udpBackendData struct {
	Port int `json:"Port"`
}

// NewLeaseAttrs builds the attributes of a udp-backend lease.
func NewLeaseAttrs(publicIP netip.Addr, port int) LeaseAttrs {
	data, _ := json.Marshal(udpBackendData{Port: port})
	return LeaseAttrs{PublicIP: addrString(publicIP), BackendType: BackendUDP, BackendData: data}
}

// LeaseAttrsFor builds the attributes this node publishes for backend b:
// a udp lease carries the port, a host-gw lease only the PublicIP (as in
// flannel).
func LeaseAttrsFor(b Backend, publicIP netip.Addr) LeaseAttrs {
	if b.Type == BackendHostGW {
		return LeaseAttrs{PublicIP: addrString(publicIP), BackendType: BackendHostGW}
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
	if a.PublicIP == "" && a.PublicIPv6 == "" {
		return errors.New("neither PublicIP nor PublicIPv6 is set")
	}
	if a.PublicIP != "" {
		ip, err := netip.ParseAddr(a.PublicIP)
		if err != nil || !ip.Is4() {
			return fmt.Errorf("PublicIP %q is not an IPv4 address", a.PublicIP)
		}
		if err := checkUnicast(ip); err != nil {
			return err
		}
	}
	if a.PublicIPv6 != "" {
		ip, err := netip.ParseAddr(a.PublicIPv6)
		if err != nil || !ip.Is6() || ip.Is4In6() || ip.Zone() != "" {
			return fmt.Errorf("PublicIPv6 %q is not an IPv6 address", a.PublicIPv6)
		}
		if !ip.IsGlobalUnicast() {
			return fmt.Errorf("PublicIPv6 %s is not a unicast address a peer can have (loopback, unspecified, multicast and link-local are refused)", ip)
		}
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
// PublicIP (see checkUnicast) and/or an IPv6 unicast PublicIPv6, and a
// port in BackendData.
func (a LeaseAttrs) Validate() error { return a.validate() }

func (a LeaseAttrs) marshal() (string, error) {
	data, err := json.Marshal(a)
	if err != nil {
		return "", fmt.Errorf("encode lease attrs: %w", err)
	}
	return string(data), nil
}

func (a LeaseAttrs) equal(b LeaseAttrs) bool {
	return a.sameNode(b) && a.BackendType == b.BackendType && string(a.BackendData) == string(b.BackendData) &&
		string(a.BackendV6Data) == string(b.BackendV6Data)
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
	if !a.sameNode(b) || a.BackendType != b.BackendType || !sameJSON(a.BackendV6Data, b.BackendV6Data) {
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
	ep := a.node()
	if ip, err := netip.ParseAddr(ep); err == nil {
		if p, err := a.Port(); err == nil {
			ep = netip.AddrPortFrom(ip, uint16(p)).String()
		} else {
			ep += " (" + a.BackendType + ")"
		}
	}
	if a.PublicIP != "" && a.PublicIPv6 != "" {
		ep += " and " + a.PublicIPv6
	}
	return ep
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
	if a.PublicIP == "0.0.0.0" && a.PublicIPv6 != "" {
		a.PublicIP = "" // flanneld's "none" in an IPv6-only network
	}
	if err := a.validate(); err != nil {
		return LeaseAttrs{}, fmt.Errorf("malformed lease value %s: %w", quoteValue(value), err)
	}
	return a, nil
}

// Lease is one node's subnets: Subnet (IPv4; invalid when the network is
// IPv6-only) and IPv6Subnet (invalid when the network has no IPv6).
type Lease struct {
	Subnet     netip.Prefix
	IPv6Subnet netip.Prefix
	Attrs      LeaseAttrs
	// Expiration is when the etcd lease runs out (zero for reservations and
	// for leases delivered by WatchLeases, which does not look TTLs up).
	Expiration time.Time
	// Reservation is true for keys without an etcd lease: they never
	// expire and are never taken by another node.
	Reservation bool
}

// Primary is the subnet that names the lease: Subnet, or IPv6Subnet when
// the lease has no IPv4 subnet (an IPv6-only network).
func (l Lease) Primary() netip.Prefix {
	if l.Subnet.IsValid() {
		return l.Subnet
	}
	return l.IPv6Subnet
}

// String names the lease's subnets: "10.5.1.0/24", "10.5.1.0/24 and
// fc00::/64" or "fc00::/64".
func (l Lease) String() string {
	switch {
	case l.Subnet.IsValid() && l.IPv6Subnet.IsValid():
		return l.Subnet.String() + " and " + l.IPv6Subnet.String()
	case l.Subnet.IsValid():
		return l.Subnet.String()
	}
	return l.IPv6Subnet.String()
}

// Endpoint returns the peer's UDP endpoint: PublicIP:Port, or
// [PublicIPv6]:Port when it has no PublicIP.
func (l Lease) Endpoint() (netip.AddrPort, error) {
	ip, err := netip.ParseAddr(l.Attrs.node())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lease %s: PublicIP: %w", l.Primary(), err)
	}
	port, err := l.Attrs.Port()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lease %s: %w", l.Primary(), err)
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

// EndpointIPv6 returns the peer's UDP endpoint on its IPv6 underlay
// address, [PublicIPv6]:Port; an error when it has none.
func (l Lease) EndpointIPv6() (netip.AddrPort, error) {
	ip, err := netip.ParseAddr(l.Attrs.PublicIPv6)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lease %s: no PublicIPv6", l.Primary())
	}
	port, err := l.Attrs.Port()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("lease %s: %w", l.Primary(), err)
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

// flannelNoIPv4 is the IPv4 half of flanneld's key in an IPv6-only
// network ("0.0.0.0-0&fc00::-64"): no IPv4 subnet.
const flannelNoIPv4 = "0.0.0.0-0"

// leaseKeyName is flannel's key name of a lease (pkg/subnet
// MakeSubnetKey): "10.5.1.0-24" (IPv4), "10.5.1.0-24&fc00::-64" (dual
// stack) or, with no IPv4 subnet, "0.0.0.0-0&fc00::-64", which is what
// flanneld writes and the only IPv6-only form it reads (its key regexp
// needs an IPv4 half).
func leaseKeyName(v4, v6 netip.Prefix) string {
	switch {
	case !v6.IsValid():
		return subnetKeyName(v4)
	case !v4.IsValid():
		return flannelNoIPv4 + "&" + subnetKeyName(v6)
	}
	return subnetKeyName(v4) + "&" + subnetKeyName(v6)
}

// keyName is the key name of l.
func (l Lease) keyName() string { return leaseKeyName(l.Subnet, l.IPv6Subnet) }

// parseSubnetKeyName parses "10.244.30.0-24".
func parseSubnetKeyName(name string) (netip.Prefix, error) {
	v4, v6, err := parseLeaseKeyName(name)
	if err == nil && (v6.IsValid() || !v4.IsValid()) {
		err = fmt.Errorf("malformed lease key %s: want ADDR-BITS", quoteValue([]byte(name)))
	}
	return v4, err
}

// parseLeaseKeyName parses a lease key name in any of flannel's forms
// (see leaseKeyName), and "fc00::-64" (IPv6 alone). The IPv6 half must be
// written as leaseKeyName writes it (RFC 5952), so that one subnet has one
// key name.
func parseLeaseKeyName(name string) (v4, v6 netip.Prefix, err error) {
	bad := func(why string) (netip.Prefix, netip.Prefix, error) {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("malformed lease key %s%s", quoteValue([]byte(name)), why)
	}
	first, second, dual := strings.Cut(name, "&")
	if !dual && strings.Contains(first, ":") {
		first, second, dual = flannelNoIPv4, first, true // "fc00::-64"
	}
	if first != flannelNoIPv4 {
		v4, err = parseHalf(first)
		if err != nil || !v4.Addr().Is4() {
			return bad(": want ADDR-BITS")
		}
	}
	if !dual {
		if !v4.IsValid() {
			return bad(": want ADDR-BITS")
		}
		return v4, netip.Prefix{}, nil
	}
	v6, err = parseHalf(second)
	if err != nil || !v6.Addr().Is6() || v6.Addr().Is4In6() {
		return bad(": want IPV4-BITS&IPV6-BITS")
	}
	if subnetKeyName(v6) != second {
		return bad(": IPv6 subnet not in canonical form (want " + subnetKeyName(v6) + ")")
	}
	return v4, v6, nil
}

// parseHalf parses "ADDR-BITS" into a masked prefix.
func parseHalf(s string) (netip.Prefix, error) {
	addr, bits, ok := strings.Cut(s, "-")
	if !ok {
		return netip.Prefix{}, errors.New("no '-'")
	}
	p, err := netip.ParsePrefix(addr + "/" + bits)
	if err != nil || p.Masked() != p || p.Addr().Zone() != "" {
		return netip.Prefix{}, errors.New("not a subnet")
	}
	return p, nil
}

// addrString is a's text, "" when a is invalid (a node without an address
// of that family).
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// WithPublicIPs returns a carrying this node's public addresses: the IPv4
// one (none on an IPv6-only underlay) and the IPv6 one, whatever the
// backend filled in.
func (a LeaseAttrs) WithPublicIPs(v4, v6 netip.Addr) LeaseAttrs {
	a.PublicIP, a.PublicIPv6 = "", ""
	if v4.IsValid() {
		a.PublicIP = v4.String()
	}
	if v6.IsValid() {
		a.PublicIPv6 = v6.String()
	}
	return a
}

// FileEnv is the subnet file's content for this node's lease l: each
// family the network has, its subnet written as its first address (the
// bridge's gateway), and the containers' MTU.
func (l Lease) FileEnv(cfg *Config, mtu int, ipMasq bool) subnetfile.Env {
	env := subnetfile.Env{MTU: mtu, IPMasq: ipMasq}
	if cfg.HasIPv4() && l.Subnet.IsValid() {
		env.Network = cfg.Network
		env.Subnet = netip.PrefixFrom(l.Subnet.Addr().Next(), l.Subnet.Bits())
	}
	if cfg.HasIPv6() && l.IPv6Subnet.IsValid() {
		env.IPv6Network = cfg.IPv6Network
		env.IPv6Subnet = netip.PrefixFrom(l.IPv6Subnet.Addr().Next(), l.IPv6Subnet.Bits())
	}
	return env
}
