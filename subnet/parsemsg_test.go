package subnet

import (
	"strings"
	"testing"
)

// Issue 24 item 8: errors showed the Go parser's words, e.g.
// `Network: netip.ParsePrefix("10.244.0.0/33"): prefix length out of range`.
func TestConfigErrorsSayWhatIsWrongInTheUsersTerms(t *testing.T) {
	for cfg, want := range map[string]string{
		`{"Network":"10.244.0.0/33"}`:                                    `Network "10.244.0.0/33": prefix length out of range (0-32)`,
		`{"Network":"10.244.0.0/-1"}`:                                    `Network "10.244.0.0/-1": prefix length out of range (0-32)`,
		`{"Network":"10.244.0.0"}`:                                       `Network "10.244.0.0": want an address and a prefix length, like "10.244.0.0/16"`,
		`{"Network":"10.244.0/16"}`:                                      `Network "10.244.0/16": "10.244.0" is not an IP address`,
		`{"Network":"10.244.0.0/sixteen"}`:                               `Network "10.244.0.0/sixteen": prefix length "sixteen" is not a number`,
		`{"Network":"10.244.0.0/016"}`:                                   `Network "10.244.0.0/016": prefix length "016" is not a number`,
		`{"Network":16}`:                                                 `Network: want a string like "10.244.0.0/16", got the number 16`,
		`{"Network":["10.244.0.0/16"]}`:                                  `Network: want a string like "10.244.0.0/16", got an array`,
		`{"Network":"10.244.0.0/16","SubnetLen":"24"}`:                   `SubnetLen: want an integer, got the string "24"`,
		`{"Network":"10.244.0.0/16","SubnetLen":24.5}`:                   `SubnetLen: want an integer, got the number 24.5`,
		`{"Network":"10.244.0.0/16","SubnetMin":"10.244.1"}`:             `SubnetMin "10.244.1": not an IP address (want one like "10.244.1.0")`,
		`{"Network":"10.244.0.0/16","SubnetMax":10}`:                     `SubnetMax: want a string like "10.244.1.0", got the number 10`,
		`{"Network":"10.244.0.0/16","EnableIPv4":"yes"}`:                 `EnableIPv4: want true or false, got the string "yes"`,
		`{"Network":"10.244.0.0/16","Backend":"udp"}`:                    `Backend: want an object like {"Type":"udp"}, got the string "udp"`,
		`{"Network":"10.244.0.0/16","Backend":{"Type":1}}`:               `Backend.Type: want a string, got the number 1`,
		`{"Network":"10.244.0.0/16","Backend":{"Port":"8285"}}`:          `Backend.Port: want an integer, got the string "8285"`,
		`{"Network":"10.244.0.0/16","Backend":{"Port":1e99}}`:            `Backend.Port: want an integer, got the number 1e99`,
		`{"Network":"10.244.0.0/16","Backend":{"DirectRouting":"true"}}`: `Backend.DirectRouting: want true or false, got the string "true"`,
	} {
		_, err := ParseConfig([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s:\n got  %v\n want %s", cfg, err, want)
			continue
		}
		for _, internal := range []string{"netip.", "ParseAddr(", "ParsePrefix(", "Go value", "Go struct", "json:", "strconv."} {
			if strings.Contains(err.Error(), internal) {
				t.Errorf("%s: the error shows Go's internals (%q): %v", cfg, internal, err)
			}
		}
	}
}
