package wireguard

import (
	"encoding/hex"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/weftnet/weft/backend"
	"github.com/weftnet/weft/backend/wireguard/keyfile"
	"github.com/weftnet/weft/subnet"
)

// peer is another node as a WireGuard peer: its key, where it listens and
// the subnet it may send from (its only allowed IP).
type peer struct {
	Subnet     netip.Prefix // invalid when the network has no IPv4
	IPv6Subnet netip.Prefix // invalid when the network has no IPv6
	Key        keyfile.Key
	Endpoint   netip.AddrPort
}

// id is the peer's lease identity: its IPv4 subnet, or its IPv6 one in an
// IPv6-only network.
func (p peer) id() netip.Prefix { return leaseID(p.Subnet, p.IPv6Subnet) }

func leaseID(sub, sub6 netip.Prefix) netip.Prefix {
	if sub.IsValid() {
		return sub
	}
	return sub6
}

// underlay is what this node can reach peers over and how it chooses
// between a dual-stack peer's two addresses (Config.Mode).
type underlay struct {
	mode       string // ModeSeparate, ModeAuto, ModeIPv4, ModeIPv6
	has4, has6 bool   // this node has an IPv4 / IPv6 PublicIP
	public6    bool   // this node's IPv6 PublicIP is a public one (auto)
}

