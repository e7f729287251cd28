// Package cni is the logic of weft's CNI plugin (binary "weft", network
// config "type": "weft").
//
// The plugin attaches containers to a Linux bridge that holds the first
// address of the node's subnet, which it reads from the subnet file weftd
// writes (package subnet/subnetfile). Addresses are allocated in-process from
// that subnet and persisted on disk in the host-local layout: one file per
// address, named by the address and holding "<containerID>\r\n<ifname>",
// plus a lock file, in a directory per network. weftd routes the whole
// overlay network to its TUN device, so the bridge only has to reach the
// local containers.
//
// Every verb of CNI 1.1.0 is supported: ADD, DEL, CHECK, GC, STATUS and
// VERSION (configs and results 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0; GC and
// STATUS only with 1.1.0).
package cni
