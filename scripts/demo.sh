#!/usr/bin/env bash
# scripts/demo.sh — the main job: real SQL queries over live FHIR data from the
# bundled HTTPS sandbox (SMART Backend Services auth, paging, pushdown, joins).
# Needs no Epic account.  Does all setup itself on a fresh Debian 12 machine
# (as root) and cleans up afterwards.
#
#   bash scripts/demo.sh               the demo, then everything is stopped and removed
#   bash scripts/demo.sh --keep        the demo, then the sandbox and the cluster keep
#                                      running for exploration: prints the psql command,
#                                      the server and user mapping, and the stop command
#   bash scripts/demo.sh --stop DIR    stops a kept demo (DIR as printed) and removes it
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

keep=no
case "${1:-}" in
"") ;;
--keep) keep=yes ;;
--stop)
	STATE=${2:-}
	if [ -z "$STATE" ] || [ ! -f "$STATE/demo-kept" ]; then
		echo "usage: $0 --stop DIR (the directory a --keep run printed)" >&2
		exit 2
	fi
	PGBIN=$(cat "$STATE/demo-kept")
	PGROOT="$STATE/pg"
	epic_cleanup
	rm -rf "$STATE"
	echo "stopped the demo's cluster and sandbox, removed $STATE"
	exit 0
	;;
*)
	echo "usage: $0 [--keep | --stop DIR]" >&2
	exit 2
	;;
esac

kept=no
trap '[ "$kept" = yes ] || { epic_cleanup; rm -rf "${STATE:-/nonexistent}"; }' EXIT

epic_install_deps
epic_build_install
STATE=$(mktemp -d /tmp/epic_fdw_demo.XXXXXX)
epic_setup_state "$STATE"
# to explore: also the generated dataset (FHIR search semantics over 200 patients)
[ "$keep" = no ] || epic_make_dataset
epic_start_sandbox
epic_start_cluster
psql -X -v ON_ERROR_STOP=1 -d postgres -f "$REPO/scripts/demo.sql"
echo
echo "The sandbox answered these requests (its request log):"
$EPIC_CTL log

if [ "$keep" = yes ]; then
	# the tests' own setup: server dataset, every built-in table in schema ds
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -v dataset_url="$EPIC_DATASET_URL_STU3" \
		-v ca_file="$EPIC_CA_FILE" -v rsa_key="$EPIC_RSA_KEY" -f "$REPO/sql/include/dataset.sql"
	echo "$PGBIN" >"$STATE/demo-kept"
	kept=yes
	cat <<MSG

== The sandbox and the cluster keep running (--keep)

Connect (as root, like the demo):
  psql -h $PGROOT -p $PGPORT -U postgres -d postgres

The demo's objects are there, in database postgres:
  server        epic  (fhir_url '$EPIC_FHIR_URL_STU3', fhir_version 'STU3',
                       ca_file '$EPIC_CA_FILE'): the recorded Epic exchanges,
                which answer the demo's queries only
  user mapping  for postgres on server epic (client_id 'epic-fdw-rs384',
                private_key_file '$EPIC_RSA_KEY', key_id 'rs1')
  tables        patients, medication_statements, patient_details, patient_names
To explore with any search, a server over the generated dataset (200 STU3 patients
with medication statements, observations, conditions, ...), same user mapping options:
  server        dataset  (fhir_url '$EPIC_DATASET_URL_STU3')
  tables        schema ds: every built-in table (IMPORT FOREIGN SCHEMA fhir)
Try:
  SELECT id, name, birthdate, city FROM ds.patients WHERE birthdate < '1950-01-01';
  SELECT * FROM epic_fdw_check('dataset');

Stop it and remove its files:
  bash $REPO/scripts/demo.sh --stop $STATE
While it runs, do not run the tests or the demo again with the same PostgreSQL:
they reinstall epic_fdw.so under it.
MSG
fi
