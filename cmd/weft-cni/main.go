// Command weft is weft's CNI plugin (network config "type": "weft"). It
// attaches containers to a bridge holding the node subnet that weftd leased,
// see package github.com/weftnet/weft/cni.
package main

import (
	"log/slog"
	"os"
	"strings"

	"github.com/containernetworking/cni/pkg/skel"

	"github.com/weftnet/weft/cni"
)

func main() {
	plugin := &cni.Plugin{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	about := "CNI plugin weft (supports CNI " + strings.Join(cni.SupportedVersions(), ", ") + ")"
	skel.PluginMainFuncs(plugin.Funcs(), cni.VersionInfo(), about)
}
