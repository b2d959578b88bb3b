#!/bin/sh
# Build and run the auth.c unit test outside PostgreSQL.
#
#   test/unit/run.sh               build + run
#   VALGRIND=1 test/unit/run.sh    run under valgrind --leak-check=full
#   EPIC_SHARED_DIR=/path/to/shared test/unit/run.sh
#                                  also reproduce the published RS384 vector
#
# Prints "ok N - ..." lines and a closing "N passed, N failed, N skipped";
# exits non-zero on any failure.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-std=gnu11 -Wall -Wextra -Werror -O2 -g"}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# shellcheck disable=SC2086
$CC $CFLAGS -I"$root/src" -o "$tmp/test_auth" \
	"$root/src/auth.c" "$here/test_auth.c" -lssl -lcrypto -ljansson

if [ "${VALGRIND:-0}" = 1 ]; then
	valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible \
		--errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=1 "$tmp/test_auth"
else
	"$tmp/test_auth"
fi
