package main

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/weftnet/weft/cni/registry"
	"github.com/weftnet/weft/retry"
)

// startRegistry publishes the containers this node had before a restart,
// then serves the CNI socket (cni/registry). It returns once the socket
// listens. sub and sub6 are the node's subnets (IPv4, IPv6; each invalid
// when the network lacks the family): containers outside them are refused.
func (d *weftd) startRegistry(ctx context.Context, wg *sync.WaitGroup, node string, sub, sub6 netip.Prefix) error {
	if d.opts.cniSocket == "" {
		d.log.Warn("--cni-socket is empty: containers are not published, network policy cannot apply to them")
		return nil
	}
	o := registry.Options{Node: node, Subnet: sub, IPv6Subnet: sub6, File: d.opts.endpointsFile, Socket: d.opts.cniSocket, TTL: d.opts.endpointTTL,
		Store: d.store, Enforced: d.waitPolicyFor, Log: d.log.With("component", "endpoints"),
		Retry: func(ctx context.Context, what string, fn func(context.Context) error) error {
			_, err := retry.Do(ctx, d.attempts(), what, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
			return err
		}}
	if p := d.state.policy.Load(); p != nil {
		o.Policy = p
	}
	_, err := registry.Start(ctx, wg, o)
	if errors.Is(err, registry.ErrConfig) {
		return asConfigError(err)
	}
	return err
}
