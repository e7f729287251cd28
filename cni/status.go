package cni

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/weftnet/weft/subnet/subnetfile"
)

// Status reports whether ADD can work: the subnet file must be present and
// valid and, when daemonURL is set, weftd's /readyz must answer 200.
// Otherwise it fails with code 50 (plugin not available).
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	if _, err := subnetfile.Read(conf.SubnetFile); err != nil {
		return types.NewError(types.ErrPluginNotAvailable,
			fmt.Sprintf("weftd is not ready: subnet file %s is missing or invalid", conf.SubnetFile), err.Error())
	}
	if conf.DaemonURL == "" {
		return nil
	}
	if err := p.checkReadyz(conf.DaemonURL); err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "weftd is not ready", err.Error())
	}
	return nil
}

func (p *Plugin) checkReadyz(daemonURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	url := strings.TrimSuffix(daemonURL, "/") + "/readyz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp, err := p.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}
