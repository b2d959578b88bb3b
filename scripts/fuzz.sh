#!/usr/bin/env bash
# scripts/fuzz.sh — build the libFuzzer targets of test/fuzz/ and run each one.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]      default 20; 0 = build and
#                                                  replay reproducers only
#
# Targets (pure C, no PostgreSQL; see test/fuzz/README.md):
#   fuzz_fhirpath  FHIRPath parser + evaluator over jansson documents
#   fuzz_page      a search Bundle -> rows and cells of the built-in tables (the
#                  ViewDefinitions of views/, embedded at build time) and the
#                  test views, converted as convert.c does
#   fuzz_view      a ViewDefinition -> compiled (viewdef.c) and evaluated on
#                  fixed resources
#   fuzz_auth      token endpoint response and SMART discovery parsers (auth.c)
#
# Built with clang-14 -g -O1 -fsanitize=fuzzer,address,undefined (UBSan made
# fatal).  First replays any reproducer kept in test/fuzz/crashes/ for the
# target, then fuzzes from the seed corpus test/fuzz/corpus/<target>/ plus a
# working corpus that persists between runs ($EPIC_FUZZ_WORK, default
# /tmp/epic_fdw_fuzz; the committed seeds are never modified).  A crash, leak,
# timeout (-timeout=10) or out-of-memory (-rss_limit_mb=2048) fails the
# target; libFuzzer saves the input as test/fuzz/crashes/<target>-<kind>-<sha1>.
# Reproduce one with:  $EPIC_FUZZ_WORK/build/<target> test/fuzz/crashes/<file>
# (a kept reproducer may be gzipped, NAME.gz; it is replayed decompressed).
# Reproducers stay in test/fuzz/crashes/ until the bug is fixed: while one
# still crashes, its target fails (it is still fuzzed, to find new bugs).  Delete it once fixed, or
# move it into the seed corpus as a regression input.
#
# Works on a fresh Debian 12 as root (installs clang-14, libclang-rt-14-dev,
# libjansson-dev, libssl-dev when missing).  Prints "N passed, N failed" last
# (one test per target); exits non-zero if any target failed.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SECS=${1:-20}
WORK=${EPIC_FUZZ_WORK:-/tmp/epic_fdw_fuzz}
FUZZ="$REPO/test/fuzz"
CRASHES="$FUZZ/crashes"
TARGETS=(fuzz_fhirpath fuzz_page fuzz_view fuzz_auth)

case "$SECS" in
'' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAILED - $*"; }
finish() {
	if [ "$failed" -gt 0 ]; then
		echo
		echo "failures:"
		printf '  %s\n' "${failures[@]}"
		echo "(logs in $WORK/logs)"
	fi
	echo
	echo "$passed passed, $failed failed"
}
trap finish EXIT

# --- packages -----------------------------------------------------------------
missing=""
for p in clang-14 libclang-rt-14-dev libjansson-dev libssl-dev; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "== installing Debian packages:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	# shellcheck disable=SC2086
	if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null; then
		fail "install Debian packages:$missing"
		exit 1
	fi
fi
CC=${FUZZ_CC:-clang-14}

