package subnet

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The helpers here turn what a user wrote wrong in the network config into
// messages about that value (`Network "10.244.0.0/33": prefix length out
// of range (0-32)`), not the Go parser's own words
// (`netip.ParsePrefix("10.244.0.0/33"): prefix length out of range`,
// `cannot unmarshal number into Go value of type string`).

// parsePrefix parses the value of field as an address and a prefix
// length, like "10.244.0.0/16".
func parsePrefix(field, s string) (netip.Prefix, error) {
	addr, bits, ok := strings.Cut(s, "/")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%s %q: want an address and a prefix length, like \"10.244.0.0/16\"", field, s)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%s %q: %q is not an IP address", field, s, addr)
	}
	n, err := strconv.Atoi(bits)
	if err != nil || bits != strconv.Itoa(n) {
		return netip.Prefix{}, fmt.Errorf("%s %q: prefix length %q is not a number", field, s, bits)
	}
	if n < 0 || n > a.BitLen() {
		return netip.Prefix{}, fmt.Errorf("%s %q: prefix length out of range (0-%d)", field, s, a.BitLen())
	}
	p, err := netip.ParsePrefix(s)
	if err != nil { // not expected after the checks above
		return netip.Prefix{}, fmt.Errorf("%s %q: not a prefix like \"10.244.0.0/16\"", field, s)
	}
	return p, nil
}

// parseAddr parses the value of field as an IP address.
func parseAddr(field, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%s %q: not an IP address (want one like \"10.244.1.0\")", field, s)
	}
	return a, nil
}

// unmarshalField decodes raw into v; if raw is not of v's kind the error
// says what field wants and what it got.
func unmarshalField(field, want string, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: want %s, got %s", field, want, describeJSON(raw))
	}
	return nil
}

// describeJSON says what a JSON value is, in the user's terms.
func describeJSON(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 40 {
		s = s[:37] + "..."
	}
	switch {
	case s == "":
		return "nothing"
	case s[0] == '"':
		return "the string " + s
	case s[0] == '{':
		return "an object"
	case s[0] == '[':
		return "an array"
	case s == "true" || s == "false":
		return s
	case s == "null":
		return "null"
	default:
		return "the number " + s
	}
}
