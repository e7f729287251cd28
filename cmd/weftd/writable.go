package main

import (
	"path/filepath"

	"github.com/weftnet/weft/nodelock"
	"github.com/weftnet/weft/writecheck"
)

// writableDirs lists every directory this configuration makes weftd write
// to. Whoever adds a file weftd writes adds its directory here, so that
// the check before start-up (writecheck.Check, a configuration error when
// it fails) covers it.
func (o *options) writableDirs() []writecheck.Dir {
	dirs := []writecheck.Dir{{Flag: "--subnet-file", Path: filepath.Dir(o.subnetFile), File: o.subnetFile}}
	if o.flannelSubnetFile != "" {
		dirs = append(dirs, writecheck.Dir{Flag: "--flannel-subnet-file", Path: filepath.Dir(o.flannelSubnetFile), File: o.flannelSubnetFile})
	}
	lock := writecheck.Dir{Flag: "--lock-file", Path: nodelock.Dir}
	if o.lockFile != "" {
		lock.Path, lock.File = filepath.Dir(o.lockFile), o.lockFile
	} else if path, err := nodelock.DefaultPath(); err == nil {
		lock.File = path // an error is for d.lock to report
	}
	dirs = append(dirs, lock)
	if o.embeddedEtcdDir != "" {
		dirs = append(dirs, writecheck.Dir{Flag: "--embedded-etcd-dir", Path: o.embeddedEtcdDir, Private: true})
	}
	if o.cniSocket != "" {
		dirs = append(dirs,
			writecheck.Dir{Flag: "--cni-socket", Path: filepath.Dir(o.cniSocket)},
			writecheck.Dir{Flag: "--endpoints-file", Path: filepath.Dir(o.endpointsFile), File: o.endpointsFile})
	}
	return dirs
}
