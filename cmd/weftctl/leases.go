package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/weftnet/weft/subnet"
)

// leaseJSON is one row of `weftctl leases -o json`.
type leaseJSON struct {
	Subnet      string          `json:"subnet"`
	IPv6Subnet  string          `json:"ipv6Subnet,omitempty"`
	PublicIP    string          `json:"publicIP"`
	PublicIPv6  string          `json:"publicIPv6,omitempty"`
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
				Subnet: prefixText(l.Subnet), IPv6Subnet: prefixText(l.IPv6Subnet), PublicIP: l.Attrs.PublicIP, PublicIPv6: l.Attrs.PublicIPv6, Port: port,
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
	dual := false // IPv6 columns only when a lease has IPv6: an IPv4 table reads as before
	for _, l := range ls {
		dual = dual || l.IPv6Subnet.IsValid() || l.Attrs.PublicIPv6 != ""
	}
	if dual {
		fmt.Fprintln(tw, "SUBNET\tIPV6 SUBNET\tPUBLIC IP\tPUBLIC IPV6\tPORT\tEXPIRES\tRESERVATION")
	} else {
		fmt.Fprintln(tw, "SUBNET\tPUBLIC IP\tPORT\tEXPIRES\tRESERVATION")
	}
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
		if dual {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", orDash(prefixText(l.Subnet)), orDash(prefixText(l.IPv6Subnet)),
				orDash(l.Attrs.PublicIP), orDash(l.Attrs.PublicIPv6), port, expires, reservation)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.Subnet, l.Attrs.PublicIP, port, expires, reservation)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%d leases\n", len(ls))
	return err
}

// prefixText is p's text, "" when p is invalid (a family the lease lacks).
func prefixText(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
