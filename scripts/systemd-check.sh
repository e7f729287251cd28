#!/usr/bin/env bash
# make systemd-check: weft under a real systemd. Boots Debian 12 (systemd
# 252) with systemd-nspawn inside a network namespace of its own, installs
# weft with `make install DESTDIR=`, and checks the unit: active only after
# READY, restart keeps the subnet, kill -9 comes back, stop leaves no TUN, a
# bad config fails once with 78, an unreachable etcd is a WARN within 10 s,
# journal priorities, the write check, systemd-analyze security <= 3.0, and
# --nice -10: one WARN without CAP_SYS_NICE, quiet with a Nice=-10 drop-in.
#
# The rootfs is debootstrapped once from the Debian mirror and cached in
# $SYSTEMD_CHECK_CACHE (default .cache/systemd-check, ignored by git); each
# run boots a fresh copy of it. Nothing touches the root namespace's network.
set -euo pipefail

cd "$(dirname "$0")/.."
CACHE=${SYSTEMD_CHECK_CACHE:-$PWD/.cache/systemd-check}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOTFS=$CACHE/rootfs-bookworm
MAX_EXPOSURE=3.0
UNREACHABLE_ETCD=http://203.0.113.250:2379

if [ "$(id -u)" -ne 0 ]; then
	echo "systemd-check: must run as root" >&2
	exit 1
fi
bash scripts/deps.sh systemd-check

# --- the cached rootfs -------------------------------------------------------
if [ ! -e "$ROOTFS/.weft-rootfs-complete" ]; then
	echo "systemd-check: debootstrap Debian 12 into $ROOTFS (once; later runs reuse it)"
	rm -rf "$ROOTFS.tmp"
	mkdir -p "$CACHE"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,iproute2 \
		bookworm "$ROOTFS.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
		{ tail -20 "$CACHE/debootstrap.log" >&2; echo "systemd-check: debootstrap failed (log: $CACHE/debootstrap.log)" >&2; exit 1; }
	touch "$ROOTFS.tmp/.weft-rootfs-complete"
	rm -rf "$ROOTFS"
	mv "$ROOTFS.tmp" "$ROOTFS"
fi

