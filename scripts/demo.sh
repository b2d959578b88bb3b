#!/usr/bin/env bash
# scripts/demo.sh — the main job: real SQL queries over live FHIR data from the
# bundled HTTPS sandbox (SMART Backend Services auth, paging, pushdown, joins).
# Needs no Epic account.  Does all setup itself on a fresh Debian 12 machine
# (as root) and cleans up afterwards.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
trap 'epic_cleanup; rm -rf "${STATE:-/nonexistent}"' EXIT

epic_install_deps
epic_build_install
STATE=$(mktemp -d /tmp/epic_fdw_demo.XXXXXX)
epic_setup_state "$STATE"
epic_start_sandbox
epic_start_cluster
psql -X -v ON_ERROR_STOP=1 -d postgres -f "$REPO/scripts/demo.sql"
echo
echo "The sandbox answered these requests (its request log):"
$EPIC_CTL log
