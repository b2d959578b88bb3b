#!/usr/bin/env bash
# scripts/installcheck.sh PG_REGRESS_COMMAND... — how `make installcheck` runs pg_regress.
#
# The regression tests read the HTTPS sandbox's URLs, CA and test keys from the
# environment (sql/include/setup.sql).  The test scripts (test.sh, regress.sh,
# asan.sh, valgrind.sh) start a sandbox and export them (EPIC_SANDBOX_DIR among
# them): then the command just runs.  Otherwise, as for a PGXS user's
# `make installcheck` against an installed epic_fdw and a running server
# (PGHOST, PGPORT, PGUSER: a superuser), this starts a sandbox with fresh test
# keys and the test dataset for the run, and stops it afterwards.  The server
# reads the test keys as the postgres OS user: run it as root (or as postgres),
# on the server's machine.
set -uo pipefail
if [ -n "${EPIC_SANDBOX_DIR:-}" ]; then
	exec "$@"
fi
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
STATE=$(mktemp -d /tmp/epic_fdw_installcheck.XXXXXX)
trap 'epic_cleanup; rm -rf "$STATE"' EXIT
epic_log "make installcheck: starting the HTTPS sandbox for the run"
epic_setup_state "$STATE"
epic_make_dataset || { echo "installcheck: cannot generate the test dataset" >&2; exit 1; }
epic_start_sandbox || { echo "installcheck: cannot start the sandbox" >&2; exit 1; }
"$@"
