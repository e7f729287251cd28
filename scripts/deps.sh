#!/usr/bin/env bash
# Installs what weft's demo, tests and benchmark need on a Debian machine:
# Debian packages (iproute2, iperf3, ping, iptables, tcpdump, podman, ...) and the CNI
# project's cnitool. Safe to run again: it only installs what is missing.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: must run as root (network namespaces, TUN devices and apt-get need it)" >&2
	exit 1
fi

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v iperf3 >/dev/null || need+=(iperf3)
command -v ping >/dev/null || need+=(iputils-ping)
command -v iptables >/dev/null || need+=(iptables)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v bridge >/dev/null || need+=(iproute2)
# The compatibility tests: podman (CNI backend) with an image made from
# busybox-static, Debian's bridge/host-local/portmap plugins, nft for
# weftd --ip-masq, nsenter to run podman inside a test host.
command -v podman >/dev/null || need+=(podman)
command -v busybox >/dev/null || need+=(busybox-static)
[ -x /usr/lib/cni/portmap ] || need+=(containernetworking-plugins)
command -v nft >/dev/null || need+=(nftables)
command -v nsenter >/dev/null || need+=(util-linux)
# The interoperability tests build a real flanneld (testbed/flannel) with cgo.
command -v gcc >/dev/null || need+=(gcc libc6-dev)
# The wireguard backend: Debian's `wg` reads and sets its device (UAPI),
# and configures the hand-made WireGuard peer of the interop test.
command -v wg >/dev/null || need+=(wireguard-tools)
# `make systemd-check` (scripts/deps.sh systemd-check) also boots a Debian
# rootfs under systemd-nspawn.
if [ "${1:-}" = systemd-check ]; then
	command -v debootstrap >/dev/null || need+=(debootstrap)
	command -v systemd-nspawn >/dev/null || need+=(systemd-container)
	command -v nsenter >/dev/null || need+=(util-linux)
fi
if [ ${#need[@]} -gt 0 ]; then
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

gobin="$(go env GOPATH)/bin"
if ! command -v cnitool >/dev/null && [ ! -x "$gobin/cnitool" ]; then
	ver=$(go list -m -f '{{.Version}}' github.com/containernetworking/cni)
	echo "deps: installing cnitool $ver"
	go install "github.com/containernetworking/cni/cnitool@$ver"
fi

if [ ! -c /dev/net/tun ]; then
	echo "deps: /dev/net/tun is missing; load the tun module (modprobe tun)" >&2
	exit 1
fi
