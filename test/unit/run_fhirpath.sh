#!/bin/sh
# Build and run the FHIRPath unit test outside PostgreSQL.
#   test/unit/run_fhirpath.sh             build + run
#   VALGRIND=1 test/unit/run_fhirpath.sh  run under valgrind --leak-check=full
# Prints "ok N - ..." lines and a closing "N passed, N failed".
set -eu
. "$(dirname "$0")/common.sh"
unit_build test_fhirpath "$root/src/fhirpath.c" "$root/src/fhir_types.c" "$root/src/fhir_types_data.c" "$root/src/json_jansson.c" "$here/test_fhirpath.c" -ljansson
unit_run test_fhirpath
