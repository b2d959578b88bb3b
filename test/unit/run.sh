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
. "$(dirname "$0")/common.sh"
unit_build test_auth "$root/src/auth.c" "$here/test_auth.c" -lssl -lcrypto -ljansson
unit_run test_auth
