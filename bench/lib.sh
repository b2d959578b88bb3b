#!/bin/bash
# bench/lib.sh — what bench/run.sh and bench/bulk_run.sh share (sourced after
# scripts/lib.sh): arguments, the root check, a state directory removed at
# exit, a generated dataset, and a sandbox plus a cluster with a database
# "bench" that has epic_fdw.

# bench_args SCRIPT HELP_LAST_LINE ARG...: MODE=quick for --quick, else full
bench_args() {
	local script=$1 help=$2
	shift 2
	MODE=full
	for a in "$@"; do
		case $a in
		--quick) MODE=quick ;;
		-h | --help) sed -n "2,${help}p" "$script"; exit 0 ;;
		*) echo "usage: $script [--quick]" >&2; exit 2 ;;
		esac
	done
	if [ "$(id -u)" != 0 ]; then
		echo "$script: run as root (it installs packages and runs PostgreSQL as postgres)" >&2
		exit 1
	fi
}

# bench_state PREFIX: STATE=/tmp/PREFIX.XXXXXX, set up for scripts/lib.sh;
# at exit everything started is stopped and STATE removed unless BENCH_KEEP=1
bench_state() {
	STATE=$(mktemp -d "/tmp/$1.XXXXXX")
	trap bench_finish EXIT
	epic_setup_state "$STATE"
}
bench_finish() {
	epic_cleanup
	if [ "${BENCH_KEEP:-0}" = 1 ]; then epic_log "state kept in $STATE"; else rm -rf "$STATE"; fi
}

# bench_dataset VERSION PATIENTS STATEMENTS: DATA=$STATE/bench_data/<version>
bench_dataset() {
	DATA="$STATE/bench_data/$(echo "$1" | tr 'A-Z' 'a-z')"
	epic_log "generating $2 $1 patients x $3 statements"
	$PY "$REPO/test/dataset/generate.py" --version "$1" --types none --patients "$2" \
		--statements-per-patient "$3" --seed 1 --out "$DATA" >/dev/null
}

# bench_start VERSION TIMEOUT_S: the sandbox serving $DATA, the cluster, and the
# database bench with epic_fdw; PGBIN exported and the repository the directory
bench_start() {
	chmod -R a+rX "$STATE/bench_data"
	EPIC_SANDBOX_START_TIMEOUT=${EPIC_SANDBOX_START_TIMEOUT:-$2} epic_start_sandbox --dataset "$1=$DATA"
	epic_start_cluster
	export PGBIN
	cd "$REPO"
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE bench" >/dev/null
	"$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -d bench >/dev/null <<'SQL'
CREATE EXTENSION epic_fdw;
-- the backend's peak RSS in kB
CREATE FUNCTION public.bench_hwm_kb() RETURNS bigint LANGUAGE sql AS
$$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmHWM:\s+(\d+)'))[1]::bigint $$;
SQL
}
