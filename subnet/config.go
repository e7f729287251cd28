// Package subnet keeps weft's control-plane state in etcd: the network
// config (flannel's JSON schema), one subnet lease per node (allocate, renew,
// watch), and an embedded etcd for single-host setups.
package subnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Defaults of the network config, as in flannel.
const (
	DefaultBackendType = "udp"
	DefaultBackendPort = 8285
)

// Backend types weft implements.
const (
	// BackendUDP encapsulates in UDP; with DirectRouting, peers on the
	// same L2 are reached through plain kernel routes instead.
	BackendUDP = "udp"
	// BackendHostGW reaches every peer through a plain kernel route; a
	// peer that is not on the same L2 is unreachable (as in flannel).
	BackendHostGW = "host-gw"
)

// Backend is the "Backend" object of the network config: the fields
// several backends share, and the rest as JSON for the backend of Type to
// decode (DecodeRaw) and validate (package backend's registry: ParseConfig
// checks only the shared fields, so any Type parses here).
type Backend struct {
	Type string
	// Port is the backend's UDP port; flannel's default 8285 is filled in
	// for "udp" and "host-gw", other types keep 0 for their own default.
	Port int
	// DirectRouting: route to peers on the same L2 directly, encapsulate
	// only to the others (flannel's key; udp and vxlan).
	DirectRouting bool
	// MTU is flannel's MTU override (its PR 1736, issue 1011), the same
	// field name and meaning for every backend: the MTU of the packets
	// this node sends to the underlay, 0 when not set (then the underlay
	// interface's). Containers get MTU less the backend's overhead.
	MTU int
	// Raw holds the section's other fields (VNI, PSK, ...) as a JSON
	// object with sorted keys, "" when there are none.
	Raw string
}

// Config is the network config stored at <prefix>/config.
//
// A network has IPv4 (EnableIPv4, the default: Network, SubnetLen,
// SubnetMin, SubnetMax), IPv6 (EnableIPv6: IPv6Network, IPv6SubnetLen,
// IPv6SubnetMin, IPv6SubnetMax) or both; the fields of a family that is
// not enabled are zero.
type Config struct {
	EnableIPv4 bool
	EnableIPv6 bool

	Network   netip.Prefix
	SubnetLen int
	SubnetMin netip.Addr
	SubnetMax netip.Addr

	IPv6Network   netip.Prefix
	IPv6SubnetLen int
	IPv6SubnetMin netip.Addr
	IPv6SubnetMax netip.Addr

	Backend Backend
}

// HasIPv4 tells whether the network gives nodes IPv4 subnets.
func (c *Config) HasIPv4() bool { return c.EnableIPv4 }

// HasIPv6 tells whether the network gives nodes IPv6 subnets.
func (c *Config) HasIPv6() bool { return c.EnableIPv6 }

// fieldDecoder decodes one top-level JSON field into the config.
type fieldDecoder func(raw json.RawMessage, c *Config) error

// configFields lists every field of flannel's schema that weft knows about.
// Multi-network fields are known so that they can be refused with a clear
// message instead of "unknown field".
var configFields = map[string]fieldDecoder{
	"Network":        decodeNetwork,
	"SubnetLen":      decodeSubnetLen,
	"SubnetMin":      decodeAddrField("SubnetMin", func(c *Config) *netip.Addr { return &c.SubnetMin }),
	"SubnetMax":      decodeAddrField("SubnetMax", func(c *Config) *netip.Addr { return &c.SubnetMax }),
	"Backend":        decodeBackend,
	"EnableIPv4":     decodeBool("EnableIPv4", func(c *Config) *bool { return &c.EnableIPv4 }),
	"EnableIPv6":     decodeBool("EnableIPv6", func(c *Config) *bool { return &c.EnableIPv6 }),
	"EnableNFTables": unsupportedIfSet("EnableNFTables"),
	"IPv6Network":    decodeIPv6Network,
	"IPv6SubnetLen":  decodeIPv6SubnetLen,
	"IPv6SubnetMin":  decodeIPv6AddrField("IPv6SubnetMin", func(c *Config) *netip.Addr { return &c.IPv6SubnetMin }),
	"IPv6SubnetMax":  decodeIPv6AddrField("IPv6SubnetMax", func(c *Config) *netip.Addr { return &c.IPv6SubnetMax }),
	"Networks":       unsupportedIfSet("Networks"),
	"IPv6Networks":   unsupportedIfSet("IPv6Networks"),
}

