package nfttable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Replace queues "create, delete, create" of t on c: the delete succeeds
// whether or not t exists, so the batch replaces it, and the kernel
// applies the whole batch (with the rules queued after it) or nothing.
func Replace(c *nftables.Conn, t *nftables.Table) {
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
}

// Delete queues the deletion of t on c, which succeeds whether or not t
// exists.
func Delete(c *nftables.Conn, t *nftables.Table) {
	c.AddTable(t)
	c.DelTable(t)
}

// HasRules tells whether table t exists, is evaluated and its chain has
// rules: false after `nft flush ruleset`, a deleted table, a flushed chain
// or a table made dormant (`flags dormant`: its rules kept, none run).
func HasRules(c *nftables.Conn, t *nftables.Table, chain string) (bool, error) {
	held, err := c.ListTableOfFamily(t.Name, t.Family)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("list table %s: %w", t.Name, err)
	}
	if tableFlags(held)&unix.NFT_TABLE_F_DORMANT != 0 {
		return false, nil
	}
	rules, err := c.GetRules(t, &nftables.Chain{Name: chain, Table: t})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("rules of table %s chain %s: %w", t.Name, chain, err)
	}
	return len(rules) > 0, nil
}

// tableFlags returns t's NFTA_TABLE_FLAGS as the kernel means them.
// google/nftables v0.3.0 decodes that (big-endian) attribute in the host's
// byte order, so a dormant table reads 0x1000000 on x86; undo that. The
// tests (a table made dormant must read dormant) fail if the library
// changes.
func tableFlags(t *nftables.Table) uint32 {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], t.Flags)
	return binary.BigEndian.Uint32(b[:])
}

// Contents reads back tables as the kernel holds them and returns one
// canonical text of everything that decides a packet's fate: each table's
// flags (a dormant table is not evaluated), its chains (type, hook, priority, policy), each chain's rules in order with
// their expressions, and each set with its flags and elements (sorted).
// Handles and counter values are left out, so two reads of unchanged
// tables are equal, and a flushed chain or set, a deleted, replaced or
// inserted rule or element, or a missing table (read as "absent") makes
// them differ. Callers compare it with a read right after their own
// install.
func Contents(c *nftables.Conn, tables ...*nftables.Table) (string, error) {
	var b strings.Builder
	chains, err := c.ListChains()
	if err != nil {
		return "", fmt.Errorf("list chains: %w", err)
	}
	for _, t := range tables {
		fmt.Fprintf(&b, "table %d %s\n", t.Family, t.Name)
		held, err := c.ListTableOfFamily(t.Name, t.Family)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				b.WriteString(" absent\n")
				continue
			}
			return "", fmt.Errorf("list table %s: %w", t.Name, err)
		}
		// A dormant table (flags dormant) keeps every chain and rule but
		// none is evaluated: its flags decide as much as its rules.
		fmt.Fprintf(&b, " flags %#x\n", tableFlags(held))
		var mine []*nftables.Chain
		for _, ch := range chains {
			if ch.Table != nil && ch.Table.Name == t.Name && ch.Table.Family == t.Family {
				mine = append(mine, ch)
			}
		}
		sort.Slice(mine, func(i, j int) bool { return mine[i].Name < mine[j].Name })
		for _, ch := range mine {
			fmt.Fprintf(&b, " chain %s type %q", ch.Name, ch.Type)
			if ch.Hooknum != nil {
				fmt.Fprintf(&b, " hook %d", *ch.Hooknum)
			}
			if ch.Priority != nil {
				fmt.Fprintf(&b, " priority %d", *ch.Priority)
			}
			if ch.Policy != nil {
				fmt.Fprintf(&b, " policy %d", *ch.Policy)
			}
			b.WriteByte('\n')
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return "", fmt.Errorf("rules of table %s chain %s: %w", t.Name, ch.Name, err)
			}
			for _, r := range rules {
				b.WriteString("  rule")
				for _, e := range r.Exprs {
					fmt.Fprintf(&b, " %T%+v", e, e)
				}
				b.WriteByte('\n')
			}
		}
		sets, err := c.GetSets(t)
		if err != nil {
			return "", fmt.Errorf("sets of table %s: %w", t.Name, err)
		}
		sort.Slice(sets, func(i, j int) bool { return sets[i].Name < sets[j].Name })
		for _, s := range sets {
			fmt.Fprintf(&b, " set %s map %v interval %v concat %v key %s data %s\n", s.Name, s.IsMap, s.Interval, s.Concatenation, s.KeyType.Name, s.DataType.Name)
			elems, err := c.GetSetElements(s)
			if err != nil {
				return "", fmt.Errorf("elements of set %s in table %s: %w", s.Name, t.Name, err)
			}
			lines := make([]string, 0, len(elems))
			for _, e := range elems {
				line := fmt.Sprintf("%x-%x end=%v", e.Key, e.KeyEnd, e.IntervalEnd)
				if e.VerdictData != nil {
					line += fmt.Sprintf(" verdict %d %s", e.VerdictData.Kind, e.VerdictData.Chain)
				}
				lines = append(lines, line)
			}
			sort.Strings(lines)
			for _, l := range lines {
				b.WriteString("  elem " + l + "\n")
			}
		}
	}
	return b.String(), nil
}

// Diff names the first line where two Contents texts differ ("" when they
// are equal), for a log line.
func Diff(want, got string) string {
	if want == got {
		return ""
	}
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			const max = 200
			if len(wl) > max {
				wl = wl[:max] + "..."
			}
			if len(gl) > max {
				gl = gl[:max] + "..."
			}
			return fmt.Sprintf("line %d: want %q, found %q", i+1, strings.TrimSpace(wl), strings.TrimSpace(gl))
		}
	}
	return "differ"
}
