package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/weftnet/weft/nodestatus"
)

// HTTPClient returns a client whose connections are made inside the node's
// network namespace, so a test process in the root namespace can reach the
// daemon's 127.0.0.1 endpoint. A socket keeps the namespace it was created in.
func (n *Node) HTTPClient() *http.Client {
	return &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{DialContext: n.Host.NS.DialContext, DisableKeepAlives: true},
	}
}

// Get fetches a path (e.g. "/metrics") from the node's health endpoint.
func (n *Node) Get(ctx context.Context, path string) (int, []byte, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d%s", HealthzPort, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := n.HTTPClient().Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("node %d: GET %s: %w", n.Index+1, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Status fetches and decodes /status.
func (n *Node) Status(ctx context.Context) (nodestatus.Status, error) {
	var st nodestatus.Status
	code, body, err := n.Get(ctx, "/status")
	if err != nil {
		return st, err
	}
	if code != http.StatusOK {
		return st, fmt.Errorf("node %d: /status: HTTP %d: %s", n.Index+1, code, body)
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("node %d: /status: %w", n.Index+1, err)
	}
	return st, nil
}
