package cni

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

// Plugin implements the CNI verbs. The zero value is ready to use.
type Plugin struct {
	// HTTPClient asks weftd's /readyz in STATUS; nil means a client with a
	// two-second timeout.
	HTTPClient *http.Client
	// Logger receives diagnostics (the runtime usually captures stderr);
	// nil discards them.
	Logger *slog.Logger
}

// Funcs returns the verbs for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, GC: p.GC, Status: p.Status}
}

// VersionInfo is what the plugin answers to VERSION.
func VersionInfo() version.PluginInfo {
	return version.PluginSupports(SupportedVersions()...)
}

func (p *Plugin) httpClient() *http.Client {
	if p.HTTPClient != nil {
		return p.HTTPClient
	}
	return &http.Client{Timeout: 2 * time.Second}
}

func (p *Plugin) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.New(slog.DiscardHandler)
}
