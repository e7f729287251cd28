package subnet

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FlagEnvName is the environment variable for a flag: envPrefix, "_", and
// the flag name in upper snake case (--etcd-endpoints with WEFTD gives
// WEFTD_ETCD_ENDPOINTS), flannel's convention.
func FlagEnvName(envPrefix, flagName string) string {
	name := strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
	envPrefix = strings.TrimSuffix(envPrefix, "_")
	if envPrefix == "" {
		return name
	}
	return envPrefix + "_" + name
}

// FlagsFromEnv sets every flag of fs whose environment variable (see
// FlagEnvName) is set. Call it before fs.Parse so that the command line
// wins over the environment.
func FlagsFromEnv(fs *flag.FlagSet, envPrefix string) error {
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if firstErr != nil {
			return
		}
		env := FlagEnvName(envPrefix, f.Name)
		value, ok := os.LookupEnv(env)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, value); err != nil {
			if want := flagWants(f); want != "" {
				err = errors.New(want)
			}
			firstErr = fmt.Errorf("environment variable %s=%q (flag --%s): %w", env, value, f.Name, err)
		}
	})
	return firstErr
}

// flagValueError matches the flag package's errors for a value a flag
// cannot take: `invalid value "x" for flag -name: parse error` and, for
// booleans, `invalid boolean value "x" for -name: parse error`.
var flagValueError = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-([^:]+): `)

// ExplainFlagError rewrites the flag package's "invalid value ...: parse
// error" (or "value out of range") for fs's flag as what the flag wants:
// `--subnet-lease-ttl "banana": want a duration such as 30s, 5m or 24h`.
// Other errors (flag.ErrHelp too) are returned as they are.
func ExplainFlagError(fs *flag.FlagSet, err error) error {
	if err == nil {
		return nil
	}
	m := flagValueError.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	f := fs.Lookup(m[2])
	value, qerr := strconv.Unquote(m[1])
	if f == nil || qerr != nil {
		return err
	}
	want := flagWants(f)
	if want == "" {
		return err
	}
	return fmt.Errorf("--%s %q: %s", f.Name, value, want)
}

// flagWants says what kind of value a flag of the flag package's own
// types takes ("" for other types, whose errors say it themselves).
func flagWants(f *flag.Flag) string {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return ""
	}
	switch g.Get().(type) {
	case time.Duration:
		return "want a duration such as 30s, 5m or 24h"
	case bool:
		return "want true or false"
	case int, int64:
		return "want an integer"
	case uint, uint64:
		return "want a non-negative integer"
	case float64:
		return "want a number"
	}
	return ""
}
