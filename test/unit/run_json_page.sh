#!/bin/sh
# Build and run the page JSON parser's unit test (src/json_page.c) outside
# PostgreSQL, comparing it with jansson on the sandbox fixtures.
#   test/unit/run_json_page.sh          VALGRIND=1 test/unit/run_json_page.sh
# Prints "ok N - ..." lines and "N passed, N failed"; exits non-zero on failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-std=gnu11 -Wall -Wextra -Werror -O2 -g"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# shellcheck disable=SC2086
$CC $CFLAGS -I"$root/src" -o "$tmp/test_json_page" \
	"$root/src/json_page.c" "$root/src/json_jansson.c" "$here/test_json_page.c" -ljansson
# every fixture exchange's response body, one file each
/usr/bin/python3 - "$root/test/fixtures" "$tmp" <<'PY'
import glob, json, os, sys
n = 0
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*", "*.json"))):
    for ex in json.load(open(f, encoding="utf-8")):
        body = ex.get("response", {}).get("body")
        if isinstance(body, (dict, list)):
            n += 1
            with open(os.path.join(sys.argv[2], "body%03d.json" % n), "w", encoding="utf-8") as out:
                json.dump(body, out, ensure_ascii=(n % 2 == 0), indent=(1 if n % 3 == 0 else None))
PY
if [ "${VALGRIND:-0}" = 1 ]; then
	valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
		--error-exitcode=1 "$tmp/test_json_page" "$tmp"/body*.json
else
	"$tmp/test_json_page" "$tmp"/body*.json
fi
