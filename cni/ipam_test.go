//go:build !unit

package cni_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestParallelAddsGetDistinctAddresses(t *testing.T) {
	t.Parallel()
	const containers = 30
	h := newHost(t, "10.244.7.1/24", nil)
	ctrs := make([]netns, containers)
	for i := range ctrs {
		ctrs[i] = newNetns(t, "wtc")
	}
	outs := make([]string, containers)
	errs := make([]error, containers)
	var wg sync.WaitGroup
	for i := range ctrs {
		wg.Go(func() { outs[i], errs[i] = h.cnitool("add", ctrs[i].path()) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range ctrs {
		if errs[i] != nil {
			t.Fatalf("parallel add %d: %v\n%s", i, errs[i], outs[i])
		}
		ip := containerIP(t, parseResult(t, []byte(outs[i])))
		if seen[ip] {
			t.Fatalf("address %s handed out twice", ip)
		}
		seen[ip] = true
	}
	if got := h.allocations(t); len(got) != containers {
		t.Fatalf("%d allocation files, want %d", len(got), containers)
	}
	for ip := range seen {
		if ip == "10.244.7.0" || ip == "10.244.7.1" || ip == "10.244.7.255" {
			t.Fatalf("reserved address %s handed out", ip)
		}
	}
	mustPing(t, ctrs[0], "10.244.7.1")

	// DEL twice succeeds for every container.
	for i := range ctrs {
		for range 2 {
			if out, err := h.cnitool("del", ctrs[i].path()); err != nil {
				t.Fatalf("del %d: %v\n%s", i, err, out)
			}
		}
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("allocations left after DEL: %v", got)
	}
	if links := h.ns.exec(t, "ip", "-br", "link"); strings.Contains(links, "wv") {
		t.Fatalf("host veths left after DEL:\n%s", links)
	}
}

func TestPoolExhaustion(t *testing.T) {
	t.Parallel()
	// A /28 has 16 addresses: network, broadcast and gateway leave 13.
	h := newHost(t, "10.244.7.1/28", nil)
	var ips []string
	for range 13 {
		_, res := h.add(t)
		ips = append(ips, containerIP(t, res))
	}
	var want []string
	for i := 2; i <= 14; i++ {
		want = append(want, fmt.Sprintf("10.244.7.%d", i))
	}
	slices.Sort(ips)
	slices.Sort(want)
	if !slices.Equal(ips, want) {
		t.Fatalf("addresses in /28: %v, want %v", ips, want)
	}
	ctr := newNetns(t, "wtc")
	out, err := h.cnitool("add", ctr.path())
	if err == nil || !strings.Contains(out, "no free address in 10.244.7.0/28") {
		t.Fatalf("ADD on a full /28: err %v, output %s; want a \"no free address\" error", err, out)
	}
	if out, err := ctr.execErr("ip", "link", "show", "eth0"); err == nil {
		t.Fatalf("failed ADD left eth0 behind:\n%s", out)
	}
}

func TestGCWithEmptyValidListFreesEverything(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	for range 3 {
		h.add(t)
	}
	// cnitool gc passes no valid attachments.
	if out, err := h.cnitool("gc", "/var/run/netns/unused"); err != nil {
		t.Fatalf("cnitool gc: %v\n%s", err, out)
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("allocations after GC: %v", got)
	}
	if links := h.ns.exec(t, "ip", "-br", "link"); strings.Contains(links, "wv") {
		t.Fatalf("host veths left after GC:\n%s", links)
	}
}

func TestGCKeepsValidAttachments(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	keepNS, keepRes := h.add(t)
	h.add(t)
	keepID := containerIDOf(keepNS)
	conf := map[string]any{}
	if err := json.Unmarshal(h.confJSON(t, "1.1.0", nil), &conf); err != nil {
		t.Fatal(err)
	}
	conf["cni.dev/valid-attachments"] = []map[string]string{{"containerID": keepID, "ifname": "eth0"}}
	stdin, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, perr := invoke(t, pluginCall{command: "GC", stdin: stdin, inNetns: &h.ns}); perr != nil {
		t.Fatalf("GC: %+v", perr)
	}
	if got := h.allocations(t); len(got) != 1 || got[0] != containerIP(t, keepRes) {
		t.Fatalf("allocations after GC: %v, want [%s]", got, containerIP(t, keepRes))
	}
	mustPing(t, keepNS, "10.244.7.1")
	if out, err := h.cnitool("check", keepNS.path()); err != nil {
		t.Fatalf("check of the kept attachment: %v\n%s", err, out)
	}
}

func TestDelWithoutOrWithMissingNetns(t *testing.T) {
	t.Parallel()
	h := newHost(t, "10.244.7.1/24", nil)
	ctr, res := h.add(t)
	id := containerIDOf(ctr)
	hostVeth := res.Interfaces[1].Name

	// DEL without CNI_NETNS: frees the address and removes the host veth.
	if _, perr := invoke(t, pluginCall{command: "DEL", containerID: id, ifname: "eth0",
		stdin: h.confJSON(t, "1.1.0", nil), inNetns: &h.ns}); perr != nil {
		t.Fatalf("DEL without netns: %+v", perr)
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("allocations after DEL: %v", got)
	}
	if out, err := h.ns.execErr("ip", "link", "show", hostVeth); err == nil {
		t.Fatalf("host veth left after DEL:\n%s", out)
	}

	// DEL with a namespace path that no longer exists.
	ctr2 := newNetns(t, "wtc")
	if out, err := h.cnitool("add", ctr2.path()); err != nil {
		t.Fatalf("add: %v\n%s", err, out)
	}
	_, perr := invoke(t, pluginCall{command: "DEL", containerID: containerIDOf(ctr2), ifname: "eth0",
		netns: "/var/run/netns/wt-gone-" + randomSuffix(t), stdin: h.confJSON(t, "1.1.0", nil), inNetns: &h.ns})
	if perr != nil {
		t.Fatalf("DEL with missing netns: %+v", perr)
	}
	if got := h.allocations(t); len(got) != 0 {
		t.Fatalf("allocations after DEL: %v", got)
	}
	if out, err := h.cnitool("del", ctr2.path()); err != nil {
		t.Fatalf("del again: %v\n%s", err, out)
	}
}

// containerIDOf is the container ID cnitool derives from a namespace path.
func containerIDOf(n netns) string {
	return fmt.Sprintf("cnitool-%x", sha512Prefix(n.path()))
}
