package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// errDeviceGone is the cause weftd stops with when its TUN is removed or
// taken down under it: it exits non-zero so that systemd restarts it and
// the restart builds the data path again.
var errDeviceGone = errors.New("TUN device removed or down")

// watchDevice follows the link called name (weftd's TUN, up and running when
// the watch starts) with netlink and calls lost once when it is deleted,
// renamed or set down. It returns when ctx ends or after lost.
func watchDevice(ctx context.Context, name string, lost func(error)) error {
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
		lost(fmt.Errorf("%w: %s: %v", errDeviceGone, name, err))
		return nil
	}
	index := link.Attrs().Index
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
				lost(fmt.Errorf("%w: %s was deleted", errDeviceGone, name))
				return nil
			case u.Attrs().Name != name:
				lost(fmt.Errorf("%w: %s was renamed to %s", errDeviceGone, name, u.Attrs().Name))
				return nil
			case u.IfInfomsg.Flags&unix.IFF_UP == 0:
				lost(fmt.Errorf("%w: %s was set down", errDeviceGone, name))
				return nil
			}
		}
	}
}
