#!/usr/bin/env bash
# scripts/lint.sh — static analysis of epic_fdw's C sources with cppcheck and
# clang-tidy 14.
#
#   bash scripts/lint.sh
#
# Checks epic_fdw.c and src/*.c against the PostgreSQL 15 server headers.
# Each tool is one test; a tool fails on any finding in the project's own
# files (headers of PostgreSQL and the libraries are not reported), except
# reviewed false positives listed with their reason below (TIDY_ALLOW) and
# checks excluded with their reason (CPPCHECK_SUPPRESS, TIDY_CHECKS).  Prints
# the findings, then "N passed, N failed" last; exits non-zero on findings.
# Works on a fresh Debian 12 as root (installs the tools when missing).
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAILED - $*"; }
TMP=$(mktemp -d /tmp/epic_fdw_lint.XXXXXX)
finish() {
	rm -rf "$TMP"
	if [ "$failed" -gt 0 ]; then
		echo
		echo "failures:"
		printf '  %s\n' "${failures[@]}"
	fi
	echo
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ] || exit 1
}
trap finish EXIT

epic_install_deps || { fail "install Debian packages"; exit 1; }
missing=""
for p in cppcheck clang-tidy; do
	dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
	epic_log "installing Debian packages:$missing"
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
		{ apt-get update -qq >/dev/null &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null; } ||
		{ fail "install$missing"; exit 1; }
fi
TIDY=$(command -v clang-tidy-14 || command -v clang-tidy)

cd "$REPO" || exit 1
SOURCES=(epic_fdw.c src/*.c)
PGINC=$("$PGBIN/pg_config" --includedir-server)
# include paths of the build: the server headers, our own, the libraries'
# (cppcheck gets only the first two: given the system include directories it
# parses every libc/curl/OpenSSL header and takes minutes instead of seconds)
read -r -a LIBINC <<<"$(pkg-config --cflags-only-I libcurl jansson libcrypto)"
INCLUDES=(-I"$PGINC" -Isrc)

# --- cppcheck -----------------------------------------------------------------
# -D__x86_64__ -D__GNUC__: the platform macros gcc predefines; without them
#   PostgreSQL's s_lock.h reaches its "#error ... no native spinlock support".
# Suppressed, each because PostgreSQL's own macros trigger it:
#   unknownEvaluationOrder  list_make2..5() expand to one call whose arguments
#                           are compound literals holding makeString() etc.;
#                           the order of those independent pallocs is irrelevant.
CPPCHECK_SUPPRESS=(
	--suppress=missingIncludeSystem
	--suppress=unknownEvaluationOrder
)
epic_log "cppcheck"
cppcheck -q --enable=warning,performance,portability --std=c11 --platform=unix64 \
	-D__x86_64__ -D__GNUC__=12 -D__GNUC_MINOR__=2 -D_GNU_SOURCE "${INCLUDES[@]}" \
	"${CPPCHECK_SUPPRESS[@]}" --inline-suppr --error-exitcode=1 \
	--template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
	"${SOURCES[@]}" >"$TMP/cppcheck.out" 2>&1
rc=$?
# only findings in our files count (cppcheck -q prints nothing else)
ours=$(grep -E '^(epic_fdw\.c|src/)[^:]*:[0-9]+:' "$TMP/cppcheck.out" || true)
if [ $rc -eq 0 ] && [ -z "$ours" ]; then
	pass "cppcheck: ${#SOURCES[@]} files, no findings"
else
	cat "$TMP/cppcheck.out"
	fail "cppcheck: $(echo "${ours:-$(head -n 1 "$TMP/cppcheck.out")}" | grep -c .) finding(s)"
fi

# --- clang-tidy -----------------------------------------------------------------
# The compile flags are passed directly (the build's include paths and
# _GNU_SOURCE, as PGXS uses) rather than via a compile database from
# `bear -- make`, which would need a clean rebuild of the working tree.
# Checks: clang-analyzer-* and bugprone-*, except those listed below.  Only
# our own files are reported (no -header-filter), so checks that are noisy in
# PostgreSQL's headers (bugprone-macro-parentheses, bugprone-sizeof-expression)
# stay on; clang-analyzer-unix.Malloc stays on for the malloc-based pure-C
# files (fhirpath.c, auth.c, json_jansson.c) and reports nothing on palloc.
TIDY_CHECKS=$(
	sed -e 's/#.*//' -e 's/[[:space:]]//g' <<'EOF' | grep . | paste -sd, -
-*
clang-analyzer-*
bugprone-*
# style, not bugs: our functions mirror PostgreSQL's FDW API signatures
-bugprone-easily-swappable-parameters
# "use memcpy_s/snprintf_s": C11 Annex K does not exist in glibc
-clang-analyzer-security.insecureAPI.DeprecatedOrUnsafeBufferHandling
# clang 14 false positive: va_list is an array type on x86-64, and va_start()
# in a function with an early return is reported as uninitialised (auth.c set_err)
-clang-analyzer-valist.Uninitialized
# PostgreSQL mixes Index (unsigned) and int for range-table indexes
# (RelOptInfo.relid vs Var.varno / clauselist_selectivity's varRelid)
-bugprone-narrowing-conversions
# PostgreSQL's ALLOCSET_*_SIZES and other int constant expressions (8 * 1024)
# passed as Size
-bugprone-implicit-widening-of-multiplication-result
EOF
)
# Reviewed false positives, one per line: FILE|CHECK|regex matching the text
# of the flagged source line (so the entry survives line-number changes and
# lapses when the code changes).  Every entry says why it is not a bug.
TIDY_ALLOW=$(
	cat <<'EOF'
# check_item() lists the date/dateTime case and the "built-in text column"
# case separately on purpose; both need a JSON string.
src/convert.c|bugprone-branch-clone|ok = \(k == EPIC_JSON_STRING\);
# FP_INDEX after a focus evaluation that failed (depth limit): nin is then 0
# and the evaluator reads in[index] only for 0 <= index < nin; the
# analyzer does not know index >= 0.
src/fhirpath.c|clang-analyzer-core.NullDereference|out->items\[out->count\+\+\] = \*item;
EOF
)
allowed() {			# allowed FILE LINE CHECKS -> 0 if a reviewed false positive
	local file=$1 line=$2 checks=$3 text f c re
	text=$(sed -n "${line}p" "$file")
	while IFS='|' read -r f c re; do
		case "$f" in '' | '#'*) continue ;; esac
		[ "$f" = "$file" ] || continue
		[[ ",$checks," == *",$c,"* ]] || continue
		[[ "$text" =~ $re ]] && return 0
	done <<<"$TIDY_ALLOW"
	return 1
}

