package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/weftnet/weft/cni/daemonsock"
	"github.com/weftnet/weft/subnet/subnetfile"
)

// Defaults of the plugin options.
const (
	DefaultBridge  = "weftbr0"
	DefaultDataDir = "/var/lib/cni/networks" // + "/<network name>"
)

// SupportedVersions returns the CNI spec versions the plugin speaks. GC
// and STATUS exist only from 1.1.0 on; CHECK from 0.4.0 on.
func SupportedVersions() []string { return []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} }

// NetConf is the plugin's network configuration, with defaults applied.
type NetConf struct {
	types.PluginConf

	// SubnetFile is the file weftd writes ("subnetFile").
	SubnetFile string
	// Bridge is the name of the bridge containers attach to ("bridge").
	Bridge string
	// IsDefaultGateway makes the bridge the containers' default gateway;
	// when false only the overlay network is routed via it
	// ("isDefaultGateway", default true).
	IsDefaultGateway bool
	// HairpinMode lets a container reach itself through a service address
	// or its own hostPort ("hairpinMode", default true as in flannel's
	// configuration).
	HairpinMode bool
	// IPMasq masquerades traffic from the container to destinations
	// outside the overlay network ("ipMasq", default false). When weftd
	// masquerades itself (--ip-masq, WEFT_IPMASQ=true in the subnet file)
	// the plugin adds no rules of its own, so nothing is masqueraded twice.
	IPMasq *bool
	// Routes are extra routes in the container; a route without gw goes
	// via the bridge ("routes").
	Routes []*types.Route
	// DataDir holds the address allocations ("dataDir", default
	// /var/lib/cni/networks/<name>).
	DataDir string
	// DaemonURL is weftd's HTTP address; STATUS asks <DaemonURL>/readyz
	// when it is set ("daemonURL").
	DaemonURL string
	// DaemonSocket is weftd's unix socket, told about every ADD and DEL so
	// that weftd publishes the container for network policy
	// ("daemonSocket", default /run/weft/weftd.sock; "" turns it off: the
	// containers are then unknown to policy).
	DaemonSocket string
	// DefaultNamespace is the namespace of containers whose runtime gives
	// no K8S_POD_NAMESPACE ("defaultNamespace", default "default").
	DefaultNamespace string
	// Labels are the container's labels, from "args":{"cni":{"labels":
	// [{"key":K,"value":V},...]}} (the CNI conventions).
	Labels map[string]string

	// runtime and args carry a static address or MAC the runtime asked
	// for ("runtimeConfig", "args"); see requestedAddress.
	runtime runtimeConf
	args    argsConf
}

// rawConf is the JSON shape of the fields the plugin reads. Its JSON names
// that are not CNI spec keys are the plugin's options, and the only other
// keys a configuration may hold (see knownConfigKeys).
type rawConf struct {
	SubnetFile       *string    `json:"subnetFile"`
	Bridge           *string    `json:"bridge"`
	IsDefaultGateway *bool      `json:"isDefaultGateway"`
	HairpinMode      *bool      `json:"hairpinMode"`
	IPMasq           *bool      `json:"ipMasq"`
	Routes           []rawRoute `json:"routes"`
	DataDir          *string    `json:"dataDir"`
	DaemonURL        *string    `json:"daemonURL"`
	DaemonSocket     *string    `json:"daemonSocket"`
	DefaultNamespace *string    `json:"defaultNamespace"`

	RuntimeConfig *runtimeConf `json:"runtimeConfig"`
	Args          *argsConf    `json:"args"`
}

type rawRoute struct {
	Dst string `json:"dst"`
	GW  string `json:"gw"`
}

// ParseConfig decodes and validates a network configuration as found on
// the plugin's stdin. Errors are *types.Error: code 6 for undecodable JSON,
// 1 for an unsupported cniVersion, 7 (naming the field) for invalid
// options.
func ParseConfig(data []byte) (*NetConf, error) {
	var raw rawConf
	conf := &NetConf{}
	if err := json.Unmarshal(data, &conf.PluginConf); err != nil {
		return nil, decodeError(err)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, decodeError(err)
	}
	if err := checkKnownKeys(data); err != nil {
		return nil, err
	}
	if conf.CNIVersion == "" {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion, "cniVersion: missing",
			fmt.Sprintf("supported versions: %s", strings.Join(SupportedVersions(), ", ")))
	}
	if !slices.Contains(SupportedVersions(), conf.CNIVersion) {
		return nil, types.NewError(types.ErrIncompatibleCNIVersion,
			fmt.Sprintf("cniVersion: unsupported version %q", conf.CNIVersion),
			fmt.Sprintf("supported versions: %s", strings.Join(SupportedVersions(), ", ")))
	}
	if conf.Name == "" {
		return nil, invalidConfig("name", "missing network name")
	}
	if strings.ContainsAny(conf.Name, "/\\") || conf.Name == "." || conf.Name == ".." {
		return nil, invalidConfig("name", fmt.Sprintf("%q is not a valid network name", conf.Name))
	}
	if conf.IPAM.Type != "" {
		return nil, invalidConfig("ipam", "weft allocates addresses itself from the node subnet; remove the ipam section")
	}
	if err := conf.applyRaw(raw); err != nil {
		return nil, err
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, invalidConfig("prevResult", err.Error())
		}
	}
	return conf, nil
}

