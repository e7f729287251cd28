package cni

import (
	"fmt"

	cnins "github.com/containernetworking/cni/pkg/ns"
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// refuseNodeNetNS refuses a CNI_NETNS that is the plugin's own network
// namespace (the node's), before ADD or CHECK touch anything. The CNI
// library makes the same check only after the verb has run: ADD put the
// container's address and routes on the node (and DEL, which then deleted
// CNI_IFNAME in CNI_NETNS, deleted the node's eth0; DEL no longer looks
// into CNI_NETNS at all). weft has no use for the node's namespace as a
// container's, so CNI_NETNS_OVERRIDE does not change this.
func refuseNodeNetNS(args *skel.CmdArgs) error {
	if args.Netns == "" {
		return nil
	}
	own, cerr := cnins.CheckNetNS(args.Netns)
	if cerr != nil {
		return cerr
	}
	if own {
		return types.NewError(types.ErrInvalidNetNS,
			fmt.Sprintf("CNI_NETNS %q is the node's own network namespace, not a container's", args.Netns),
			"nothing was changed; give the container's namespace (or none, for DEL)")
	}
	return nil
}
