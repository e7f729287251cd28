package subnet

import (
	"flag"
	"fmt"
	"os"
	"strings"
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
			firstErr = fmt.Errorf("environment variable %s=%q (flag --%s): %w", env, value, f.Name, err)
		}
	})
	return firstErr
}