func (c *NetConf) applyRaw(raw rawConf) error {
	c.SubnetFile = valueOr(raw.SubnetFile, subnetfile.DefaultPath)
	if c.SubnetFile == "" {
		return invalidConfig("subnetFile", "must not be empty")
	}
	c.Bridge = valueOr(raw.Bridge, DefaultBridge)
	if err := validateLinkName(c.Bridge); err != nil {
		return invalidConfig("bridge", err.Error())
	}
	c.IsDefaultGateway = valueOr(raw.IsDefaultGateway, true)
	c.HairpinMode = valueOr(raw.HairpinMode, true)
	c.IPMasq = raw.IPMasq
	c.runtime = valueOr(raw.RuntimeConfig, runtimeConf{})
	c.args = valueOr(raw.Args, argsConf{})
	c.DataDir = valueOr(raw.DataDir, filepath.Join(DefaultDataDir, c.Name))
	if !filepath.IsAbs(c.DataDir) {
		return invalidConfig("dataDir", fmt.Sprintf("%q is not an absolute path", c.DataDir))
	}
	c.DaemonURL = valueOr(raw.DaemonURL, "")
	if c.DaemonURL != "" {
		u, err := url.Parse(c.DaemonURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalidConfig("daemonURL", fmt.Sprintf("%q is not an http(s) URL", c.DaemonURL))
		}
	}
	c.DaemonSocket = valueOr(raw.DaemonSocket, daemonsock.DefaultPath)
	if c.DaemonSocket != "" && !filepath.IsAbs(c.DaemonSocket) {
		return invalidConfig("daemonSocket", fmt.Sprintf("%q is not an absolute path", c.DaemonSocket))
	}
	c.DefaultNamespace = valueOr(raw.DefaultNamespace, DefaultNamespace)
	if err := validateNamespace(c.DefaultNamespace); err != nil {
		return invalidConfig("defaultNamespace", err.Error())
	}
	if raw.Args != nil {
		labels, err := parseLabels(raw.Args.CNI.Labels)
		if err != nil {
			return invalidConfig("args.cni.labels", err.Error())
		}
		c.Labels = labels
	}
	for i, r := range raw.Routes {
		route, err := parseRoute(r)
		if err != nil {
			return invalidConfig(fmt.Sprintf("routes[%d]", i), err.Error())
		}
		c.Routes = append(c.Routes, route)
	}
	return nil
}

// masqEnabled tells whether ADD installs masquerading rules: only when
// asked to and weftd does not masquerade the node's traffic already.
func (c *NetConf) masqEnabled(env subnetfile.Env) bool {
	return c.IPMasq != nil && *c.IPMasq && !env.IPMasq
}

// parseRoute accepts an IPv4 or IPv6 destination and a gateway of the
// same family (or none: the bridge's address of that family).
func parseRoute(r rawRoute) (*types.Route, error) {
	dst, err := netip.ParsePrefix(r.Dst)
	if err != nil || dst.Addr().Zone() != "" || dst.Addr().Is4In6() {
		return nil, fmt.Errorf("dst %q is not an IPv4 or IPv6 CIDR", r.Dst)
	}
	route := &types.Route{Dst: *prefixToIPNet(dst)}
	if r.GW != "" {
		gw, err := netip.ParseAddr(r.GW)
		if err != nil || gw.Zone() != "" || gw.Is4In6() {
			return nil, fmt.Errorf("gw %q is not an IP address", r.GW)
		}
		if gw.Is6() != dst.Addr().Is6() {
			return nil, fmt.Errorf("gw %s is %s but dst %s is %s", gw, familyName(gw.Is6()), dst, familyName(dst.Addr().Is6()))
		}
		route.GW = net.IP(gw.AsSlice())
	}
	return route, nil
}

func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// validateLinkName applies the kernel's rules for interface names.
func validateLinkName(name string) error {
	switch {
	case name == "":
		return errors.New("must not be empty")
	case len(name) > 15:
		return fmt.Errorf("%q is longer than 15 characters", name)
	case name == "." || name == "..":
		return fmt.Errorf("%q is not a valid interface name", name)
	case strings.ContainsAny(name, "/:") || strings.IndexFunc(name, isSpace) >= 0:
		return fmt.Errorf("%q contains '/', ':' or white space", name)
	}
	return nil
}

func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f'
}

// decodeError turns a JSON error into a CNI error: a wrongly typed field is
// an invalid config naming the field, anything else a decoding failure.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return invalidConfig(typeErr.Field, fmt.Sprintf("expected %s, got JSON %s", typeErr.Type, typeErr.Value))
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) || errors.Is(err, bytes.ErrTooLarge) {
		return types.NewError(types.ErrDecodingFailure, "malformed network config JSON", err.Error())
	}
	return types.NewError(types.ErrDecodingFailure, "cannot decode network config", err.Error())
}

func invalidConfig(field, msg string) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("invalid config field %q: %s", field, msg), "")
}

// MaxConfigSize bounds the network config the plugin reads from stdin
// (cmd/weft-cni): a conflist entry with its runtimeConfig and prevResult
// is a few kilobytes.
const MaxConfigSize = 4 << 20
