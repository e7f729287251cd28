package daemonsock

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// checkPeer refuses a connection from a process of another user than
// weftd's own: the socket file is 0600, but it is created with the process
// umask and only then restricted, and a file mode is one line of defence.
func checkPeer(conn net.Conn) error {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("peer credentials: not a unix socket (%T)", conn)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := rc.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("peer credentials: %w", credErr)
	}
	if want := os.Geteuid(); int(cred.Uid) != want {
		return fmt.Errorf("peer pid %d runs as uid %d; only uid %d may report containers", cred.Pid, cred.Uid, want)
	}
	return nil
}
