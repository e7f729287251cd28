package vxlan

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/weftnet/weft/routing"
	"github.com/weftnet/weft/subnet"
)

// Reasons a lease of another node is left out (the skipped counter's
// labels).
const (
	SkipBackend  = "backend"   // a lease of another backend type
	SkipData     = "data"      // BackendData malformed (VtepMAC, VNI)
	SkipVNI      = "vni"       // another VNI: that node's device cannot talk to ours
	SkipPublicIP = "public_ip" // not a usable IPv4 address
	SkipMAC      = "mac"       // a VtepMAC another peer (or this node) has
)

// SkipReasons lists every reason, for counters that report each one.
var SkipReasons = []string{SkipBackend, SkipData, SkipVNI, SkipPublicIP, SkipMAC}

// LeaseSkip is a lease left out, with why.
type LeaseSkip struct {
	Subnet netip.Prefix
	Reason string
	Detail string
}

// PeersOf turns the other nodes' leases into peers: each must be a vxlan
// lease with flannel's BackendData for this node's VNI; with DirectRouting
// a peer whose PublicIP is on one of onLink's prefixes is reached by a
// plain route. own is this node's VtepMAC: a lease claiming it is
// skipped too. The peers are sorted by subnet.
func PeersOf(leases []subnet.Lease, cfg Config, own MAC, onLink []netip.Prefix) ([]Peer, []LeaseSkip) {
	return peersOf(leases, cfg, own, onLink, false)
}

// PeersOf6 is PeersOf for the IPv6 side (flannel-v6.<VNI>): each lease's
// IPv6Subnet, PublicIPv6 and BackendV6Data. A lease of another backend is
// left out silently (PeersOf reports it), and DirectRouting does not
// apply: every IPv6 peer is reached through the device.
func PeersOf6(leases []subnet.Lease, cfg Config, own MAC) ([]Peer, []LeaseSkip) {
	return peersOf(leases, cfg, own, nil, true)
}

func peersOf(leases []subnet.Lease, cfg Config, own MAC, onLink []netip.Prefix, v6 bool) ([]Peer, []LeaseSkip) {
	var peers []Peer
	var skips []LeaseSkip
	for _, l := range leases {
		sn, pub, data, pubName, dataName := l.Subnet, l.Attrs.PublicIP, l.Attrs.BackendData, "PublicIP", ""
		if v6 {
			sn, pub, data, pubName, dataName = l.IPv6Subnet, l.Attrs.PublicIPv6, l.Attrs.BackendV6Data, "PublicIPv6", "BackendV6Data: "
		}
		skip := func(reason, detail string) { skips = append(skips, LeaseSkip{sn, reason, detail}) }
		if l.Attrs.BackendType != Type {
			if !v6 {
				skip(SkipBackend, fmt.Sprintf("backend %q", l.Attrs.BackendType))
			}
			continue
		}
		if v6 && !sn.IsValid() {
			continue // no IPv6 side (the subnet package reports such leases)
		}
		ip, err := netip.ParseAddr(pub)
		if err != nil || ip.Is4() == v6 || ip.Is4In6() {
			skip(SkipPublicIP, fmt.Sprintf("%s %q", pubName, pub))
			continue
		}
		d, err := ParseLeaseData(data)
		if err != nil {
			skip(SkipData, dataName+err.Error())
			continue
		}
		if d.VNI != cfg.VNI {
			skip(SkipVNI, fmt.Sprintf("VNI %d, this node's is %d", d.VNI, cfg.VNI))
			continue
		}
		if d.VtepMAC == own {
			skip(SkipMAC, fmt.Sprintf("VtepMAC %s is this node's", d.VtepMAC))
			continue
		}
		peers = append(peers, Peer{Subnet: sn.Masked(), PublicIP: ip, VtepMAC: d.VtepMAC,
			Direct: !v6 && cfg.DirectRouting && routing.OnLink(ip, onLink)})
	}
	slices.SortFunc(peers, func(a, b Peer) int { return a.Subnet.Compare(b.Subnet) })
	return peers, skips
}
