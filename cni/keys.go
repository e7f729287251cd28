package cni

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
)

// specConfigKeys are the keys the CNI specification and its conventions
// define for every plugin's configuration (or that runtimes copy into it
// from the network list). They are accepted whatever the plugin does with
// them.
func specConfigKeys() []string {
	return []string{
		"cniVersion", "cniVersions", "name", "type", "args", "ipMasq", "ipam", "dns",
		"runtimeConfig", "capabilities", "prevResult",
		"cni.dev/valid-attachments", "cni.dev/attachments",
		"disableCheck", "disableGC", "loadOnlyInlinedPlugins",
	}
}

// pluginOptionKeys are the plugin's own options: exactly the JSON names of
// rawConf's fields that are not spec keys. Add an option to rawConf and it
// is accepted; there is no other list to update.
func pluginOptionKeys() []string {
	spec := specConfigKeys()
	var keys []string
	t := reflect.TypeFor[rawConf]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" && !slices.Contains(spec, name) {
			keys = append(keys, name)
		}
	}
	return keys
}

// knownConfigKeys is every key a "type": "weft" configuration may hold.
func knownConfigKeys() []string { return append(specConfigKeys(), pluginOptionKeys()...) }

// checkKnownKeys rejects a configuration holding keys the plugin does not
// know (a typo, or an option of another plugin such as flannel's
// "delegate") instead of silently ignoring them. The error names every
// unknown key and, for a key that differs only in case, the right spelling.
func checkKnownKeys(data []byte) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return decodeError(err)
	}
	known := knownConfigKeys()
	var unknown []string
	for k := range fields {
		if slices.Contains(known, k) {
			continue
		}
		if i := slices.IndexFunc(known, func(s string) bool { return strings.EqualFold(s, k) }); i >= 0 {
			unknown = append(unknown, fmt.Sprintf("%q (did you mean %q?)", k, known[i]))
		} else {
			unknown = append(unknown, fmt.Sprintf("%q", k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("unknown config keys %s: the weft plugin does not know them", strings.Join(unknown, ", ")),
		"weft's options: "+strings.Join(pluginOptionKeys(), ", ")+" (see docs/cni.md); flannel's \"delegate\" has no meaning here: "+
			"weft attaches containers itself")
}
