package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/weftnet/weft/testbed"
	"github.com/weftnet/weft/testbed/cluster"
	"github.com/weftnet/weft/testbed/flannel"
)

// Paths on beds of their own (one weftd or flanneld per namespace).
const (
	pathWeftVXLAN  = "weft-vxlan"
	pathFlannelUDP = "flannel-udp"
)

// weftVXLANNetworkConfig is flannel's documented vxlan config, dual-stack:
// the IPv6 side is flannel's second device flannel-v6.1 over the hosts'
// IPv6 underlay addresses (as flanneld does it, it needs a PublicIPv6).
const weftVXLANNetworkConfig = `{"Network":"10.244.0.0/16","SubnetLen":24,"EnableIPv6":true,"IPv6Network":"fd10:244::/56","Backend":{"Type":"vxlan"}}`

// flannelUDPNo6 is why flannel udp has no TCP over IPv6 row.
const flannelUDPNo6 = "flanneld's udp backend is IPv4 only (v0.28.10: its lease has no IPv6 subnet or PublicIPv6, and its proxy routes IPv4 destinations only)"

// vtepAddrs are the two hosts' overlay addresses when the device holds
// <subnet>.0 (weft's vxlan backend, flannel's vxlan and udp backends).
func vtepAddrs(subnets [2]netip.Prefix) (netip.Addr, netip.Addr) {
	return subnets[0].Masked().Addr(), subnets[1].Masked().Addr()
}

// weftVXLANPath runs weftd with the vxlan backend on a bed of its own: the
// kernel's VXLAN device flannel.1 carries the packets. The path is between
// the devices' addresses. stop removes everything (also after an error).
func weftVXLANPath(ctx context.Context, binDir, stateDir, logDir string) (*path, func() error, error) {
	bed, err := testbed.NewBed("wbv", 2, testbed.Options{IPv6: true})
	if err != nil {
		return nil, func() error { return nil }, fmt.Errorf("weft vxlan: %w", err)
	}
	var c *cluster.Cluster
	stop := func() error {
		var errs []error
		if c != nil {
			errs = append(errs, c.Close())
			for i, n := range c.Nodes {
				if data, err := os.ReadFile(n.LogPath); err == nil {
					_ = os.WriteFile(filepath.Join(logDir, fmt.Sprintf("weftd-vxlan-host%d.log", i+1)), data, 0o644)
				}
			}
		}
		return errors.Join(append(errs, bed.Close())...)
	}
	c, err = cluster.New(bed, cluster.Options{Bin: binDir, DaemonOnly: true, WorkDir: filepath.Join(stateDir, "vxlan"), NetworkConfig: weftVXLANNetworkConfig})
	if err == nil {
		err = c.Start(ctx)
	}
	var addrs, addrs6 [2]netip.Addr
	if err == nil {
		addrs, addrs6, err = nodeAddrs(c)
	}
	if err != nil {
		return nil, stop, fmt.Errorf("weft vxlan: %w", err)
	}
	return &path{Name: pathWeftVXLAN, A: addrs[0], B: addrs[1], A6: addrs6[0], B6: addrs6[1], bed: bed,
		Note: fmt.Sprintf("weftd with Backend vxlan (kernel VXLAN device flannel.1, VNI 1, UDP 8472, as flanneld makes it; IPv6: flannel-v6.1 over the IPv6 underlay %s <-> %s) on a veth pair of its own; host-to-host between the devices' addresses %s <-> %s (IPv6 %s <-> %s)",
			bed.Hosts[0].IPv6, bed.Hosts[1].IPv6, addrs[0], addrs[1], addrs6[0], addrs6[1])}, stop, nil
}

// flannelUDPPath runs the real flanneld (v0.28.10, built from the module
// proxy and cached) with its udp backend on a bed of its own, against an
// etcd member in host 1's namespace. The path is between the flannel0 TUN
// addresses.
func flannelUDPPath(ctx context.Context, stateDir string) (*path, func() error, error) {
	bin, err := flannel.Flanneld(ctx)
	if err != nil {
		return nil, func() error { return nil }, err
	}
	bed, err := testbed.NewBed("wbf", 2, testbed.Options{})
	if err != nil {
		return nil, func() error { return nil }, fmt.Errorf("flannel udp: %w", err)
	}
	stopEtcd := func() {}
	stop := func() error { err := bed.Close(); stopEtcd(); return err }
	dir := filepath.Join(stateDir, "flannel-udp")
	url, se, err := flannel.StartEtcdIn(bed.Hosts[0], dir)
	if err != nil {
		return nil, stop, fmt.Errorf("flannel udp: %w", err)
	}
	stopEtcd = se
	if err := flannel.PutConfig(ctx, bed.Hosts[0], url, flannel.DefaultPrefix, `{"Network":"10.245.0.0/16","SubnetLen":24,"Backend":{"Type":"udp"}}`); err != nil {
		return nil, stop, fmt.Errorf("flannel udp: %w", err)
	}
	var subnets [2]netip.Prefix
	since := time.Now().Add(-time.Second)
	for i, h := range bed.Hosts[:2] {
		sf := filepath.Join(dir, fmt.Sprintf("host%d", i+1), "subnet.env")
		p, err := flannel.Start(bed, h, bin, filepath.Join(dir, fmt.Sprintf("flanneld-host%d.log", i+1)), flannel.Options{Etcd: url, SubnetFile: sf})
		if err != nil {
			return nil, stop, fmt.Errorf("flannel udp: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		env, err := flannel.WaitSubnetFile(wctx, p, sf, since)
		cancel()
		if err != nil {
			return nil, stop, fmt.Errorf("flannel udp: host %d: %w", i+1, err)
		}
		subnets[i] = env.Subnet
	}
	a, b := vtepAddrs(subnets)
	return &path{Name: pathFlannelUDP, A: a, B: b, No6: flannelUDPNo6, bed: bed,
		Note: fmt.Sprintf("the real flanneld %s with its udp backend (TUN flannel0, UDP 8285, user-space proxy) on a third veth pair; between the flannel0 addresses %s <-> %s", flannel.Version, a, b)}, stop, nil
}
