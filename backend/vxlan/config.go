// Package vxlan is flannel's "vxlan" backend, wire-compatible with
// flanneld: the kernel's VXLAN device flannel.<VNI> carries the packets,
// and this package keeps the device's neighbours (ARP), forwarding
// database (FDB) and routes true to the leases of the other nodes, exactly
// as flanneld installs them, so that weftd and flanneld nodes share one
// network and a node can move from one to the other.
package vxlan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/weftnet/weft/subnet"
)

// Type is the Backend.Type this package implements.
const Type = "vxlan"

// Defaults, as in flannel (the port is the Linux kernel's default VXLAN
// port, which flannel leaves to the kernel by passing 0).
const (
	DefaultVNI  = 1
	DefaultPort = 8472
	// MaxVNI is the largest 24-bit VXLAN network identifier.
	MaxVNI = 1<<24 - 1
	// Overhead is what VXLAN adds to an inner packet: outer IPv4 (20), UDP
	// (8), VXLAN (8) and the inner Ethernet header (14).
	Overhead = 50
	// minContainerMTU is the smallest MTU the subnet file takes.
	minContainerMTU = 576
)

// Config is the Backend section of a vxlan network config, with flannel's
// field names (matched case-insensitively, as flannel's encoding/json
// does: "DirectRouting" and "Directrouting" are the same field).
type Config struct {
	VNI      int
	Port     int // UDP port; 0 in the config means DefaultPort
	GBP      bool
	Learning bool
	// DirectRouting routes to peers on the same L2 directly, without
	// encapsulation.
	DirectRouting bool
	// MTU is flannel's override of the outgoing packets' MTU (default:
	// the underlay interface's). The device and the containers get MTU -
	// Overhead. 0 means not set.
	MTU int
}

// ParseConfig decodes and checks the Backend section (the raw JSON object,
// Type included). Unknown fields are refused, as in weft's other backends.
func ParseConfig(raw []byte) (Config, error) {
	c := Config{VNI: DefaultVNI, Port: DefaultPort}
	if len(bytes.TrimSpace(raw)) == 0 {
		return c, nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&fields); err != nil || fields == nil {
		return Config{}, fmt.Errorf("Backend: want a JSON object: %v", err)
	}
	if dec.More() {
		return Config{}, errors.New("Backend: unexpected data after the JSON object")
	}
	seen := map[string]string{}
	for name, v := range fields {
		key := strings.ToLower(name)
		if prev, dup := seen[key]; dup {
			return Config{}, fmt.Errorf("Backend: %q and %q are the same field", prev, name)
		}
		seen[key] = name
		var err error
		switch key {
		case "type":
			var t string
			if err = json.Unmarshal(v, &t); err == nil && t != Type {
				err = fmt.Errorf("not %q", Type)
			}
		case "vni":
			err = json.Unmarshal(v, &c.VNI)
		case "port":
			err = json.Unmarshal(v, &c.Port)
		case "gbp":
			err = json.Unmarshal(v, &c.GBP)
		case "learning":
			err = json.Unmarshal(v, &c.Learning)
		case "directrouting":
			err = json.Unmarshal(v, &c.DirectRouting)
		case "mtu":
			err = json.Unmarshal(v, &c.MTU)
		default:
			return Config{}, fmt.Errorf("Backend: unknown field %q for Type %q (known: Type, VNI, Port, GBP, Learning, DirectRouting, MTU)", name, Type)
		}
		if err != nil {
			return Config{}, fmt.Errorf("Backend.%s: %w", name, err)
		}
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks the ranges.
func (c Config) Validate() error {
	if c.VNI < 0 || c.VNI > MaxVNI {
		return fmt.Errorf("Backend.VNI %d out of range [0, %d]", c.VNI, MaxVNI)
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("Backend.Port %d out of range [1, 65535]", c.Port)
	}
	if c.MTU != 0 && (c.MTU < minContainerMTU+Overhead || c.MTU > 65535) {
		return fmt.Errorf("Backend.MTU %d out of range [%d, 65535] (containers get MTU - %d)", c.MTU, minContainerMTU+Overhead, Overhead)
	}
	return nil
}

// DeviceName is the VXLAN device's name, flannel's "flannel.<VNI>".
func (c Config) DeviceName() string { return fmt.Sprintf("flannel.%d", c.VNI) }

// DeviceNameV6 is the IPv6 side's device, flannel's "flannel-v6.<VNI>":
// IPv6 inner packets, carried over the IPv6 underlay (PublicIPv6).
func (c Config) DeviceNameV6() string { return fmt.Sprintf("flannel-v6.%d", c.VNI) }

// OverheadV6 is what VXLAN over an IPv6 underlay adds: outer IPv6 (40),
// UDP (8), VXLAN (8), inner Ethernet (14). (flanneld gives its IPv6 device
// MTU - 50 like the IPv4 one; larger IPv6 packets then leave fragmented.)
const OverheadV6 = 70

// DeviceMTUV6 is the MTU of flannel-v6.<VNI>: the outgoing MTU less
// OverheadV6.
func (c Config) DeviceMTUV6(underlayMTU int) int {
	return c.DeviceMTU(underlayMTU) + Overhead - OverheadV6
}

// DeviceMTU is the MTU of the VXLAN device and of the containers: the
// outgoing packets' MTU (Config.MTU, else the underlay's) less Overhead.
func (c Config) DeviceMTU(underlayMTU int) int {
	m := underlayMTU
	if c.MTU != 0 {
		m = c.MTU
	}
	return m - Overhead
}

// configOf decodes the vxlan section of a network config: the fields
// shared by backends (Port, DirectRouting) and its own.
func configOf(c *subnet.Config) (Config, error) {
	if c == nil {
		return Config{}, errors.New("vxlan: network config is nil")
	}
	fields := map[string]json.RawMessage{}
	if raw := c.Backend.Raw; raw != "" {
		if err := json.Unmarshal([]byte(raw), &fields); err != nil {
			return Config{}, fmt.Errorf("Backend: %w", err)
		}
	}
	put := func(k string, v any) {
		b, _ := json.Marshal(v)
		fields[k] = b
	}
	put("Type", c.Backend.Type)
	if c.Backend.Port != 0 {
		put("Port", c.Backend.Port)
	}
	if c.Backend.DirectRouting {
		put("DirectRouting", true)
	}
	if c.Backend.MTU != 0 {
		put("MTU", c.Backend.MTU)
	}
	data, err := json.Marshal(fields)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, err
	}
	if c.HasIPv6() && cfg.MTU != 0 && cfg.DeviceMTUV6(0) < minIPv6MTU {
		return Config{}, fmt.Errorf("Backend.MTU %d: with EnableIPv6 the IPv6 device %s would get MTU %d, less than IPv6's minimum %d (Linux turns IPv6 off on it)", cfg.MTU, cfg.DeviceNameV6(), cfg.DeviceMTUV6(0), minIPv6MTU)
	}
	return cfg, nil
}

// minIPv6MTU is IPv6's minimum link MTU.
const minIPv6MTU = 1280
