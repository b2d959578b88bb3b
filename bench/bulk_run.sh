#!/bin/bash
# bench/bulk_run.sh — the Bulk Data benchmark (bulk tables): CREATE TABLE … AS SELECT from
# bulk tables against the transfer limit of the same NDJSON files (bench/transfer.c, a
# libcurl client with several transfers in flight) and against COPY … FROM PROGRAM 'curl …'
# into a jsonb table plus jsonb-operator extraction; peak RSS at 10% and 100% of the rows.
# Writes bench/RESULTS_BULK.md.  Not part of scripts/test.sh.
#
#   bash bench/bulk_run.sh            # 100,000 patients, 500,000 medication requests
#   bash bench/bulk_run.sh --quick    # 10,000 patients: a smoke check
#
# Environment: BENCH_BULK_PATIENTS (100000 / 10000), BENCH_BULK_RUNS (3 / 1),
# BENCH_BULK_OUT (bench/RESULTS_BULK.md), BENCH_KEEP=1 keeps the state directory,
# BENCH_BULK_ONLY=search: instead, the search-based full scan of the patients (all
# columns, resource jsonb and text) against a libcurl client following the same next
# links, written to BENCH_SEARCH_OUT (bench/RESULTS_SEARCH.md); run it with
# BENCH_BULK_PATIENTS=20000 for issue 5's scenario 1.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../scripts/lib.sh
. "$HERE/../scripts/lib.sh"

MODE=full
for a in "$@"; do
	case $a in
	--quick) MODE=quick ;;
	-h | --help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
	esac
done
if [ "$MODE" = quick ]; then
	: "${BENCH_BULK_PATIENTS:=10000}" "${BENCH_BULK_RUNS:=1}"
else
	: "${BENCH_BULK_PATIENTS:=100000}" "${BENCH_BULK_RUNS:=3}"
fi
: "${BENCH_BULK_OUT:=$HERE/RESULTS_BULK.md}"
export BENCH_BULK_PATIENTS BENCH_BULK_RUNS BENCH_BULK_OUT BENCH_MODE=$MODE

if [ "$(id -u)" != 0 ]; then
	echo "bench/bulk_run.sh: run as root (it installs packages and runs PostgreSQL as postgres)" >&2
	exit 1
fi
epic_install_deps
if ! dpkg -s linux-perf >/dev/null 2>&1 && ! command -v perf >/dev/null; then
	epic_log "perf not installed: the profile section will be empty"
fi
epic_build_install

STATE=$(mktemp -d /tmp/epic_fdw_bulkbench.XXXXXX)
finish() {
	epic_cleanup
	if [ "${BENCH_KEEP:-0}" = 1 ]; then epic_log "state kept in $STATE"; else rm -rf "$STATE"; fi
}
trap finish EXIT
epic_setup_state "$STATE"

gcc -O2 -Wall -o "$STATE/transfer" "$HERE/transfer.c" -lcurl
export BENCH_TRANSFER="$STATE/transfer"

DATA="$STATE/bench_data/r4"
epic_log "generating $BENCH_BULK_PATIENTS R4 patients x 5 medication requests"
$PY "$REPO/test/dataset/generate.py" --version R4 --types none --patients "$BENCH_BULK_PATIENTS" \
	--statements-per-patient 5 --seed 1 --out "$DATA" >/dev/null
# the registry group: every patient
$PY - "$DATA" <<'PY'
import json, os, sys
d = sys.argv[1]
ids = [json.loads(l)["id"] for l in open(os.path.join(d, "Patient.ndjson"), "rb") if l.strip()]
json.dump({"resourceType": "Group", "id": "all", "type": "person", "actual": True,
           "member": [{"entity": {"reference": "Patient/" + i}} for i in ids]},
          open(os.path.join(d, "Group.json"), "w"))
PY
chmod -R a+rX "$STATE/bench_data"
export BENCH_DATASET_DIR=$DATA

EPIC_SANDBOX_START_TIMEOUT=${EPIC_SANDBOX_START_TIMEOUT:-600} epic_start_sandbox --dataset "R4=$DATA"
epic_start_cluster
export PGBIN
cd "$REPO"
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench" >/dev/null
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d bench \
	-v url="$EPIC_DATASET_URL_R4" -v ca_file="$EPIC_CA_FILE" -v rsa_key="$EPIC_RSA_KEY" \
	>/dev/null <<'SQL'
CREATE EXTENSION epic_fdw;
CREATE SERVER bulkbench FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'url', fhir_version 'R4', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER bulkbench
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE SCHEMA bulk;
IMPORT FOREIGN SCHEMA fhir LIMIT TO (patients, medication_requests) FROM SERVER bulkbench INTO bulk;
ALTER FOREIGN TABLE bulk.patients OPTIONS (ADD bulk_group 'all');
ALTER FOREIGN TABLE bulk.medication_requests OPTIONS (ADD bulk_group 'all');
-- the search-based full scan (BENCH_BULK_ONLY=search): resource as jsonb and as text
CREATE SCHEMA s;
IMPORT FOREIGN SCHEMA fhir LIMIT TO (patients) FROM SERVER bulkbench INTO s;
CREATE FOREIGN TABLE s.patients_text (
  id text, mrn text, family text, given text, name text, birthdate date, gender text,
  phone text, phones text[], email text, address_line text, city text, state text,
  postal_code text, active boolean, deceased boolean, last_updated timestamptz, resource text
) SERVER bulkbench OPTIONS (resource 'Patient');
CREATE FUNCTION public.bench_hwm_kb() RETURNS bigint LANGUAGE sql AS
$$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint $$;
-- runs a statement once: wall ms
CREATE FUNCTION public.bench_exec(q text, OUT ms float8)
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
  t0 := clock_timestamp();
  EXECUTE q;
  ms := extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SQL

$PY "$HERE/bulk.py"
