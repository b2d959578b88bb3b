# scripts/lib.sh — shared by scripts/test.sh and scripts/demo.sh (sourced, not run).
#
# Sets up everything epic_fdw needs on a fresh Debian 12 machine, as root:
# Debian packages, the build and install, a throwaway PostgreSQL cluster run
# as the postgres user on a free port, test keys, and the HTTPS sandbox.
# Every function is idempotent; epic_cleanup stops what was started.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PY=/usr/bin/python3

epic_log() { printf '== %s\n' "$*" >&2; }

# Debian packages needed to build, run and test (installed only when missing,
# in one apt-get install): debhelper, dpkg-dev and postgresql-server-dev-all
# build the .deb (scripts/package_test.sh); clang-14 and libclang-rt-14-dev the
# fuzz targets (scripts/fuzz.sh); cppcheck and clang-tidy scripts/lint.sh;
# postgresql-15-cron the scheduled refresh (sql/bulk_cron.sql).  The tool
# scripts install what they need themselves when run on their own.
epic_install_deps() {
	local pkgs="postgresql-15 postgresql-server-dev-15 libcurl4-openssl-dev libjansson-dev
		libssl-dev pkg-config openssl make gcc python3 python3-jwt python3-cryptography curl valgrind
		debhelper dpkg-dev postgresql-server-dev-all postgresql-15-cron
		clang-14 libclang-rt-14-dev cppcheck clang-tidy"
	local missing=""
	for p in $pkgs; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		epic_log "installing Debian packages:$missing"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null
		# shellcheck disable=SC2086
		apt-get install -y -qq --no-install-recommends $missing >/dev/null
	fi
}

epic_build_install() {
	epic_log "building and installing epic_fdw"
	make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" >/dev/null
	make -C "$REPO" -s PG_CONFIG="$PGBIN/pg_config" install >/dev/null
}

# A free TCP port on 127.0.0.1 (the kernel picks it).
epic_free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# epic_setup_state DIR: state dir readable by postgres, with keys and clients.json.
epic_setup_state() {
	STATE=$1
	mkdir -p "$STATE"
	chmod 755 "$STATE"
	local k="$STATE/keys"
	mkdir -p "$k"
	chmod 755 "$k"
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k/rs384.pem" 2>/dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$k/es384.pem" 2>/dev/null
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$k/wrong.pem" 2>/dev/null
	for f in rs384 es384 wrong; do
		openssl pkey -in "$k/$f.pem" -pubout -out "$k/$f.pub" 2>/dev/null
		chown postgres:postgres "$k/$f.pem"
		chmod 600 "$k/$f.pem"
	done
	cat >"$STATE/clients.json" <<EOF
{"clients": [
  {"client_id": "epic-fdw-rs384", "keys": [{"kid": "rs1", "alg": "RS384", "public_key_file": "$k/rs384.pub"}]},
  {"client_id": "epic-fdw-es384", "keys": [{"kid": "ec1", "alg": "ES384", "public_key_file": "$k/es384.pub"}]},
  {"client_id": "epic-fdw-scoped", "scopes": ["system/Patient.read"],
   "keys": [{"kid": "rs1", "alg": "RS384", "public_key_file": "$k/rs384.pub"}]}
]}
EOF
}

# epic_make_dataset: a small synthetic dataset (STU3 and R4) for searches with
# real FHIR semantics, served by the sandbox under /dataset/VERSION/.
epic_make_dataset() {
	$PY "$REPO/test/dataset/generate.py" --version STU3 --patients 200 \
		--statements-per-patient 3 --seed 1 --out "$STATE/dataset/stu3" >/dev/null
	$PY "$REPO/test/dataset/generate.py" --version R4 --patients 200 \
		--statements-per-patient 3 --seed 1 --out "$STATE/dataset/r4" >/dev/null
}

# epic_start_sandbox: starts the HTTPS sandbox for $STATE (recorded fixtures,
# and the dataset when $STATE/dataset exists); sets SANDBOX_PORT.
epic_start_sandbox() {
	local extra=()
	mkdir -p "$STATE/sandbox"
	chmod 755 "$STATE/sandbox"
	cp "$STATE/clients.json" "$STATE/sandbox/clients.json"
	if [ -d "$STATE/dataset" ]; then
		extra=(--dataset "STU3=$STATE/dataset/stu3" --dataset "R4=$STATE/dataset/r4")
	fi
	SANDBOX_PORT=$("$REPO/test/sandbox/start.sh" "$STATE/sandbox" "${extra[@]}" "$@")
	export EPIC_SANDBOX_DIR="$STATE/sandbox"
	export EPIC_FHIR_URL_STU3="https://localhost:$SANDBOX_PORT/api/FHIR/STU3/"
	export EPIC_FHIR_URL_R4="https://localhost:$SANDBOX_PORT/api/FHIR/R4/"
	export EPIC_DATASET_URL_STU3="https://localhost:$SANDBOX_PORT/dataset/STU3/"
	export EPIC_DATASET_URL_R4="https://localhost:$SANDBOX_PORT/dataset/R4/"
	export EPIC_TOKEN_URL="https://localhost:$SANDBOX_PORT/oauth2/token"
	export EPIC_CA_FILE="$STATE/sandbox/ca.crt"
	export EPIC_RSA_KEY="$STATE/keys/rs384.pem"
	export EPIC_EC_KEY="$STATE/keys/es384.pem"
	export EPIC_WRONG_KEY="$STATE/keys/wrong.pem"
	export EPIC_CTL="$PY $REPO/test/sandbox/ctl.py"
	# ViewDefinition files for IMPORT FOREIGN SCHEMA views (readable by postgres)
	rm -rf "$STATE/views"
	cp -r "$REPO/test/views" "$STATE/views"
	chmod -R a+rX "$STATE/views"
	export EPIC_VIEW_DIR="$STATE/views"
	epic_log "sandbox on https://localhost:$SANDBOX_PORT"
}

