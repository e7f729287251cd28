//go:build !unit

package main

import "testing"

func TestWritableDirsOfOptions(t *testing.T) {
	o := &options{subnetFile: "/run/weft/subnet.env", embeddedEtcdDir: "/var/lib/weft/etcd"}
	got := map[string]string{}
	for _, d := range o.writableDirs() {
		got[d.Flag] = d.Path
	}
	if got["--subnet-file"] != "/run/weft" || got["--embedded-etcd-dir"] != "/var/lib/weft/etcd" || got["--lock-file"] != "/run/weft" {
		t.Fatalf("writable dirs %+v", got)
	}
}
