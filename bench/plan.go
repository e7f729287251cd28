package main

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// builtin is a built-in path and what it needs before anything starts.
type builtin struct {
	name string
	// mainBed: the path is built on the run's main two-host bed (raw,
	// VXLAN, weft); the others start a bed of their own.
	mainBed bool
	// bins are the files it runs from -bin; tools the commands it runs
	// from PATH (with the Debian package that has them).
	bins  []string
	tools [][2]string
}

// builtins are the built-in paths in the order they are set up and
// measured. Only weftd runs on the weft paths (cluster.Options.DaemonOnly):
// no container is attached, so weftctl and the plugin weft are not needed.
var builtins = []builtin{
	{name: pathRaw, mainBed: true},
	{name: pathVXLAN, mainBed: true},
	{name: pathWeft, mainBed: true, bins: []string{"weftd"}},
	{name: pathWeftDirect, bins: []string{"weftd"}},
	{name: pathWeftVXLAN, bins: []string{"weftd"}},
	{name: pathWeftWireGuard, bins: []string{"weftd"}},
	{name: pathWireGuardGo, bins: []string{"wireguard-go"}, tools: [][2]string{{"wg", "wireguard-tools"}}},
	// flanneld is built from the module proxy and cached (testbed/flannel).
	{name: pathFlannelUDP},
}

// builtinNames lists the built-in paths for -paths.
func builtinNames() string {
	var names []string
	for _, b := range builtins {
		names = append(names, b.name)
	}
	return strings.Join(names, ",")
}

// plan is what a run sets up.
type plan struct {
	// build are the built-in paths to set up, in builtins' order.
	build []string
	// extras are the --extra paths to set up (NAME, CMD).
	extras [][2]string
	// mainBed: some path needs the main bed (raw, VXLAN, weft or an extra).
	mainBed bool
	// skipped says why a path of the default set is left out.
	skipped []string
}

// has reports whether the plan builds built-in path name.
func (p plan) has(name string) bool { return slices.Contains(p.build, name) }

// machineCheck is what planPaths asks about the machine: whether a file exists
// and whether a command is on PATH (os.Stat and exec.LookPath; fakes in
// tests).
type machineCheck struct {
	stat     func(path string) error
	lookPath func(name string) error
}

// planPaths decides which paths to set up. chosen is -paths (nil: every
// built-in path and every extra). A chosen path that is not known, or
// that needs a file missing from binDir or a command missing from PATH,
// is an error naming it (all of them at once). Without -paths, a path
// whose file in binDir is missing is skipped with the reason (make bench
// builds them all; a partial bin/ still measures the rest), a missing
// command is an error.
func planPaths(chosen map[string]bool, extras [][2]string, binDir string, m machineCheck) (plan, error) {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(chosen)) {
		known := slices.ContainsFunc(builtins, func(b builtin) bool { return b.name == name }) ||
			slices.ContainsFunc(extras, func(e [2]string) bool { return e[0] == name })
		if !known {
			errs = append(errs, fmt.Errorf("-paths: unknown path %q (built-in: %s; --extra names: %s)", name, builtinNames(), extraNames(extras)))
		}
	}
	var pl plan
	for _, b := range builtins {
		if chosen != nil && !chosen[b.name] {
			continue
		}
		var missing []string
		for _, f := range b.bins {
			full := filepath.Join(binDir, f)
			if err := m.stat(full); err != nil {
				missing = append(missing, full)
			}
		}
		if len(missing) > 0 {
			msg := fmt.Sprintf("path %s needs %s: not found (make build builds bin/)", b.name, strings.Join(missing, ", "))
			if chosen != nil {
				errs = append(errs, errors.New(msg))
			} else {
				pl.skipped = append(pl.skipped, msg)
			}
			continue
		}
		for _, t := range b.tools {
			if err := m.lookPath(t[0]); err != nil {
				errs = append(errs, fmt.Errorf("path %s needs the command %s: not on PATH (apt-get install -y %s, or make deps)", b.name, t[0], t[1]))
			}
		}
		pl.build = append(pl.build, b.name)
		pl.mainBed = pl.mainBed || b.mainBed
	}
	for _, e := range extras {
		if chosen == nil || chosen[e[0]] {
			pl.extras = append(pl.extras, e)
			pl.mainBed = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return plan{}, err
	}
	if len(pl.build) == 0 && len(pl.extras) == 0 {
		return plan{}, fmt.Errorf("no path to measure (skipped: %s)", strings.Join(pl.skipped, "; "))
	}
	return pl, nil
}

func extraNames(extras [][2]string) string {
	if len(extras) == 0 {
		return "none"
	}
	var names []string
	for _, e := range extras {
		names = append(names, e[0])
	}
	return strings.Join(names, ",")
}
