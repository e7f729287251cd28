package cni

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// runtimeConf is the part of "runtimeConfig" the plugin reads: the "ips"
// and "mac" capabilities (podman --ip/--mac-address through libcni, CRI
// runtimes). Other capabilities (portMappings, bandwidth, ...) belong to
// other plugins of the chain and are ignored.
type runtimeConf struct {
	IPs []string `json:"ips"`
	MAC string   `json:"mac"`
}

// argsConf is the "args" convention: {"cni": {"ips": [...], "mac": "..."}}.
// Other members of "args" are left to whoever defines them.
type argsConf struct {
	CNI struct {
		IPs    []string   `json:"ips"`
		MAC    string     `json:"mac"`
		Labels []rawLabel `json:"labels"` // see parseLabels
	} `json:"cni"`
}

// addressRequest is what the runtime asked for the attachment: a fixed
// address and a fixed MAC, each optional.
type addressRequest struct {
	IP     netip.Addr       // invalid: allocate one
	IPFrom string           // where IP came from, for error messages
	MAC    net.HardwareAddr // nil: the kernel picks one
	// lengths are the prefix lengths given with IP ("10.244.7.9/24"), by
	// source; a bare address gives none. See checkPrefixLength.
	lengths []givenLength
}

// givenLength is a prefix length a source gave with the static address.
type givenLength struct {
	from string
	bits int
}

// checkPrefixLength refuses a static address whose given prefix length is
// not the node subnet's: the container gets the subnet's length whatever
// was asked, so "10.244.7.9/16" on a /24 node would silently become
// 10.244.7.9/24 (and the runtime, which records what it asked for, would
// disagree with the container about its network).
func (r addressRequest) checkPrefixLength(subnet netip.Prefix) error {
	for _, l := range r.lengths {
		if l.bits != subnet.Bits() {
			return invalidConfig(l.from, fmt.Sprintf("asks for %s/%d but this node's subnet is %s: give the address with /%d (or bare)",
				r.IP, l.bits, subnet.Masked(), subnet.Bits()))
		}
	}
	return nil
}

// requestedAddress merges the static address and MAC a runtime may ask for
// in three ways: CNI_ARGS "IP=" / "MAC=", "args": {"cni": {"ips", "mac"}}
// and "runtimeConfig": {"ips", "mac"}. Several sources may be given only if
// they agree. Errors are invalid-config errors naming the source.
func requestedAddress(conf *NetConf, cniArgs string) (addressRequest, error) {
	type source struct {
		name string
		ips  []string
		mac  string
	}
	sources := []source{
		{"runtimeConfig", conf.runtime.IPs, conf.runtime.MAC},
		{"args.cni", conf.args.CNI.IPs, conf.args.CNI.MAC},
	}
	envIP, envMAC, err := parseCNIArgs(cniArgs)
	if err != nil {
		return addressRequest{}, err
	}
	if envIP != "" {
		sources = append(sources, source{"CNI_ARGS IP", strings.Split(envIP, ","), ""})
	}
	sources = append(sources, source{name: "CNI_ARGS MAC", mac: envMAC})

	var req addressRequest
	var macFrom string
	for _, s := range sources {
		if len(s.ips) > 0 {
			ip, bits, err := parseStaticIP(s.name, s.ips)
			if err != nil {
				return addressRequest{}, err
			}
			if req.IP.IsValid() && req.IP != ip {
				return addressRequest{}, invalidConfig(s.name, fmt.Sprintf("asks for %s but %s asks for %s", ip, req.IPFrom, req.IP))
			}
			req.IP, req.IPFrom = ip, s.name
			if bits >= 0 {
				req.lengths = append(req.lengths, givenLength{s.name, bits})
			}
		}
		if s.mac != "" {
			mac, err := parseStaticMAC(s.name, s.mac)
			if err != nil {
				return addressRequest{}, err
			}
			if req.MAC != nil && req.MAC.String() != mac.String() {
				return addressRequest{}, invalidConfig(s.name, fmt.Sprintf("asks for MAC %s but %s asks for %s", mac, macFrom, req.MAC))
			}
			req.MAC, macFrom = mac, s.name
		}
	}
	return req, nil
}

// parseCNIArgs picks IP and MAC out of CNI_ARGS ("K=V;K=V"). Other keys
// (IgnoreUnknown, K8S_POD_NAME, ...) are for others and ignored. An empty
// value or a key given twice with different values is refused: it would otherwise give the
// container an address (or MAC) other than the one the runtime meant.
func parseCNIArgs(s string) (ip, mac string, err error) {
	seen := map[string]string{}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return "", "", invalidConfig("CNI_ARGS", fmt.Sprintf("%q is not KEY=VALUE", pair))
		}
		if k != "IP" && k != "MAC" {
			continue
		}
		if prev, twice := seen[k]; twice && prev != v {
			return "", "", invalidConfig("CNI_ARGS", fmt.Sprintf("%s given twice (%q and %q)", k, prev, v))
		}
		seen[k] = v
		if strings.TrimSpace(v) == "" {
			return "", "", invalidConfig("CNI_ARGS "+k, "empty; leave "+k+" out to let weft choose")
		}
		if k == "IP" {
			ip = v
		} else {
			mac = v
		}
	}
	return ip, mac, nil
}

// parseStaticIP accepts exactly one IPv4 address, bare or with a prefix
// length ("10.244.7.9" or "10.244.7.9/24"), and returns the length given
// (-1 for a bare address).
func parseStaticIP(from string, ips []string) (netip.Addr, int, error) {
	if len(ips) != 1 {
		return netip.Addr{}, -1, invalidConfig(from, fmt.Sprintf("asks for %d addresses %q; weft gives a container one IPv4 address", len(ips), ips))
	}
	s := strings.TrimSpace(ips[0])
	var ip netip.Addr
	bits := -1
	var err error
	if strings.Contains(s, "/") {
		var p netip.Prefix
		p, err = netip.ParsePrefix(s)
		ip, bits = p.Addr(), p.Bits()
	} else {
		ip, err = netip.ParseAddr(s)
	}
	if err != nil {
		return netip.Addr{}, -1, invalidConfig(from, fmt.Sprintf("%q is not an IP address", s))
	}
	if !ip.Is4() {
		return netip.Addr{}, -1, invalidConfig(from, fmt.Sprintf("%s is not IPv4; weft is IPv4-only", ip))
	}
	return ip, bits, nil
}

// parseStaticMAC accepts a unicast EUI-48 address.
func parseStaticMAC(from, s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(mac) != 6 {
		return nil, invalidConfig(from, fmt.Sprintf("%q is not an Ethernet MAC address", s))
	}
	if mac[0]&1 != 0 {
		return nil, invalidConfig(from, fmt.Sprintf("%s is a multicast MAC address", mac))
	}
	if mac.String() == "00:00:00:00:00:00" {
		return nil, invalidConfig(from, "00:00:00:00:00:00 is not a usable MAC address")
	}
	return mac, nil
}
