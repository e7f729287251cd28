//go:build !unit

package cni_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// weft first in a conflist, then a plugin that echoes prevResult: the
// runtime's final result is weft's, and the second plugin saw it.
func TestChainedConflist(t *testing.T) {
	t.Parallel()
	record := filepath.Join(t.TempDir(), "echo.jsonl")
	h := newHost(t, "10.244.7.1/24", nil, map[string]any{"type": "echoplugin", "recordFile": record})
	ctr, res := h.add(t)
	mustPing(t, ctr, "10.244.7.1")
	if out, err := h.cnitool("check", ctr.path()); err != nil {
		t.Fatalf("cnitool check: %v\n%s", err, out)
	}
	if out, err := h.cnitool("del", ctr.path()); err != nil {
		t.Fatalf("cnitool del: %v\n%s", err, out)
	}

	calls := readRecords(t, record)
	if len(calls) != 3 || calls[0].Verb != "ADD" || calls[1].Verb != "CHECK" || calls[2].Verb != "DEL" {
		t.Fatalf("echo plugin calls: %+v", calls)
	}
	var seen struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
		Interfaces []struct {
			Name string `json:"name"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal(calls[0].PrevResult, &seen); err != nil {
		t.Fatal(err)
	}
	if len(seen.IPs) != 1 || seen.IPs[0].Address != res.IPs[0].Address.String() || len(seen.Interfaces) != 3 {
		t.Fatalf("echo plugin saw prevResult %s, weft's result was %+v", calls[0].PrevResult, res)
	}
}

// weft after another plugin keeps the previous interfaces and appends its own.
func TestWeftAppendsToPrevResult(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr := newNetns(t, "wtc")
	conf := map[string]any{}
	if err := json.Unmarshal(h.confJSON(t, "1.1.0", nil), &conf); err != nil {
		t.Fatal(err)
	}
	conf["prevResult"] = map[string]any{
		"cniVersion": "1.1.0",
		"interfaces": []map[string]string{{"name": "lo", "sandbox": ctr.path()}},
		"ips":        []map[string]any{{"address": "127.0.0.1/8", "interface": 0}},
	}
	stdin, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	id := "ctr-prev-" + randomSuffix(t)
	out, perr := invoke(t, pluginCall{command: "ADD", containerID: id, netns: ctr.path(), ifname: "eth0", stdin: stdin, inNetns: &h.ns})
	if perr != nil {
		t.Fatalf("ADD with prevResult: %+v", perr)
	}
	t.Cleanup(func() {
		invoke(t, pluginCall{command: "DEL", containerID: id, netns: ctr.path(), ifname: "eth0", stdin: h.confJSON(t, "1.1.0", nil), inNetns: &h.ns})
	})
	res := parseResult(t, out)
	if len(res.Interfaces) != 4 || res.Interfaces[0].Name != "lo" || res.Interfaces[3].Name != "eth0" {
		t.Fatalf("interfaces: %+v", res.Interfaces)
	}
	if len(res.IPs) != 2 || res.IPs[1].Interface == nil || *res.IPs[1].Interface != 3 {
		t.Fatalf("ips: %+v", res.IPs)
	}
}

type echoRecord struct {
	Verb       string          `json:"verb"`
	PrevResult json.RawMessage `json:"prevResult"`
}

func readRecords(t *testing.T, path string) []echoRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("echo plugin record: %v", err)
	}
	defer f.Close()
	var out []echoRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var r echoRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
