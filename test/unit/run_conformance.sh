#!/bin/sh
# Run the column-only SQL on FHIR v2 conformance tests through the FHIRPath
# evaluator, outside PostgreSQL (see conformance_fhirpath.c).
#   test/unit/run_conformance.sh [SHARED_DIR]
# SHARED_DIR (default $EPIC_SHARED_DIR, else ../shared beside the repository) must hold
# sql-on-fhir-v2/tests/*.json; without it the tier is skipped (exit 0).
# The test files are read in place, never copied.
# Prints "ok/not ok/skip" lines and a closing "N passed, N failed, N skipped".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=${1:-${EPIC_SHARED_DIR:-$root/../shared}}
tests="$shared/sql-on-fhir-v2/tests"
if [ ! -d "$tests" ]; then
	echo "conformance tests not found at $tests: skipped"
	exit 0
fi
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-std=gnu11 -Wall -Wextra -Werror -O2 -g"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# shellcheck disable=SC2086
$CC $CFLAGS -I"$root/src" -o "$tmp/conformance_fhirpath" \
	"$root/src/fhirpath.c" "$root/src/viewdef.c" "$root/src/json_jansson.c" "$here/conformance_fhirpath.c" -ljansson
if [ "${VALGRIND:-0}" = 1 ]; then
	valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=1 "$tmp/conformance_fhirpath" "$tests"/*.json
else
	"$tmp/conformance_fhirpath" "$tests"/*.json
fi
