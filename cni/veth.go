package cni

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/netlinksafe"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// hostVethPrefix starts the name of every host-side veth the plugin makes.
const hostVethPrefix = "wv"

// HostVethName is the host-side veth name of an attachment. It is derived
// from the container ID and ifname so that DEL and GC find the interface
// without any saved state (e.g. after a crash).
func HostVethName(containerID, ifname string) string {
	sum := sha256.Sum256([]byte(containerID + "/" + ifname))
	return hostVethPrefix + hex.EncodeToString(sum[:])[:11]
}

// vethPair is the two ends of a container attachment.
type vethPair struct {
	host      net.Interface
	container net.Interface
}

// createVeth creates the pair from inside the container namespace, moving
// the host end to hostNS and bringing both up. The container end (with
// mac, when set) must not exist yet.
func createVeth(ifname, hostName string, mtu int, mac net.HardwareAddr, hostNS ns.NetNS) (vethPair, error) {
	if _, err := netlinksafe.LinkByName(ifname); err == nil {
		return vethPair{}, fmt.Errorf("interface %s already exists in the container namespace", ifname)
	}
	macStr := ""
	if mac != nil {
		macStr = mac.String()
	}
	hostIf, ctrIf, err := ip.SetupVethWithName(ifname, hostName, mtu, macStr, hostNS)
	if err != nil {
		if strings.Contains(err.Error(), "exists") {
			return vethPair{}, fmt.Errorf("create veth %s/%s: already exists: %w", ifname, hostName, err)
		}
		return vethPair{}, fmt.Errorf("create veth %s/%s: %w", ifname, hostName, err)
	}
	link, err := netlinksafe.LinkByName(ifname)
	if err != nil {
		return vethPair{}, fmt.Errorf("look up %s: %w", ifname, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return vethPair{}, fmt.Errorf("set %s up: %w", ifname, err)
	}
	return vethPair{host: hostIf, container: ctrIf}, nil
}

// attachToBridge puts the host end on the bridge with the hairpin setting.
func attachToBridge(hostName string, br *netlink.Bridge, hairpin bool) (netlink.Link, error) {
	link, err := netlinksafe.LinkByName(hostName)
	if err != nil {
		return nil, fmt.Errorf("look up host veth %s: %w", hostName, err)
	}
	if err := netlink.LinkSetMaster(link, br); err != nil {
		return nil, fmt.Errorf("attach %s to bridge %s: %w", hostName, br.Name, err)
	}
	if err := netlink.LinkSetHairpin(link, hairpin); err != nil {
		return nil, fmt.Errorf("set hairpin mode of %s: %w", hostName, err)
	}
	return link, nil
}

// deleteLinkIfPresent deletes a link by name in the current namespace; a
// missing link is not an error.
func deleteLinkIfPresent(name string) error {
	err := ip.DelLinkByName(name)
	if err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
