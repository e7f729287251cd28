// Package writecheck makes sure a daemon can write where its configuration
// says it will, before it does anything with side effects: under systemd's
// ProtectSystem=strict everything outside a unit's ReadWritePaths= is
// read-only, and finding that out after a lease was taken means a restart
// loop.
package writecheck

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/weftnet/weft/subnet/subnetfile"
)

// Dir is a directory the daemon will write to, and the flag that makes it
// do so (for the error message).
type Dir struct {
	Flag string
	Path string
	// Private: create the directory 0700, not 0755 (etcd warns about a
	// data directory others can read).
	Private bool
	// File, if set, is the file in Path that the daemon replaces or
	// writes: if it exists it must be a regular file (a rename would
	// replace a device such as /dev/zero; a read of one would never end).
	File string
}

// Check makes sure files can be created in every directory (creating a
// missing one, as the daemon would anyway) and that each File, if it
// exists, is a regular file. The error names the flag and, for a
// read-only or forbidden directory, the systemd drop-in that allows it.
func Check(dirs []Dir) error {
	for _, d := range dirs {
		perm := os.FileMode(0o755)
		if d.Private {
			perm = 0o700
		}
		if err := tryWrite(d.Path, perm); err != nil {
			hint := ""
			if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				hint = "; weftd.service may write only /run/weft and /var/lib/weft: " +
					"add the directory with a drop-in (systemctl edit weftd: [Service] ReadWritePaths=" + d.Path + ")"
			}
			return fmt.Errorf("%s: directory %s is not writable: %w%s", d.Flag, d.Path, err, hint)
		}
		if d.File != "" {
			if err := subnetfile.CheckRegular(d.File); err != nil {
				return fmt.Errorf("%s: %w", d.Flag, err)
			}
		}
	}
	return nil
}

// tryWrite creates dir (with perm) if needed, then creates and removes a
// file in it.
func tryWrite(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".weftd-write-check-*")
	if err != nil {
		return err
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
