#!/usr/bin/env bash
# test/medplum/run.sh — the Medplum tier: epic_fdw against a FHIR server the
# project did not write.
#
# Installs Medplum's FHIR router, core and definitions (5.2.13, pinned by
# package-lock.json; `npm ci` into a cache directory outside the checkout,
# reused while the lock file is unchanged), generates the seed data, starts
# server.mjs (HTTPS with the sandbox's test CA, a free port) and a throwaway
# PostgreSQL cluster (scripts/lib.sh), then runs:
#   - selftest.py: the front's token endpoint, bearer checks and paging;
#   - equivalence.py queries.sql: every query with pushdown on, off and over
#     the truth tables computed from the seed by truth.py;
#   - that no token or client assertion reached a log (PostgreSQL at DEBUG5) or output.
# Prints its own duration and fails when it took longer than
# EPIC_MEDPLUM_MAX_SECONDS (default 180).  Last line: "N passed, N failed (medplum
# tier: N s)".
#
# Needs: root (as scripts/test.sh), PGBIN of a PostgreSQL 15 with epic_fdw
# buildable, the machine's Node (20 or newer: run with --experimental-websocket)
# and npm, and the npm registry (only when the cache is empty).
# EPIC_MEDPLUM_CACHE: where node_modules goes (default /var/cache/epic_fdw-medplum).
set -uo pipefail
t0=$(date +%s)
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
source "$HERE/../../scripts/lib.sh"
MRN_SYSTEM=urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14
MAX_SECONDS=${EPIC_MEDPLUM_MAX_SECONDS:-180}

# shellcheck disable=SC2317  # (called from the EXIT trap)
stop_medplum() {
	local d=${MP:-}
	[ -n "$d" ] && [ -s "$d/pid" ] || return 0
	local pid
	pid=$(cat "$d/pid")
	# only our server (pids get recycled)
	if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$d/server.mjs"; then
		kill -TERM "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$d/pid" "$d/port"
}
# shellcheck disable=SC2317
finish() {
	stop_medplum
	epic_cleanup
	# the last line: the counts, then the tier's duration
	EPIC_SUMMARY_SUFFIX=" (medplum tier: $(($(date +%s) - t0)) s)"
	epic_summary
}
trap finish EXIT

