package cni

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

// attachmentResult is what ADD made, before it becomes a CNI result.
type attachmentResult struct {
	bridgeName, bridgeMAC string
	hostName, hostMAC     string
	ctrName, ctrMAC       string
	sandbox               string
	ips                   []resultIP // IPv4 first
	routes                []*types.Route
	dns                   types.DNS
}

// resultIP is one address of the container and its gateway.
type resultIP struct {
	addr    netip.Prefix
	gateway netip.Addr
}

// buildResult renders the attachment as a CNI result, appended to prev
// (the previous plugin's result in a chain) when there is one.
func buildResult(a attachmentResult, prev types.Result) (*current.Result, error) {
	result := &current.Result{CNIVersion: current.ImplementedSpecVersion}
	if prev != nil {
		converted, err := current.NewResultFromResult(prev)
		if err != nil {
			return nil, fmt.Errorf("convert prevResult: %w", err)
		}
		result = converted
	}
	base := len(result.Interfaces)
	result.Interfaces = append(result.Interfaces,
		&current.Interface{Name: a.bridgeName, Mac: a.bridgeMAC},
		&current.Interface{Name: a.hostName, Mac: a.hostMAC},
		&current.Interface{Name: a.ctrName, Mac: a.ctrMAC, Sandbox: a.sandbox},
	)
	for _, ip := range a.ips {
		result.IPs = append(result.IPs, &current.IPConfig{
			Interface: current.Int(base + 2),
			Address:   *addrToIPNet(ip.addr.Addr(), ip.addr.Bits()),
			Gateway:   net.IP(ip.gateway.AsSlice()),
		})
	}
	result.Routes = append(result.Routes, a.routes...)
	if !a.dns.IsEmpty() {
		result.DNS = a.dns
	}
	// The result stays a 1.0.0 one; types.PrintResult converts it to
	// cniVersion (0.3.x/0.4.0 add "version" to ips, 1.1.0 is the same shape).
	result.CNIVersion = current.ImplementedSpecVersion
	return result, nil
}
