package vxlan

import (
	"bytes"
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
	SkipPublicIP = "public_ip" // not a usable address of the family (PublicIP IPv4, PublicIPv6 IPv6)
	SkipMAC      = "mac"       // a VtepMAC another peer (or this node) has
	// SkipSubnet: another lease names the same subnet (an IPv6 subnet
	// under two keys of a dual-stack network: a stray writer's).
	SkipSubnet = "subnet"
)

// SkipReasons lists every reason, for counters that report each one.
var SkipReasons = []string{SkipBackend, SkipData, SkipVNI, SkipPublicIP, SkipMAC, SkipSubnet}

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
	return peersOf(leases, cfg, own, onLink, false, true)
}

// PeersOf6 is PeersOf for the IPv6 side (flannel-v6.<VNI>): each lease's
// IPv6Subnet, PublicIPv6 and BackendV6Data, own the IPv6 device's
// VtepMAC. With DirectRouting a peer whose PublicIPv6 is on one of
// onLink's IPv6 prefixes is reached by a plain route, as flanneld does
// for its IPv6 side. A lease of another backend is left out silently when
// the network also has IPv4 (PeersOf reports it) and reported in an
// IPv6-only network (reportBackend).
func PeersOf6(leases []subnet.Lease, cfg Config, own MAC, onLink []netip.Prefix, reportBackend bool) ([]Peer, []LeaseSkip) {
	return peersOf(leases, cfg, own, onLink, true, reportBackend)
}

func peersOf(leases []subnet.Lease, cfg Config, own MAC, onLink []netip.Prefix, v6, reportBackend bool) ([]Peer, []LeaseSkip) {
	var peers []Peer
	var skips []LeaseSkip
	for _, l := range leases {
		sn, pub, data, pubName, dataName := l.Subnet, l.Attrs.PublicIP, l.Attrs.BackendData, "PublicIP", ""
		if v6 {
			sn, pub, data, pubName, dataName = l.IPv6Subnet, l.Attrs.PublicIPv6, l.Attrs.BackendV6Data, "PublicIPv6", "BackendV6Data: "
		}
		skip := func(reason, detail string) { skips = append(skips, LeaseSkip{sn, reason, detail}) }
		if l.Attrs.BackendType != Type {
			if reportBackend {
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
			Direct: cfg.DirectRouting && routing.OnLink(ip, onLink), Lease: l.Primary().Masked()})
	}
	slices.SortFunc(peers, func(a, b Peer) int { return a.Subnet.Compare(b.Subnet) })
	return peers, skips
}

// OnePerSubnet keeps one peer per subnet. In a dual-stack network a
// lease is named by its IPv4 subnet, so another key (a stray etcd
// writer's "10.244.9.0-24&<a peer's IPv6 subnet>") can name a peer's IPv6
// subnet a second time; two routes for one destination would flap at
// every sync and the later writer could take the peer's traffic. The peer
// chosen before (prev: subnet -> peer, what the last call kept) keeps the
// subnet; among newcomers the lowest PublicIP (then VtepMAC) wins, so that
// the choice does not depend on the order of the leases. The others are
// skipped. peers must be sorted by subnet (as PeersOf returns them).
func OnePerSubnet(peers []Peer, prev map[netip.Prefix]Peer) ([]Peer, []LeaseSkip) {
	kept := make([]Peer, 0, len(peers))
	var skips []LeaseSkip
	for i := 0; i < len(peers); {
		j := i + 1
		for j < len(peers) && peers[j].Subnet == peers[i].Subnet {
			j++
		}
		group := peers[i:j]
		won := group[0]
		for _, p := range group[1:] {
			if p.PublicIP.Less(won.PublicIP) || p.PublicIP == won.PublicIP && bytes.Compare(p.VtepMAC[:], won.VtepMAC[:]) < 0 {
				won = p
			}
		}
		if old, ok := prev[group[0].Subnet]; ok && slices.Contains(group, old) {
			won = old
		}
		kept = append(kept, won)
		for _, p := range group {
			if p != won {
				skips = append(skips, LeaseSkip{p.Subnet, SkipSubnet, fmt.Sprintf("%s (VtepMAC %s) names the subnet of %s too", p.PublicIP, p.VtepMAC, won.PublicIP)})
			}
		}
		i = j
	}
	return kept, skips
}
