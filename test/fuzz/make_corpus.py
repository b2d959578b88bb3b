#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets from the project's own fixtures.

    /usr/bin/python3 test/fuzz/make_corpus.py [OUTDIR]   (default test/fuzz/corpus)

corpus/fuzz_page/      search Bundles and single resources from test/fixtures/*/*.json
                       (response bodies), plus small hand-made Epic-shaped edge cases
corpus/fuzz_fhirpath/  "EXPRESSION\\nJSON": every FHIRPath path of the views (views/*.json,
                       test/views/*.json: columns, forEach, where, repeat) and the
                       FHIRPath examples of the unit tests, each paired with a
                       fixture resource
corpus/fuzz_view/      the views of views/ and test/views/, compacted (the hand-written
                       seeds named *.json there are kept as they are)
corpus/fuzz_auth/      token endpoint responses (success and RFC 6749 errors) and
                       SMART discovery documents, shaped like the sandbox's

Deterministic: the same fixtures give the same files (named by content hash).
"""
import glob
import hashlib
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def compact(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# --- fixtures ---------------------------------------------------------------
bodies = []
for path in sorted(glob.glob(os.path.join(ROOT, "test/fixtures/*/*.json"))):
    with open(path) as f:
        for rec in json.load(f):
            body = rec.get("response", {}).get("body")
            if isinstance(body, dict):
                bodies.append(body)

resources = {}                     # resourceType -> [resource], deduplicated by id
for b in bodies:
    rs = [b]
    if b.get("resourceType") == "Bundle":
        rs = [e.get("resource") for e in b.get("entry", []) if isinstance(e, dict)]
    for r in rs:
        if isinstance(r, dict) and "resourceType" in r:
            lst = resources.setdefault(r["resourceType"], [])
            if all(x.get("id") != r.get("id") for x in lst):
                lst.append(r)

# --- fuzz_page ----------------------------------------------------------------
seen_bundles = set()
for b in bodies:
    text = compact(b)
    if b.get("resourceType") == "Bundle":
        # one Bundle per distinct shape is plenty
        key = (tuple(sorted(e.get("resource", {}).get("resourceType", "") +
                            e.get("search", {}).get("mode", "")
                            for e in b.get("entry", []))), "link" in b)
        if key in seen_bundles:
            continue
        seen_bundles.add(key)
    put("fuzz_page", text)
for rt, lst in resources.items():
    for r in lst[:4]:
        put("fuzz_page", compact(r))

epic_edge = [
    # HumanName without text, partial dates, dateTime without zone, odd references
    {"resourceType": "Patient", "id": "p1", "name": [{"given": ["A", "B"], "family": "C"}],
     "birthDate": "1987", "deceasedDateTime": "2020-01-02T03:04:05",
     "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "123"},
                    {"system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14", "value": "E1"}],
     "telecom": [{"system": "phone", "value": "1"}, None, {"system": "email", "use": "home", "value": "a@b"}],
     "address": [{"line": ["1 Main", "Apt 2"], "city": "X", "state": "TX", "postalCode": "75043"}],
     "active": True},
    {"resourceType": "MedicationStatement", "id": "m1", "status": "active",
     "subject": {"reference": "https://fhir.example/api/FHIR/STU3/Patient/e1/_history/2"},
     "medicationReference": {"display": "aspirin"}, "effectivePeriod": {"start": "2019-01-01", "end": "2019-02-01T00:00:00+05:00"},
     "dosage": [{"text": "1 tab", "route": {"coding": [{"display": "oral"}]}}],
     "category": {"coding": [{"code": "inpatient"}]}, "dateAsserted": "2019-01-01T10:00:00Z"},
    {"resourceType": "MedicationStatement", "id": "m2", "subject": {"reference": "#contained"},
     "medicationCodeableConcept": {"coding": [{"code": "1", "display": "x"}]}, "effectiveDateTime": 12},
    {"resourceType": "Bundle", "type": "searchset", "total": 2,
     "link": [{"relation": "next", "url": "https://fhir.example/api/FHIR/STU3/Patient?sessionID=1"}],
     "entry": [{"resource": {"resourceType": "Patient", "id": "x", "name": [{"use": "official", "text": "T"}]},
                "search": {"mode": "match"}},
               {"resource": {"resourceType": "OperationOutcome",
                             "issue": [{"severity": "warning", "code": "suppressed",
                                        "details": {"coding": [{"code": "4119", "display": "d"}]}}]},
                "search": {"mode": "outcome"}},
               {"resource": {"resourceType": "Practitioner", "id": "i"}, "search": {"mode": "include"}}]},
    {"resourceType": "Bundle", "type": "searchset", "entry": []},
    {"resourceType": "Patient", "id": 5, "name": "not-an-array", "gender": ["female"],
     "active": 1, "birthDate": "1987-09-12T00:00:00", "telecom": {"system": "phone", "value": 1.5e300}},
]
for r in epic_edge:
    put("fuzz_page", compact(r))

