package udp

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// acceptDirectTraffic prepares this host to receive directly routed
// packets for its containers and to check their sources as far as the
// kernel can: IPv4 forwarding on (underlay -> bridge), and strict reverse
// path filtering on the underlay interface, so that a packet arriving
// from the underlay is accepted only if its source is reached through the
// underlay too: sources in a direct peer's subnet (whose route leads
// there) pass; sources in this node's own subnet, in a UDP peer's subnet
// or in an unleased part of the network (all routed elsewhere) are dropped.
//
// With IPv6 (ipv6) IPv6 forwarding goes on too (net.ipv6.conf.all.forwarding,
// as the CNI bridge plugin does for IPv6 containers); IPv6 has no
// rp_filter: the source check's ip6 table binds the direct peers' IPv6
// subnets to their MACs.
func acceptDirectTraffic(dev string, ipv6 bool) error {
	if err := writeSysctl("net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if ipv6 {
		if err := writeSysctl("net/ipv6/conf/all/forwarding", "1"); err != nil {
			return err
		}
	}
	return writeSysctl(filepath.Join("net/ipv4/conf", dev, "rp_filter"), "1")
}

// rpFilterAll reads net.ipv4.conf.all.rp_filter: the kernel applies the
// larger of it and the interface's value, so 2 (loose) there weakens the
// check above.
func rpFilterAll() string {
	data, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func writeSysctl(name, value string) error {
	path := filepath.Join("/proc/sys", name)
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(name, "/", "."), value, err)
	}
	return nil
}
