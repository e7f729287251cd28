//go:build !unit

package main

import (
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeMachine has the files and commands listed.
func fakeMachine(files []string, commands ...string) machineCheck {
	return machineCheck{
		stat: func(p string) error {
			if slices.Contains(files, filepath.Base(p)) {
				return nil
			}
			return fs.ErrNotExist
		},
		lookPath: func(n string) error {
			if slices.Contains(commands, n) {
				return nil
			}
			return errors.New("not found")
		},
	}
}

var allBins = []string{"weftd", "wireguard-go"}

func chosen(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

// -paths starts only what the chosen paths need: no main bed for paths
// on beds of their own, and no file the chosen paths do not run (the
// plugin weft and weftctl are needed by none).
func TestPlanPathsStartsOnlyWhatTheChosenPathsNeed(t *testing.T) {
	for _, c := range []struct {
		chosen  map[string]bool
		files   []string
		build   []string
		mainBed bool
	}{
		{chosen(pathWeft, pathFlannelUDP), []string{"weftd"}, []string{pathWeft, pathFlannelUDP}, true},
		{chosen(pathFlannelUDP), nil, []string{pathFlannelUDP}, false},
		{chosen(pathWeftWireGuard, pathWireGuardGo), allBins, []string{pathWeftWireGuard, pathWireGuardGo}, false},
		{chosen(pathVXLAN, pathRaw), nil, []string{pathRaw, pathVXLAN}, true},
		{nil, allBins, []string{pathRaw, pathVXLAN, pathWeft, pathWeftDirect, pathWeftVXLAN, pathWeftWireGuard, pathWireGuardGo, pathFlannelUDP}, true},
	} {
		pl, err := planPaths(c.chosen, nil, "/b", fakeMachine(c.files, "wg"))
		if err != nil {
			t.Errorf("planPaths(%v): %v", c.chosen, err)
			continue
		}
		if !slices.Equal(pl.build, c.build) || pl.mainBed != c.mainBed || len(pl.skipped) != 0 {
			t.Errorf("planPaths(%v) = build %v, main bed %v, skipped %v; want %v, %v", c.chosen, pl.build, pl.mainBed, pl.skipped, c.build, c.mainBed)
		}
	}
	// An extra path runs on the main bed.
	pl, err := planPaths(chosen("nebula", pathFlannelUDP), [][2]string{{"nebula", "./n.sh"}, {"tinc", "./t.sh"}}, "/b", fakeMachine(nil))
	if err != nil || !pl.mainBed || len(pl.extras) != 1 || pl.extras[0][0] != "nebula" || !slices.Equal(pl.build, []string{pathFlannelUDP}) {
		t.Errorf("extra chosen: %+v, %v", pl, err)
	}
}

// A chosen path that needs a missing file or command, or an unknown name,
// is an error naming it, before anything starts; without -paths a path
// whose file is missing is skipped with the reason.
func TestPlanPathsMissing(t *testing.T) {
	_, err := planPaths(chosen(pathWeft, pathWireGuardGo, pathFlannelUDP), nil, "/b", fakeMachine(nil))
	for _, want := range []string{"path weft needs /b/weftd: not found", "path wireguard-go needs /b/wireguard-go: not found"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing files: %v, want %q", err, want)
		}
	}
	_, err = planPaths(chosen(pathWireGuardGo), nil, "/b", fakeMachine(allBins))
	if err == nil || !strings.Contains(err.Error(), "needs the command wg") || !strings.Contains(err.Error(), "wireguard-tools") {
		t.Errorf("missing wg: %v", err)
	}
	_, err = planPaths(chosen(pathWeft, "flanel-udp"), nil, "/b", fakeMachine(allBins, "wg"))
	if err == nil || !strings.Contains(err.Error(), `unknown path "flanel-udp"`) || !strings.Contains(err.Error(), pathFlannelUDP) {
		t.Errorf("a misspelt path: %v", err)
	}
	// Default set, no weftd: the weft paths are skipped, the rest measured.
	pl, err := planPaths(nil, nil, "/b", fakeMachine([]string{"wireguard-go"}, "wg"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{pathRaw, pathVXLAN, pathWireGuardGo, pathFlannelUDP}; !slices.Equal(pl.build, want) {
		t.Errorf("default set without weftd builds %v, want %v", pl.build, want)
	}
	if len(pl.skipped) != 4 || !strings.Contains(pl.skipped[0], "path weft needs /b/weftd") {
		t.Errorf("skipped %q", pl.skipped)
	}
	// Nothing left to measure is an error, not an empty report.
	if _, err := planPaths(chosen(), nil, "/b", fakeMachine(nil)); err == nil {
		t.Errorf("an empty plan: no error")
	}
}

// cleanups stop everything once, last pushed first, and report every
// failed stop.
func TestCleanups(t *testing.T) {
	var order []string
	var c cleanups
	c.push(func() error { order = append(order, "bed"); return errors.New("bed busy") })
	c.push(nil)
	c.push(func() error { order = append(order, "etcd"); return nil })
	c.push(func() error { order = append(order, "weftd"); return errors.New("weftd stuck") })
	err := c.run()
	if !slices.Equal(order, []string{"weftd", "etcd", "bed"}) {
		t.Errorf("order %v", order)
	}
	if err == nil || !strings.Contains(err.Error(), "bed busy") || !strings.Contains(err.Error(), "weftd stuck") {
		t.Errorf("error %v", err)
	}
	if again := c.run(); again != err || len(order) != 3 {
		t.Errorf("second run: %v, stops ran %d times", again, len(order))
	}
}