// endpoint picks the address to reach a peer at, as flannel's modes do on
// one device: ipv4 and ipv6 take that family; auto takes flannel v0.28.10's
// choice (IPv4 when the peer's IPv4 address is public, else IPv6 when both
// ends have public IPv6 addresses, else IPv4); separate (flannel's default,
// where flannel runs a device per family) takes IPv4 when both ends have
// it, else IPv6. A family one end lacks is never chosen: ok is false when
// no family fits.
func (u underlay) endpoint(v4, v6 netip.Addr, port uint16) (netip.AddrPort, bool) {
	can4 := u.has4 && v4.Is4()
	can6 := u.has6 && v6.Is6()
	use6 := false
	switch u.mode {
	case ModeIPv4:
		if !can4 {
			return netip.AddrPort{}, false
		}
	case ModeIPv6:
		use6 = true
	case ModeAuto:
		switch {
		case !v6.IsValid(), can4 && !v4.IsPrivate():
		case can6 && !v6.IsPrivate() && u.public6:
			use6 = true
		default:
			use6 = !can4
		}
	default: // separate
		use6 = !can4
	}
	if use6 {
		if !can6 {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(v6, port), true
	}
	if !can4 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(v4, port), true
}

// peerSet turns lease events into the wanted set of WireGuard peers and the
// device configuration (UAPI "set" text) that gets the device from what it
// has to that set. It is pure (no device): the backend feeds its output to
// device.IpcSet. Not safe for concurrent use (Apply's goroutine only).
type peerSet struct {
	own       keyfile.Key // this node's public key: a lease carrying it is no peer
	via       underlay    // how peers are reached
	keepalive int         // PersistentKeepaliveInterval, seconds
	psk       keyfile.Key // zero: none
	log       *slog.Logger

	bySubnet map[netip.Prefix]peer // what the device holds
	// badKeys counts leases ignored for their PublicKey (malformed, this
	// node's own, or one another subnet already uses); loggedBad holds
	// each (subnet, BackendData) already logged, so a lease is logged once.
	badKeys   uint64
	loggedBad map[string]struct{}
}

func newPeerSet(own keyfile.Key, keepalive int, psk keyfile.Key, log *slog.Logger) *peerSet {
	return &peerSet{own: own, keepalive: keepalive, psk: psk, log: log, via: underlay{mode: ModeSeparate, has4: true},
		bySubnet: map[netip.Prefix]peer{}, loggedBad: map[string]struct{}{}}
}

// peerOf reads a lease as a peer; ok is false (logged once, counted) for a
// lease this backend cannot use.
func (s *peerSet) peerOf(l subnet.Lease) (peer, bool) {
	if l.Attrs.BackendType != subnet.BackendWireGuard {
		s.ignore(l, "lease of another backend: no WireGuard key to reach it with", nil)
		return peer{}, false
	}
	var v4, v6 netip.Addr
	if l.Attrs.PublicIP != "" {
		ip, err := netip.ParseAddr(l.Attrs.PublicIP)
		if err != nil || !ip.Is4() {
			s.ignore(l, "lease with a bad PublicIP", err)
			return peer{}, false
		}
		v4 = ip
	}
	if l.Attrs.PublicIPv6 != "" {
		ip, err := netip.ParseAddr(l.Attrs.PublicIPv6)
		if err != nil || !ip.Is6() || ip.Is4In6() {
			s.ignore(l, "lease with a bad PublicIPv6", err)
			return peer{}, false
		}
		v6 = ip
	}
	port, err := l.Attrs.Port()
	if err != nil {
		s.ignore(l, "lease with a bad Port", err)
		return peer{}, false
	}
	k, err := l.Attrs.WireGuardPublicKey()
	if err != nil {
		s.badKeys++
		s.ignore(l, "lease with a malformed PublicKey", err)
		return peer{}, false
	}
	if k == s.own {
		s.badKeys++
		s.ignore(l, "lease carrying this node's own PublicKey", nil)
		return peer{}, false
	}
	ep, ok := s.via.endpoint(v4, v6, uint16(port))
	if !ok {
		s.ignore(l, "lease with no public address of a family this node can reach it over (Backend.Mode "+s.via.mode+")", nil)
		return peer{}, false
	}
	p := peer{Key: keyfile.Key(k), Endpoint: ep}
	if l.Subnet.IsValid() && l.Subnet.Addr().Is4() {
		p.Subnet = l.Subnet
	}
	if l.IPv6Subnet.IsValid() && l.IPv6Subnet.Addr().Is6() {
		p.IPv6Subnet = l.IPv6Subnet
	}
	if !p.id().IsValid() {
		s.ignore(l, "lease without a subnet", nil)
		return peer{}, false
	}
	return p, true
}

func (s *peerSet) ignore(l subnet.Lease, why string, err error) {
	id := l.Subnet.String() + " " + l.IPv6Subnet.String() + " " + l.Attrs.BackendType + " " + string(l.Attrs.BackendData)
	if _, seen := s.loggedBad[id]; seen {
		return
	}
	if len(s.loggedBad) > 4096 { // bounded: a writer churning junk leases
		clear(s.loggedBad)
	}
	s.loggedBad[id] = struct{}{}
	s.log.Warn("ignoring "+why, "subnet", leaseID(l.Subnet, l.IPv6Subnet), "publicIP", l.Attrs.PublicIP, "publicIPv6", l.Attrs.PublicIPv6, "backend", l.Attrs.BackendType, "err", err)
}

// apply computes the wanted peers from a snapshot (non-nil: the whole
// table) or events, and returns the UAPI text that makes the device hold
// exactly them ("" when nothing changes). A peer whose lease went is
// removed; one whose key changed is removed and added with the new key.
// Two leases with one key: the subnet the key is installed for keeps it
// (a stray etcd writer's copy of a working peer's key takes nothing from
// it), else the lowest subnet; the other is ignored and counted (a
// WireGuard peer is one key).
func (s *peerSet) apply(snapshot []subnet.Lease, events []subnet.Event) string {
	want := maps.Clone(s.bySubnet)
	if snapshot != nil {
		want = map[netip.Prefix]peer{}
		for _, l := range snapshot {
			if p, ok := s.peerOf(l); ok {
				want[p.id()] = p
			}
		}
	}
	for _, ev := range events {
		id := leaseID(ev.Lease.Subnet, ev.Lease.IPv6Subnet)
		if ev.Type == subnet.EventRemoved {
			delete(want, id)
			continue
		}
		if p, ok := s.peerOf(ev.Lease); ok {
			want[p.id()] = p
		} else {
			delete(want, id)
		}
	}
	// One subnet per key: the one it is installed for first.
	owner := map[keyfile.Key]netip.Prefix{}
	for sub, old := range s.bySubnet {
		if p, ok := want[sub]; ok && p.Key == old.Key {
			owner[p.Key] = sub
		}
	}
	for _, sub := range slices.SortedFunc(maps.Keys(want), netip.Prefix.Compare) {
		p := want[sub]
		if first, dup := owner[p.Key]; dup && first != sub {
			s.badKeys++
			s.ignore(subnet.Lease{Subnet: sub, Attrs: subnet.LeaseAttrs{PublicIP: p.Endpoint.Addr().String(), BackendType: subnet.BackendWireGuard,
				BackendData: []byte("duplicate key of " + first.String())}}, "lease whose PublicKey another subnet ("+first.String()+") already has", nil)
			delete(want, sub)
			continue
		}
		owner[p.Key] = sub
	}

	var b strings.Builder
	// Removals first: a key that moved to another subnet is free again.
	for _, sub := range slices.SortedFunc(maps.Keys(s.bySubnet), netip.Prefix.Compare) {
		old := s.bySubnet[sub]
		if n, ok := want[sub]; ok && n.Key == old.Key {
			continue
		}
		if owned, ok := owner[old.Key]; ok && owned != sub {
			// The key is wanted for another subnet: re-set below with
			// replace_allowed_ips, no removal (its session survives).
			continue
		}
		b.WriteString("public_key=" + hex.EncodeToString(old.Key[:]) + "\nremove=true\n")
	}
	for _, sub := range slices.SortedFunc(maps.Keys(want), netip.Prefix.Compare) {
		p := want[sub]
		if old, ok := s.bySubnet[sub]; ok && old == p {
			continue
		}
		b.WriteString("public_key=" + hex.EncodeToString(p.Key[:]) + "\n")
		b.WriteString("endpoint=" + p.Endpoint.String() + "\n")
		if !s.psk.IsZero() {
			b.WriteString("preshared_key=" + hex.EncodeToString(s.psk[:]) + "\n")
		}
		b.WriteString("persistent_keepalive_interval=" + strconv.Itoa(s.keepalive) + "\n")
		b.WriteString("replace_allowed_ips=true\n")
		for _, a := range []netip.Prefix{p.Subnet, p.IPv6Subnet} {
			if a.IsValid() {
				b.WriteString("allowed_ip=" + a.String() + "\n")
			}
		}
	}
	s.bySubnet = want
	return b.String()
}

// list is the peers for /status, sorted by subnet.
func (s *peerSet) list() []backend.Peer {
	out := make([]backend.Peer, 0, len(s.bySubnet))
	for _, sub := range slices.SortedFunc(maps.Keys(s.bySubnet), netip.Prefix.Compare) {
		p := s.bySubnet[sub]
		out = append(out, backend.Peer{Subnet: p.Subnet, IPv6Subnet: p.IPv6Subnet, PublicIP: p.Endpoint.Addr(), Endpoint: p.Endpoint.String(), Mode: Mode})
	}
	return out
}
