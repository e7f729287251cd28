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
)

// daemonStatus is weftd's GET /status document.
type daemonStatus struct {
	Node struct {
		Subnet      string `json:"subnet"`
		PublicIP    string `json:"publicIP"`
		Port        int    `json:"port"`
		LeaseExpiry string `json:"leaseExpiry"`
	} `json:"node"`
	Peers []struct {
		Subnet   string `json:"subnet"`
		Endpoint string `json:"endpoint"`
		Mode     string `json:"mode"` // udp, direct or unreachable
	} `json:"peers"`
	Counters map[string]any `json:"counters"`
}

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
	if output == "json" {
		_, err := stdout.Write(append(body, '\n'))
		return err
	}
	var st daemonStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("daemon status: malformed JSON from %s: %w", url, err)
	}
	return printStatus(st, stdout)
}

func printStatus(st daemonStatus, w io.Writer) error {
	expiry := st.Node.LeaseExpiry
	if expiry == "" {
		expiry = "never (reservation)"
	}
	fmt.Fprintf(w, "Node\n  subnet:       %s\n  public IP:    %s\n  port:         %d\n  lease expiry: %s\n",
		st.Node.Subnet, st.Node.PublicIP, st.Node.Port, expiry)
	fmt.Fprintf(w, "\nPeers (%d)\n", len(st.Peers))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SUBNET\tMODE\tENDPOINT")
	for _, p := range st.Peers {
		mode, endpoint := p.Mode, p.Endpoint
		if mode == "" {
			mode = "udp" // a weftd from before direct routing
		}
		if endpoint == "" {
			endpoint = "-"
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
