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

# shellcheck source=lib.sh
. "$HERE/lib.sh"
bench_args "$0" 13 "$@"
if [ "$MODE" = quick ]; then
	: "${BENCH_BULK_PATIENTS:=10000}" "${BENCH_BULK_RUNS:=1}"
else
	: "${BENCH_BULK_PATIENTS:=100000}" "${BENCH_BULK_RUNS:=3}"
fi
: "${BENCH_BULK_OUT:=$HERE/RESULTS_BULK.md}"
export BENCH_BULK_PATIENTS BENCH_BULK_RUNS BENCH_BULK_OUT BENCH_MODE=$MODE

epic_install_deps
if ! dpkg -s linux-perf >/dev/null 2>&1 && ! command -v perf >/dev/null; then
	epic_log "perf not installed: the profile section will be empty"
fi
epic_build_install

bench_state epic_fdw_bulkbench

gcc -O2 -Wall -o "$STATE/transfer" "$HERE/transfer.c" -lcurl
export BENCH_TRANSFER="$STATE/transfer"

bench_dataset R4 "$BENCH_BULK_PATIENTS" 5
# the registry group: every patient
$PY - "$DATA" <<'PY'
import json, os, sys
d = sys.argv[1]
ids = [json.loads(l)["id"] for l in open(os.path.join(d, "Patient.ndjson"), "rb") if l.strip()]
json.dump({"resourceType": "Group", "id": "all", "type": "person", "actual": True,
           "member": [{"entity": {"reference": "Patient/" + i}} for i in ids]},
          open(os.path.join(d, "Group.json"), "w"))
PY
export BENCH_DATASET_DIR=$DATA

bench_start R4 600
"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d bench \
	-v url="$EPIC_DATASET_URL_R4" -v ca_file="$EPIC_CA_FILE" -v rsa_key="$EPIC_RSA_KEY" \
	>/dev/null <<'SQL'
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
