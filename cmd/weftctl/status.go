package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/weftnet/weft/nodestatus"
)

func status(ctx context.Context, daemonURL, output string, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := strings.TrimRight(daemonURL, "/") + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("--daemon-url %q: %w", daemonURL, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("daemon status: %w (is weftd running with its health endpoint on %s?)", err, daemonURL)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("daemon status: read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("daemon status: GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	var st nodestatus.Status
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("daemon status: malformed JSON from %s: %w", url, err)
	}
	if output == "json" {
		if _, err := stdout.Write(append(body, '\n')); err != nil {
			return err
		}
	} else if err := printStatus(st, stdout); err != nil {
		return err
	}
	return noLease(st)
}

// noLease is the error (exit status 1) for a daemon that holds no subnet
// lease yet: its status document is printed, but it is not a working node.
func noLease(st nodestatus.Status) error {
	if st.HasLease() {
		return nil
	}
	why := st.Readiness.Reason
	if why == "" {
		why = st.Readiness.Status
	}
	return fmt.Errorf("weftd holds no subnet lease yet (%s): it is still starting or cannot reach etcd; see its log", why)
}

func printStatus(st nodestatus.Status, w io.Writer) error {
	if !st.HasLease() {
		fmt.Fprintf(w, "Node\n  subnet:       no lease yet\n  readiness:    %s\n", st.Readiness.Status)
		if st.Readiness.Reason != "" {
			fmt.Fprintf(w, "  reason:       %s\n", st.Readiness.Reason)
		}
	} else {
		expiry := st.Node.LeaseExpiry
		if expiry == "" {
			expiry = "never (reservation)"
		}
		fmt.Fprintf(w, "Node\n  subnet:       %s\n", orDash(st.Node.Subnet))
		if st.Node.IPv6Subnet != "" {
			fmt.Fprintf(w, "  IPv6 subnet:  %s\n", st.Node.IPv6Subnet)
		}
		fmt.Fprintf(w, "  public IP:    %s\n", orDash(st.Node.PublicIP))
		if st.Node.PublicIPv6 != "" {
			fmt.Fprintf(w, "  public IPv6:  %s\n", st.Node.PublicIPv6)
		}
		fmt.Fprintf(w, "  port:         %d\n  lease expiry: %s\n", st.Node.Port, expiry)
	}
	fmt.Fprintf(w, "\nPeers (%d)\n", len(st.Peers))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	dual := false
	for _, p := range st.Peers {
		dual = dual || p.IPv6Subnet != ""
	}
	if dual {
		fmt.Fprintln(tw, "  SUBNET\tIPV6 SUBNET\tMODE\tENDPOINT")
	} else {
		fmt.Fprintln(tw, "  SUBNET\tMODE\tENDPOINT")
	}
	for _, p := range st.Peers {
		mode, endpoint := p.Mode, p.Endpoint
		if mode == "" {
			mode = "udp" // a weftd from before direct routing
		}
		if endpoint == "" {
			endpoint = "-"
		}
		if dual {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", orDash(p.Subnet), orDash(p.IPv6Subnet), mode, endpoint)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", p.Subnet, mode, endpoint)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nCounters")
	var lines []string
	flattenCounters("", st.Counters, &lines)
	sort.Strings(lines)
	for _, l := range lines {
		fmt.Fprintf(w, "  %s\n", l)
	}
	return nil
}

// flattenCounters renders nested counters as "a.b: value" lines.
func flattenCounters(prefix string, v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			name := k
			if prefix != "" {
				name = prefix + "." + k
			}
			flattenCounters(name, sub, out)
		}
	case float64:
		*out = append(*out, fmt.Sprintf("%s: %s", prefix, formatNumber(x)))
	default:
		data, _ := json.Marshal(x)
		*out = append(*out, fmt.Sprintf("%s: %s", prefix, data))
	}
}

func formatNumber(f float64) string {
	if f == float64(int64(f)) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%g", f)
}
