#!/bin/sh
# Build and run the page JSON parser's unit test (src/json_page.c) outside
# PostgreSQL, comparing it with jansson on the sandbox fixtures.
#   test/unit/run_json_page.sh          VALGRIND=1 test/unit/run_json_page.sh
# Prints "ok N - ..." lines and "N passed, N failed"; exits non-zero on failure.
set -eu
. "$(dirname "$0")/common.sh"
unit_build test_json_page "$root/src/json_page.c" "$root/src/json_jansson.c" "$here/test_json_page.c" -ljansson
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
unit_run test_json_page "$tmp"/body*.json
