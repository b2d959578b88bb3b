#!/bin/sh
# Run the column-only SQL on FHIR v2 conformance tests through the FHIRPath
# evaluator, outside PostgreSQL (see conformance_fhirpath.c).
#   test/unit/run_conformance.sh [SHARED_DIR]
# SHARED_DIR (default $EPIC_SHARED_DIR, else ../shared beside the repository) must hold
# sql-on-fhir-v2/tests/*.json; without it the tier is skipped (exit 0).
# The test files are read in place, never copied.
# Prints "ok/not ok/skip" lines and a closing "N passed, N failed, N skipped".
set -eu
. "$(dirname "$0")/common.sh"
shared=${1:-${EPIC_SHARED_DIR:-$root/../shared}}
tests="$shared/sql-on-fhir-v2/tests"
if [ ! -d "$tests" ]; then
	echo "conformance tests not found at $tests: skipped"
	exit 0
fi
unit_build conformance_fhirpath "$root/src/fhirpath.c" "$root/src/fhir_types.c" "$root/src/fhir_types_data.c" "$root/src/viewdef.c" "$root/src/json_jansson.c" "$root/src/json_page.c" \
	"$here/conformance_fhirpath.c" -ljansson
unit_run conformance_fhirpath "$tests"/*.json
