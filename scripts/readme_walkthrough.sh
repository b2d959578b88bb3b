#!/usr/bin/env bash
# scripts/readme_walkthrough.sh — run the walkthrough of docs/connecting-to-epic.md
# (its "readme-walkthrough" blocks) unchanged against the sandbox.  Only the FHIR base (plus the
# sandbox's ca_file) and the key file are substituted, and between the two
# parts the app's JWK Set is registered with the sandbox, as a user would
# register it with Epic.  Needs the environment of scripts/lib.sh (sandbox and
# cluster running); called by scripts/test.sh.  Prints "N passed, N failed".
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS readme_walkthrough" >/dev/null 2>&1' EXIT

block() {
	sed -n "/<!-- readme-walkthrough:$1 -->/,/<!-- readme-walkthrough:end -->/p" "$REPO/docs/connecting-to-epic.md" |
		grep -v -e '^<!--' -e '^```'
}
subst() {
	sed -e "s|'https://fhir.epic.com/interconnect-fhir-oauth/api/FHIR/STU3/'|'$EPIC_FHIR_URL_STU3', ca_file '$EPIC_CA_FILE'|" \
		-e "s|'/etc/epic_fdw/key.pem'|'$EPIC_RSA_KEY'|"
}
block part1 | subst >"$work/part1.sql"
block part2 | subst >"$work/part2.sql"
passed=0
failed=0
check() {
	if [ "$1" = ok ]; then passed=$((passed + 1)); echo "ok - $2"; else failed=$((failed + 1)); echo "FAILED - $2"; fi
}

[ -s "$work/part1.sql" ] && [ -s "$work/part2.sql" ] && check ok "README has both walkthrough parts" ||
	check no "README has both walkthrough parts"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS readme_walkthrough" -c "CREATE DATABASE readme_walkthrough" >/dev/null
if psql -X -q -v ON_ERROR_STOP=1 -At -d readme_walkthrough -f "$work/part1.sql" >"$work/out1.txt" 2>&1; then
	check ok "part 1 (server, user mapping, JWK Set) runs"
else
	cat "$work/out1.txt"
	check no "part 1 (server, user mapping, JWK Set) runs"
fi

# register the app: its client id and jku from the README, its JWK Set as printed
client_id=$(sed -n "s/^ *client_id *'\([^']*\)'.*/\1/p" "$work/part1.sql" | head -n 1)
jku=$(sed -n "s/.*jku *'\([^']*\)'.*/\1/p" "$work/part1.sql" | head -n 1)
tail -n 1 "$work/out1.txt" >"$EPIC_SANDBOX_DIR/readme-jwks.json"
CLIENT_ID=$client_id JKU=$jku $PY - <<'PYEOF'
import json, os
d = os.environ["EPIC_SANDBOX_DIR"]
p = os.path.join(d, "clients.json")
c = json.load(open(p))
c["clients"] = [x for x in c["clients"] if x["client_id"] != os.environ["CLIENT_ID"]] + [
    {"client_id": os.environ["CLIENT_ID"], "jku": os.environ["JKU"],
     "jwks_file": os.path.join(d, "readme-jwks.json")}]
json.dump(c, open(p + ".tmp", "w"))
os.replace(p + ".tmp", p)
PYEOF

if psql -X -q -v ON_ERROR_STOP=1 -At -F '|' -d readme_walkthrough -f "$work/part2.sql" >"$work/out2.txt" 2>&1; then
	check ok "part 2 (check, import, first query) runs"
else
	cat "$work/out2.txt"
	check no "part 2 (check, import, first query) runs"
fi
[ "$(grep -c -E '^(discovery|token|metadata)\|t\|' "$work/out2.txt")" = 3 ] &&
	check ok "epic_fdw_check: discovery, token and metadata all ok" ||
	{ cat "$work/out2.txt"; check no "epic_fdw_check: discovery, token and metadata all ok"; }
grep -q '^Lisinopril 10 MG Oral Tablet|' "$work/out2.txt" && [ "$(grep -c ' MG ' "$work/out2.txt")" = 3 ] &&
	check ok "the IVR query returns Camila Lopez's three medications" ||
	check no "the IVR query returns Camila Lopez's three medications"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
