package cni

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/vishvananda/netlink"
)

// GC frees the addresses of every attachment of this network (its data
// directory) not listed in cni.dev/valid-attachments, deletes those
// attachments' host veths and their masquerading rules. Interfaces of other
// networks on the same bridge are not this network's to touch.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	conf, err := ParseConfig(args.StdinData)
	if err != nil {
		return err
	}
	keep := make(map[Attachment]bool, len(conf.ValidAttachments))
	for _, v := range conf.ValidAttachments {
		keep[Attachment{ContainerID: v.ContainerID, IfName: v.IfName}] = true
	}
	store, err := OpenLockedStore(conf.DataDir)
	if err != nil {
		return internalError("%v", err)
	}
	defer store.Close()

	freed, err := store.ReleaseAllExcept(keep)
	if err != nil {
		return internalError("gc addresses: %v", err)
	}
	p.log().Debug("gc freed addresses", "count", len(freed))
	stale := make(map[string]bool, len(freed))
	for _, owner := range freed {
		stale[HostVethName(owner.ContainerID, owner.IfName)] = true
	}
	var errs []error
	if err := deleteStaleVeths(conf.Bridge, stale); err != nil {
		errs = append(errs, err)
	}
	if err := ip.GCIPMasqForNetwork(conf.Name, conf.ValidAttachments); err != nil {
		errs = append(errs, fmt.Errorf("gc ipMasq rules: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return internalError("%v", err)
	}
	return nil
}

// deleteStaleVeths removes the host veths named in stale that are on the
// bridge. A missing bridge means there is nothing to do.
func deleteStaleVeths(bridge string, stale map[string]bool) error {
	if len(stale) == 0 {
		return nil
	}
	br, err := bridgeByName(bridge)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return err
	}
	links, err := netlinksafe.LinkList()
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	var errs []error
	for _, l := range links {
		attrs := l.Attrs()
		if attrs.MasterIndex != br.Index || !stale[attrs.Name] {
			continue
		}
		if _, ok := l.(*netlink.Veth); !ok {
			continue
		}
		if err := deleteLinkIfPresent(attrs.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