# --- fuzz_view and the views' paths ----------------------------------------------
view_files = sorted(glob.glob(os.path.join(ROOT, "views/*.json")) +
                    glob.glob(os.path.join(ROOT, "test/views/*.json")))
paths = set()


def view_paths(sel):
    for s in sel:
        for key in ("forEach", "forEachOrNull"):
            if isinstance(s.get(key), str):
                paths.add(s[key])
        paths.update(p for p in s.get("repeat", []) if isinstance(p, str))
        paths.update(c["path"] for c in s.get("column", []) if isinstance(c.get("path"), str))
        view_paths(s.get("select", []))
        view_paths(s.get("unionAll", []))


for path in view_files:
    with open(path) as f:
        view = json.load(f)
    put("fuzz_view", compact(view))
    paths.update(w["path"] for w in view.get("where", []) if isinstance(w.get("path"), str))
    view_paths(view.get("select", []))

# --- fuzz_fhirpath --------------------------------------------------------------
# the unit tests' expressions (string literals passed to eval()/check helpers)
with open(os.path.join(ROOT, "test/unit/test_fhirpath.c")) as f:
    for m in re.finditer(r'(?:eval|expect)\(\w+, "((?:[^"\\]|\\.)*)"\)', f.read()):
        paths.add(m.group(1).encode().decode("unicode_escape"))
paths.update([
    "Patient.name.where(use = 'official').given[1]", "identifier[0].value",
    "telecom.where(system = 'phone' and use != 'work').value.exists().not()",
    "subject.getReferenceKey()", "getResourceKey()", "name.empty() or active = true",
    "`given`.first() = 'A'", "$this.id", "(active)", "multipleBirthInteger = 2.0",
    "%unset.exists()", "text = 'a\\'b\\n'",
])
small = {rt: sorted(lst, key=lambda r: len(compact(r)))[:2] for rt, lst in resources.items()}
docs = small.get("Patient", []) + small.get("MedicationStatement", []) + epic_edge[:3]
for i, p in enumerate(sorted(paths)):
    put("fuzz_fhirpath", p)                                 # expression alone
    put("fuzz_fhirpath", p + "\n" + compact(docs[i % len(docs)]))

# --- fuzz_auth ------------------------------------------------------------------
for obj in [
    {"access_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "token_type": "bearer", "expires_in": 3600,
     "scope": "system/Patient.read"},
    {"access_token": "abc", "token_type": "Bearer"},
    {"access_token": "abc", "token_type": "mac", "expires_in": -1},
    {"access_token": "", "token_type": "bearer"},
    {"access_token": 5, "token_type": "bearer", "expires_in": 1e30},
    {"access_token": "a b", "token_type": "bearer", "expires_in": 9223372036854775807},
    {"error": "invalid_client", "error_description": "client_id does not match the assertion iss"},
    {"error": "invalid_scope"},
    {"error": 1, "error_description": "x"},
    {"issuer": "https://localhost/", "token_endpoint": "https://localhost:1/oauth2/token",
     "token_endpoint_auth_methods_supported": ["private_key_jwt"],
     "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"]},
    {"token_endpoint": ""},
    {"token_endpoint": ["https://x"]},
]:
    put("fuzz_auth", compact(obj))
put("fuzz_auth", '{"token_endpoint": "https://a\\u0000b"}')
put("fuzz_auth", '[]')
put("fuzz_auth", '{"access_token":"x","access_token":"y","token_type":"bearer"}')
print("corpus written to %s: %s" % (OUT, ", ".join(
    "%s %d" % (t, len(os.listdir(os.path.join(OUT, t))))
    for t in sorted(os.listdir(OUT)))))
