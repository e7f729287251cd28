package subnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
)

// The IPv6 half of the network config (flannel's EnableIPv6, IPv6Network,
// IPv6SubnetLen, IPv6SubnetMin, IPv6SubnetMax) and its arithmetic.

// maxIPv6SubnetLen is flannel's longest IPv6SubnetLen (a /126 leaves a
// gateway and a few addresses, as /30 does for IPv4).
const maxIPv6SubnetLen = 126

// maxIPv6IndexBits caps how many IPv6 subnets allocation considers: the
// first 2^maxIPv6IndexBits from IPv6SubnetMin. A fc00::/8 network of /64s
// has 2^56; picking among 2^62 random ones is as good as among all (flannel
// caps harder: it picks among the first 100 free ones).
const maxIPv6IndexBits = 62

// unusableIPv6Networks are the IPv6 ranges an IPv6Network may not overlap:
// addresses that never reach another host, or are not unicast.
var unusableIPv6Networks = [...]struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("::/8"), "reserved (::/8: unspecified, loopback, IPv4-mapped)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

func decodeIPv6Network(raw json.RawMessage, c *Config) error {
	var s string
	if err := unmarshalField("IPv6Network", "a string like \"fd10:244::/56\"", raw, &s); err != nil {
		return err
	}
	if s == "" {
		return nil // flannel's zero value: no IPv6 network
	}
	p, err := parsePrefix("IPv6Network", s)
	if err != nil {
		return err
	}
	if !p.Addr().Is6() || p.Addr().Is4In6() {
		return fmt.Errorf("IPv6Network %s: not an IPv6 network (IPv4 goes in Network)", s)
	}
	if p.Masked() != p {
		return fmt.Errorf("IPv6Network %s has host bits set (did you mean %s?)", s, p.Masked())
	}
	for _, u := range unusableIPv6Networks {
		if p.Overlaps(u.prefix) {
			return fmt.Errorf("IPv6Network %s overlaps %s addresses: containers cannot use them; choose a unique local range such as fd10:244::/56", p, u.what)
		}
	}
	c.IPv6Network = p
	return nil
}

func decodeIPv6SubnetLen(raw json.RawMessage, c *Config) error {
	if err := unmarshalField("IPv6SubnetLen", "an integer", raw, &c.IPv6SubnetLen); err != nil {
		return err
	}
	if c.IPv6SubnetLen < 0 {
		return fmt.Errorf("IPv6SubnetLen %d is negative", c.IPv6SubnetLen)
	}
	return nil
}

func decodeIPv6AddrField(name string, field func(*Config) *netip.Addr) fieldDecoder {
	return func(raw json.RawMessage, c *Config) error {
		var s string
		if err := unmarshalField(name, "a string like \"fd10:244:0:1::\"", raw, &s); err != nil {
			return err
		}
		if s == "" {
			return nil // flannel's zero value: the default
		}
		a, err := parseAddr(name, s)
		if err != nil {
			return err
		}
		if !a.Is6() || a.Is4In6() {
			return fmt.Errorf("%s %s: not an IPv6 address", name, s)
		}
		*field(c) = a
		return nil
	}
}

