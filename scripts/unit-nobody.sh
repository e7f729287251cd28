#!/usr/bin/env bash
# Run `make unit` as an unprivileged user (uid 65534), offline, the way a
# laptop without root would: its own HOME and GOCACHE, GOPROXY=off, and a
# module cache it can read. Run as root from the checkout (make unit-nobody).
#
# root's module cache (/root/go/pkg/mod) is not readable by another user,
# so the modules go.sum names are copied from it into $UNIT_HOME/gomod with
# `go mod download` reading root's download cache as a file:// proxy: no
# network. The source tree is copied too (a checkout under /root is not
# readable either). The module cache stays in $UNIT_HOME for the next run.
#
# The build cache (GOCACHE) starts empty on every run, as a fresh user's
# does: the time printed is a cold build of every unit-tier test binary (and
# the standard library) plus the tests. UNIT_CACHE=warm keeps the cache of
# the previous run instead (a second `make unit` on the same machine).
#
# Prints the wall time and the number of top-level tests that passed; exits
# non-zero when make unit fails.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT_UID=${UNIT_UID:-65534}
UNIT_HOME=${UNIT_HOME:-/tmp/weft-unit-home}
GO=${GO:-go}
UNIT_CACHE=${UNIT_CACHE:-cold}

if [ "$(id -u)" != 0 ]; then
	echo "unit-nobody: run as root (it switches to uid $UNIT_UID); as any other user just run: make unit" >&2
	exit 1
fi
gobin=$(dirname "$(command -v "$GO")")

# The unit tier stays fast only while none of its test binaries links etcd's
# server (or bench's plotting): a test that starts a real etcd belongs in a
# `//go:build !unit` file. Fail before measuring when one slipped in.
heavy=$(for p in $($GO list -tags unit -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do
	$GO list -tags unit -test -deps "$p" | grep -qE '^(go.etcd.io/etcd/server|gonum.org/v1/plot)' && echo "$p"
done || true)
if [ -n "$heavy" ]; then
	echo "unit-nobody: these unit-tier test binaries link etcd's server or gonum/plot (move the tests that need it to a //go:build !unit file):" $heavy >&2
	exit 1
fi

mkdir -p "$UNIT_HOME"
rootcache="$($GO env GOMODCACHE)/cache/download"
GOPROXY="file://$rootcache" GOSUMDB=off GOFLAGS=-modcacherw GOMODCACHE="$UNIT_HOME/gomod" \
	$GO mod download
rm -rf "$UNIT_HOME/src"
mkdir -p "$UNIT_HOME/src"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$UNIT_HOME/src"
case "$UNIT_CACHE" in
cold) rm -rf "$UNIT_HOME/gocache" ;;
warm) ;;
*)
	echo "unit-nobody: UNIT_CACHE is cold or warm, not $UNIT_CACHE" >&2
	exit 2
	;;
esac
chown -R "$UNIT_UID:$UNIT_UID" "$UNIT_HOME"

log="$UNIT_HOME/unit.log"
echo "unit-nobody: load average before: $(cut -d" " -f1-3 /proc/loadavg)"
start=$(date +%s)
rc=0
setpriv --reuid="$UNIT_UID" --regid="$UNIT_UID" --clear-groups \
	env -i PATH="$gobin:/usr/bin:/bin" HOME="$UNIT_HOME" \
	GOCACHE="$UNIT_HOME/gocache" GOMODCACHE="$UNIT_HOME/gomod" GOPROXY=off \
	GOFLAGS=-modcacherw GOTOOLCHAIN=local \
	make -C "$UNIT_HOME/src" unit GOTESTFLAGS="-v ${GOTESTFLAGS:-}" >"$log" 2>&1 || rc=$?
end=$(date +%s)
grep -E '^(ok|FAIL|---)|^panic' "$log" | grep -v -e '^--- PASS' || true
echo "unit-nobody: make unit as uid $UNIT_UID ($UNIT_CACHE GOCACHE): exit $rc in $((end - start)) s," \
	"$(grep -c '^--- PASS' "$log") top-level tests passed," \
	"$(grep -c '^--- FAIL' "$log") failed (log: $log; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
