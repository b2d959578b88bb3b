#!/usr/bin/env bash
# scripts/test.sh — run the whole epic_fdw test suite.
#
# Does all the setup itself on a fresh Debian 12 machine, as root: Debian
# packages, a strict build and install, unit tests, the HTTPS sandbox, a
# throwaway PostgreSQL cluster (run as postgres, logging at DEBUG5), the
# pg_regress suite, and a check that no secret reached any log or output.
# Prints "N passed, N failed" last; exits non-zero if anything failed.
#
# Optional: EPIC_SHARED_DIR=/path/to/shared adds the published RS384 test
# vector to the unit tests (the suite passes without it).
set -uo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

finish() {
	epic_cleanup
	epic_summary
}
trap finish EXIT

if [ "${EPIC_SHARED_DIR:-}" = "" ] && [ -d "$REPO/../shared/reference" ]; then
	export EPIC_SHARED_DIR="$REPO/../shared"
fi

epic_install_deps || { fail "install Debian packages"; exit 1; }

# --- build: strict flags (the Makefile sets -Wall -Wextra -Werror) ---------
make -C "$REPO" -s clean >/dev/null 2>&1
if make -C "$REPO" PG_CONFIG="$PGBIN/pg_config" >"/tmp/epic_fdw_build.$$.log" 2>&1 &&
	! grep -q 'warning:' "/tmp/epic_fdw_build.$$.log"; then
	pass "build with -Wall -Wextra -Werror -Wno-unused-parameter, no warnings"
else
	cat "/tmp/epic_fdw_build.$$.log"
	fail "build"
	exit 1
fi
rm -f "/tmp/epic_fdw_build.$$.log"
# jansson's json_object() would bind to the SQL function of the same name
# exported by the postgres executable; the module must not import it.
if nm -D --undefined-only "$REPO/epic_fdw.so" | awk '{print $2}' | grep -qx 'json_object'; then
	fail "epic_fdw.so imports json_object (interposed by postgres)"
else
	pass "epic_fdw.so imports no symbol that postgres interposes"
fi
make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install >/dev/null || { fail "make install"; exit 1; }

# counted LABEL COMMAND...: a test program that prints "ok"/"not ok"/"skip"
# lines and a final "N passed, N failed": one ok or FAILED line for it, with
# the lines that did not pass shown.
counted() {
	local label=$1 out rc line t0=$SECONDS
	shift
	out=$("$@" 2>&1)
	rc=$?
	echo "$out" | grep -E '^(not ok|skip)' || true
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ $rc -eq 0 ] && [ -n "$line" ]; then
		pass "$label: $line ($((SECONDS - t0)) s)"
	else
		echo "$out" | tail -n 20
		fail "$label"
	fi
}

# --- unit tests (outside PostgreSQL) ---------------------------------------
for t in "$REPO"/test/unit/run*.sh; do
	# the conformance tier reads the suite in place: only when it is there
	if [ "$(basename "$t")" = run_conformance.sh ] &&
		[ ! -d "${EPIC_SHARED_DIR:-/nonexistent}/sql-on-fhir-v2/tests" ]; then
		echo "unit: run_conformance.sh: SQL on FHIR suite not found: skipped (set EPIC_SHARED_DIR)"
		continue
	fi
	counted "unit: $(basename "$t")" bash "$t"
done

# --- FHIRPath against fhirpath.js 5.2.2 (npm), generated expressions -------
counted "FHIRPath differential (fhirpath.js)" bash "$REPO/test/fhirpath_oracle/run.sh"

# --- the sandbox's own tests (search semantics, fault injection) -----------
for t in selftest.py test_dataset.py test_faults.py test_record.py; do
	counted "sandbox: $t" "$PY" "$REPO/test/sandbox/$t"
done

# --- sandbox, cluster, pg_regress ------------------------------------------
STATE=$(mktemp -d /tmp/epic_fdw_test.XXXXXX)
epic_setup_state "$STATE"
epic_make_dataset || { fail "generate the test dataset"; exit 1; }
epic_start_sandbox || { fail "start sandbox"; exit 1; }
EPIC_PG_OPTS="-c log_min_messages=debug5 -c log_min_error_statement=panic" epic_start_cluster ||
	{ fail "start PostgreSQL"; exit 1; }

