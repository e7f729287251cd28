package main

import (
	"errors"
	"fmt"
)

// weftd's exit codes. weftd.service restarts on anything but exitClean and
// exitConfig (RestartPreventExitStatus=78), so a node that cannot work as
// configured ends "failed" after one try instead of restarting forever.
const (
	// exitClean: stopped on request (a signal, in any phase) or --help/--version.
	exitClean = 0
	// exitFailure: a runtime failure (lease lost, data path ended, TUN
	// removed, ...) that a restart may cure.
	exitFailure = 1
	// exitConfig is EX_CONFIG of sysexits.h: the configuration must be
	// fixed (a bad flag value or network config, a path weftd may not
	// write); restarting cannot help.
	exitConfig = 78
)

// configError marks an error that only a change of configuration can fix.
// Wrap such errors with asConfigError or make them with configErrorf
// anywhere in weftd: run exits with exitConfig, and retry gives up at once.
// The message is the wrapped error's, unchanged.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// asConfigError marks err (nil stays nil) as a configuration error.
func asConfigError(err error) error {
	if err == nil {
		return nil
	}
	return &configError{err}
}

// configErrorf is fmt.Errorf for configuration errors.
func configErrorf(format string, a ...any) error {
	return &configError{fmt.Errorf(format, a...)}
}

// isConfigError reports whether err, or an error it wraps, is a
// configuration error.
func isConfigError(err error) bool {
	var c *configError
	return errors.As(err, &c)
}

// exitCode maps how a run ended to weftd's exit code. A stop requested by
// a signal is clean whatever the phase it interrupted, so `systemctl stop`
// of a unit that is still starting does not leave it failed.
func exitCode(err error, signalled bool) int {
	switch {
	case signalled, err == nil:
		return exitClean
	case isConfigError(err):
		return exitConfig
	default:
		return exitFailure
	}
}
