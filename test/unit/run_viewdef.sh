#!/bin/sh
# Build and run the ViewDefinition engine unit test outside PostgreSQL.
#   test/unit/run_viewdef.sh             build + run
#   VALGRIND=1 test/unit/run_viewdef.sh  run under valgrind --leak-check=full
# The built-in views (views/*.json of this checkout) are read at run time:
# each must compile and give one row for a minimal resource of its type.
# Prints "ok N - ..." lines and a closing "N passed, N failed".
set -eu
. "$(dirname "$0")/common.sh"
unit_build test_viewdef "$root/src/fhirpath.c" "$root/src/fhir_types.c" "$root/src/fhir_types_data.c" "$root/src/viewdef.c" "$root/src/json_jansson.c" \
	"$here/test_viewdef.c" -ljansson
unit_run test_viewdef "$root"/views/*.json
