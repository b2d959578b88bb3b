#!/bin/sh
# The differential FHIRPath tier: generated expressions evaluated by
# fhirpath.js (npm fhirpath, pinned at 5.2.2) and by epic_fdw's evaluator,
# results compared (see README.md here).
#   test/fhirpath_oracle/run.sh
# Environment: EPIC_FHIRPATH_SEED (default 1: the fixed seed of the test
# command; any other for new expressions), EPIC_FHIRPATH_CASES (default
# 27000), EPIC_ORACLE_CACHE (where npm installs fhirpath.js; default
# .cache/fhirpath-oracle in the repository, which git ignores).
# Needs node and npm (Node 20); the first run installs fhirpath.js from npm.
# Prints per function/operator counts and "N passed, N failed" last.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CC=${CC:-gcc}
CFLAGS=${CFLAGS:-"-std=gnu11 -Wall -Wextra -Werror -O2 -g"}
PY=${PY:-/usr/bin/python3}
version=5.2.2
cache=${EPIC_ORACLE_CACHE:-$root/.cache/fhirpath-oracle}

for tool in node npm; do
	if ! command -v $tool >/dev/null 2>&1; then
		echo "not ok - $tool not found (the tier needs Node 20 and npm)"
		echo "0 passed, 1 failed"
		exit 1
	fi
done
if [ "$(node -p "try { require('$cache/node_modules/fhirpath/package.json').version } catch (e) { '' }")" != "$version" ]; then
	mkdir -p "$cache"
	if ! npm install --prefix "$cache" --no-audit --no-fund --no-save --silent "fhirpath@$version" >"$cache/npm.log" 2>&1; then
		cat "$cache/npm.log"
		echo "not ok - npm install fhirpath@$version"
		echo "0 passed, 1 failed"
		exit 1
	fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
# shellcheck disable=SC2086
$CC $CFLAGS -I"$root/src" -o "$tmp/oracle_fhirpath" "$here/oracle_fhirpath.c" "$root/src/fhirpath.c" \
	"$root/src/fhir_types.c" "$root/src/fhir_types_data.c" "$root/src/json_page.c"
# resources: the project's fixtures, a small generated dataset of both
# versions (Epic-shaped, every clinical type) and the hand-made edge cases
mkdir -p "$tmp/dataset"
"$PY" "$root/test/dataset/generate.py" --version STU3 --patients 12 --statements-per-patient 2 \
	--out "$tmp/dataset/stu3" >/dev/null
"$PY" "$root/test/dataset/generate.py" --version R4 --patients 12 --statements-per-patient 2 \
	--out "$tmp/dataset/r4" >/dev/null
# dateTimes without a zone are compared as UTC by both engines
TZ=UTC node "$here/oracle.js" --fhirpath "$cache/node_modules" --runner "$tmp/oracle_fhirpath" \
	--resources "$root/test/fixtures" --resources "$tmp/dataset" --resources "$here/edge" \
	--known "$here/known.json" --tmp "$tmp" --seed "${EPIC_FHIRPATH_SEED:-1}" \
	--count "${EPIC_FHIRPATH_CASES:-27000}"
