#!/usr/bin/env bash
# scripts/docs_test.sh — run every ```sql block of README.md and docs/*.md
# against the sandbox (scripts/docs_test.py says how: preludes, substitutions,
# tags).  Called by scripts/test.sh inside its environment (sandbox and
# cluster running); run by hand it sets both up itself, as scripts/regress.sh
# does (installing into the PostgreSQL of $PGBIN).  Prints the blocks run and
# skipped, and "N passed, N failed" last.
set -uo pipefail
if [ -n "${EPIC_SANDBOX_DIR:-}" ] && [ -n "${PGHOST:-}" ]; then
	exec /usr/bin/python3 "$(dirname "$0")/docs_test.py"
fi
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
exec 9>"/tmp/epic_fdw_install.$(echo "$PGBIN" | md5sum | cut -c1-12).lock"
flock 9
trap 'epic_cleanup; rm -rf "${STATE:-/nonexistent}"' EXIT
epic_install_deps || exit 1
epic_build_install || exit 1
STATE=$(mktemp -d /tmp/epic_fdw_docs.XXXXXX)
epic_setup_state "$STATE"
epic_make_dataset || exit 1
epic_start_sandbox || exit 1
epic_start_cluster || exit 1
PATH="$PGBIN:$PATH" "$PY" "$REPO/scripts/docs_test.py"
