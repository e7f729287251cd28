// Package udp is the "udp" backend: weft's user-space data path (package
// overlay: a TUN device, encapsulation in UDP) to every peer, or, with
// DirectRouting, plain kernel routes to the peers on this node's L2 and UDP
// to the others.
package udp
