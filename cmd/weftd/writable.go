package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/weftnet/weft/nodelock"
	"github.com/weftnet/weft/subnet/subnetfile"
)

// writableDir is a directory weftd will write to, and the flag that
// makes it do so (for the error message).
type writableDir struct {
	flag string
	dir  string
	// private: create the directory 0700, not 0755 (etcd warns about a
	// data directory others can read).
	private bool
	// file, if set, is the file in dir that weftd replaces or writes: if
	// it exists it must be a regular file (a rename would replace a device
	// such as /dev/zero; a read of one would never end).
	file string
}

// writableDirs lists every directory this configuration makes weftd write
// to. Whoever adds a file weftd writes adds its directory here, so that
// checkWritable covers it.
func (o *options) writableDirs() []writableDir {
	dirs := []writableDir{{flag: "--subnet-file", dir: filepath.Dir(o.subnetFile), file: o.subnetFile}}
	if o.flannelSubnetFile != "" {
		dirs = append(dirs, writableDir{flag: "--flannel-subnet-file", dir: filepath.Dir(o.flannelSubnetFile), file: o.flannelSubnetFile})
	}
	lock := writableDir{flag: "--lock-file", dir: nodelock.Dir}
	if o.lockFile != "" {
		lock.dir, lock.file = filepath.Dir(o.lockFile), o.lockFile
	} else if path, err := nodelock.DefaultPath(); err == nil {
		lock.file = path // an error is for d.lock to report
	}
	dirs = append(dirs, lock)
	if o.embeddedEtcdDir != "" {
		dirs = append(dirs, writableDir{flag: "--embedded-etcd-dir", dir: o.embeddedEtcdDir, private: true})
	}
	if o.cniSocket != "" {
		dirs = append(dirs,
			writableDir{flag: "--cni-socket", dir: filepath.Dir(o.cniSocket)},
			writableDir{flag: "--endpoints-file", dir: filepath.Dir(o.endpointsFile), file: o.endpointsFile})
	}
	return dirs
}

// checkWritable makes sure weftd can create files in every directory
// (creating a missing one, as weftd would anyway) before it does anything
// with side effects: under systemd's ProtectSystem=strict, everything
// outside weftd.service's ReadWritePaths= is read-only, and finding that
// out after the lease was taken means a restart loop. A failure is a
// configuration error.
func checkWritable(dirs []writableDir) error {
	for _, d := range dirs {
		perm := os.FileMode(0o755)
		if d.private {
			perm = 0o700
		}
		if err := tryWrite(d.dir, perm); err != nil {
			hint := ""
			if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				hint = "; weftd.service may write only /run/weft and /var/lib/weft: " +
					"add the directory with a drop-in (systemctl edit weftd: [Service] ReadWritePaths=" + d.dir + ")"
			}
			return configErrorf("%s: directory %s is not writable: %w%s", d.flag, d.dir, err, hint)
		}
		if d.file != "" {
			if err := subnetfile.CheckRegular(d.file); err != nil {
				return configErrorf("%s: %w", d.flag, err)
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
