package testbed

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// CheckRoot reports, with a clear message, why the testbed cannot run here:
// not root, no `ip` (iproute2) or no /dev/net/tun.
// Built with -tags unit (make unit) it always fails: see unitTier.
func CheckRoot() error {
	if unitTier {
		return errors.New("testbed: this test needs network namespaces and runs in the unit tier (go test -tags unit, make unit): start its file with //go:build !unit so that only make test builds it")
	}
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("must run as root (network namespaces, veth pairs and TUN devices need it)"))
	}
	if _, err := exec.LookPath("ip"); err != nil {
		errs = append(errs, fmt.Errorf("the `ip` command is missing (apt-get install iproute2): %w", err))
	}
	if fi, err := os.Stat("/dev/net/tun"); err != nil {
		errs = append(errs, fmt.Errorf("/dev/net/tun is missing (modprobe tun): %w", err))
	} else if fi.Mode()&os.ModeCharDevice == 0 {
		errs = append(errs, errors.New("/dev/net/tun is not a character device"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("testbed: %w", errors.Join(errs...))
	}
	return nil
}
