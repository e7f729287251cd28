package nfttable

import (
	"errors"
	"fmt"

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

// HasRules tells whether table t exists and its chain has rules: false
// after `nft flush ruleset`, a deleted table or a flushed chain.
func HasRules(c *nftables.Conn, t *nftables.Table, chain string) (bool, error) {
	if _, err := c.ListTableOfFamily(t.Name, t.Family); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("list table %s: %w", t.Name, err)
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
