#!/usr/bin/env bash
# scripts/asan.sh — run the pg_regress suite against epic_fdw built with
# AddressSanitizer.
#
#   bash scripts/asan.sh [test ...]        default: the REGRESS list of the Makefile
#                                          but for RSS-measuring tests (see below)
#
# Builds the extension with COPT='-fsanitize=address -fno-omit-frame-pointer
# -DEPIC_FAULT_INJECTION' (the test-only settings epic_fdw.fault_*, which
# sql/faultinject.sql uses: by default it runs after the REGRESS list) and
# installs it, starts the HTTPS sandbox and a throwaway cluster with
# scripts/lib.sh, the postmaster running with libasan preloaded (plus a tiny
# -z initfirst shim that initialises ASan before any other library
# constructor: a plain LD_PRELOAD=libasan makes Debian's postgres hang at
# start-up) and ASAN_OPTIONS=detect_leaks=0:log_path=$STATE/asan/asan, runs
# `make installcheck` as scripts/test.sh does, and fails if any
# $STATE/asan/asan.* report exists or any regression test fails.  Leak
# detection is off: backends exit without freeing their memory contexts.
#
# Always finishes by rebuilding and reinstalling the normal (non-ASan)
# extension.  Prints "N passed, N failed" last (one per regression test, plus
# "no AddressSanitizer report"); exits non-zero if anything failed.
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

restore_normal_build() {
	epic_log "rebuilding and reinstalling the normal (non-ASan) extension"
	make -C "$REPO" -s clean >/dev/null 2>&1
	if ! { make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" >/dev/null &&
		make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install >/dev/null; }; then
		fail "rebuild and reinstall the normal extension"
	fi
}

finish() {
	epic_cleanup
	restore_normal_build
	epic_summary
}
trap finish EXIT

epic_install_deps || { fail "install Debian packages"; exit 1; }
LIBASAN=$(gcc -print-file-name=libasan.so.8)
if [ ! -f "$LIBASAN" ]; then
	LIBASAN=/usr/lib/x86_64-linux-gnu/libasan.so.8
	[ -f "$LIBASAN" ] || apt-get install -y -qq --no-install-recommends libasan8 >/dev/null
fi
[ -f "$LIBASAN" ] || { fail "libasan.so.8 not found"; exit 1; }

STATE=$(mktemp -d /tmp/epic_fdw_asan.XXXXXX)
chmod 755 "$STATE"

# --- ASan build -------------------------------------------------------------
epic_log "building epic_fdw with AddressSanitizer"
make -C "$REPO" -s clean >/dev/null 2>&1
if make -C "$REPO" PG_CONFIG="$PGBIN/pg_config" \
	COPT='-fsanitize=address -fno-omit-frame-pointer -DEPIC_FAULT_INJECTION' >"$STATE/build.log" 2>&1 &&
	make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install >>"$STATE/build.log" 2>&1; then
	:
else
	cat "$STATE/build.log"
	fail "ASan build and install"
	exit 1
fi
# (no `nm | grep -q` under pipefail: grep -q exiting early makes nm fail)
if ! nm -D --undefined-only "$REPO/epic_fdw.so" | grep -c '__asan_' >/dev/null; then
	fail "epic_fdw.so is not instrumented (no __asan_ symbols)"
	exit 1
fi

# --- the initfirst shim and a pg_ctl that starts postgres under ASan ----------
SHIM="$STATE/asan_initfirst.so"
cat >"$STATE/asan_initfirst.c" <<'EOF'
/* Initialise ASan before any other constructor of the process runs. */
extern void __asan_init(void);
__attribute__((constructor)) static void
epic_asan_initfirst(void)
{
	__asan_init();
}
EOF
if ! gcc -shared -fPIC -Wl,-z,initfirst -o "$SHIM" "$STATE/asan_initfirst.c" "$LIBASAN" \
	>>"$STATE/build.log" 2>&1; then
	cat "$STATE/build.log"
	fail "build the ASan initfirst shim"
	exit 1
fi
chmod 755 "$SHIM"
ASANDIR="$STATE/asan"
install -d -o postgres -g postgres -m 755 "$ASANDIR"

# lib.sh starts the cluster with $PGBIN/initdb and $PGBIN/pg_ctl: point it at
# a directory where pg_ctl runs the real one (and so the postmaster and every
# backend) with libasan and the shim preloaded.
WRAPBIN="$STATE/bin"
mkdir -p "$WRAPBIN"
ln -s "$PGBIN/initdb" "$WRAPBIN/initdb"
cat >"$WRAPBIN/pg_ctl" <<EOF
#!/bin/sh
exec env LD_PRELOAD="$LIBASAN $SHIM" \\
	ASAN_OPTIONS="detect_leaks=0:log_path=$ASANDIR/asan:abort_on_error=0" \\
	"$PGBIN/pg_ctl" "\$@"
EOF
chmod 755 "$WRAPBIN" "$WRAPBIN/pg_ctl"

# --- sandbox, cluster, pg_regress ----------------------------------------------
epic_setup_state "$STATE"
epic_make_dataset || { fail "generate the test dataset"; exit 1; }
epic_start_sandbox || { fail "start sandbox"; exit 1; }
PGBIN="$WRAPBIN" EPIC_PG_OPTS="-c jit=off" epic_start_cluster || { fail "start PostgreSQL under ASan"; exit 1; }
# the backends really run with ASan
if ! grep -c libasan "/proc/$(head -n 1 "$PGROOT/data/postmaster.pid")/maps" >/dev/null 2>&1; then
	fail "the postmaster does not have libasan loaded"
	exit 1
fi

# Tests that measure the backend's RSS (sql/memory.sql, sql/bulk_memory.sql)
# cannot pass under ASan, whose shadow memory and quarantine of freed blocks
# grow RSS by design, and sql/bulk_cron.sql only waits up to a minute for
# pg_cron (its bulk code runs in sql/bulk.sql): they are skipped unless named
# on the command line (EPIC_ASAN_SKIP overrides).
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
	skip=" ${EPIC_ASAN_SKIP-memory bulk_memory bulk_cron} "
	for t in $(sed -n 's/^REGRESS = //p' "$REPO/Makefile"); do
		if [[ "$skip" == *" $t "* ]]; then
			echo "skip - regress (ASan): $t (see EPIC_ASAN_SKIP above)"
		else
			tests+=("$t")
		fi
	done
	# allocation failures and failing curl calls: this build only
	tests+=(faultinject)
fi
rm -rf "$REPO/results"
make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" installcheck REGRESS="${tests[*]}" \
	>"$STATE/regress.out" 2>&1
epic_regress_results "regress (ASan)" "$STATE/regress.out"

# stop the server so every backend has exited (and flushed any report)
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w stop >/dev/null 2>&1 || true

reports=$(find "$ASANDIR" -maxdepth 1 -name 'asan.*' -type f | sort)
if [ -z "$reports" ]; then
	pass "no AddressSanitizer report from the postmaster or any backend"
else
	for f in $reports; do
		echo "---- $f"
		cat "$f"
	done
	fail "AddressSanitizer reports: $(echo "$reports" | wc -l) (in $ASANDIR)"
fi
exit 0