// ParseConfig parses and validates a network config in flannel's JSON
// schema and fills in flannel's defaults.
func ParseConfig(data []byte) (*Config, error) {
	fields, err := decodeObject(data)
	if err != nil {
		return nil, fmt.Errorf("network config: malformed JSON: %w", err)
	}
	c := &Config{EnableIPv4: true} // flannel's default
	for _, name := range sortedKeys(fields) {
		decode := lookupField(configFields, name)
		if decode == nil {
			return nil, fmt.Errorf("network config: unknown field %q", name)
		}
		if err := decode(fields[name], c); err != nil {
			return nil, fmt.Errorf("network config: %w", err)
		}
	}
	if err := c.applyDefaults(); err != nil {
		return nil, fmt.Errorf("network config: %w", err)
	}
	return c, nil
}

// decodeObject decodes a JSON object into its raw fields, refusing
// anything else (arrays, trailing data, ...).
func decodeObject(data []byte) (map[string]json.RawMessage, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty input")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return nil, err
	}
	if fields == nil {
		return nil, errors.New("expected a JSON object, got null")
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return fields, nil
}

// lookupField finds a field case-insensitively, as encoding/json (and so
// flannel) does.
func lookupField(known map[string]fieldDecoder, name string) fieldDecoder {
	if d, ok := known[name]; ok {
		return d
	}
	for k, d := range known {
		if strings.EqualFold(k, name) {
			return d
		}
	}
	return nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func decodeNetwork(raw json.RawMessage, c *Config) error {
	var s string
	if err := unmarshalField("Network", "a string like \"10.244.0.0/16\"", raw, &s); err != nil {
		return err
	}
	p, err := parsePrefix("Network", s)
	if err != nil {
		return err
	}
	if !p.Addr().Is4() {
		return fmt.Errorf("Network %s: only IPv4 here; an IPv6 network goes in IPv6Network (with \"EnableIPv6\": true)", s)
	}
	if p.Masked() != p {
		return fmt.Errorf("Network %s has host bits set (did you mean %s?)", s, p.Masked())
	}
	if err := checkOverlayRange(p); err != nil {
		return err
	}
	c.Network = p
	return nil
}

// unusableNetworks are the IPv4 ranges a Network may not overlap: their
// addresses never reach another host (loopback, "this network",
// link-local), are not unicast (multicast, and 240.0.0.0/4 with the
// broadcast address), so containers numbered in them would be cut off or
// would capture the host's own traffic.
var unusableNetworks = [...]struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved and broadcast (240.0.0.0/4, 255.255.255.255)"},
}

// checkOverlayRange refuses a Network that overlaps an unusableNetworks
// range.
func checkOverlayRange(p netip.Prefix) error {
	for _, u := range unusableNetworks {
		if p.Overlaps(u.prefix) {
			return fmt.Errorf("Network %s overlaps %s addresses: containers cannot use them; choose a private range such as 10.244.0.0/16", p, u.what)
		}
	}
	return nil
}

// CheckUnderlay refuses a Network that would capture this node's own
// underlay: one containing publicIP, or overlapping underlay (the
// prefixes of the underlay interface's addresses). Routes to such a
// Network would send the node's traffic to its peers into the overlay.
// The same holds for IPv6Network and the IPv6 ones (publicIP may be of
// either family; CheckUnderlay may be called once per PublicIP).
func (c *Config) CheckUnderlay(publicIP netip.Addr, underlay []netip.Prefix) error {
	for _, n := range []struct {
		name string
		p    netip.Prefix
	}{{"Network", c.Network}, {"IPv6Network", c.IPv6Network}} {
		if !n.p.IsValid() {
			continue
		}
		if n.p.Contains(publicIP) {
			return fmt.Errorf("%s %s contains this node's PublicIP %s: the overlay would capture the underlay's own traffic; choose a %s apart from the hosts' addresses", n.name, n.p, publicIP, n.name)
		}
		for _, u := range underlay {
			if n.p.Overlaps(u.Masked()) {
				return fmt.Errorf("%s %s overlaps this node's underlay network %s: the overlay would capture the underlay's own traffic; choose a %s apart from the hosts' addresses", n.name, n.p, u.Masked(), n.name)
			}
		}
	}
	return nil
}

func decodeSubnetLen(raw json.RawMessage, c *Config) error {
	if err := unmarshalField("SubnetLen", "an integer", raw, &c.SubnetLen); err != nil {
		return err
	}
	if c.SubnetLen < 0 {
		return fmt.Errorf("SubnetLen %d is negative", c.SubnetLen)
	}
	return nil
}