# epic_pg_cron_opts: server options loading pg_cron (Debian's postgresql-15-cron)
# for the scheduled Bulk Data refresh of sql/bulk_cron.sql; copies pg_cron into a
# relocated PostgreSQL tree ($PGBIN) that lacks it.  Prints nothing without pg_cron.
epic_pg_cron_opts() {
	local lib share bin
	# the real installation (scripts/asan.sh's $PGBIN only links initdb there)
	bin=$(dirname "$(readlink -f "$PGBIN/initdb")")
	[ -x "$bin/pg_config" ] || return 0
	lib=$("$bin/pg_config" --pkglibdir) share=$("$bin/pg_config" --sharedir)
	[ -n "$lib" ] && [ -n "$share" ] || return 0
	if [ ! -f "$lib/pg_cron.so" ] && [ -f /usr/lib/postgresql/15/lib/pg_cron.so ]; then
		cp /usr/lib/postgresql/15/lib/pg_cron.so "$lib/" &&
			cp /usr/share/postgresql/15/extension/pg_cron* "$share/extension/"
	fi
	[ -f "$lib/pg_cron.so" ] || return 0
	printf '%s' "-c shared_preload_libraries=pg_cron -c cron.database_name=postgres -c cron.use_background_workers=on -c max_worker_processes=16"
}

# epic_start_cluster: throwaway cluster as postgres; sets PGHOST/PGPORT/PGUSER.
epic_start_cluster() {
	PGROOT="$STATE/pg"
	install -d -o postgres -g postgres -m 700 "$PGROOT"
	runuser -u postgres -- "$PGBIN/initdb" -D "$PGROOT/data" -A trust -U postgres --no-sync \
		>"$PGROOT/initdb.log" 2>&1
	PGPORT=$(epic_free_port)
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/server.log" -w \
		-o "-p $PGPORT -k $PGROOT -c listen_addresses='' -c fsync=off $(epic_pg_cron_opts) ${EPIC_PG_OPTS:-}" \
		start >/dev/null
	export PGHOST="$PGROOT" PGPORT PGUSER=postgres
	epic_log "PostgreSQL on port $PGPORT (socket dir $PGROOT)"
}

epic_cleanup() {
	if [ -n "${PGROOT:-}" ] && [ -f "$PGROOT/data/postmaster.pid" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate -w stop >/dev/null 2>&1 || true
	fi
	if [ -n "${STATE:-}" ] && [ -d "$STATE/sandbox" ]; then
		"$REPO/test/sandbox/stop.sh" "$STATE/sandbox" >/dev/null 2>&1 || true
	fi
}

# --- test bookkeeping shared by test.sh and asan.sh --------------------------
passed=0
failed=0
failures=()
# epic_regress_results LABEL FILE: one ok/FAILED line per pg_regress test in
# FILE (the output of make installcheck), and the diffs when any failed.
epic_regress_results() {
	local label=$1 out=$2 name result
	grep -E '^(test| *[a-z_]+ +\.\.\.|ok|not ok)' "$out" || true
	while read -r name result; do
		if [ "$result" = ok ]; then pass "$label: $name"; else fail "$label: $name"; fi
	done < <(sed -nE 's/^(test )?([a-z_0-9]+) +\.\.\. +(ok|FAILED|failed).*/\2 \3/p' "$out")
	if [ -f "$REPO/regression.diffs" ]; then
		cat "$REPO/regression.diffs"
		cp "$REPO/regression.diffs" "$(dirname "$out")/"
	fi
	grep -qE 'tests passed|tests failed' "$out" || { cat "$out"; fail "pg_regress did not run"; }
}

pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); failures+=("$*"); echo "FAILED - $*"; }

# epic_summary: list failures, keep $STATE if anything failed (else remove it),
# print "N passed, N failed" (then $EPIC_SUMMARY_SUFFIX, if set) and exit
# non-zero on failure.  For EXIT traps.
epic_summary() {
	if [ "$failed" -gt 0 ]; then
		echo
		echo "failures:"
		printf '  %s\n' "${failures[@]}"
		[ -n "${STATE:-}" ] && echo "(state kept in $STATE)"
	elif [ -n "${STATE:-}" ]; then
		rm -rf "$STATE"
	fi
	echo
	echo "$passed passed, $failed failed${EPIC_SUMMARY_SUFFIX:-}"
	[ "$failed" -eq 0 ] || exit 1
}