epic_log "clang-tidy ($TIDY), one file per process, $(nproc) at a time"
mkdir -p "$TMP/tidy"
for f in "${SOURCES[@]}"; do
	b=$(echo "$f" | tr '/' '_')
	(
		"$TIDY" --quiet -checks="$TIDY_CHECKS" "$f" -- \
			-std=gnu11 -D_GNU_SOURCE "${INCLUDES[@]}" "${LIBINC[@]}" >"$TMP/tidy/$b.out" 2>"$TMP/tidy/$b.err"
		echo $? >"$TMP/tidy/$b.rc"
	) &
	while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do sleep 0.2; done
done
wait
cat "$TMP"/tidy/*.out >"$TMP/tidy.out"
cat "$TMP"/tidy/*.err >"$TMP/tidy.err"
rc=0
for r in "$TMP"/tidy/*.rc; do [ "$(cat "$r")" = 0 ] || rc=$(cat "$r"); done
[ "$(ls "$TMP"/tidy/*.rc | wc -l)" -eq "${#SOURCES[@]}" ] || rc=99
: >"$TMP/tidy.findings"
nallowed=0
while IFS= read -r w; do
	file=$(sed -E 's/^([^:]+):.*/\1/' <<<"$w")
	line=$(sed -E 's/^[^:]+:([0-9]+):.*/\1/' <<<"$w")
	checks=$(sed -E 's/.*\[([^]]+)\]$/\1/' <<<"$w")
	if allowed "$file" "$line" "$checks"; then
		nallowed=$((nallowed + 1))
	else
		echo "$w" >>"$TMP/tidy.findings"
	fi
done < <(grep -E '^[^ ]*(epic_fdw\.c|src/[^:]*):[0-9]+:[0-9]+: (warning|error):' "$TMP/tidy.out" |
	sed "s|^$REPO/||")
nfind=$(grep -c . "$TMP/tidy.findings")
if [ $rc -eq 0 ] && [ "$nfind" -eq 0 ]; then
	pass "clang-tidy: ${#SOURCES[@]} files, no findings ($nallowed reviewed false positives; checks: $TIDY_CHECKS)"
else
	if [ "$nfind" -eq 0 ]; then
		cat "$TMP/tidy.out" "$TMP/tidy.err"
	else
		# the full report (with the analyzer's path notes) of each finding
		while IFS= read -r w; do
			awk -v key="$w" -v repo="$REPO/" '
				{ l = $0; if (index(l, repo) == 1) l = substr(l, length(repo) + 1) }
				l == key { on = 1; print l; next }
				on && /^[^ ]*:[0-9]+:[0-9]+: warning:/ { on = 0 }
				on { print l }' "$TMP/tidy.out" | head -n 60
		done <"$TMP/tidy.findings"
		echo
		echo "clang-tidy findings:"
		cat "$TMP/tidy.findings"
	fi
	fail "clang-tidy: $nfind finding(s) (rc $rc; $nallowed reviewed false positives not counted)"
fi
exit 0
