#!/usr/bin/env bash
# scripts/package_test.sh — the Debian package, end to end (a tier of scripts/test.sh).
#
# Checks the release metadata (scripts/check_meta.py), builds
# postgresql-15-epic-fdw with `dpkg-buildpackage -us -uc -b` from a copy of the
# tree, checks what the .deb contains, installs it into the system PostgreSQL 15,
# shows that it is the packaged epic_fdw.so that a backend loads (`dpkg -V`
# clean, and the checksum of the file the backend has mapped equals the one in
# the .deb), and runs a query against the HTTPS sandbox with it.
#
# Installs system-wide (as root: test machines are throwaway).  Afterwards the
# package is purged and any epic_fdw files that were there before (a
# `make install`) are put back, so the machine ends as it started; a package
# that was installed before stays installed (upgraded to this build).
#
# Takes the system PostgreSQL's install lock (as scripts/regress.sh names it)
# only when $PGBIN is another installation: when $PGBIN is the system one, the
# caller (scripts/test.sh, or you: wrap a manual run in flock) owns that lock.
# Prints "N passed, N failed" last.
set -uo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

SYSTEM_PGBIN=/usr/lib/postgresql/15/bin
PKG=postgresql-15-epic-fdw
if [ "$(readlink -f "$PGBIN")" != "$SYSTEM_PGBIN" ]; then
	exec 8>"/tmp/epic_fdw_install.$(echo "$SYSTEM_PGBIN" | md5sum | cut -c1-12).lock"
	flock 8
fi
# the cluster of the smoke query runs the system PostgreSQL, where the package is
PGBIN=$SYSTEM_PGBIN

WORK=$(mktemp -d /tmp/epic_fdw_package.XXXXXX)
chmod 755 "$WORK" # the cluster (as postgres) reads the test keys below it
installed_before=no
restore=no
finish() {
	epic_cleanup
	if [ "$restore" = yes ] && [ "$installed_before" = no ]; then
		dpkg -P "$PKG" >/dev/null 2>&1 || fail "purge $PKG"
		# files only: the system's directories keep their own owners and modes
		while read -r f; do
			mkdir -p "$(dirname "/$f")" && cp -a "$WORK/backup/$f" "/$f" || fail "restore /$f"
		done <"$WORK/existing.txt"
	fi
	[ "$failed" -gt 0 ] && echo "(build tree and log kept in $WORK)"
	[ "$failed" -eq 0 ] && rm -rf "$WORK"
	epic_summary
}
trap finish EXIT

epic_install_deps || { fail "install Debian packages"; exit 1; }

# --- metadata: META.json valid for PGXN, one version everywhere --------------
while read -r line; do
	case $line in
	"ok - "*) pass "${line#ok - }" ;;
	"not ok - "*) fail "${line#not ok - }" ;;
	esac
done < <("$PY" "$REPO/scripts/check_meta.py" "$REPO" 2>&1)
version=$(sed -n "s/^default_version *= *'\([^']*\)'.*/\1/p" "$REPO/epic_fdw.control")

# --- build from a copy of the tree ---------------------------------------------
# (dpkg-buildpackage cleans the tree it runs in and writes to its parent)
mkdir -p "$WORK/src"
if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
		tar --null -cf - -T - 2>/dev/null) | tar -xf - -C "$WORK/src"
else
	cp -a "$REPO/." "$WORK/src/"
