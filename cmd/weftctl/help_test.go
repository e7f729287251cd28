package main

import (
	"strings"
	"testing"
)

func TestHelpListsCommands(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, stdout, stderr := weftctl(t, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		for _, want := range []string{"config set JSON", "leases", "status", "policy apply -f FILE", "namespace label",
			"endpoints", "help [COMMAND]", "version", "-etcd-endpoints", "WEFTCTL_<FLAG>"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("%q: help does not show %q:\n%s", args, want, stdout)
			}
		}
	}
}

func TestHelpOfOneCommand(t *testing.T) {
	for _, args := range [][]string{{"help", "policy"}, {"policy", "--help"}, {"--help", "policy"}} {
		code, stdout, stderr := weftctl(t, args...)
		if code != 0 || stderr != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr)
		}
		if !strings.Contains(stdout, "weftctl policy apply -f FILE") || !strings.Contains(stdout, "-etcd-endpoints") ||
			strings.Contains(stdout, "weftctl leases") || strings.Contains(stdout, "-daemon-url") {
			t.Errorf("%q: want policy's forms and etcd flags only:\n%s", args, stdout)
		}
	}
	code, stdout, _ := weftctl(t, "help", "status")
	if code != 0 || !strings.Contains(stdout, "-daemon-url") || strings.Contains(stdout, "-etcd-endpoints") {
		t.Errorf("help status: exit %d:\n%s", code, stdout)
	}
	code, _, stderr := weftctl(t, "help", "nope")
	if code != 2 || !strings.Contains(stderr, `unknown command "nope"`) || !strings.Contains(stderr, "policy") {
		t.Errorf("help nope: exit %d, stderr %q", code, stderr)
	}
	for _, c := range commands {
		if code, stdout, stderr := weftctl(t, "help", c.name); code != 0 || !strings.Contains(stdout, "weftctl "+c.name) {
			t.Errorf("help %s: exit %d, stdout %q, stderr %q", c.name, code, stdout, stderr)
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, stdout, stderr := weftctl(t, args...)
		if code != 0 || stdout != "weftctl "+version+"\n" || stderr != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

func TestUnknownCommandPointsAtHelp(t *testing.T) {
	code, _, stderr := weftctl(t, "bogus")
	if code == 0 || !strings.Contains(stderr, `unknown command "bogus"`) || !strings.Contains(stderr, "weftctl help") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = weftctl(t, "--no-such-flag", "leases")
	if code != 2 || strings.Count(stderr, "no-such-flag") != 1 || !strings.Contains(stderr, "weftctl help") {
		t.Errorf("a bad flag: exit %d, stderr %q (want the error once and the pointer to help)", code, stderr)
	}
}
