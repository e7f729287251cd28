package cni

import (
	"errors"
	"fmt"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/weftnet/weft/subnet/subnetfile"
)

// readSubnetEnv reads weftd's subnet file. A missing file means weftd has
// no lease yet: CNI code 11 (try again later).
func readSubnetEnv(path string) (subnetfile.Env, error) {
	env, err := subnetfile.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return env, types.NewError(types.ErrTryAgainLater,
			fmt.Sprintf("weftd is not ready: subnet file %s does not exist (is weftd running and holding a lease?)", path), err.Error())
	}
	if err != nil {
		return env, types.NewError(types.ErrInternal, fmt.Sprintf("weftd's subnet file is unusable: %v", err), "")
	}
	return env, nil
}

func internalError(format string, args ...any) *types.Error {
	return types.NewError(types.ErrInternal, fmt.Sprintf(format, args...), "")
}