# --- build ----------------------------------------------------------------------
mkdir -p "$WORK/build" "$WORK/logs" "$CRASHES"
CFLAGS=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-Wall -Wextra -I"$REPO/src" -I"$FUZZ" -I"$WORK/build")
declare -A built
# fuzz_page compiles the ViewDefinition files themselves, embedded as C strings
# (never from a stale copy: the headers are rewritten at every build)
rm -f "$WORK/build/fuzz_builtin_views.h" "$WORK/build/fuzz_test_views.h"
shopt -s nullglob
builtin_views=("$REPO"/views/*.json)
test_views=("$REPO"/test/views/*.json)
shopt -u nullglob
if [ ${#builtin_views[@]} -eq 0 ]; then
	fail "no built-in views in $REPO/views"
elif ! sh "$FUZZ/embed_views.sh" "$WORK/build/fuzz_builtin_views.h" fuzz_builtin_views "${builtin_views[@]}" ||
	! sh "$FUZZ/embed_views.sh" "$WORK/build/fuzz_test_views.h" fuzz_test_views "${test_views[@]}"; then
	fail "embed the views of views/ and test/views/"
fi
build() {
	local t=$1
	shift
	if "$CC" "${CFLAGS[@]}" -o "$WORK/build/$t" "$FUZZ/$t.c" "$@" >"$WORK/logs/$t.build.log" 2>&1; then
		built[$t]=1
	else
		cat "$WORK/logs/$t.build.log"
		fail "$t: build"
	fi
}
build fuzz_fhirpath "$REPO/src/fhirpath.c" "$REPO/src/fhir_types.c" "$REPO/src/fhir_types_data.c" "$REPO/src/json_jansson.c" -ljansson
[ -f "$WORK/build/fuzz_builtin_views.h" ] && [ -f "$WORK/build/fuzz_test_views.h" ] &&
	build fuzz_page "$REPO/src/viewdef.c" "$REPO/src/fhirpath.c" "$REPO/src/fhir_types.c" "$REPO/src/fhir_types_data.c" "$REPO/src/json_page.c" "$REPO/src/json_jansson.c" -ljansson
build fuzz_view "$REPO/src/viewdef.c" "$REPO/src/fhirpath.c" "$REPO/src/fhir_types.c" "$REPO/src/fhir_types_data.c" "$REPO/src/json_jansson.c" -ljansson
build fuzz_auth "$REPO/src/auth.c" -lssl -lcrypto -ljansson

# --- run --------------------------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
dict_for() {
	case "$1" in
	fuzz_fhirpath) echo "$FUZZ/fhirpath.dict" ;;
	fuzz_view) echo "$FUZZ/view.dict" ;;
	*) echo "$FUZZ/json.dict" ;;
	esac
}
maxlen_for() {
	case "$1" in
	fuzz_page | fuzz_view) echo 8192 ;;
	*) echo 4096 ;;
	esac
}

for t in "${TARGETS[@]}"; do
	[ -n "${built[$t]:-}" ] || continue
	bin="$WORK/build/$t"
	log="$WORK/logs/$t.log"

	# 1. reproducers kept from earlier runs must not crash any more
	#    (NAME.gz is replayed decompressed: big inputs are kept compressed)
	rm -rf "$WORK/repro/$t"
	mkdir -p "$WORK/repro/$t"
	repros=()
	while read -r f; do
		case "$f" in
		*.gz)
			gzip -dc "$f" >"$WORK/repro/$t/$(basename "$f" .gz)"
			repros+=("$WORK/repro/$t/$(basename "$f" .gz)")
			;;
		*) repros+=("$f") ;;
		esac
	done < <(find "$CRASHES" -maxdepth 1 -type f -name "$t-*" | sort)
	repro_failed=""
	for r in "${repros[@]}"; do
		if ! "$bin" -rss_limit_mb=2048 -timeout=10 "$r" >"$WORK/logs/$t.repro.log" 2>&1; then
			echo "$t: reproducer $(basename "$r") still fails:"
			grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$WORK/logs/$t.repro.log" | head -n 3
			repro_failed="$repro_failed $(basename "$r")"
		fi
	done

	# 2. fuzz (0 seconds: build and replay only; libFuzzer would read 0 as "no limit")
	if [ "$SECS" -eq 0 ]; then
		if [ -z "$repro_failed" ]; then
			pass "$t: built, ${#repros[@]} kept reproducer(s) replayed, not fuzzed"
		else
			fail "$t: kept reproducer(s) still crash:$repro_failed"
		fi
		continue
	fi
	mkdir -p "$WORK/corpus/$t"
	echo "== fuzzing $t for ${SECS}s" >&2
	"$bin" -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 \
		-max_len="$(maxlen_for "$t")" -dict="$(dict_for "$t")" \
		-artifact_prefix="$CRASHES/$t-" -print_final_stats=1 \
		"$WORK/corpus/$t" "$FUZZ/corpus/$t" >"$log" 2>&1
	rc=$?
	runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -n 1)
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
	if [ $rc -eq 0 ] && [ -z "$repro_failed" ]; then
		pass "$t: ${runs:-?} runs in ${SECS}s, ${cov:-no coverage line}, no crash/leak/timeout"
	elif [ $rc -eq 0 ]; then
		fail "$t: kept reproducer(s) still crash:$repro_failed (fuzzing: ${runs:-?} runs, no new crash)"
	else
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written|ALARM|.*out-of-memory)' "$log" | head -n 8
		grep -A 12 -E '^==[0-9]+==ERROR' "$log" | grep -E '^ +#[0-9]+ ' | head -n 12
		fail "$t: libFuzzer exit $rc (reproducer in test/fuzz/crashes/, log $log)${repro_failed:+; kept reproducer(s) still crash:$repro_failed}"
	fi
done
[ "$failed" -eq 0 ]