// applyDefaults6 fills in and checks the IPv6 fields with flannel's rules.
func (c *Config) applyDefaults6() error {
	if !c.IPv6Network.IsValid() {
		return errors.New("IPv6Network: missing (\"EnableIPv6\": true needs one, e.g. \"fd10:244::/56\")")
	}
	netBits := c.IPv6Network.Bits()
	if c.IPv6SubnetLen > 0 {
		if c.IPv6SubnetLen > maxIPv6SubnetLen {
			return fmt.Errorf("IPv6SubnetLen %d: must be /%d or shorter", c.IPv6SubnetLen, maxIPv6SubnetLen)
		}
		if c.IPv6SubnetLen < netBits+2 {
			return fmt.Errorf("IPv6SubnetLen %d does not fit IPv6Network %s: it must hold at least four subnets (IPv6SubnetLen >= %d)", c.IPv6SubnetLen, c.IPv6Network, netBits+2)
		}
	} else {
		switch {
		case netBits > maxIPv6SubnetLen-2:
			return fmt.Errorf("IPv6Network %s is too small: the smallest useful network is a /%d", c.IPv6Network, maxIPv6SubnetLen-2)
		case netBits <= 62:
			c.IPv6SubnetLen = 64
		default:
			c.IPv6SubnetLen = netBits + 2
		}
	}
	first, last := c.IPv6Network.Addr(), lastAddr6(c.IPv6Network)
	size := shl128(u128{lo: 1}, 128-c.IPv6SubnetLen)
	if !c.IPv6SubnetMin.IsValid() {
		c.IPv6SubnetMin = from128(to128(first).add(size))
	} else if !c.IPv6Network.Contains(c.IPv6SubnetMin) {
		return fmt.Errorf("IPv6SubnetMin %s is not inside IPv6Network %s", c.IPv6SubnetMin, c.IPv6Network)
	}
	if !c.IPv6SubnetMax.IsValid() {
		c.IPv6SubnetMax = from128(to128(last).sub(size).add(u128{lo: 1}))
	} else if !c.IPv6Network.Contains(c.IPv6SubnetMax) {
		return fmt.Errorf("IPv6SubnetMax %s is not inside IPv6Network %s", c.IPv6SubnetMax, c.IPv6Network)
	}
	if p := netip.PrefixFrom(c.IPv6SubnetMin, c.IPv6SubnetLen); p.Masked().Addr() != c.IPv6SubnetMin {
		return fmt.Errorf("IPv6SubnetMin %s is not on a /%d boundary", c.IPv6SubnetMin, c.IPv6SubnetLen)
	}
	if p := netip.PrefixFrom(c.IPv6SubnetMax, c.IPv6SubnetLen); p.Masked().Addr() != c.IPv6SubnetMax {
		return fmt.Errorf("IPv6SubnetMax %s is not on a /%d boundary", c.IPv6SubnetMax, c.IPv6SubnetLen)
	}
	if c.IPv6SubnetMin.Compare(c.IPv6SubnetMax) > 0 {
		return fmt.Errorf("IPv6SubnetMin %s is after IPv6SubnetMax %s", c.IPv6SubnetMin, c.IPv6SubnetMax)
	}
	return nil
}

// subnetCount6 is how many IPv6 subnets allocation considers: those in
// [IPv6SubnetMin, IPv6SubnetMax], at most 2^maxIPv6IndexBits.
func (c *Config) subnetCount6() uint64 {
	shift := 128 - c.IPv6SubnetLen
	n := shr128(to128(c.IPv6SubnetMax).sub(to128(c.IPv6SubnetMin)), shift)
	if n.hi != 0 || n.lo >= 1<<maxIPv6IndexBits {
		return 1 << maxIPv6IndexBits
	}
	return n.lo + 1
}

// subnetAt6 returns the i-th IPv6 subnet from IPv6SubnetMin.
func (c *Config) subnetAt6(i uint64) netip.Prefix {
	a := to128(c.IPv6SubnetMin).add(shl128(u128{lo: i}, 128-c.IPv6SubnetLen))
	return netip.PrefixFrom(from128(a), c.IPv6SubnetLen)
}

// u128 is an IPv6 address as a number.
type u128 struct{ hi, lo uint64 }

func to128(a netip.Addr) u128 {
	b := a.As16()
	var v u128
	for i := range 8 {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[8+i])
	}
	return v
}

func from128(v u128) netip.Addr {
	var b [16]byte
	for i := range 8 {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

func (v u128) add(w u128) u128 {
	lo, carry := bits.Add64(v.lo, w.lo, 0)
	hi, _ := bits.Add64(v.hi, w.hi, carry)
	return u128{hi, lo}
}

func (v u128) sub(w u128) u128 {
	lo, borrow := bits.Sub64(v.lo, w.lo, 0)
	hi, _ := bits.Sub64(v.hi, w.hi, borrow)
	return u128{hi, lo}
}

func shl128(v u128, n int) u128 {
	switch {
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{hi: v.lo << (n - 64)}
	case n == 0:
		return v
	}
	return u128{hi: v.hi<<n | v.lo>>(64-n), lo: v.lo << n}
}

func shr128(v u128, n int) u128 {
	switch {
	case n >= 128:
		return u128{}
	case n >= 64:
		return u128{lo: v.hi >> (n - 64)}
	case n == 0:
		return v
	}
	return u128{hi: v.hi >> n, lo: v.lo>>n | v.hi<<(64-n)}
}

// lastAddr6 is the last address of p.
func lastAddr6(p netip.Prefix) netip.Addr {
	host := shl128(u128{lo: 1}, 128-p.Bits()).sub(u128{lo: 1})
	v := to128(p.Addr())
	return from128(u128{v.hi | host.hi, v.lo | host.lo})
}
