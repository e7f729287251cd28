package main

import (
	"context"
	"strings"
	"time"

	"github.com/weftnet/weft/retry"
	"github.com/weftnet/weft/subnet"
)

// attemptTimeout bounds each etcd call while weftd starts, so an etcd that
// does not answer shows up as a WARN within seconds instead of a silent
// wait for systemd's start timeout.
const attemptTimeout = 5 * time.Second

// probeTimeout bounds subnet.Probe when weftd asks why etcd did not answer.
const probeTimeout = 3 * time.Second

// clientOptions are the etcd client settings from the flags.
func (d *weftd) clientOptions() subnet.ClientOptions {
	o := d.opts.etcd
	o.Endpoints = d.opts.endpoints()
	return o
}

// attempts is how weftd retries etcd calls while it starts: each bounded
// by attemptTimeout, each failure a WARN naming the endpoints and, when
// etcd did not answer in time, what a direct probe of them found.
func (d *weftd) attempts() retry.Attempts {
	probe := d.clientOptions()
	probe.DialTimeout = probeTimeout
	return retry.Attempts{
		Log:     d.log.With("endpoints", strings.Join(probe.Endpoints, ",")),
		Timeout: attemptTimeout,
		Explain: func(ctx context.Context) error { return subnet.Probe(ctx, probe) },
		Final:   isConfigError,
	}
}