fi
start=$(date +%s)
if (cd "$WORK/src" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
	pass "dpkg-buildpackage -us -uc -b ($(($(date +%s) - start)) s)"
else
	tail -n 30 "$WORK/build.log"
	fail "dpkg-buildpackage -us -uc -b (log: $WORK/build.log)"
	exit 1
fi
if grep -qi 'warning' "$WORK/build.log"; then
	grep -i 'warning' "$WORK/build.log" | head -n 10
	fail "the package build prints warnings"
else
	pass "the package build prints no warning"
fi
deb=$(ls "$WORK/${PKG}_${version}-"*_"$(dpkg --print-architecture)".deb 2>/dev/null | head -n 1)
if [ -n "$deb" ]; then
	pass "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"
else
	ls "$WORK"
	fail "no ${PKG}_${version}-*.deb was built"
	exit 1
fi
grep -q 'build-15' "$WORK/build.log" && [ -d "$WORK/src/build-15" ] &&
	pass "built out of tree in build-15/" || fail "built out of tree in build-15/"

# --- what the package contains --------------------------------------------------
dpkg-deb -x "$deb" "$WORK/root"
(cd "$WORK/root" && find . -type f | sed 's|^\./|/|' | sort) >"$WORK/files.txt"
unexpected=$(grep -v -E '^/usr/lib/postgresql/15/lib/(epic_fdw\.so|bitcode/epic_fdw(/.*)?\.bc|bitcode/epic_fdw\.index\.bc)$|^/usr/share/postgresql/15/extension/epic_fdw(\.control|--[0-9.]+(--[0-9.]+)?\.sql)$|^/usr/share/doc/postgresql-15-epic-fdw/(copyright|changelog(\.Debian)?\.gz)$' \
	"$WORK/files.txt")
if [ -z "$unexpected" ] && grep -qx /usr/lib/postgresql/15/lib/epic_fdw.so "$WORK/files.txt"; then
	pass "the package holds the module, extension scripts, bitcode and docs only ($(wc -l <"$WORK/files.txt") files: no tests, sandbox or demo)"
else
	echo "$unexpected"
	fail "the package holds unexpected files (or no epic_fdw.so)"
fi
missing=""
for f in "$REPO"/epic_fdw.control "$REPO"/epic_fdw--*.sql; do
	cmp -s "$f" "$WORK/root/usr/share/postgresql/15/extension/$(basename "$f")" || missing="$missing $(basename "$f")"
done
[ -z "$missing" ] && pass "the package has the tree's control file and every extension script" ||
	fail "the package lacks or differs in:$missing (DATA in the Makefile?)"

# --- install it system-wide -----------------------------------------------------
dpkg -s "$PKG" 2>/dev/null | grep -q '^Status: install ok installed' && installed_before=yes
mkdir -p "$WORK/backup"
while read -r f; do [ -e "$f" ] && echo "${f#/}"; done <"$WORK/files.txt" >"$WORK/existing.txt"
tar -C / -cf - -T "$WORK/existing.txt" | tar -xf - -C "$WORK/backup"
restore=yes
if dpkg -i "$deb" >"$WORK/dpkg-i.log" 2>&1; then
	pass "dpkg -i $(basename "$deb")"
else
	cat "$WORK/dpkg-i.log"
	fail "dpkg -i $(basename "$deb")"
	exit 1
fi
v=$(dpkg -V "$PKG" 2>&1)
[ -z "$v" ] && pass "dpkg -V $PKG: every installed file as packaged" || { echo "$v"; fail "dpkg -V $PKG"; }
so=/usr/lib/postgresql/15/lib/epic_fdw.so
deb_sum=$(sha256sum "$WORK/root$so" | cut -d' ' -f1)
[ "$(sha256sum "$so" | cut -d' ' -f1)" = "$deb_sum" ] &&
	pass "installed $so = the .deb's (sha256 ${deb_sum:0:16}…)" || fail "installed $so differs from the .deb's"

# --- a query against the sandbox with the packaged module ---------------------------
STATE="$WORK/state"
epic_setup_state "$STATE"
epic_start_sandbox || { fail "start sandbox"; exit 1; }
epic_start_cluster || { fail "start PostgreSQL ($PGBIN)"; exit 1; }
cat >"$WORK/smoke.sql" <<'EOF'
\getenv fhir_url EPIC_FHIR_URL_STU3
\getenv ca_file EPIC_CA_FILE
\getenv rsa_key EPIC_RSA_KEY
CREATE EXTENSION epic_fdw;
SELECT 'extversion=' || extversion FROM pg_extension WHERE extname = 'epic_fdw';
CREATE SERVER epic FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER epic
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE patients (id text, name text, birthdate date, gender text, phone text) SERVER epic;
CREATE FOREIGN TABLE medication_statements (id text, patient_id text, medication text) SERVER epic;
SELECT 'row=' || p.name || '|' || m.medication
  FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female'
 ORDER BY m.medication;
-- the module this backend has mapped (checked while the session is open)
SELECT pg_backend_pid() AS pid \gset
\setenv EPIC_BACKEND_PID :pid
\! sh "$EPIC_PACKAGE_WORK/maps.sh"
EOF
cat >"$WORK/maps.sh" <<'EOF'
range=$(awk '$6 ~ /epic_fdw\.so/ {print $1; exit}' "/proc/$EPIC_BACKEND_PID/maps")
awk '$6 ~ /epic_fdw/ {print $6 ($7 != "" ? " " $7 : "")}' "/proc/$EPIC_BACKEND_PID/maps" | sort -u >"$EPIC_PACKAGE_WORK/maps.txt"
[ -n "$range" ] && sha256sum "/proc/$EPIC_BACKEND_PID/map_files/$range" | cut -d' ' -f1 >"$EPIC_PACKAGE_WORK/mapped.sha256"
echo "$EPIC_BACKEND_PID" >"$EPIC_PACKAGE_WORK/backend.pid"
EOF
EPIC_PACKAGE_WORK=$WORK psql -X -q -At -v ON_ERROR_STOP=1 -d postgres -f "$WORK/smoke.sql" >"$WORK/smoke.out" 2>&1
rc=$?
mapped=$(cat "$WORK/mapped.sha256" 2>/dev/null)
pid=$(cat "$WORK/backend.pid" 2>/dev/null)
if [ $rc -eq 0 ] && grep -qx "extversion=$version" "$WORK/smoke.out"; then
	pass "CREATE EXTENSION epic_fdw from the package: version $version"
else
	cat "$WORK/smoke.out"
	fail "CREATE EXTENSION epic_fdw from the package"
fi
rows=$(grep -c '^row=Camila Maria Lopez|' "$WORK/smoke.out")
if [ "$rows" -eq 3 ] && grep -qx 'row=Camila Maria Lopez|Lisinopril 10 MG Oral Tablet' "$WORK/smoke.out"; then
	pass "the IVR query against the sandbox with the packaged module: $rows rows"
else
	cat "$WORK/smoke.out"
	fail "the IVR query against the sandbox with the packaged module"
fi
if [ -n "$mapped" ] && [ "$mapped" = "$deb_sum" ] && grep -qx "$so" "$WORK/maps.txt"; then
	pass "the backend (pid $pid) has $so mapped, and it is the .deb's (sha256 ${mapped:0:16}…)"
else
	cat "$WORK/maps.txt" 2>/dev/null
	fail "the backend's mapped epic_fdw.so is not the packaged one (${mapped:-not found})"
fi
exit 0
