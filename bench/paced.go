package main

import "fmt"

// The tcp-paced workload offers one TCP stream at a fixed rate, well
// below what the path carries, so that the CPU figure is a cost per byte
// and not 1/throughput (both cores busy). One rate cannot serve every
// path on a 2-core machine:
//
//   - pacedRate (2 Gbit/s) for raw veth, kernel VXLAN and the weft paths
//     without encryption (weft 5-10 Gbit/s, the others 14 and more);
//   - pacedRateEncrypted (1 Gbit/s) for the two user-space WireGuard
//     paths, weft wireguard and the standalone wireguard-go: they carry
//     1.4-2.4 Gbit/s unpaced here, so 2 Gbit/s ran them at saturation
//     (1.64-1.80 carried in the make bench runs of 2026-12-06) and the
//     figure was 1/throughput again. Both paths of that comparison are
//     paced at this same rate: their CPU per GB stays like for like.
//
// Fixed rates, not rates derived from each run's unpaced result: a cost per
// byte depends on the rate, so runs stay comparable with each other.
const (
	pacedRate          = 2e9
	pacedRateEncrypted = 1e9
)

// pacedRateOf is the rate the tcp-paced workload offers on path name, in
// bit/s.
func pacedRateOf(name string) float64 {
	switch name {
	case pathWeftWireGuard, pathWireGuardGo:
		return pacedRateEncrypted
	}
	return pacedRate
}

// A paced run that received at least pacedFullShare of the rate offered
// carried it. Between pacedWarnShare and that, the sample is kept with a
// warning in the report (the path came close to saturation: the figure is
// the cost at the rate received, which the report gives beside it); below
// pacedWarnShare the run failed (the path saturated far below the rate
// offered: the figure would be 1/throughput, not a cost).
const (
	pacedFullShare = 0.9
	pacedWarnShare = 0.75
)

// pacedShortfall judges a paced run that offered offered bit/s and
// received received bit/s: "" and nil when the path carried the rate, a
// warning when it fell short within the bounded margin, an error beyond.
func pacedShortfall(offered, received float64) (warning string, err error) {
	if offered <= 0 {
		return "", fmt.Errorf("paced TCP: no rate offered (%v bit/s)", offered)
	}
	share := received / offered
	switch {
	case share >= pacedFullShare:
		return "", nil
	case share >= pacedWarnShare:
		return fmt.Sprintf("paced TCP received %.2f of the %.2f Gbit/s offered (%.0f %%, below %.0f %%): the path was near saturation, the sample is its cost at the rate received",
			received/1e9, offered/1e9, 100*share, 100*pacedFullShare), nil
	}
	return "", fmt.Errorf("paced TCP: the path carried %.2f Gbit/s of the %.2f offered (%.0f %%, below %.0f %%)",
		received/1e9, offered/1e9, 100*share, 100*pacedWarnShare)
}

// pacedTooSlow says why path name is not measured by the paced workload
// when its fastest unpaced one-stream run so far (Gbit/s; 0: none yet)
// could not carry the rate it would be offered: "" when it can, or when
// there is no unpaced sample to judge by.
func pacedTooSlow(name string, fastestTCP1 float64) string {
	rate := pacedRateOf(name)
	if fastestTCP1 <= 0 || fastestTCP1*1e9 >= rate/pacedFullShare {
		return ""
	}
	return fmt.Sprintf("TCP 1 stream at most %.2f Gbit/s, below %.2f Gbit/s (the %.0f Gbit/s pacing rate / %.1f)", fastestTCP1, rate/pacedFullShare/1e9, rate/1e9, pacedFullShare)
}
