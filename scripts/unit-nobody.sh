#!/usr/bin/env bash
# Run `make unit` as an unprivileged user (uid 65534), offline, the way a
# laptop without root would: its own HOME and GOCACHE, GOPROXY=off, and a
# module cache it can read. Run as root from the checkout (make unit-nobody).
#
# root's module cache (/root/go/pkg/mod) is not readable by another user,
# so the modules go.sum names are copied from it into $UNIT_HOME/gomod with
# `go mod download` reading root's download cache as a file:// proxy: no
# network. The source tree is copied too (a checkout under /root is not
# readable either). Both stay in $UNIT_HOME, so a second run reuses the
# module cache and the build cache (GOCACHE) of the first.
#
# Prints the wall time and the number of top-level tests that passed; exits
# non-zero when make unit fails.
set -euo pipefail
cd "$(dirname "$0")/.."

UNIT_UID=${UNIT_UID:-65534}
UNIT_HOME=${UNIT_HOME:-/tmp/weft-unit-home}
GO=${GO:-go}

if [ "$(id -u)" != 0 ]; then
	echo "unit-nobody: run as root (it switches to uid $UNIT_UID); as any other user just run: make unit" >&2
	exit 1
fi
gobin=$(dirname "$(command -v "$GO")")

mkdir -p "$UNIT_HOME"
rootcache="$($GO env GOMODCACHE)/cache/download"
GOPROXY="file://$rootcache" GOSUMDB=off GOFLAGS=-modcacherw GOMODCACHE="$UNIT_HOME/gomod" \
	$GO mod download
rm -rf "$UNIT_HOME/src"
mkdir -p "$UNIT_HOME/src"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$UNIT_HOME/src"
chown -R "$UNIT_UID:$UNIT_UID" "$UNIT_HOME"

log="$UNIT_HOME/unit.log"
start=$(date +%s)
rc=0
setpriv --reuid="$UNIT_UID" --regid="$UNIT_UID" --clear-groups \
	env -i PATH="$gobin:/usr/bin:/bin" HOME="$UNIT_HOME" \
	GOCACHE="$UNIT_HOME/gocache" GOMODCACHE="$UNIT_HOME/gomod" GOPROXY=off \
	GOFLAGS=-modcacherw GOTOOLCHAIN=local \
	make -C "$UNIT_HOME/src" unit GOTESTFLAGS="-v ${GOTESTFLAGS:-}" >"$log" 2>&1 || rc=$?
end=$(date +%s)
grep -E '^(ok|FAIL|---)|^panic' "$log" | grep -v -e '^--- PASS' || true
echo "unit-nobody: make unit as uid $UNIT_UID: exit $rc in $((end - start)) s," \
	"$(grep -c '^--- PASS' "$log") top-level tests passed," \
	"$(grep -c '^--- FAIL' "$log") failed (log: $log; load average: $(cut -d' ' -f1-3 /proc/loadavg))"
exit "$rc"
