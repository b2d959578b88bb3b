#!/usr/bin/env bash
# scripts/valgrind.sh — run the pg_regress suite with the postmaster under
# valgrind memcheck and report errors whose stack passes through epic_fdw's
# own code.  Slow (about 30x): scripts/test.sh runs it on a subset of the
# files (auth scan paging errors views); run it here on all of them.
#
#   bash scripts/valgrind.sh [test ...]     default: the whole REGRESS list
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
trap 'epic_cleanup' EXIT
# (epic_cleanup stops the sandbox through its pid file: run it before removing $STATE)

epic_install_deps
command -v valgrind >/dev/null ||
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind >/dev/null
epic_build_install
STATE=$(mktemp -d /tmp/epic_fdw_valgrind.XXXXXX)
epic_setup_state "$STATE"
epic_make_dataset
epic_start_sandbox

PGROOT="$STATE/pg"
install -d -o postgres -g postgres -m 700 "$PGROOT" "$PGROOT/vg"
runuser -u postgres -- "$PGBIN/initdb" -D "$PGROOT/data" -A trust -U postgres --no-sync >/dev/null
PGPORT=$(epic_free_port)
export PGHOST="$PGROOT" PGPORT PGUSER=postgres
runuser -u postgres -- valgrind --quiet --trace-children=yes --leak-check=no \
	--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \
	--suppressions="$REPO/scripts/valgrind.supp" \
	--log-file="$PGROOT/vg/%p.log" \
	"$PGBIN/postgres" -D "$PGROOT/data" -p "$PGPORT" -k "$PGROOT" -c listen_addresses= \
	-c fsync=off -c jit=off -c max_parallel_workers_per_gather=0 >"$PGROOT/server.log" 2>&1 &
ready=no
for _ in $(seq 1 180); do
	if "$PGBIN/pg_isready" -q -h "$PGROOT" -p "$PGPORT"; then ready=yes; break; fi
	sleep 1
done
if [ $ready != yes ]; then
	echo "the postmaster did not start under valgrind; see $PGROOT/server.log and $PGROOT/vg/"
	cat "$PGROOT/server.log" "$PGROOT"/vg/*.log 2>/dev/null | tail -n 20
	echo "0 passed, 1 failed"
	exit 1
fi

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
	# every test but those that measure time or memory (valgrind is ~30x slower
	# and has its own allocator)
	read -r -a tests <<<"$(sed -n 's/^REGRESS = //p' "$REPO/Makefile" | sed 's/\bmemory\b//; s/\bfaults\b//; s/\bconcurrency\b//; s/\bbulk_cron\b//; s/\bbulk_memory\b//')"
fi
make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" installcheck REGRESS="${tests[*]}" \
	>"$STATE/regress.out" 2>&1
regress_rc=$?
cat "$STATE/regress.out"
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w stop >/dev/null 2>&1 || true
PGROOT=""

# errors whose stack mentions our sources
ours=$(grep -l -E '(epic_fdw\.c|src/[a-z_]+\.c|options\.c|catalog\.c|deparse\.c|connection\.c|http\.c|auth\.c|bundle\.c|fhirpath\.c|json_jansson\.c|convert\.c)' \
	"$STATE"/pg/vg/*.log 2>/dev/null | xargs -r grep -l VALGRINDERROR-BEGIN)
if [ -n "$ours" ]; then
	echo "valgrind errors in epic_fdw code:"
	for f in $ours; do sed -n '/VALGRINDERROR-BEGIN/,/VALGRINDERROR-END/p' "$f"; done
	echo "0 passed, 1 failed"
	exit 1
fi
if [ $regress_rc -ne 0 ] || ! grep -q 'tests passed' "$STATE/regress.out"; then
	echo "the regression tests did not all pass under valgrind (state kept in $STATE)"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "valgrind: no memcheck errors in epic_fdw code ($(ls "$STATE"/pg/vg | wc -l) process logs)"
echo "1 passed, 0 failed"
epic_cleanup
rm -rf "$STATE"
