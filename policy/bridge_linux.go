package policy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// EnableBridgeFiltering makes IPv4 frames bridged between the ports of the
// bridge named name pass netfilter's IPv4 hooks (conntrack, the forward
// hook), so policy applies to containers on the same node as to any other,
// and IPv6 frames likewise (so the Enforcer can stop IPv6 between
// containers). It sets the bridge's own nf_call_iptables and
// nf_call_ip6tables options (IFLA_BR_NF_CALL_IPTABLES, _IP6TABLES),
// not the namespace-wide net.bridge.bridge-nf-call-iptables sysctl: other
// bridges of the host are left as they are. nsFd names the network namespace
// (0: the current one). It reports false, and no error, when the bridge does
// not exist yet (no container attached).
func EnableBridgeFiltering(nsFd int, name string) (bool, error) {
	ns := netns.None()
	if nsFd != 0 {
		ns = netns.NsHandle(nsFd)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return false, fmt.Errorf("policy: netlink handle: %w", err)
	}
	defer h.Close()
	link, err := h.LinkByName(name)
	if err != nil {
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return false, nil
		}
		return false, fmt.Errorf("policy: bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return false, fmt.Errorf("policy: %s is a %s, not a bridge", name, link.Type())
	}
	sock, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return false, fmt.Errorf("policy: netlink socket: %w", err)
	}
	defer sock.Close()
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(link.Attrs().Index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_NF_CALL_IPTABLES, []byte{1})
	data.AddRtAttr(nl.IFLA_BR_NF_CALL_IP6TABLES, []byte{1})
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return false, fmt.Errorf("policy: set nf_call_iptables on bridge %s: %w", name, err)
	}
	return true, nil
}

// BridgeNetfilterLoaded tells whether br_netfilter is in the kernel (it
// creates sys/net/bridge/bridge-nf-call-iptables under procRoot, normally
// /proc, in every network namespace). Without it a bridge's
// nf_call_iptables option does nothing and frames between two containers
// on one bridge pass no IPv4 hook: same-host traffic is not policed.
// Debian's kernels build it as a module that nothing loads by default.
func BridgeNetfilterLoaded(procRoot string) bool {
	_, err := os.Stat(filepath.Join(procRoot, "sys", "net", "bridge", "bridge-nf-call-iptables"))
	return err == nil
}
