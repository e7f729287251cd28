//go:build !linux

package daemonsock

import (
	"errors"
	"net"
)

// checkPeer cannot tell who connected on this system, so it refuses.
func checkPeer(net.Conn) error {
	return errors.New("peer credentials are checked on Linux only")
}
