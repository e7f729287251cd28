package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/weftnet/weft/subnet"
)

// leaseJSON is one row of `weftctl leases -o json`.
type leaseJSON struct {
	Subnet      string          `json:"subnet"`
	PublicIP    string          `json:"publicIP"`
	Port        int             `json:"port,omitempty"`
	BackendType string          `json:"backendType"`
	BackendData json.RawMessage `json:"backendData,omitempty"`
	Expiration  string          `json:"expiration,omitempty"`
	Reservation bool            `json:"reservation"`
}

func leases(ctx context.Context, m *subnet.Manager, output string, stdout io.Writer) error {
	ls, err := m.ListLeases(ctx)
	if err != nil {
		return err
	}
	if output == "json" {
		rows := make([]leaseJSON, 0, len(ls))
		for _, l := range ls {
			port, _ := l.Attrs.Port()
			row := leaseJSON{
				Subnet: l.Subnet.String(), PublicIP: l.Attrs.PublicIP, Port: port,
				BackendType: l.Attrs.BackendType, BackendData: l.Attrs.BackendData, Reservation: l.Reservation,
			}
			if !l.Expiration.IsZero() {
				row.Expiration = l.Expiration.UTC().Format(time.RFC3339)
			}
			rows = append(rows, row)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SUBNET\tPUBLIC IP\tPORT\tEXPIRES\tRESERVATION")
	for _, l := range ls {
		port := "-"
		if p, err := l.Attrs.Port(); err == nil {
			port = fmt.Sprint(p)
		}
		expires := "never"
		if !l.Expiration.IsZero() {
			expires = fmt.Sprintf("%s (in %s)", l.Expiration.UTC().Format(time.RFC3339), time.Until(l.Expiration).Round(time.Second))
		}
		reservation := "no"
		if l.Reservation {
			reservation = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Subnet, l.Attrs.PublicIP, port, expires, reservation)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d leases\n", len(ls))
	return err
}
