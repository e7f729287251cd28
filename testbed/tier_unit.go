//go:build unit

package testbed

// unitTier: see tier.go.
const unitTier = true
