//go:build !unit

package testbed

// unitTier is true in a build with -tags unit (make unit): the tier of tests
// that need no root, no network namespace and no network. There CheckRoot
// fails, as root too, so a test that needs the testbed but whose file lacks
// `//go:build !unit` fails the unit tier instead of passing or skipping.
const unitTier = false
