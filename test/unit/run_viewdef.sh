#!/bin/sh
# Build and run the ViewDefinition engine unit test outside PostgreSQL.
#   test/unit/run_viewdef.sh             build + run
#   VALGRIND=1 test/unit/run_viewdef.sh  run under valgrind --leak-check=full
# The built-in views (views/*.json of this checkout) are read at run time:
# each must compile and give one row for a minimal resource of its type.
# Prints "ok N - ..." lines and a closing "N passed, N failed".
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-std=gnu11 -Wall -Wextra -Werror -O2 -g"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# shellcheck disable=SC2086
$CC $CFLAGS -I"$root/src" -o "$tmp/test_viewdef" \
	"$root/src/fhirpath.c" "$root/src/viewdef.c" "$root/src/json_jansson.c" "$here/test_viewdef.c" -ljansson
if [ "${VALGRIND:-0}" = 1 ]; then
	valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=1 "$tmp/test_viewdef" "$root"/views/*.json
else
	"$tmp/test_viewdef" "$root"/views/*.json
fi
