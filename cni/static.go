package cni

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/weftnet/weft/subnet/subnetfile"
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
// address of each family and a fixed MAC, each optional.
type addressRequest struct {
	IP      netip.Addr // IPv4; invalid: allocate one (when the node has IPv4)
	IPFrom  string     // where IP came from, for error messages
	IP6     netip.Addr // IPv6; invalid: allocate one (when the node has IPv6)
	IP6From string
	MAC     net.HardwareAddr // nil: the kernel picks one
	// lengths are the prefix lengths given with the addresses
	// ("10.244.7.9/24"), by source; a bare address gives none. See
	// checkSubnets.
	lengths []givenLength
}

// givenLength is a prefix length a source gave with a static address.
type givenLength struct {
	from string
	ip   netip.Addr
	bits int
}

// checkSubnets refuses a static address of a family the node's network
// lacks (it would be given no route and no gateway), and one whose given
// prefix length is not the node subnet's: the container gets the subnet's
// length whatever was asked, so "10.244.7.9/16" on a /24 node would
// silently become 10.244.7.9/24 (and the runtime, which records what it
// asked for, would disagree with the container about its network).
// Whether the address lies inside the subnet is the pool's to say.
func (r addressRequest) checkSubnets(env subnetfile.Env) error {
	if r.IP.IsValid() && !env.HasIPv4() {
		return invalidConfig(r.IPFrom, fmt.Sprintf("asks for IPv4 address %s but this node's network is IPv6-only (%s)", r.IP, env.IPv6Subnet.Masked()))
	}
	if r.IP6.IsValid() && !env.HasIPv6() {
		return invalidConfig(r.IP6From, fmt.Sprintf("asks for IPv6 address %s but this node's network has no IPv6", r.IP6))
	}
	for _, l := range r.lengths {
		subnet := env.Subnet
		if l.ip.Is6() {
			subnet = env.IPv6Subnet
		}
		if l.bits != subnet.Bits() {
			return invalidConfig(l.from, fmt.Sprintf("asks for %s/%d but this node's subnet is %s: give the address with /%d (or bare)",
				l.ip, l.bits, subnet.Masked(), subnet.Bits()))
		}
	}
	return nil
}

// requestedAddress merges the static addresses and MAC a runtime may ask
// for in three ways: CNI_ARGS "IP=" / "MAC=", "args": {"cni": {"ips",
// "mac"}} and "runtimeConfig": {"ips", "mac"}. Each may give one address
// of each family ("10.244.7.9", "fd10:244:0:7::9" or both). Several sources
// may be given only if they agree. Errors are invalid-config errors naming
// the source.
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
			given, err := parseStaticIPs(s.name, s.ips)
			if err != nil {
				return addressRequest{}, err
			}
			for _, g := range given {
				ip, from := &req.IP, &req.IPFrom
				if g.ip.Is6() {
					ip, from = &req.IP6, &req.IP6From
				}
				if ip.IsValid() && *ip != g.ip {
					return addressRequest{}, invalidConfig(s.name, fmt.Sprintf("asks for %s but %s asks for %s", g.ip, *from, *ip))
				}
				*ip, *from = g.ip, s.name
				if g.bits >= 0 {
					req.lengths = append(req.lengths, g)
				}
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

// parseStaticIPs accepts one address of each family at most (IPv4,
// IPv6), each bare or with a prefix length ("10.244.7.9",
// "fd10:244:0:7::9/64"), and returns them with the length given (-1 for a
// bare address).
func parseStaticIPs(from string, ips []string) ([]givenLength, error) {
	if len(ips) > 2 {
		return nil, invalidConfig(from, fmt.Sprintf("asks for %d addresses %q; weft gives a container one address of each family", len(ips), ips))
	}
	var out []givenLength
	for _, raw := range ips {
		s := strings.TrimSpace(raw)
		g := givenLength{from: from, bits: -1}
		var err error
		if strings.Contains(s, "/") {
			var p netip.Prefix
			p, err = netip.ParsePrefix(s)
			g.ip, g.bits = p.Addr(), p.Bits()
		} else {
			g.ip, err = netip.ParseAddr(s)
		}
		if err != nil || g.ip.Zone() != "" {
			return nil, invalidConfig(from, fmt.Sprintf("%q is not an IP address", s))
		}
		if g.ip.Is4In6() {
			return nil, invalidConfig(from, fmt.Sprintf("%s is an IPv4-mapped IPv6 address; give IPv4 addresses as a.b.c.d", g.ip))
		}
		for _, o := range out {
			if o.ip.Is6() == g.ip.Is6() {
				return nil, invalidConfig(from, fmt.Sprintf("asks for two %s addresses %q; weft gives a container one address of each family", familyName(g.ip.Is6()), ips))
			}
		}
		out = append(out, g)
	}
	return out, nil
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