rm -rf "$REPO/results"
t0=$SECONDS
make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" installcheck >"$STATE/regress.out" 2>&1
epic_regress_results "regress" "$STATE/regress.out"
echo "== pg_regress: $((SECONDS - t0)) s"

# --- the SQL on FHIR v2 conformance suite through epic_fdw ------------------
# (the suite is not part of the project: run when EPIC_SHARED_DIR has it)
suite="${EPIC_SHARED_DIR:-}/sql-on-fhir-v2/tests"
if [ -n "${EPIC_SHARED_DIR:-}" ] && [ -d "$suite" ]; then
	counted "SQL on FHIR conformance through epic_fdw" "$PY" "$REPO/test/conformance/run.py" "$suite"
else
	echo "SQL on FHIR conformance suite not found: skipped (set EPIC_SHARED_DIR)"
fi

# --- the README's walkthrough, run unchanged against the sandbox ------------
t0=$SECONDS
out=$(bash "$REPO/scripts/readme_walkthrough.sh" 2>&1)
rc=$?
line=$(echo "$out" | tail -n 1)
if [ $rc -eq 0 ]; then pass "README walkthrough: $line ($((SECONDS - t0)) s)"; else echo "$out"; fail "README walkthrough"; fi

counted "docs: every sql block of README.md and docs/*.md (scripts/docs_test.sh)" bash "$REPO/scripts/docs_test.sh"

# --- the Medplum tier: an independent FHIR server (test/medplum/run.sh) ---------
counted "Medplum tier: equivalence against an independent FHIR server" bash "$REPO/test/medplum/run.sh"

# --- secrets: no token, assertion or key anywhere ----------------------------
# Tokens issued and assertions received (from the sandbox), every base64 line
# of the private keys (the ES384 one is also given inline, as private_key, in
# some tests), and a secret extra header.  The cluster runs with
# log_min_error_statement = panic: the text of a failed DDL statement, which
# PostgreSQL itself would log, inline key included (the README says so), is
# not logged, so every secret is looked for everywhere.
$EPIC_CTL secrets >"$STATE/secrets.txt" 2>/dev/null || fail "read sandbox secrets"
for k in rs384 es384 wrong; do
	grep -v -- '-----' "$STATE/keys/$k.pem" >>"$STATE/secrets.txt"
done
cp "$STATE/secrets.txt" "$STATE/secrets-all.txt"
# the secret header value of sql/golive.sql is in that test's own SQL text
echo 's3cr3t-header-value' >>"$STATE/secrets.txt"
nsecrets=$(grep -c . "$STATE/secrets-all.txt")
leaks=$(grep -F -l -f "$STATE/secrets.txt" "$PGROOT/server.log" 2>/dev/null;
	grep -F -l -f "$STATE/secrets-all.txt" "$REPO"/results/*.out "$STATE/sandbox/sandbox.log" \
		"$STATE/activity.txt" 2>/dev/null)
if [ "$nsecrets" -gt 10 ] && [ -z "$leaks" ]; then
	pass "no secret ($nsecrets tokens, assertions and key lines) in the DEBUG5 server log, test outputs, pg_stat_activity or sandbox log"
else
	fail "secrets found in: ${leaks:-(no secrets collected)}"
fi
# --- robustness tooling: a valgrind subset, brief fuzzing, static analysis ---
# (each prints "N passed, N failed" last; longer runs: see the README)
tool() {
	local name=$1
	shift
	local out rc line t0=$SECONDS
	out=$("$@" 2>&1)
	rc=$?
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ $rc -eq 0 ] && [ -n "$line" ]; then
		pass "$name: $line ($((SECONDS - t0)) s)"
	else
		echo "$out" | tail -n 40
		fail "$name"
	fi
}
# the whole pg_regress suite again, against an AddressSanitizer build with the
# test-only fault injection (sql/faultinject.sql); it reinstalls the normal
# build when it is done
tool "ASan: every pg_regress file but memory, and fault injection" bash "$REPO/scripts/asan.sh"
tool "valgrind (auth scan paging errors views)" bash "$REPO/scripts/valgrind.sh" auth scan paging errors views
tool "fuzz (15 s per target)" bash "$REPO/scripts/fuzz.sh" 15
tool "cppcheck and clang-tidy" bash "$REPO/scripts/lint.sh"
# last: it installs the .deb into the system PostgreSQL, then restores what was there
tool "Debian package (build, install, dpkg -V, query)" bash "$REPO/scripts/package_test.sh"

exit 0