# --- a fresh machine: copy, install, network namespace, boot -----------------
suffix=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
NAME=weftsd$suffix
NS=weftsd$suffix
RUN=$(mktemp -d /var/tmp/weft-systemd-check.XXXXXX)
ROOT=$RUN/root
NSPAWN_PID=
cleanup() {
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		kill -TERM "$NSPAWN_PID" 2>/dev/null || true # nspawn powers the container off
		for _ in $(seq 1 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$NSPAWN_PID" 2>/dev/null || true
		wait "$NSPAWN_PID" 2>/dev/null || true
	fi
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp -a "$ROOTFS" "$ROOT"
make --no-print-directory install DESTDIR="$ROOT" >"$RUN/install.log" 2>&1 ||
	{ cat "$RUN/install.log" >&2; exit 1; }

# The machine's network: its own namespace with one underlay device. No
# default route, so the TEST-NET etcd address is unreachable at once.
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add eth0 type veth peer name eth1
ip -n "$NS" addr add 192.0.2.1/24 dev eth0
ip -n "$NS" link set eth1 up
ip -n "$NS" link set eth0 up

# --keep-unit and --register=no: the host has no systemd/machined to ask
# for a scope. CAP_NET_ADMIN: nspawn drops it unless it made the network.
systemd-nspawn -D "$ROOT" -M "$NAME" --register=no --keep-unit --console=passive \
	--capability=CAP_NET_ADMIN --network-namespace-path="/run/netns/$NS" -b \
	>"$RUN/nspawn.log" 2>&1 &
NSPAWN_PID=$!

LEADER=
for _ in $(seq 1 100); do
	LEADER=$(cat /proc/"$NSPAWN_PID"/task/*/children 2>/dev/null | awk '{print $1}')
	[ -n "$LEADER" ] && [ "$(cat /proc/"$LEADER"/comm 2>/dev/null)" = systemd ] && break
	kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$RUN/nspawn.log" >&2; echo "systemd-check: systemd-nspawn exited" >&2; exit 1; }
	sleep 0.2
done
inside() { nsenter -t "$LEADER" -m -u -i -n -p -- "$@"; }
# Until PID 1 has its private bus socket, systemctl cannot connect: retry.
for _ in $(seq 1 90); do
	state=$(timeout 90 nsenter -t "$LEADER" -m -u -i -n -p -- systemctl is-system-running --wait 2>&1 || true)
	case "$state" in *"Failed to connect"* | "") sleep 1 ;; *) break ;; esac
done
case "$state" in
running | degraded) ;;
*)
	cat "$RUN/nspawn.log" >&2
	echo "systemd-check: the container's systemd did not boot (state: $state)" >&2
	exit 1
	;;
esac
echo "systemd-check: $(inside systemctl --version | head -1) booted in $NAME (netns $NS), state $state"

# --- helpers ------------------------------------------------------------------
failures=0
pass() { echo "  ok    $*"; }
fail() {
	echo "  FAIL  $*"
	failures=$((failures + 1))
}
prop() { inside systemctl show -p "$1" --value weftd; }
subnet() { inside sh -c '. /run/weft/subnet.env 2>/dev/null && echo "$WEFT_SUBNET"'; }
# journal shows weftd's lines since the last configure (--since, not
# --after-cursor: journalctl 252 applies no -p filter after a cursor).
SINCE=
journal() { inside journalctl -u weftd --no-pager -o cat ${SINCE:+--since="@$SINCE"} "$@"; }

# configure writes /etc/default/weftd (extra lines after the common ones)
# and clears the unit's history.
configure() {
	inside systemctl stop weftd 2>/dev/null || true
	inside systemctl reset-failed weftd 2>/dev/null || true
	{
		echo "WEFTD_IFACE=eth0"
		printf '%s\n' "$@"
	} | inside sh -c 'cat >/etc/default/weftd'
	SINCE=$(inside date +%s.%N)
}

# wait_for SECONDS CMD...: poll until CMD succeeds.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.5
	done
}
is_state() { [ "$(prop ActiveState)" = "$1" ]; }

GOOD=(
	"WEFTD_EMBEDDED_ETCD_DIR=/var/lib/weft/etcd"
	"WEFTD_NETWORK_CONFIG={\"Network\":\"10.244.0.0/16\",\"Backend\":{\"Type\":\"udp\",\"Port\":8285}}"
)

# --- checks -------------------------------------------------------------------
echo "systemd-check: sandbox"
exposure=$(inside systemd-analyze security weftd --no-pager 2>&1 | sed -n 's/.*Overall exposure level for weftd.service: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN{exit !(e <= m)}'; then
	pass "systemd-analyze security weftd: exposure $exposure (<= $MAX_EXPOSURE)"
else
	fail "systemd-analyze security weftd: exposure '${exposure:-?}' (want <= $MAX_EXPOSURE)"
fi

echo "systemd-check: unreachable etcd"
configure "WEFTD_ETCD_ENDPOINTS=$UNREACHABLE_ETCD"
inside systemctl start --no-block weftd
start=$SECONDS
if wait_for 10 sh -c "nsenter -t $LEADER -m -u -i -n -p -- journalctl -u weftd -p warning --no-pager -o cat --since=@$SINCE | grep -q '${UNREACHABLE_ETCD}'"; then
	pass "a WARN naming $UNREACHABLE_ETCD after $((SECONDS - start)) s, shown by journalctl -p warning:"
	journal -p warning | grep -m1 "$UNREACHABLE_ETCD" | cut -c1-240 | sed 's/^/          /'
else
	fail "no WARN naming $UNREACHABLE_ETCD within 10 s in journalctl -u weftd -p warning; journal:"
	journal | tail -5 | sed 's/^/          /'
fi
if is_state activating; then
	pass "not active before READY (ActiveState=activating, SubState=$(prop SubState))"
else
	fail "ActiveState=$(prop ActiveState) while weftd waits for etcd (want activating)"
fi
if st=$(inside weftctl status 2>&1); then
	fail "weftctl status exits 0 while weftd has no lease: $st"
elif echo "$st" | grep -q 'no lease yet'; then
	pass "weftctl status while starting: 'no lease yet', exit non-zero"
else
	fail "weftctl status while starting: $st"
fi
inside systemctl stop weftd
if is_state inactive && [ "$(prop Result)" = success ]; then
	pass "stop while starting: inactive, Result=success (exit $(prop ExecMainStatus))"
else
	fail "stop while starting: ActiveState=$(prop ActiveState) Result=$(prop Result) status=$(prop ExecMainStatus)"
fi

echo "systemd-check: configuration errors"
configure "${GOOD[@]}" 'WEFTD_NETWORK_CONFIG={"Network":"10.244.0.0/16",'
inside systemctl start weftd 2>/dev/null || true
sleep 5 # > RestartSec: a restart would have happened
if is_state failed && [ "$(prop ExecMainStatus)" = 78 ] && [ "$(prop NRestarts)" = 0 ]; then
	pass "bad network config JSON: failed after one try, exit 78, NRestarts=0"
else
	fail "bad network config JSON: ActiveState=$(prop ActiveState) status=$(prop ExecMainStatus) NRestarts=$(prop NRestarts)"
fi
if journal -p err | grep -q 'network-config'; then
	pass "the error is in journalctl -p err: $(journal -p err | grep -m1 network-config | cut -c1-160)"
else
	fail "journalctl -u weftd -p err does not show the config error"
fi
configure "${GOOD[@]}" "WEFTD_SUBNET_FILE=/etc/weft/subnet.env"
inside systemctl start weftd 2>/dev/null || true
if is_state failed && [ "$(prop ExecMainStatus)" = 78 ] && journal | grep -q 'ReadWritePaths='; then
	pass "subnet file outside ReadWritePaths: failed at once, exit 78, the log names the drop-in"
else
	fail "subnet file in /etc: ActiveState=$(prop ActiveState) status=$(prop ExecMainStatus)"
	journal | tail -3 | sed 's/^/          /'
fi

echo "systemd-check: a working node (embedded etcd)"
configure "${GOOD[@]}"
if inside systemctl start weftd; then
	# systemctl start of a Type=notify unit returns when READY=1 came.
	st=$(inside weftctl status 2>&1 || true)
	if is_state active && echo "$st" | grep -q 'subnet: *10\.244\.'; then
		pass "active after READY, and at that moment weftctl status shows the lease: $(echo "$st" | grep -m1 'subnet:' | xargs)"
	else
		fail "after start: ActiveState=$(prop ActiveState); weftctl status: $st"
	fi
else
	fail "systemctl start weftd failed: $(journal | tail -3)"
fi
first=$(subnet)
ip -n "$NS" link show weft0 >/dev/null 2>&1 && pass "weft0 exists while running (subnet $first)" || fail "no weft0 while running"

inside systemctl restart weftd
if [ -n "$first" ] && [ "$(subnet)" = "$first" ] && is_state active; then
	pass "restart keeps the subnet ($first)"
else
	fail "restart: subnet $first -> $(subnet), ActiveState=$(prop ActiveState)"
fi

pid=$(prop MainPID)
restarts=$(prop NRestarts)
inside sh -c "kill -9 $pid"
if wait_for 30 sh -c "[ \"\$(nsenter -t $LEADER -m -u -i -n -p -- systemctl show -p NRestarts --value weftd)\" -gt $restarts ] && nsenter -t $LEADER -m -u -i -n -p -- systemctl is-active -q weftd" &&
	[ "$(subnet)" = "$first" ]; then
	pass "kill -9 of pid $pid: restarted (NRestarts=$(prop NRestarts), pid $(prop MainPID)), active, same subnet"
else
	fail "kill -9: ActiveState=$(prop ActiveState) NRestarts=$(prop NRestarts) subnet=$(subnet)"
fi

t0=$(date +%s%N)
inside systemctl stop weftd
ms=$((($(date +%s%N) - t0) / 1000000))
if ! ip -n "$NS" link show weft0 >/dev/null 2>&1 && is_state inactive; then
	pass "stop: inactive, no weft0 left (stop took $ms ms)"
else
	fail "stop: ActiveState=$(prop ActiveState), weft0 still there: $(ip -n "$NS" -br link show weft0 2>&1)"
fi
# Error level: journald's priority (weftd's own prefixes) and anything that
# says "error" in its own format (the embedded etcd's zap lines).
errs=$( (journal -p err; journal | grep -i -e '"level":"error"' -e 'level=ERROR') | sort -u |
	grep -v -e 'Main process exited' -e 'Failed with result' || true)
if [ -z "$errs" ]; then
	pass "no error-level lines from weftd or its embedded etcd in start, restart, kill -9, stop"
else
	fail "error-level lines in a clean run:"
	echo "$errs" | head -5 | cut -c1-200 | sed 's/^/          /'
fi
echo "          journalctl -p warning in the working run (count, message):"
journal -p warning | sed -n 's/.*msg=\("[^"]*"\|[^ ]*\).*/\1/p' | sort | uniq -c | sed 's/^/          /'

echo "systemd-check: --nice under the unit"
# The unit gives weftd no CAP_SYS_NICE: with --nice -10 alone it warns once
# and every thread keeps nice 0; with the drop-in the unit's comment and
# docs/flags.md give (Nice=-10) systemd sets it and --nice -10 holds, quietly.
# nices: the distinct nice values of weftd's threads (field 19 of stat).
nices() { inside sh -c 'for s in /proc/$(systemctl show -p MainPID --value weftd)/task/*/stat; do cut -d" " -f19 "$s"; done' | sort -u | xargs; }
nice_warns() { journal -p warning | grep -c 'nice value not lowered' || true; }
configure "${GOOD[@]}" "WEFTD_NICE=-10"
if inside systemctl start weftd; then
	n=$(nice_warns)
	v=$(nices || true)
	if [ "$n" = 1 ] && [ "$v" = 0 ]; then
		pass "--nice -10, no CAP_SYS_NICE: one WARN, threads at nice $v: $(journal -p warning | grep -m1 'nice value not lowered' | cut -c1-200)"
	else
		fail "--nice -10, no CAP_SYS_NICE: $n WARNs about the nice value (want 1), threads at nice '$v' (want 0)"
	fi
else
	fail "systemctl start weftd with --nice -10 failed: $(journal | tail -3)"
fi
inside mkdir -p /etc/systemd/system/weftd.service.d
inside sh -c 'printf "[Service]\nNice=-10\n" >/etc/systemd/system/weftd.service.d/nice.conf'
inside systemctl daemon-reload
configure "${GOOD[@]}" "WEFTD_NICE=-10"
if inside systemctl start weftd; then
	n=$(nice_warns)
	v=$(nices || true)
	if [ "$n" = 0 ] && [ "$v" = -10 ]; then
		pass "drop-in Nice=-10 with --nice -10: threads at nice $v, no WARN"
	else
		fail "drop-in Nice=-10 with --nice -10: $n WARNs about the nice value (want 0), threads at nice '$v' (want -10)"
	fi
else
	fail "systemctl start weftd with the Nice=-10 drop-in failed: $(journal | tail -3)"
fi
inside systemctl stop weftd
inside rm -r /etc/systemd/system/weftd.service.d
inside systemctl daemon-reload

echo
if [ "$failures" -gt 0 ]; then
	echo "systemd-check: $failures check(s) FAILED"
	exit 1
fi
echo "systemd-check: all checks passed"
