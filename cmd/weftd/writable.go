package main

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// writableDir is a directory weftd will write to, and the flag that
// makes it do so (for the error message).
type writableDir struct {
	flag string
	dir  string
}

// writableDirs lists every directory this configuration makes weftd write
// to. Whoever adds a file weftd writes adds its directory here, so that
// checkWritable covers it.
func (o *options) writableDirs() []writableDir {
	dirs := []writableDir{{"--subnet-file", filepath.Dir(o.subnetFile)}}
	if o.flannelSubnetFile != "" {
		dirs = append(dirs, writableDir{"--flannel-subnet-file", filepath.Dir(o.flannelSubnetFile)})
	}
	lockFile := o.lockFile
	if lockFile == "" {
		lockFile = filepath.Join(lockDir, "weftd.lock")
	}
	dirs = append(dirs, writableDir{"--lock-file", filepath.Dir(lockFile)})
	if o.embeddedEtcdDir != "" {
		dirs = append(dirs, writableDir{"--embedded-etcd-dir", o.embeddedEtcdDir})
	}
	if o.cniSocket != "" {
		dirs = append(dirs,
			writableDir{"--cni-socket", filepath.Dir(o.cniSocket)},
			writableDir{"--endpoints-file", filepath.Dir(o.endpointsFile)})
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
		if err := tryWrite(d.dir); err != nil {
			hint := ""
			if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
				hint = "; weftd.service may write only /run/weft and /var/lib/weft: " +
					"add the directory with a drop-in (systemctl edit weftd: [Service] ReadWritePaths=" + d.dir + ")"
			}
			return configErrorf("%s: directory %s is not writable: %w%s", d.flag, d.dir, err, hint)
		}
	}
	return nil
}

// tryWrite creates dir if needed, then creates and removes a file in it.
func tryWrite(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
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