func decodeAddrField(name string, field func(*Config) *netip.Addr) fieldDecoder {
	return func(raw json.RawMessage, c *Config) error {
		var s string
		if err := unmarshalField(name, "a string like \"10.244.1.0\"", raw, &s); err != nil {
			return err
		}
		a, err := parseAddr(name, s)
		if err != nil {
			return err
		}
		if !a.Is4() {
			return fmt.Errorf("%s %s: only IPv4 is supported", name, s)
		}
		*field(c) = a
		return nil
	}
}

func decodeBool(name string, field func(*Config) *bool) fieldDecoder {
	return func(raw json.RawMessage, c *Config) error {
		return unmarshalField(name, "true or false", raw, field(c))
	}
}

// unsupportedIfSet accepts a field only with its zero value (false, 0, "",
// null, [], {}).
func unsupportedIfSet(name string) fieldDecoder {
	return func(raw json.RawMessage, _ *Config) error {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if isZeroJSON(v) {
			return nil
		}
		return fmt.Errorf("%s: not supported yet", name)
	}
}

func isZeroJSON(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case bool:
		return !x
	case float64:
		return x == 0
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func decodeBackend(raw json.RawMessage, c *Config) error {
	if s := strings.TrimSpace(string(raw)); s == "" || s[0] != '{' {
		return fmt.Errorf("Backend: want an object like {\"Type\":\"udp\"}, got %s", describeJSON(raw))
	}
	fields, err := decodeObject(raw)
	if err != nil {
		return fmt.Errorf("Backend: want an object like {\"Type\":\"udp\"}: %w", err)
	}
	rest := map[string]json.RawMessage{}
	for _, name := range sortedKeys(fields) {
		switch {
		case strings.EqualFold(name, "Type"):
			if err := unmarshalField("Backend.Type", "a string", fields[name], &c.Backend.Type); err != nil {
				return err
			}
		case strings.EqualFold(name, "Port"):
			if err := unmarshalField("Backend.Port", "an integer", fields[name], &c.Backend.Port); err != nil {
				return err
			}
			if c.Backend.Port < 0 || c.Backend.Port > 65535 {
				return fmt.Errorf("Backend.Port %d out of range [1, 65535]", c.Backend.Port)
			}
		case strings.EqualFold(name, "DirectRouting"):
			if err := unmarshalField("Backend.DirectRouting", "true or false", fields[name], &c.Backend.DirectRouting); err != nil {
				return err
			}
		case strings.EqualFold(name, "MTU"):
			if err := unmarshalField("Backend.MTU", "an integer", fields[name], &c.Backend.MTU); err != nil {
				return err
			}
			if c.Backend.MTU < MinMTU || c.Backend.MTU > MaxMTU {
				return fmt.Errorf("Backend.MTU %d out of range [%d, %d]", c.Backend.MTU, MinMTU, MaxMTU)
			}
		default:
			if _, dup := rest[name]; dup {
				return fmt.Errorf("Backend: field %q given twice", name)
			}
			rest[name] = fields[name]
		}
	}
	if len(rest) == 0 {
		return nil
	}
	// The backend-specific rest, in one canonical form (sorted keys,
	// compact values), so that a config survives MarshalJSON and
	// ParseConfig unchanged.
	data, err := json.Marshal(rest)
	if err != nil {
		return fmt.Errorf("Backend: %w", err)
	}
	if len(data) > maxBackendRaw {
		return fmt.Errorf("Backend: %d bytes of backend-specific fields, more than %d", len(data), maxBackendRaw)
	}
	c.Backend.Raw = string(data)
	return nil
}

// The range of Backend.MTU. Each backend also checks that the MTU its
// containers get (MTU less its overhead) is at least MinMTU.
const (
	MinMTU = 576
	MaxMTU = 65535
)

// maxBackendRaw bounds the backend-specific fields of the Backend section.
const maxBackendRaw = 4096

// DecodeRaw decodes the backend-specific fields of the section (Raw) into
// v, a pointer to a struct of the backend's fields; a field v does not
// have is an error naming it (`Backend: unknown field "VNI"`). Field names
// match case-insensitively, as in flannel.
func (b Backend) DecodeRaw(v any) error {
	if b.Raw == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(b.Raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// Name the field as written rather than encoding/json's wording.
		const prefix = "json: unknown field "
		if msg := err.Error(); strings.HasPrefix(msg, prefix) {
			return fmt.Errorf("Backend: unknown field %s", strings.TrimPrefix(msg, prefix))
		}
		return fmt.Errorf("Backend: %w", err)
	}
	return nil
}

// applyDefaults fills in flannel's defaults and checks the result with
// flannel's rules (pkg/subnet/config.go).
func (c *Config) applyDefaults() error {
	if !c.EnableIPv4 && !c.EnableIPv6 {
		return errors.New("EnableIPv4 and EnableIPv6 are both false: enable at least one address family")
	}
	if c.EnableIPv4 {
		if err := c.applyDefaults4(); err != nil {
			return err
		}
	} else if c.Network.IsValid() || c.SubnetLen != 0 || c.SubnetMin.IsValid() || c.SubnetMax.IsValid() {
		return errors.New("Network, SubnetLen, SubnetMin and SubnetMax are for IPv4, which \"EnableIPv4\": false turns off: remove them (or enable IPv4)")
	}
	if c.EnableIPv6 {
		if err := c.applyDefaults6(); err != nil {
			return err
		}
	} else if c.IPv6Network.IsValid() || c.IPv6SubnetLen != 0 || c.IPv6SubnetMin.IsValid() || c.IPv6SubnetMax.IsValid() {
		return errors.New("IPv6Network, IPv6SubnetLen, IPv6SubnetMin and IPv6SubnetMax need \"EnableIPv6\": true (as in flannel, they are ignored without it: set it, or remove them)")
	}
	if c.Backend.Type == "" {
		c.Backend.Type = DefaultBackendType
	}
	if c.Backend.Port == 0 && (c.Backend.Type == BackendUDP || c.Backend.Type == BackendHostGW) {
		c.Backend.Port = DefaultBackendPort
	}
	return nil
}

// applyDefaults4 fills in and checks the IPv4 fields.
func (c *Config) applyDefaults4() error {
	if !c.Network.IsValid() {
		return errors.New("Network: missing (e.g. \"10.244.0.0/16\")")
	}
	netBits := c.Network.Bits()
	if c.SubnetLen > 0 {
		if c.SubnetLen > 30 {
			return fmt.Errorf("SubnetLen %d: must be /30 or shorter", c.SubnetLen)
		}
		if c.SubnetLen < netBits+2 {
			return fmt.Errorf("SubnetLen %d: Network %s must hold at least four subnets (SubnetLen >= %d)", c.SubnetLen, c.Network, netBits+2)
		}
	} else {
		switch {
		case netBits > 28:
			return fmt.Errorf("Network %s is too small: the smallest useful network is a /28", c.Network)
		case netBits <= 22:
			c.SubnetLen = 24
		default:
			c.SubnetLen = netBits + 2
		}
	}
	size := uint32(1) << (32 - c.SubnetLen)
	base := addrToUint32(c.Network.Addr())
	last := base + uint32((uint64(1)<<(32-netBits))-1)
	if !c.SubnetMin.IsValid() {
		c.SubnetMin = uint32ToAddr(base + size)
	} else if !c.Network.Contains(c.SubnetMin) {
		return fmt.Errorf("SubnetMin %s is not inside Network %s", c.SubnetMin, c.Network)
	}
	if !c.SubnetMax.IsValid() {
		c.SubnetMax = uint32ToAddr(last - size + 1)
	} else if !c.Network.Contains(c.SubnetMax) {
		return fmt.Errorf("SubnetMax %s is not inside Network %s", c.SubnetMax, c.Network)
	}
	mask := ^(size - 1)
	if v := addrToUint32(c.SubnetMin); v&mask != v {
		return fmt.Errorf("SubnetMin %s is not on a /%d boundary", c.SubnetMin, c.SubnetLen)
	}
	if v := addrToUint32(c.SubnetMax); v&mask != v {
		return fmt.Errorf("SubnetMax %s is not on a /%d boundary", c.SubnetMax, c.SubnetLen)
	}
	if c.SubnetMin.Compare(c.SubnetMax) > 0 {
		return fmt.Errorf("SubnetMin %s is after SubnetMax %s", c.SubnetMin, c.SubnetMax)
	}
	return nil
}

// configJSON is the flannel-schema form written to etcd. The fields of a
// family that is off are left out, and EnableIPv4 is written only when
// false, so an IPv4 config reads as it always did.
type configJSON struct {
	EnableIPv4    *bool  `json:",omitempty"`
	EnableIPv6    bool   `json:",omitempty"`
	Network       string `json:",omitempty"`
	SubnetLen     int    `json:",omitempty"`
	SubnetMin     string `json:",omitempty"`
	SubnetMax     string `json:",omitempty"`
	IPv6Network   string `json:",omitempty"`
	IPv6SubnetLen int    `json:",omitempty"`
	IPv6SubnetMin string `json:",omitempty"`
	IPv6SubnetMax string `json:",omitempty"`
	Backend       json.RawMessage
}

type backendJSON struct {
	Type          string
	Port          int  `json:",omitempty"`
	DirectRouting bool `json:",omitempty"`
	MTU           int  `json:",omitempty"`
}

// MarshalJSON renders the config in flannel's schema.
func (c *Config) MarshalJSON() ([]byte, error) {
	j := configJSON{Backend: backendSection(c.Backend)}
	if c.EnableIPv4 {
		j.Network, j.SubnetLen = c.Network.String(), c.SubnetLen
		j.SubnetMin, j.SubnetMax = c.SubnetMin.String(), c.SubnetMax.String()
	} else {
		j.EnableIPv4 = new(bool)
	}
	if c.EnableIPv6 {
		j.EnableIPv6 = true
		j.IPv6Network, j.IPv6SubnetLen = c.IPv6Network.String(), c.IPv6SubnetLen
		j.IPv6SubnetMin, j.IPv6SubnetMax = c.IPv6SubnetMin.String(), c.IPv6SubnetMax.String()
	}
	return json.Marshal(j)
}

// backendSection renders the Backend section: the shared fields first,
// then the backend-specific ones of Raw.
func backendSection(b Backend) json.RawMessage {
	data, _ := json.Marshal(backendJSON{Type: b.Type, Port: b.Port, DirectRouting: b.DirectRouting, MTU: b.MTU})
	if b.Raw == "" || b.Raw == "{}" {
		return data
	}
	return append(append(data[:len(data)-1:len(data)-1], ','), b.Raw[1:]...)
}

// Validate re-checks a config built in code (not parsed) by a JSON round
// trip through ParseConfig.
func (c *Config) Validate() error {
	data, err := c.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = ParseConfig(data)
	return err
}

// Contains tells whether subnet is one of the config's allocatable
// subnets of its family: the right length, aligned, within [SubnetMin,
// SubnetMax] (IPv4) or [IPv6SubnetMin, IPv6SubnetMax] (IPv6), the family
// enabled.
func (c *Config) Contains(subnet netip.Prefix) bool {
	if !subnet.IsValid() || subnet.Masked() != subnet {
		return false
	}
	if subnet.Addr().Is6() {
		return c.EnableIPv6 && subnet.Bits() == c.IPv6SubnetLen && !subnet.Addr().Is4In6() &&
			c.IPv6SubnetMin.Compare(subnet.Addr()) <= 0 && subnet.Addr().Compare(c.IPv6SubnetMax) <= 0
	}
	a := subnet.Addr()
	return c.EnableIPv4 && subnet.Bits() == c.SubnetLen && c.SubnetMin.Compare(a) <= 0 && a.Compare(c.SubnetMax) <= 0
}

// fits tells whether subnet is a subnet of the network of its family, of
// the configured length (it may lie outside the [min, max] range, like a
// reservation).
func (c *Config) fits(subnet netip.Prefix) bool {
	if !subnet.IsValid() || subnet.Masked() != subnet {
		return false
	}
	if subnet.Addr().Is6() {
		return c.EnableIPv6 && subnet.Bits() == c.IPv6SubnetLen && c.IPv6Network.Contains(subnet.Addr())
	}
	return c.EnableIPv4 && subnet.Bits() == c.SubnetLen && c.Network.Contains(subnet.Addr())
}

// subnetCount is how many subnets lie in [SubnetMin, SubnetMax].
func (c *Config) subnetCount() uint32 {
	shift := 32 - c.SubnetLen
	return (addrToUint32(c.SubnetMax)-addrToUint32(c.SubnetMin))>>shift + 1
}

// subnetAt returns the i-th subnet from SubnetMin.
func (c *Config) subnetAt(i uint32) netip.Prefix {
	a := addrToUint32(c.SubnetMin) + i<<(32-c.SubnetLen)
	return netip.PrefixFrom(uint32ToAddr(a), c.SubnetLen)
}

func addrToUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uint32ToAddr(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
