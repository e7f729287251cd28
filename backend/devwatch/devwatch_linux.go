// Package devwatch follows a backend's TUN device with netlink and reports
// when it is lost (deleted, renamed, set down, or given a foreign queue):
// the udp and wireguard backends end Run with backend.ErrDeviceLost then.
package devwatch

import (
	"context"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/backend"
)

// Watch follows the link called name (weftd's TUN, up and running when
// the watch starts) with netlink and calls lost once when it is deleted,
// renamed or set down, or, for a multi-queue TUN (queues > 1), when it has
// more queues attached than weftd's: any root process of the namespace can
// attach one, and the kernel then sends some flows into it, where weftd
// never reads them. It returns when ctx ends or after lost.
func Watch(ctx context.Context, name string, queues int, lost func(error)) error {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	defer close(done)
	watchErr := make(chan error, 1)
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case watchErr <- err:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch device %s: %w", name, err)
	}
	// Subscribed first, then looked up: a removal in between is seen either way.
	link, err := netlink.LinkByName(name)
	if err != nil {
		lost(fmt.Errorf("%w: %s: %v", backend.ErrDeviceLost, name, err))
		return nil
	}
	index := link.Attrs().Index
	if err := foreignQueue(link, name, queues); err != nil {
		lost(err)
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-watchErr:
			return fmt.Errorf("watch device %s: %w", name, err)
		case u, ok := <-updates:
			if !ok {
				return fmt.Errorf("watch device %s: netlink subscription ended", name)
			}
			if int(u.Index) != index {
				continue
			}
			switch {
			case u.Header.Type == unix.RTM_DELLINK:
				lost(fmt.Errorf("%w: %s was deleted", backend.ErrDeviceLost, name))
				return nil
			case u.Attrs().Name != name:
				lost(fmt.Errorf("%w: %s was renamed to %s", backend.ErrDeviceLost, name, u.Attrs().Name))
				return nil
			case u.IfInfomsg.Flags&unix.IFF_UP == 0:
				lost(fmt.Errorf("%w: %s was set down", backend.ErrDeviceLost, name))
				return nil
			}
			if err := foreignQueue(u.Link, name, queues); err != nil {
				lost(err)
				return nil
			}
		}
	}
}

// foreignQueue reports a multi-queue TUN with more queues attached than
// weftd's own (the kernel reports attached queues of multi-queue TUNs only).
func foreignQueue(link netlink.Link, name string, queues int) error {
	t, ok := link.(*netlink.Tuntap)
	if !ok || queues < 2 || t.Flags&netlink.TUNTAP_MULTI_QUEUE == 0 || t.Queues <= queues {
		return nil
	}
	return fmt.Errorf("%w: another process attached a queue to %s (%d queues attached, weftd holds %d): flows the kernel sends into it are lost",
		backend.ErrDeviceLost, name, t.Queues, queues)
}
