// Command weft is weft's CNI plugin (network config "type": "weft"). It
// attaches containers to a bridge holding the node subnet that weftd leased,
// see package github.com/weftnet/weft/cni.
package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/weftnet/weft/cni"
)

func main() {
	plugin := &cni.Plugin{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if cmd := os.Getenv("CNI_COMMAND"); cmd != "" && cmd != "VERSION" {
		// The CNI library reads stdin whole: give it at most
		// cni.MaxConfigSize bytes.
		stdin, err := boundedStdin(os.Stdin, cni.MaxConfigSize)
		if err != nil {
			_ = err.Print()
			os.Exit(1)
		}
		os.Stdin = stdin
	}
	about := "CNI plugin weft (supports CNI " + strings.Join(cni.SupportedVersions(), ", ") + ")"
	skel.PluginMainFuncs(plugin.Funcs(), cni.VersionInfo(), about)
}

// boundedStdin reads at most limit bytes of in and returns a pipe that
// holds them; more is a CNI decoding error (nothing else was read).
func boundedStdin(in io.Reader, limit int) (*os.File, *types.Error) {
	data, err := io.ReadAll(io.LimitReader(in, int64(limit)+1))
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("read the network config from stdin: %v", err), "")
	}
	if len(data) > limit {
		return nil, types.NewError(types.ErrDecodingFailure,
			fmt.Sprintf("network config on stdin larger than %d MiB", limit>>20), "a network config is a few kilobytes: check what the runtime sends")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, fmt.Sprintf("pipe for the network config: %v", err), "")
	}
	go func() {
		_, _ = w.Write(data)
		_ = w.Close()
	}()
	return r, nil
}
