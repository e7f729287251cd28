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
	addr                  netip.Prefix
	gateway               netip.Addr
	routes                []*types.Route
	dns                   types.DNS
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
	result.IPs = append(result.IPs, &current.IPConfig{
		Interface: current.Int(base + 2),
		Address:   net.IPNet{IP: net.IP(a.addr.Addr().AsSlice()), Mask: net.CIDRMask(a.addr.Bits(), 32)},
		Gateway:   net.IP(a.gateway.AsSlice()),
	})
	result.Routes = append(result.Routes, a.routes...)
	if !a.dns.IsEmpty() {
		result.DNS = a.dns
	}
	// The result stays a 1.0.0 one; types.PrintResult converts it to
	// cniVersion (0.3.x/0.4.0 add "version" to ips, 1.1.0 is the same shape).
	result.CNIVersion = current.ImplementedSpecVersion
	return result, nil
}
