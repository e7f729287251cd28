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
	var peers []Peer
	var skips []LeaseSkip
	for _, l := range leases {
		skip := func(reason, detail string) { skips = append(skips, LeaseSkip{l.Subnet, reason, detail}) }
		if l.Attrs.BackendType != Type {
			skip(SkipBackend, fmt.Sprintf("backend %q", l.Attrs.BackendType))
			continue
		}
		ip, err := netip.ParseAddr(l.Attrs.PublicIP)
		if err != nil || !ip.Is4() {
			skip(SkipPublicIP, fmt.Sprintf("PublicIP %q", l.Attrs.PublicIP))
			continue
		}
		d, err := ParseLeaseData(l.Attrs.BackendData)
		if err != nil {
			skip(SkipData, err.Error())
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
		peers = append(peers, Peer{Subnet: l.Subnet.Masked(), PublicIP: ip, VtepMAC: d.VtepMAC,
			Direct: cfg.DirectRouting && routing.OnLink(ip, onLink)})
	}
	slices.SortFunc(peers, func(a, b Peer) int { return a.Subnet.Compare(b.Subnet) })
	return peers, skips
}
