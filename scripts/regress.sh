#!/usr/bin/env bash
# scripts/regress.sh — developer loop: build, install and run some pg_regress
# files against a fresh sandbox and cluster.
#
#   bash scripts/regress.sh [test ...]      default: the whole REGRESS list
#
# The install goes into the PostgreSQL of $PGBIN (default: the system one), so
# the whole run holds an exclusive lock per installation
# (/tmp/epic_fdw_install.<hash of PGBIN>.lock): two checkouts on one machine take
# turns instead of replacing each other's epic_fdw.so under a running backend.
# To run side by side, give each checkout its own copy of the PostgreSQL tree
# (PostgreSQL is relocatable):
#   P=/tmp/pg-mine; mkdir -p $P/usr/lib/postgresql $P/usr/share/postgresql $P/usr/include
#   cp -a /usr/lib/postgresql/15 $P/usr/lib/postgresql/
#   cp -a /usr/share/postgresql/15 $P/usr/share/postgresql/
#   ln -s /usr/include/postgresql $P/usr/include/postgresql
#   PGBIN=$P/usr/lib/postgresql/15/bin bash scripts/regress.sh scan
# Prints the diffs of failed tests and "N passed, N failed" last.
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

exec 9>"/tmp/epic_fdw_install.$(echo "$PGBIN" | md5sum | cut -c1-12).lock"
flock 9

finish() {
	epic_cleanup
	epic_summary
}
trap finish EXIT

epic_install_deps || { fail "install Debian packages"; exit 1; }
epic_build_install || { fail "build and install"; exit 1; }
STATE=$(mktemp -d /tmp/epic_fdw_regress.XXXXXX)
epic_setup_state "$STATE"
epic_make_dataset || { fail "generate the test dataset"; exit 1; }
epic_start_sandbox || { fail "start sandbox"; exit 1; }
EPIC_PG_OPTS="-c log_min_messages=debug5 -c log_min_error_statement=panic" epic_start_cluster ||
	{ fail "start PostgreSQL"; exit 1; }
rm -rf "$REPO/results" "$REPO/regression.diffs"
if [ $# -gt 0 ]; then
	make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" installcheck REGRESS="$*" >"$STATE/regress.out" 2>&1
else
	make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" installcheck >"$STATE/regress.out" 2>&1
fi
epic_regress_results "regress" "$STATE/regress.out"
