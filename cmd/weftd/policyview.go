package main

import (
	"context"

	"github.com/weftnet/weft/subnet"
)

// watchPolicyView follows the endpoints, namespaces and policies in etcd
// and hands every new view to onView until ctx ends.
func (d *weftd) watchPolicyView(ctx context.Context) {
	_ = d.mgr.WatchView(ctx, 0, d.onView)
}

// onView receives each consistent view (enforcement hooks in here).
func (d *weftd) onView(v subnet.View) {
	d.log.Debug("policy view", "revision", v.Revision, "endpoints", len(v.Endpoints), "namespaces", len(v.Namespaces), "policies", len(v.Policies))
	d.offerPolicyView(v)
}
