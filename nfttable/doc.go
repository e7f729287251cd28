// Package nfttable holds the whole-table nftables operations weft's own
// tables share (guard, policy, routing's source check, weftd's ip-masq):
// replace a table in one batch, delete it whether or not it exists, and
// tell whether it is there with its rules (after `nft flush ruleset` it is
// not). Each table's contents stay with the package that owns it.
package nfttable
