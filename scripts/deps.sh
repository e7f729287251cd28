#!/usr/bin/env bash
# Installs what weft's demo, tests and benchmark need on a Debian machine:
# Debian packages (iproute2, iperf3, ping, iptables, tcpdump, podman, ...) and the CNI
# project's cnitool. Safe to run again: it only installs what is missing.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
	echo "deps: must run as root (network namespaces, TUN devices and apt-get need it)" >&2
	exit 1
fi

# le FILE OFFSET LENGTH: the little-endian unsigned integer at OFFSET.
le() {
	local v=0 i
	local -a b
	read -r -a b < <(od -An -v -tu1 -j "$2" -N "$3" "$1" | tr '\n' ' ')
	for ((i = ${#b[@]} - 1; i >= 0; i--)); do
		v=$((v * 256 + b[i]))
	done
	echo "$v"
}

# dynamic_elf FILE: succeeds when FILE is a (little-endian) ELF executable
# that names a program interpreter (PT_INTERP): a dynamically linked one.
dynamic_elf() {
	local f=$1 phoff phentsize phnum i
	[ "$(od -An -tx1 -N6 "$f" 2>/dev/null | tr -d ' \n')" = 7f454c460201 ] ||
		[ "$(od -An -tx1 -N6 "$f" 2>/dev/null | tr -d ' \n')" = 7f454c460101 ] || return 1
	if [ "$(le "$f" 4 1)" = 2 ]; then # ELFCLASS64
		phoff=$(le "$f" 32 8) phentsize=$(le "$f" 54 2) phnum=$(le "$f" 56 2)
	else
		phoff=$(le "$f" 28 4) phentsize=$(le "$f" 42 2) phnum=$(le "$f" 44 2)
	fi
	for ((i = 0; i < phnum && i < 256; i++)); do
		[ "$(le "$f" $((phoff + i * phentsize)) 4)" = 3 ] && return 0 # PT_INTERP
	done
	return 1
}

# apt_locks_held: the apt and dpkg lock files some process holds now (apt
# and dpkg take them with fcntl, so they show in /proc/locks by inode).
apt_locks_held() {
	local f ino
	for f in ${DEPS_APT_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}; do
		ino=$(stat -c %i "$f" 2>/dev/null) || continue
		grep -Eq "[0-9a-f]+:[0-9a-f]+:$ino " /proc/locks && echo "$f"
	done
	return 0
}

# wait_for_apt: wait (up to DEPS_LOCK_TIMEOUT seconds, 600 by default) while
# another apt-get, dpkg or unattended-upgrades holds the locks, instead of
# failing at once with exit 100; apt-get waits too (DPkg::Lock::Timeout)
# should one start in between.
lock_timeout=${DEPS_LOCK_TIMEOUT:-600}
wait_for_apt() {
	local held waited=0
	while held=$(apt_locks_held) && [ -n "$held" ]; do
		if [ "$waited" -ge "$lock_timeout" ]; then
			echo "deps: gave up after ${lock_timeout}s waiting for another apt/dpkg to release" $held >&2
			exit 1
		fi
		[ "$waited" = 0 ] && echo "deps: another apt/dpkg holds" $held"; waiting for it (up to ${lock_timeout}s)"
		sleep 1
		waited=$((waited + 1))
	done
}

apt_get() {
	wait_for_apt
	apt-get -o DPkg::Lock::Timeout="$lock_timeout" "$@"
}

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
# The image needs a statically linked busybox: Debian's `busybox` package
# is dynamically linked (every container of the image would exit at once:
# "missing dynamic library?"); busybox-static replaces it.
if ! command -v busybox >/dev/null; then
	need+=(busybox-static)
elif dynamic_elf "$(readlink -f "$(command -v busybox)")"; then
	echo "deps: $(command -v busybox) is dynamically linked (Debian's busybox); installing busybox-static, which replaces it"
	need+=(busybox-static)
fi
# Debian's CNI plugins: bridge and host-local are also what flannel's CNI
# plugin (built by testbed/flannel) delegates to in the flannel tests.
for p in bridge host-local portmap; do
	[ -x "/usr/lib/cni/$p" ] || { need+=(containernetworking-plugins); break; }
done
command -v nft >/dev/null || need+=(nftables)
command -v nsenter >/dev/null || need+=(util-linux)
# The interoperability tests build a real flanneld (testbed/flannel) with cgo,
# and flannel's CNI plugin, both from the Go module proxy (cached).
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
	apt_get update -qq
	apt_get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if bb=$(command -v busybox) && dynamic_elf "$(readlink -f "$bb")"; then
	echo "deps: $bb is still dynamically linked; the podman tests need a static busybox first on PATH (Debian: busybox-static)" >&2
	exit 1
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