# counted LABEL CMD...: run a program printing ok/not ok lines and "N passed, N failed";
# its counts join ours
counted() {
	local label=$1 out line p f
	shift
	out=$("$@" 2>&1)
	echo "$out"
	echo "$out" >>"$MP/outputs.txt"
	line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		fail "$label did not finish"
		return
	fi
	p=${line%% passed*}
	f=${line#*, }
	f=${f%% failed*}
	passed=$((passed + p))
	failed=$((failed + f))
	while read -r l; do failures+=("$label: ${l#not ok }"); done < <(echo "$out" | grep -E '^not ok' | cut -c1-160)
}

NODE=$(command -v node) || { fail "node not found (the machine image's Node 20+ is needed)"; exit 1; }
NPM=$(command -v npm) || { fail "npm not found"; exit 1; }
# Medplum 5 declares Node 22; Node 20 runs it with --experimental-websocket (18 does not)
node_major=$("$NODE" -p 'process.versions.node.split(".")[0]')
if [ "${node_major:-0}" -lt 20 ]; then
	fail "$NODE is Node $node_major: the Medplum tier needs Node 20 or newer (the machine image's, not Debian's nodejs)"
	exit 1
fi

# --- npm packages, pinned by package-lock.json, into a cache keyed by the lock ---
lockhash=$(cat "$HERE/package-lock.json" "$HERE/package.json" | sha256sum | cut -c1-16)
CACHE=${EPIC_MEDPLUM_CACHE:-/var/cache/epic_fdw-medplum}/$lockhash
if [ ! -f "$CACHE/.complete" ]; then
	epic_log "npm ci (Medplum 5.2.13) into $CACHE"
	rm -rf "$CACHE"
	mkdir -p "$CACHE"
	cp "$HERE/package.json" "$HERE/package-lock.json" "$CACHE/"
	if (cd "$CACHE" && "$NPM" ci --prefer-offline --ignore-scripts --no-audit --no-fund --loglevel=error \
		>"$CACHE/npm.log" 2>&1); then
		touch "$CACHE/.complete"
	else
		cat "$CACHE/npm.log"
		fail "npm ci of the pinned Medplum packages"
		exit 1
	fi
fi
for pkg in core definitions fhir-router; do
	v=$($PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
		"$CACHE/node_modules/@medplum/$pkg/package.json" 2>/dev/null)
	if [ "$v" = 5.2.13 ]; then pass "@medplum/$pkg $v installed from the lock file"; else fail "@medplum/$pkg version is '$v'"; fi
done

# --- state: keys and clients (lib.sh), seed, TLS material (the sandbox's) ----------
STATE=$(mktemp -d /tmp/epic_fdw_medplum.XXXXXX)
epic_setup_state "$STATE"
MP="$STATE/medplum"
mkdir -p "$MP"
chmod 755 "$MP"
$PY "$HERE/generate.py" --out "$MP/seed.json" >"$MP/seed.counts" || { fail "generate the seed"; exit 1; }
$PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import sandbox; sandbox.ensure_tls_material(sys.argv[2])' \
	"$REPO/test/sandbox" "$MP" || { fail "TLS material"; exit 1; }
cp "$HERE/server.mjs" "$MP/server.mjs"
ln -s "$CACHE/node_modules" "$MP/node_modules"

# --- the server -------------------------------------------------------------------
"$NODE" --experimental-websocket --no-warnings "$MP/server.mjs" --state-dir "$MP" \
	--clients "$STATE/clients.json" --seed "$MP/seed.json" --secrets "$MP/secrets.txt" \
	>>"$MP/server.log" 2>&1 </dev/null &
for _ in $(seq 300); do
	[ -s "$MP/port" ] && break
	kill -0 $! 2>/dev/null || break
	sleep 0.1
done
if [ ! -s "$MP/port" ]; then
	cat "$MP/server.log"
	fail "start the Medplum-based server"
	exit 1
fi
MP_PORT=$(cat "$MP/port")
pass "Medplum-based server on https://localhost:$MP_PORT/fhir/R4/ with $(cat "$MP/seed.counts")"

# --- the front's own behaviour ------------------------------------------------------
counted "medplum selftest" $PY "$HERE/selftest.py" "https://localhost:$MP_PORT" "$MP/ca.crt" \
	"$STATE/keys" "$MP/seed.json"

# --- cluster, foreign tables, truth tables -----------------------------------------
epic_build_install || { fail "build and install epic_fdw"; exit 1; }
EPIC_PG_OPTS="-c log_min_messages=debug5" epic_start_cluster || { fail "start PostgreSQL"; exit 1; }
$PY "$HERE/truth.py" "$MP/seed.json" "$MRN_SYSTEM" >"$MP/truth.sql" || { fail "compute the truth"; exit 1; }
if "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres >"$MP/setup.out" 2>&1 <<EOF; then
SET client_min_messages = warning;
CREATE EXTENSION epic_fdw;
CREATE SERVER medplum FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url 'https://localhost:$MP_PORT/fhir/R4/', fhir_version 'R4',
           ca_file '$MP/ca.crt', mrn_system '$MRN_SYSTEM');
CREATE USER MAPPING FOR CURRENT_USER SERVER medplum
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file '$STATE/keys/rs384.pem', key_id 'rs1');
CREATE SCHEMA mp;
IMPORT FOREIGN SCHEMA fhir LIMIT TO (patients, medication_requests, conditions, observations, encounters)
  FROM SERVER medplum INTO mp;
CREATE SCHEMA truth;
CREATE TABLE truth.patients (LIKE mp.patients);
CREATE TABLE truth.medication_requests (LIKE mp.medication_requests);
CREATE TABLE truth.conditions (LIKE mp.conditions);
CREATE TABLE truth.observations (LIKE mp.observations);
CREATE TABLE truth.encounters (LIKE mp.encounters);
\i $MP/truth.sql
ANALYZE;
EOF
	pass "foreign tables on the Medplum server and truth tables from the seed"
else
	cat "$MP/setup.out"
	fail "set up the foreign and truth tables"
	exit 1
fi

counted "medplum equivalence" $PY "$HERE/equivalence.py" "$HERE/queries.sql"

# --- no token or assertion in a log or an output ----------------------------------
nsecrets=$(grep -c . "$MP/secrets.txt" 2>/dev/null)
leaks=$(grep -F -l -f "$MP/secrets.txt" "$MP/requests.log" "$MP/server.log" "$PGROOT/server.log" \
	"$MP/outputs.txt" 2>/dev/null)
if [ "${nsecrets:-0}" -gt 100 ] && [ -z "$leaks" ]; then
	pass "no secret ($nsecrets tokens and assertions) in the server's logs, the DEBUG5 server log or the outputs"
else
	fail "secrets found in: ${leaks:-(too few secrets collected: ${nsecrets:-0})}"
fi

secs=$(($(date +%s) - t0))
if [ "$secs" -le "$MAX_SECONDS" ]; then
	pass "tier finished in $secs s (limit $MAX_SECONDS s)"
else
	fail "tier took $secs s, more than $MAX_SECONDS s"
fi
exit 0
