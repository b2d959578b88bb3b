#!/usr/bin/python3
"""Test of the sandbox's dataset serving (--dataset VERSION=DIR): FHIR search semantics,
paging, errors, reads, the request log and the latency knob; the generated clinical types
(Observation, Condition, AllergyIntolerance, Encounter, Immunization, Procedure, STU3
MedicationRequest) and their searches, Epic's required search parameters (59159), and
named ad-hoc datasets (POST/DELETE /_sandbox/dataset, ctl.py dataset).

Usage: /usr/bin/python3 test/sandbox/test_dataset.py [--keep]

Generates a small STU3 dataset (60 patients x 3) and R4 dataset (400 x 3) with
test/dataset/generate.py, adds hand-made edge-case resources (as a Bundle, an array and a
single resource), starts the sandbox with both datasets, gets a token with an RS384 client
assertion and checks every search against an independent brute-force evaluation written
here (plus hand-computed date cases). Prints one line per failed check, a summary per
group and "N passed, N failed" last; exit status 1 on failure.
"""

import argparse
import datetime
import functools
import http.client
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import time
import unicodedata
import urllib.parse
import uuid

import jwt

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PY = "/usr/bin/python3"
CAMILA = "erXuFYUfucBZaryVksYEcMg3"
MRN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
STU3_CAT = "http://hl7.org/fhir/medication-statement-category"
passed = failed = 0
VERBOSE = False


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        if VERBOSE:
            print("ok   %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, str(detail)[:600]))


def sh(*args, env=None):
    return subprocess.run(list(args), capture_output=True, text=True, env=env)


# --------------------------------------------------------------------------------------
# Independent reference evaluation (deliberately written differently from dataset.py:
# datetime objects, explicit element lists)
# --------------------------------------------------------------------------------------

UTC = datetime.timezone.utc


def fold(s):
    return "".join(c for c in unicodedata.normalize("NFKD", s)
                   if not unicodedata.combining(c)).casefold()


def t_range(s):
    """Range [low, high) of a FHIR date/dateTime as aware datetimes."""
    if re.fullmatch(r"\d{4}", s):
        y = int(s)
        return datetime.datetime(y, 1, 1, tzinfo=UTC), datetime.datetime(y + 1, 1, 1, tzinfo=UTC)
    if re.fullmatch(r"\d{4}-\d{2}", s):
        y, m = map(int, s.split("-"))
        lo = datetime.datetime(y, m, 1, tzinfo=UTC)
        hi = datetime.datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
        return lo, hi
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        lo = datetime.datetime.fromisoformat(s).replace(tzinfo=UTC)
        return lo, lo + datetime.timedelta(days=1)
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?", s)
    assert m, s
    base, frac, tz = m.groups()
    dt = datetime.datetime.fromisoformat(base + (frac or "") + ("+00:00" if tz in (None, "Z")
                                                                else tz))
    step = datetime.timedelta(seconds=1) if not frac else \
        datetime.timedelta(microseconds=10 ** (6 - len(frac[1:])))
    return dt.astimezone(UTC), dt.astimezone(UTC) + step


MIN = datetime.datetime(1, 1, 1, tzinfo=UTC)
MAX = datetime.datetime(9999, 12, 31, tzinfo=UTC)


def spec_date_match(prefix, p, r):
    """FHIR R4 3.1.1.4.2 wording, one prefix at a time. p, r: (low, high)."""
    contains = p[0] <= r[0] and r[1] <= p[1]       # search range fully contains target
    above_intersects = r[1] > p[1]                  # [p.high, +inf) overlaps target
    below_intersects = r[0] < p[0]                  # (-inf, p.low) overlaps target
    overlap = r[0] < p[1] and p[0] < r[1]
    return {"eq": contains, "ne": not contains, "gt": above_intersects,
            "lt": below_intersects, "ge": above_intersects or contains,
            "le": below_intersects or contains,
            "sa": not overlap and r[0] >= p[1], "eb": not overlap and r[1] <= p[0]}[prefix]


def elements(res, param, version):
    """Values of a search parameter in a resource: list of ('s', text) / ('t', sys, code) /
    ('d', lo, hi) / ('r', type, id)."""
    rt = res["resourceType"]
    out = []
    if param == "_id":
        return [("t", None, res["id"])]
    if rt == "Patient":
        names = res.get("name", [])
        addrs = res.get("address", [])
        if param in ("family", "given", "name"):
            fields = {"family": ["family"], "given": ["given"],
                      "name": ["family", "given", "prefix", "suffix"]}[param]
            for n in names:
                for f in fields:
                    v = n.get(f)
                    for x in (v if isinstance(v, list) else [v] if v else []):
                        out.append(("s", x))
        elif param.startswith("address"):
            fields = {"address-city": ["city"], "address-state": ["state"],
                      "address-postalcode": ["postalCode"],
                      "address": ["line", "city", "state", "postalCode", "country", "text"]}[param]
            for a in addrs:
                for f in fields:
                    v = a.get(f)
                    for x in (v if isinstance(v, list) else [v] if v else []):
                        out.append(("s", x))
        elif param == "birthdate":
            if "birthDate" in res:
                out.append(("d",) + t_range(res["birthDate"]))
        elif param == "gender":
            if "gender" in res:
                out.append(("t", None, res["gender"]))
        elif param == "active":
            if "active" in res:
                out.append(("t", None, "true" if res["active"] else "false"))
        elif param == "identifier":
            out = [("t", i.get("system"), i["value"]) for i in res.get("identifier", [])]
        elif param in ("telecom", "phone", "email"):
            for t in res.get("telecom", []):
                if param == "telecom" or t.get("system") == param:
                    out.append(("t", t.get("system"), t["value"]))
        else:
            raise KeyError(param)
        return out
    if param in ("patient", "subject"):
        field = "patient" if rt in ("AllergyIntolerance", "Immunization") else "subject"
        ref = res.get(field, {}).get("reference", "")
        typ, _, rid = ref.rpartition("/")
        if ref and (param == "subject" or typ == "Patient"):
            out.append(("r", typ, rid))
    elif param in ("status", "intent"):
        if param in res:
            out.append(("t", None, res[param]))
    elif param == "category":
        cats = res.get("category")
        cats = cats if isinstance(cats, list) else [cats] if cats else []
        out = [("t", c.get("system"), c["code"]) for cc in cats for c in cc.get("coding", [])]
    elif param == "effective":
        if "effectiveDateTime" in res:
            out.append(("d",) + t_range(res["effectiveDateTime"]))
        if "effectivePeriod" in res:
            p = res["effectivePeriod"]
            out.append(("d", t_range(p["start"])[0] if "start" in p else MIN,
                        t_range(p["end"])[1] if "end" in p else MAX))
    elif param == "authoredon":
        if "authoredOn" in res:
            out.append(("d",) + t_range(res["authoredOn"]))
    elif param == "code":
        out = [("t", c.get("system"), c["code"]) for c in res.get("code", {}).get("coding", [])]
    elif param == "class":
        c = res.get("class")
        if c:
            out.append(("t", c.get("system"), c["code"]))
    elif param == "clinical-status":
        cs = res.get("clinicalStatus")
        if isinstance(cs, str):                      # STU3: a code
            out.append(("t", None, cs))
        elif cs:                                     # R4: a CodeableConcept
            out = [("t", c.get("system"), c["code"]) for c in cs.get("coding", [])]
    elif param in ("date", "onset-date"):
        fields = {("Observation", "date"): ("effectiveDateTime", "effectivePeriod"),
                  ("Encounter", "date"): ("period",),
                  ("Procedure", "date"): ("performedDateTime", "performedPeriod"),
                  ("Immunization", "date"): ("date" if version == "STU3"
                                             else "occurrenceDateTime",),
                  ("Condition", "onset-date"): ("onsetDateTime", "onsetPeriod")}[(rt, param)]
        for f in fields:
            v = res.get(f)
            if isinstance(v, str):
                out.append(("d",) + t_range(v))
            elif isinstance(v, dict):
                out.append(("d", t_range(v["start"])[0] if "start" in v else MIN,
                            t_range(v["end"])[1] if "end" in v else MAX))
    else:
        raise KeyError(param)
    return out


@functools.lru_cache(maxsize=4096)   # brute() splits the same long values for every resource
def unesc_split(value, sep):
    parts, cur, i = [], "", 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            cur += value[i:i + 2]
            i += 2
        elif value[i] == sep:
            parts.append(cur)
            cur = ""
            i += 1
        else:
            cur += value[i]
            i += 1
    parts.append(cur)
    return tuple(parts)


@functools.lru_cache(maxsize=65536)
def unesc(v):
    return re.sub(r"\\([,|$\\])", r"\1", v)


def ref_match(values, modifier, els):
    for v in values:
        v = re.sub(r"/_history/[^/]+$", "", v)
        segs = v.split("/")
        want_id = segs[-1]
        want_type = segs[-2] if len(segs) > 1 else (modifier or None)
        if any(e[2] == want_id and (want_type is None or e[1] == want_type) for e in els):
            return True
    return False


def matches(res, name, value, version):
    param, _, mod = name.partition(":")
    els = elements(res, param, version)
    if mod == "missing":
        return (len(els) == 0) == (value == "true")
    alts = [a for a in unesc_split(value, ",")]
    kind = els[0][0] if els else None
    if param in ("family", "given", "name") or param.startswith("address"):
        kind = "s"
    if kind is None:
        return mod == "not"
    if kind == "s":
        texts = [e[1] for e in els]
        for a in map(unesc, alts):
            for t in texts:
                if mod == "exact" and t == a:
                    return True
                if mod == "contains" and fold(a) in fold(t):
                    return True
                if mod == "" and fold(t).startswith(fold(a)):
                    return True
        return False
    if kind == "t":
        hit = False
        for a in alts:
            parts = [unesc(x) for x in unesc_split(a, "|")] if param != "_id" else [unesc(a)]
            if param == "active":
                parts[-1] = parts[-1].lower()
            for e in els:
                if len(parts) == 1:
                    ok = e[2] == parts[0]
                elif parts[0] == "":
                    ok = not e[1] and e[2] == parts[1]
                elif parts[1] == "":
                    ok = e[1] == parts[0]
                else:
                    ok = e[1] == parts[0] and e[2] == parts[1]
                hit = hit or ok
        return (not hit) if mod == "not" else hit
    if kind == "d":
        for a in alts:
            prefix, v = ("eq", a) if not re.match(r"[a-z]{2}", a) else (a[:2], a[2:])
            p = t_range(v)
            if any(spec_date_match(prefix, p, (e[1], e[2])) for e in els):
                return True
        return False
    if kind == "r":
        return ref_match([unesc(a) for a in alts], mod, els)
    raise AssertionError(kind)


def brute(resources, rtype, query, version):
    pairs = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
             if k != "_count"]
    return sorted(r["id"] for r in resources.get(rtype, [])
                  if all(matches(r, k, v, version) for k, v in pairs))


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------

def load_dir(d):
    out = {}
    for fn in sorted(os.listdir(d)):
        p = os.path.join(d, fn)
        if fn.endswith(".ndjson"):
            items = [json.loads(line) for line in open(p, encoding="utf-8") if line.strip()]
        elif fn.endswith(".json"):
            doc = json.load(open(p, encoding="utf-8"))
            if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
                items = [e["resource"] for e in doc["entry"]]
            elif isinstance(doc, list):
                items = doc
            else:
                items = [doc]
        else:
            continue
        for r in items:
            out.setdefault(r["resourceType"], []).append(r)
    return out


DATE_CASES = {  # id -> effective[x]
    "dA": ("effectiveDateTime", "2020"),
    "dB": ("effectiveDateTime", "2020-03"),
    "dC": ("effectiveDateTime", "2020-03-15"),
    "dD": ("effectiveDateTime", "2020-03-15T10:00:00Z"),
    "dE": ("effectiveDateTime", "2020-03-15T23:30:00-05:00"),
    "dF": ("effectivePeriod", {"start": "2020-03-01", "end": "2020-03-31"}),
    "dG": ("effectivePeriod", {"start": "2020-03-10"}),
    "dH": ("effectivePeriod", {"end": "2019-12-31"}),
    "dI": None,
    "dJ": ("effectiveDateTime", "2020-03-15T10:00:00"),
    "dK": ("effectiveDateTime", "2020-03-15T10:00:00.500Z"),
}
# hand-computed from the spec's range semantics (patient=edates restricts to these)
DATE_EXPECT = [
    ("2020", "dA dB dC dD dE dF dJ dK"),
    ("eq2020-03", "dB dC dD dE dF dJ dK"),
    ("2020-03-15", "dC dD dJ dK"),
    ("2020-03-16", "dE"),
    ("2020-03-15T10:00:00Z", "dD dJ dK"),
    ("2020-03-15T05:00:00-05:00", "dD dJ dK"),
    ("2020-03-15T12:00:00+02:00", "dD dJ dK"),
    ("2020-03-16T04:30:00Z", "dE"),
    ("sa2020-03-14T23:59:59Z", "dC dD dE dJ dK"),
    ("gt2020-03-15T10:00:00.500Z", "dA dB dC dD dE dF dG dJ"),
    ("2020-03-15T10:00:00.5Z", "dK"),
    ("gt2020-03-15", "dA dB dE dF dG"),
    ("lt2020-03-15", "dA dB dF dG dH"),
    ("ge2020-03-15", "dA dB dC dD dE dF dG dJ dK"),
    ("le2020-03-15", "dA dB dC dD dF dG dH dJ dK"),
    ("sa2020-03-15", "dE"),
    ("eb2020-03-15", "dH"),
    ("ne2020-03", "dA dG dH"),
    ("sa2020-03-15T10:00:00Z", "dE"),
    ("gt2020-03-15T10:00:00Z", "dA dB dC dE dF dG"),
    ("eb2020", "dH"),
    ("sa2019", "dA dB dC dD dE dF dG dJ dK"),
    ("2020-02,2020-03-15", "dC dD dJ dK"),
    ("lt2019-12-31", "dH"),
    ("ge2021", "dG"),
    # boundaries: target ranges ending/starting exactly at the search range's edge
    ("ge2020-03-31", "dA dG"),
    ("gt2020-03-31", "dA dG"),
    ("le2020-03-01", "dA dH"),
    ("lt2020-03-01", "dA dH"),
    ("sa2020-02", "dB dC dD dE dF dG dJ dK"),
    ("eb2020-04", "dB dC dD dE dF dH dJ dK"),
    ("ne2020-03-15T10:00:00Z", "dA dB dC dE dF dG dH"),
]


def extra_resources(d):
    """Hand-made edge cases: a Bundle (date cases), an array (patients), a single resource."""
    entries = []
    for rid, eff in DATE_CASES.items():
        r = {"resourceType": "MedicationStatement", "id": rid, "status": "active",
             "category": {"coding": [{"system": STU3_CAT, "code": "community"}]},
             "medicationCodeableConcept": {"text": "Test"},
             "subject": {"reference": "Patient/edates", "display": "Dates, Test"},
             "taken": "unk"}
        if eff:
            r[eff[0]] = eff[1]
        entries.append({"fullUrl": "urn:uuid:%s" % uuid.uuid4(), "resource": r})
    # references in other forms (absolute, with _history) and to a Group
    entries.append({"resource": {
        "resourceType": "MedicationStatement", "id": "dRefAbs", "status": "active",
        "subject": {"reference": "https://example.org/fhir/Patient/edates/_history/3"},
        "taken": "unk"}})
    entries.append({"resource": {
        "resourceType": "MedicationStatement", "id": "dRefGroup", "status": "active",
        "subject": {"reference": "Group/edates"}, "taken": "unk"}})
    json.dump({"resourceType": "Bundle", "type": "collection", "entry": entries},
              open(os.path.join(d, "extra-bundle.json"), "w"))
    pats = [
        {"resourceType": "Patient", "id": "eComma", "active": True,
         "name": [{"family": "Doe,Roe", "given": ["Pipe|Dollar$"]}], "gender": "female",
         "identifier": [{"system": "urn:test", "value": "A|B"}, {"value": "X$Y,Z"},
                        {"system": "urn:test", "value": "back\\slash"}],
         "birthDate": "1987-09-12"},
        {"resourceType": "Patient", "id": "eDoe", "name": [{"family": "Doe", "given": ["Rö"]}],
         "active": False, "telecom": [{"system": "email", "value": "ROE@example.com"}]},
        {"resourceType": "Patient", "id": "eRoe", "name": [{"family": "Roe", "text": "Sir Roe",
                                                            "prefix": ["Sir"]}]},
    ]
    json.dump(pats, open(os.path.join(d, "extra-array.json"), "w"), ensure_ascii=False)
    json.dump({"resourceType": "Patient", "id": "edates", "name": [{"family": "Dates"}],
               "birthDate": "2000-02-29"}, open(os.path.join(d, "extra-single.json"), "w"))


# --------------------------------------------------------------------------------------
# Clinical types (Observation, Condition, AllergyIntolerance, Encounter, Immunization,
# Procedure, STU3 MedicationRequest)
# --------------------------------------------------------------------------------------

OBS_CAT = {"STU3": "http://hl7.org/fhir/observation-category",
           "R4": "http://terminology.hl7.org/CodeSystem/observation-category"}
CLINICAL = ("Observation", "Condition", "AllergyIntolerance", "Encounter", "Immunization",
            "Procedure")
EPIC_CLASS = "urn:oid:1.2.840.114350.1.72.1.7.7.10.696784.13260"


def clinical_queries(data):
    """(version, type) -> brute-force queries; each carries Epic's required parameters."""
    out = {}
    for v in ("STU3", "R4"):
        pats = data[v]["Patient"]
        many = ",".join(p["id"] for p in pats[:45])
        p9 = pats[9]["id"]
        cs = ("active" if v == "STU3" else
              "http://terminology.hl7.org/CodeSystem/condition-clinical|active")
        acs = ("active" if v == "STU3" else
               "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical|active")
        out[(v, "Observation")] = [
            "patient=%s&category=vital-signs" % CAMILA,
            "patient=%s&category=laboratory" % many,
            "patient=%s&category=social-history,laboratory" % many,
            "patient=%s&category=%s|vital-signs" % (many, OBS_CAT[v]),
            "patient=%s&category=wrong|vital-signs" % many,
            "subject=Patient/%s&category=laboratory,vital-signs,social-history" % p9,
            "patient=%s&category=laboratory&code=http://loinc.org|2345-7" % many,
            "patient=%s&category=vital-signs&code=8716-3" % many,
            "patient=%s&category=vital-signs&code:not=8310-5" % many,
            "patient=%s&category=laboratory&status=preliminary" % many,
            "patient=%s&category=laboratory&status:not=final" % many,
            "patient=%s&category=vital-signs&date=ge2015" % many,
            "patient=%s&category=laboratory,vital-signs&date=2020" % many,
            "patient=%s&category=vital-signs&date=lt2010-06" % many,
            "patient=%s&category=social-history&date=sa2018-05-01" % many,
            "patient=%s&category=social-history&date=eb2012" % many,
            "patient=%s&category=social-history&code=72166-2" % many,
            "_id=%s" % data[v]["Observation"][3]["id"],
        ]
        if v == "R4":
            out[(v, "Observation")] += ["patient=%s&code=http://loinc.org|72166-2" % many,
                                        "patient=%s&code=8716-3&date=ge2018" % many]
        out[(v, "Condition")] = [
            "patient=%s" % CAMILA, "patient=%s" % many, "subject=%s" % many,
            "patient=%s&category=problem-list-item" % many,
            "patient=%s&category=encounter-diagnosis" % many,
            "patient=%s&clinical-status=%s" % (many, cs),
            "patient=%s&clinical-status=active" % many,
            "patient=%s&clinical-status=resolved,inactive" % many,
            "patient=%s&clinical-status:missing=true" % many,
            "patient=%s&clinical-status:not=active" % many,
            "patient=%s&code=I10" % many,
            "patient=%s&code=http://hl7.org/fhir/sid/icd-10-cm|E11.9" % many,
            "patient=%s&code=http://snomed.info/sct|" % many,
            "patient=%s&code:not=http://snomed.info/sct|" % many,
            "patient=%s&onset-date=ge2015" % many, "patient=%s&onset-date=2019" % many,
            "patient=%s&onset-date:missing=true" % many,
            "patient=%s&onset-date=lt2008-03&category=problem-list-item" % many,
        ]
        out[(v, "AllergyIntolerance")] = [
            "patient=%s" % CAMILA, "patient=%s" % many,
            "patient=%s&clinical-status=%s" % (many, acs),
            "patient=%s&clinical-status=inactive,resolved" % many,
            "patient=%s&clinical-status:not=active" % many,
        ]
        cls = ("class=AMB", "class=http://hl7.org/fhir/v3/ActCode|IMP") if v == "STU3" else \
            ("class=5", "class=%s|13" % EPIC_CLASS)
        out[(v, "Encounter")] = [
            "patient=%s" % CAMILA, "patient=%s" % many, "subject=%s" % many,
            "patient=%s&status=finished" % many, "patient=%s&status=in-progress,planned" % many,
            "patient=%s&%s" % (many, cls[0]), "patient=%s&%s" % (many, cls[1]),
            "patient=%s&date=2020" % many, "patient=%s&date=ge2024-06" % many,
            "patient=%s&date=lt2000" % many, "patient=%s&date=sa2020" % many,
            "patient=%s&date=2019-05" % many, "patient=%s&date=ne2019" % many,
        ]
        out[(v, "Immunization")] = [
            "patient=%s" % CAMILA, "patient=%s" % many,
            "patient=%s&status=completed" % many,
            "patient=%s&status=%s" % (many, "entered-in-error" if v == "STU3" else
                                      "not-done,entered-in-error"),
            "patient=%s&date=ge2020" % many, "patient=%s&date=2021" % many,
            "patient=%s&date:missing=false&status:not=completed" % many,
        ]
        out[(v, "Procedure")] = [
            "patient=%s" % CAMILA, "patient=%s" % many, "subject=%s" % many,
            "patient=%s&status=completed" % many, "patient=%s&code=45378" % many,
            "patient=%s&code=http://www.ama-assn.org/go/cpt|93000" % many,
            "patient=%s&date=ge2018" % many, "patient=%s&date:missing=true" % many,
            "patient=%s&date=2015" % many,
        ]
    out[("STU3", "MedicationRequest")] = [
        "patient=%s" % CAMILA, "category=outpatient",
        "category=http://hl7.org/fhir/medication-request-category|inpatient",
        "intent=plan", "authoredon=ge2020", "authoredon:missing=true",
        "status=active&authoredon=lt2012",
    ]
    return out


def check_generated(data, d):
    """Shapes, counts and dates of the generated clinical types."""
    for v in ("STU3", "R4"):
        pats = data[v]["Patient"]
        for rt in CLINICAL + (("MedicationRequest",) if v == "STU3" else ()):
            res = data[v].get(rt, [])
            field = "patient" if rt in ("AllergyIntolerance", "Immunization") else "subject"
            per = {}
            for r in res:
                per[r[field]["reference"].split("/")[1]] = per.get(
                    r[field]["reference"].split("/")[1], 0) + 1
            ids = [p["id"] for p in pats]
            check("%s %s generated, 0-4 a patient" % (v, rt), res and all(
                0 <= per.get(i, 0) <= 4 for i in ids) and set(per) <= set(ids), (len(res), per))
            check("%s %s: every 20th patient has none, Camila some" % (v, rt),
                  all(per.get(ids[n], 0) == 0 for n in range(19, len(ids), 20))
                  and per.get(CAMILA, 0) >= 2, per.get(CAMILA))
            check("%s %s: some patients have none, some 4" % (v, rt),
                  sum(per.get(i, 0) == 0 for i in ids) > len(ids) // 10
                  and any(per.get(i) == 4 for i in ids))
            # every date-like value parses; period start <= end
            bad = []

            def walk(x, path):
                if isinstance(x, dict):
                    for k, y in x.items():
                        if k in ("start", "end") or k.endswith("DateTime") or k in (
                                "issued", "date", "recordedDate", "assertedDate", "authoredOn"):
                            if isinstance(y, str):
                                try:
                                    t_range(y)
                                except AssertionError:
                                    bad.append((path, k, y))
                        walk(y, path + "." + k)
                    if isinstance(x.get("start"), str) and isinstance(x.get("end"), str) \
                            and t_range(x["start"])[0] > t_range(x["end"])[0]:
                        bad.append((path, x))
                elif isinstance(x, list):
                    for y in x:
                        walk(y, path)
            for r in res:
                walk(r, rt)
            check("%s %s dates parse, periods ordered" % (v, rt), not bad, bad[:3])
        obs = data[v]["Observation"]
        kinds = {k for o in obs for k in o if k.startswith("value")}
        check("%s Observation value[x] variety" % v, kinds == {
            "valueQuantity", "valueString", "valueCodeableConcept"}
            and any(not any(k.startswith("value") for k in o) for o in obs), kinds)
        check("%s Observation categories" % v, {c["coding"][0]["code"] for o in obs
                                                for c in o["category"]} == {
            "vital-signs", "laboratory", "social-history"}
            and all(c["coding"][0]["system"] == OBS_CAT[v] for o in obs for c in o["category"]))
        check("%s Observation date-only effective" % v, any(
            len(o.get("effectiveDateTime", "")) == 10 for o in obs))
        cond = data[v]["Condition"]
        want_t = str if v == "STU3" else dict
        check("%s Condition clinicalStatus shape" % v, all(
            isinstance(c["clinicalStatus"], want_t) for c in cond if "clinicalStatus" in c)
            and any("clinicalStatus" not in c for c in cond)
            and all(("assertedDate" if v == "STU3" else "recordedDate") in c for c in cond)
            and any("onsetDateTime" not in c for c in cond)
            and any("abatementDateTime" in c for c in cond))
        al = data[v]["AllergyIntolerance"]
        check("%s AllergyIntolerance clinicalStatus shape" % v, all(
            isinstance(a["clinicalStatus"], want_t) for a in al)
            and any("reaction" in a for a in al))
        enc = data[v]["Encounter"]
        check("%s Encounter class" % v, all(
            e["class"]["system"] == (EPIC_CLASS if v == "R4" else "http://hl7.org/fhir/v3/ActCode")
            for e in enc) and any("end" not in e["period"] for e in enc)
            and any(("reasonCode" if v == "R4" else "reason") in e for e in enc))
        imm = data[v]["Immunization"]
        check("%s Immunization shape" % v, all(
            ("date" if v == "STU3" else "occurrenceDateTime") in i for i in imm)
            and (v == "R4" or all("notGiven" in i for i in imm)))
        pr = data[v]["Procedure"]
        check("%s Procedure performed[x]" % v, any("performedDateTime" in p for p in pr)
              and any("performedPeriod" in p for p in pr))
    mr = data["STU3"]["MedicationRequest"]
    check("STU3 MedicationRequest shape", all(isinstance(m["category"], dict)
                                              and "agent" in m["requester"] for m in mr))
    # --types
    gen = os.path.join(REPO, "test", "dataset", "generate.py")
    for types, want in (("none", ["MedicationStatement.ndjson", "Patient.ndjson"]),
                        ("Encounter,MedicationRequest", ["Encounter.ndjson",
                                                         "MedicationRequest.ndjson",
                                                         "MedicationStatement.ndjson",
                                                         "Patient.ndjson"])):
        out = os.path.join(d, "types-" + types.replace(",", "-"))
        r = sh(PY, gen, "--version", "STU3", "--patients", "60", "--statements-per-patient",
               "3", "--seed", "7", "--types", types, "--out", out)
        check("generate --types %s" % types, r.returncode == 0 and sorted(os.listdir(out)) ==
              want and all(open(os.path.join(out, f), "rb").read() == open(os.path.join(
                  d, "stu3", f), "rb").read() for f in want), (r.stderr, os.listdir(out)))
    r = sh(PY, gen, "--version", "R4", "--patients", "5", "--statements-per-patient", "1",
           "--types", "MedicationRequest", "--out", os.path.join(d, "types-bad"))
    check("generate --types: MedicationRequest is not a clinical type in R4",
          r.returncode != 0 and "unknown" in r.stderr, r.stderr)


def check_required(c):
    """Epic's required search parameters on the --dataset bases (59159)."""
    def is_59159(st, doc, expr):
        iss = (doc or {}).get("issue", [{}])[0] if isinstance(doc, dict) else {}
        return (st == 400 and iss.get("severity") == "fatal" and iss.get("code") == "required"
                and iss.get("details", {}).get("coding", [{}])[0].get("code") == "59159"
                and "missing a required parameter" in iss.get("diagnostics", "")
                and iss.get("expression") == [expr])
    for v in ("STU3", "R4"):
        for q, expr in (("Observation?category=laboratory", "patient"),
                        ("Observation?_count=5", "patient"),
                        ("Observation?patient=%s" % CAMILA, "category"),
                        ("Observation?patient=%s&date=ge2010" % CAMILA, "category"),
                        ("Observation?subject=%s&status=final" % CAMILA, "category"),
                        ("Condition?category=problem-list-item", "patient"),
                        ("Condition?clinical-status=active&_count=3", "patient"),
                        ("Condition?patient:missing=false", "patient"),
                        ("AllergyIntolerance?_count=10", "patient"),
                        ("AllergyIntolerance?clinical-status=active", "patient"),
                        ("Encounter?status=finished", "patient"),
                        ("Encounter?date=2020", "patient"),
                        ("Immunization", "patient"),
                        ("Immunization?status=completed", "patient"),
                        ("Procedure?code=45378", "patient")):
            st, hd, doc = c.get("/dataset/%s/%s" % (v, q))
            check("%s %s -> 400 59159 (%s)" % (v, q, expr), is_59159(st, doc, expr), (st, doc))
        obs_id = None
        for q, want in (("Observation?patient=%s&category=laboratory,vital-signs,"
                         "social-history" % CAMILA, 200),
                        ("Observation?patient=%s&code=8716-3" % CAMILA,
                         200 if v == "R4" else 400),
                        ("Encounter?subject=%s" % CAMILA, 200),
                        ("Procedure?subject=Patient/%s" % CAMILA, 200),
                        ("Immunization?subject=%s" % CAMILA, 400),   # no such parameter
                        ("MedicationRequest?_count=5", 200),
                        ("MedicationStatement?_count=5", 200 if v == "STU3" else 200),
                        ("Patient?_count=5", 200)):
            st, hd, doc = c.get("/dataset/%s/%s" % (v, q))
            check("%s %s -> %d" % (v, q, want), st == want, (st, doc))
            if q.startswith("Observation?patient") and st == 200:
                obs_id = (match_ids(doc) or [None])[0]
        st, hd, doc = c.get("/dataset/%s/Immunization?subject=%s" % (v, CAMILA))
        check("%s Immunization?subject -> unknown parameter 59100" % v,
              st == 400 and "59100" in json.dumps(doc), doc)
        for rt in CLINICAL:
            st, hd, doc = c.get("/dataset/%s/%s?_id=nope" % (v, rt))
            check("%s %s?_id alone is enough" % (v, rt), st == 200 and doc["total"] == 0,
                  (st, doc))
        st, hd, doc = c.get("/dataset/%s/Observation?_id=%s" % (v, obs_id))
        check("%s Observation?_id=%s" % (v, obs_id), st == 200 and match_ids(doc) == [obs_id])
        # paging keeps working for searches that carry the required parameters
        pats = ",".join(p for p in [CAMILA, "eq081-VQEgP8drUUqCWzHfw3",
                                    "egqBHVfQlt4Bw3XGXoxVxHg3", "eIXesllypH3M9tAA5WdJftQ3"])
        ids, pages, probs = search_all(c, v, "Condition", "patient=%s&_count=2" % pats)
        check("%s Condition paging with required parameters" % v, pages > 1 and not probs
              and len(ids) > 2, (pages, probs))


def check_named(c, d, port, ctl):
    """POST/DELETE /_sandbox/dataset and /dataset/NAME/."""
    base = "https://localhost:%d/dataset/" % port
    res = [
        {"resourceType": "Patient", "id": "pt1", "name": [{"family": "Adams"}],
         "gender": "female"},
        {"resourceType": "Patient", "id": "pt2", "name": [{"family": "Baker"}]},
        {"resourceType": "Patient", "name": [{"family": "Noid"}]},          # no id
        {"resourceType": "Observation", "id": "ob1", "status": "final",
         "code": {"text": "Weight"}, "subject": {"reference": "Patient/pt1"},
         "valueQuantity": {"value": 42, "unit": "kg"}},
        {"resourceType": "Observation", "id": "ob2", "status": "preliminary",
         "code": {"text": "Height"}},
        {"resourceType": "Organization", "id": "org1", "name": "Acme"},
        {"resourceType": "ViewDefinitionThing", "id": "x1"},
    ]

    def post(name, version, doc, extra=""):
        body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        st, hd, b = c.req("POST", "/_sandbox/dataset?name=%s&version=%s%s" % (name, version,
                                                                              extra),
                          body=body, headers={"Content-Type": "application/json"})
        try:
            return st, json.loads(b)
        except ValueError:
            return st, b

    st, doc = post("conf-1", "R4", res)
    check("POST named dataset", st == 200 and doc.get("counts") == {
        "Observation": 2, "Organization": 1, "Patient": 3, "ViewDefinitionThing": 1}
        and doc.get("version") == "R4" and doc.get("rules") == "none", (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/metadata", auth=False)
    check("named dataset metadata: its version", st == 200 and doc["fhirVersion"] == "4.0.1",
          (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/.well-known/smart-configuration", auth=False)
    check("named dataset smart-configuration", st == 200 and "token_endpoint" in doc)
    st, hd, body = c.req("GET", "/dataset/conf-1/Patient?_id=pt1")
    check("named dataset: no token -> 401", st == 401, st)
    st, hd, doc = c.get("/dataset/conf-1/Patient?_id=pt1")
    check("named dataset: Patient?_id", st == 200 and match_ids(doc) == ["pt1"]
          and doc["entry"][0]["fullUrl"] == base + "conf-1/Patient/pt1"
          and doc["entry"][0]["resource"] == res[0], (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/Patient?family=bak")
    check("named dataset: Patient's parameters", st == 200 and match_ids(doc) == ["pt2"])
    ids, pages, probs = search_all(c, "conf-1", "Patient", "_count=1")
    check("named dataset: paging, resource without id served as given",
          ids == ["anon-1", "pt1", "pt2"] and pages == 3 and not probs, (ids, pages, probs))
    st, hd, doc = c.get("/dataset/conf-1/Patient/anon-1")
    check("named dataset: read of the resource without id", st == 200 and doc == res[2], doc)
    st, hd, doc = c.get("/dataset/conf-1/Observation?_count=10")
    check("named dataset: Observation without patient/category (no Epic rules)",
          st == 200 and match_ids(doc) == ["ob1", "ob2"], (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/Observation?patient=pt1&status=final")
    check("named dataset: Observation parameters", st == 200 and match_ids(doc) == ["ob1"])
    for rt, rid in (("Organization", "org1"), ("ViewDefinitionThing", "x1")):
        st, hd, doc = c.get("/dataset/conf-1/%s?_id=%s&_count=5" % (rt, rid))
        check("named dataset: %s?_id (type without parameters)" % rt,
              st == 200 and match_ids(doc) == [rid], (st, doc))
        st, hd, doc = c.get("/dataset/conf-1/%s" % rt)
        check("named dataset: %s without parameters" % rt, st == 200 and match_ids(doc) ==
              [rid], (st, doc))
        st, hd, doc = c.get("/dataset/conf-1/%s/%s" % (rt, rid))
        check("named dataset: read %s/%s" % (rt, rid), st == 200 and doc["id"] == rid)
    st, hd, doc = c.get("/dataset/conf-1/Organization?name=acme")
    check("named dataset: unknown parameter for a type without parameters -> 400",
          st == 400 and doc["issue"][0]["code"] == "not-supported", (st, doc))
    for rt in ("Specimen", "Coverage", "MedicationStatement", "Condition"):
        st, hd, doc = c.get("/dataset/conf-1/%s?_count=5" % rt)
        check("named dataset: none of %s -> empty searchset" % rt, st == 200
              and doc["resourceType"] == "Bundle" and doc["type"] == "searchset"
              and doc["total"] == 0 and match_ids(doc) == [], (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/Specimen?_id=a,b")
    check("named dataset: Specimen?_id -> empty", st == 200 and doc["total"] == 0, (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/specimen")
    check("named dataset: bad type name -> 404", st == 404, st)
    st, hd, doc = c.get("/dataset/conf-1/Patient?_count=1")
    nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"][0]
    check("named dataset: next link under its base", nxt.startswith(base + "conf-1/Patient?"),
          nxt)
    # raw log entries name the dataset
    raw = json.loads(c.req("GET", "/_sandbox/log")[2])
    check("log entries of a named dataset", raw[-1].get("dataset") == "conf-1"
          and raw[-1]["fhir_version"] == "R4" and raw[-1]["base"] == "dataset", raw[-1])

    # reload (a Bundle) replaces
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "pt9", "name": [{"family": "Zed"}]}},
        {"resource": {"resourceType": "Encounter", "id": "en1", "status": "finished",
                      "subject": {"reference": "Patient/pt9"}}}]}
    st, doc = post("conf-1", "STU3", bundle)
    check("reload named dataset with a Bundle", st == 200 and doc["counts"] == {
        "Encounter": 1, "Patient": 1}, (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/Patient?_id=pt1,pt9")
    check("reload replaces the resources", st == 200 and match_ids(doc) == ["pt9"], doc)
    st, hd, doc = c.get("/dataset/conf-1/metadata", auth=False)
    check("reload changes the version", doc["fhirVersion"] == "3.0.2", doc.get("fhirVersion"))
    u = urllib.parse.urlsplit(nxt)
    st, hd, doc = c.get(u.path + "?" + u.query)
    check("next link of the replaced dataset -> 400 4113", st == 400 and "4113" in
          json.dumps(doc), (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/Encounter?status=finished")
    check("named dataset: Encounter search without patient (no Epic rules)",
          st == 200 and match_ids(doc) == ["en1"], (st, doc))

    # rules=epic
    st, doc = post("conf_2", "R4", res[3:], "&rules=epic")
    check("POST with rules=epic", st == 200 and doc["rules"] == "epic", (st, doc))
    st, hd, doc = c.get("/dataset/conf_2/Observation?_count=5")
    check("rules=epic: Observation without patient -> 400 59159", st == 400
          and "59159" in json.dumps(doc), (st, doc))
    st, hd, doc = c.get("/dataset/conf_2/Observation?patient=pt1&code=Weight")
    check("rules=epic: R4 Observation with patient and code", st == 200, (st, doc))

    # bad requests
    for q, body, why in (("name=STU3&version=STU3", res, "name is a FHIR version"),
                         ("name=R4&version=R4", res, "name is a FHIR version"),
                         ("name=a%20b&version=R4", res, "bad name"),
                         ("name=&version=R4", res, "empty name"),
                         ("version=R4", res, "no name"),
                         ("name=x&version=DSTU2", res, "bad version"),
                         ("name=x", res, "no version"),
                         ("name=x&version=R4&rules=strict", res, "bad rules"),
                         ("name=x&version=R4", b"{not json", "not JSON"),
                         ("name=x&version=R4", b"42", "not an array"),
                         ("name=x&version=R4", [{"id": "a"}], "no resourceType"),
                         ("name=x&version=R4", [{"resourceType": "patient", "id": "a"}],
                          "bad resourceType"),
                         ("name=x&version=R4", [res[0], res[0]], "duplicate id")):
        b = body if isinstance(body, bytes) else json.dumps(body).encode()
        st, hd, out = c.req("POST", "/_sandbox/dataset?" + q, body=b,
                            headers={"Content-Type": "application/json"})
        check("POST /_sandbox/dataset %s -> 400" % why, st == 400 and b"error" in out,
              (st, out))
    st, hd, doc = c.get("/dataset/x/Patient")
    check("failed loads register nothing", st == 404, st)
    st, hd, doc = c.get("/dataset/STU3/Patient/" + CAMILA)
    check("--dataset STU3 unchanged by named datasets", st == 200 and doc["id"] == CAMILA)

    # ctl
    path = os.path.join(d, "named.json")
    with open(path, "w") as f:
        json.dump(res[:2], f)
    r = ctl("dataset", "ctl-ds", "STU3", path)
    check("ctl dataset NAME VERSION FILE", r.returncode == 0 and r.stdout == "", r)
    st, hd, doc = c.get("/dataset/ctl-ds/Patient?_count=10")
    check("ctl-loaded dataset served", st == 200 and match_ids(doc) == ["pt1", "pt2"], doc)
    r = ctl("datasets")
    check("ctl datasets", r.returncode == 0 and r.stdout == (
        "R4 R4 epic %s\n" % " ".join("%s=%d" % kv for kv in sorted(json.loads(c.req(
            "GET", "/_sandbox/datasets")[2])["R4"]["counts"].items()))
        + "STU3 STU3 epic %s\n" % " ".join("%s=%d" % kv for kv in sorted(json.loads(c.req(
            "GET", "/_sandbox/datasets")[2])["STU3"]["counts"].items()))
        + "conf-1 STU3 none Encounter=1 Patient=1\n"
        + "conf_2 R4 epic Observation=2 Organization=1 ViewDefinitionThing=1\n"
        + "ctl-ds STU3 none Patient=2\n"), r.stdout)
    r = ctl("dataset", "STU3", "STU3", path)
    check("ctl dataset refuses a version name", r.returncode != 0 and "400" in r.stderr,
          r.stderr)
    r = ctl("dataset", "y", "R4", os.path.join(d, "nope.json"))
    check("ctl dataset: missing file", r.returncode != 0, r)
    check("ctl expire-pages covers named datasets", ctl("expire-pages").returncode == 0)

    # delete
    st, hd, body = c.req("DELETE", "/_sandbox/dataset?name=conf-1")
    check("DELETE named dataset", st == 200, (st, body))
    st, hd, doc = c.get("/dataset/conf-1/Patient?_id=pt9")
    check("deleted dataset -> 404", st == 404 and doc["resourceType"] == "OperationOutcome"
          and "conf-1" in doc["issue"][0]["diagnostics"], (st, doc))
    st, hd, doc = c.get("/dataset/conf-1/metadata", auth=False)
    check("deleted dataset metadata -> 404", st == 404, st)
    st, hd, body = c.req("DELETE", "/_sandbox/dataset?name=conf-1")
    check("DELETE unknown dataset -> 404", st == 404, (st, body))
    st, hd, body = c.req("DELETE", "/_sandbox/dataset?name=STU3")
    check("DELETE of a --dataset base refused", st == 400, (st, body))
    check("ctl dataset-delete", ctl("dataset-delete", "ctl-ds").returncode == 0
          and ctl("dataset-delete", "conf_2").returncode == 0)
    r = ctl("dataset-delete", "ctl-ds")
    check("ctl dataset-delete unknown fails", r.returncode != 0 and "404" in r.stderr, r.stderr)
    r = ctl("datasets")
    check("ctl datasets after deletes", r.returncode == 0 and [
        line.split()[0] for line in r.stdout.splitlines()] == ["R4", "STU3"], r.stdout)


# --------------------------------------------------------------------------------------
# HTTP client
# --------------------------------------------------------------------------------------

class Client:
    def __init__(self, state_dir, port):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=os.path.join(state_dir, "ca.crt"))
        self.conn = None
        self.token = None

    def req(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("localhost", self.port, context=self.ctx,
                                                        timeout=30)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, {k.lower(): v for k, v in r.getheaders()}, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def get(self, path, auth=True):
        h = {"Accept": "application/fhir+json"}
        if auth:
            h["Authorization"] = "Bearer " + self.token
        st, hd, body = self.req("GET", path, headers=h)
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = body
        return st, hd, doc


def match_ids(doc):
    return [e["resource"].get("id") or e["fullUrl"].rsplit("/", 1)[1]   # named: may lack id
            for e in doc.get("entry", []) if e["search"]["mode"] == "match"]


def search_all(c, version, rtype, query):
    """Follow next links; returns (ids, pages, problems)."""
    problems = []
    st, hd, doc = c.get("/dataset/%s/%s?%s" % (version, rtype, query))
    if st != 200:
        return None, 0, ["status %s: %s" % (st, doc)]
    ids, pages = [], 0
    while True:
        pages += 1
        page = match_ids(doc)
        if doc.get("total") != len(page):
            problems.append("total %s != %d entries" % (doc.get("total"), len(page)))
        prefix = "https://localhost:%d/dataset/%s/%s/" % (c.port, version, rtype)
        for e in doc.get("entry", []):
            if e["search"]["mode"] != "match":
                continue
            rid = e["resource"].get("id")   # none: a named dataset's anon-N
            if not (e["fullUrl"] == prefix + rid if rid else
                    re.fullmatch(re.escape(prefix) + r"anon-\d+", e["fullUrl"])):
                problems.append("bad fullUrl %s" % e["fullUrl"])
                break
        ids.extend(page)
        nxt = [l["url"] for l in doc.get("link", []) if l["relation"] == "next"]
        if not nxt:
            break
        u = urllib.parse.urlsplit(nxt[0])
        if (u.scheme, u.netloc) != ("https", "localhost:%d" % c.port) or \
                not u.path == "/dataset/%s/%s" % (version, rtype) or \
                not u.query.startswith("_getpages="):
            problems.append("bad next link %s" % nxt[0])
            break
        st, hd, doc = c.get(u.path + "?" + u.query)
        if st != 200:
            problems.append("next page status %s: %s" % (st, doc))
            break
        if pages > 2000:
            problems.append("too many pages")
            break
    if len(set(ids)) != len(ids):
        problems.append("duplicates")
    if ids != sorted(ids):
        problems.append("not sorted by id")
    return ids, pages, problems


# --------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------

def assertion(key_pem, aud):
    now = int(time.time())
    return jwt.encode({"iss": "test-client", "sub": "test-client", "aud": aud, "exp": now + 240,
                       "jti": str(uuid.uuid4())}, key_pem, algorithm="RS384",
                      headers={"typ": "JWT", "kid": "rsa-1"})


def run_checks(d, port, key, data, env):
    c = Client(d, port)
    aud = "https://localhost:%d/oauth2/token" % port
    ctl = lambda *a: sh(PY, os.path.join(HERE, "ctl.py"), *a, env=env)  # noqa: E731

    # -- no-auth endpoints, token, bearer --------------------------------------------
    for v, fv in (("STU3", "3.0.2"), ("R4", "4.0.1")):
        st, hd, doc = c.get("/dataset/%s/metadata" % v, auth=False)
        check("metadata %s without auth" % v, st == 200 and doc["fhirVersion"] == fv, (st, doc))
        st, hd, doc = c.get("/dataset/%s/.well-known/smart-configuration" % v, auth=False)
        check("smart-configuration %s" % v, st == 200 and doc["token_endpoint"] == aud, (st, doc))
    st, hd, doc = c.get("/dataset/DSTU2/metadata", auth=False)
    check("no DSTU2 dataset -> 404", st == 404, st)
    st, hd, body = c.req("POST", "/oauth2/token", urllib.parse.urlencode({
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(key, aud)}),
        {"Content-Type": "application/x-www-form-urlencoded"})
    check("token", st == 200, (st, body))
    c.token = json.loads(body)["access_token"]
    st, hd, body = c.req("GET", "/dataset/STU3/Patient?family=lo")
    check("no token -> 401", st == 401 and 'invalid_token' in hd.get("www-authenticate", ""), st)
    st, hd, body = c.req("GET", "/dataset/STU3/Patient?family=lo",
                         headers={"Authorization": "Bearer nope"})
    check("bad token -> 401", st == 401, st)

    # -- reads -----------------------------------------------------------------------
    st, hd, doc = c.get("/dataset/STU3/Patient/" + CAMILA)
    want = [r for r in data["STU3"]["Patient"] if r["id"] == CAMILA][0]
    check("read Patient", st == 200 and doc == want, (st, str(doc)[:200]))
    check("read headers", hd.get("content-type") == "application/fhir+json; charset=utf-8"
          and hd.get("content-length") == str(len(json.dumps(doc, ensure_ascii=False,
                                                             separators=(",", ":")).encode())),
          hd)
    for rid, rt in (("eComma", "Patient"), ("edates", "Patient"), ("dK", "MedicationStatement")):
        st, hd, doc = c.get("/dataset/STU3/%s/%s" % (rt, rid))
        check("read %s/%s (json file formats)" % (rt, rid), st == 200 and doc["id"] == rid, st)
    st, hd, doc = c.get("/dataset/STU3/Patient/nope")
    check("read unknown -> 404 OperationOutcome", st == 404
          and doc["resourceType"] == "OperationOutcome", (st, doc))
    st, hd, doc = c.get("/dataset/STU3/Coverage?patient=x")
    check("unsupported type -> 404", st == 404 and doc["resourceType"] == "OperationOutcome",
          (st, doc))

    # -- hand-computed date cases ----------------------------------------------------
    for q, want in DATE_EXPECT:
        query = "patient=edates&effective=" + urllib.parse.quote(q)
        ids, _, probs = search_all(c, "STU3", "MedicationStatement", query)
        want = sorted(want.split())
        check("date hand case effective=%s" % q, ids == want and not probs, (ids, want, probs))
        bf = [i for i in brute(data["STU3"], "MedicationStatement", query, "STU3")]
        check("brute force agrees with hand case %s" % q, bf == want, (bf, want))
    for q, want in (("effective:missing=true", ["dI", "dRefAbs"]),
                    ("effective:missing=false", sorted(set(DATE_CASES) - {"dI"})),
                    ("effective=ge2020-03-10&effective=le2020-03-20",
                     "dA dB dC dD dE dF dG dJ dK".split())):
        ids, _, probs = search_all(c, "STU3", "MedicationStatement", "patient=edates&" + q)
        check("date case %s" % q, ids == want and not probs, (ids, want, probs))

    # -- reference forms --------------------------------------------------------------
    for q, want in (("patient=edates", sorted(DATE_CASES) + ["dRefAbs"]),
                    ("patient=Patient/edates", sorted(DATE_CASES) + ["dRefAbs"]),
                    ("patient=https://localhost/x/Patient/edates/_history/9",
                     sorted(DATE_CASES) + ["dRefAbs"]),
                    ("subject=edates", list(DATE_CASES) + ["dRefAbs", "dRefGroup"]),
                    ("subject=Group/edates", ["dRefGroup"]),
                    ("subject:Patient=edates", sorted(DATE_CASES) + ["dRefAbs"]),
                    ("patient=Group/edates", []),
                    ("patient=nobody", [])):
        ids, _, probs = search_all(c, "STU3", "MedicationStatement", q)
        check("reference %s" % q, ids == sorted(want) and not probs, (ids, sorted(want), probs))

    # -- escaping and identifier forms (hand cases) -----------------------------------
    for q, want in (("family=doe%5C,roe", ["eComma"]),       # doe\,roe
                    ("family=doe,roe", ["eComma", "eDoe", "eRoe"]),
                    ("family:exact=Doe%5C,Roe", ["eComma"]),
                    ("given=pipe%5C%7Cdollar%5C$", ["eComma"]),
                    ("identifier=urn:test%7CA%5C%7CB", ["eComma"]),
                    ("identifier=%7CX%5C$Y%5C,Z", ["eComma"]),
                    ("identifier=X%5C$Y%5C,Z", ["eComma"]),
                    ("identifier=urn:test%7Cback%5C%5Cslash", ["eComma"]),
                    ("identifier=urn:test%7C", ["eComma"]),
                    ("identifier=urn:test%7CX$Y", []),
                    ("given=ro", ["eDoe"]),
                    ("given:exact=Ro", []),
                    ("name=sir", ["eRoe"]),
                    ("_id=eDoe,eRoe,nope", ["eDoe", "eRoe"]),
                    ("telecom=roe@example.com", []),
                    ("telecom=ROE@example.com", ["eDoe"]),
                    ("telecom=email%7CROE@example.com", ["eDoe"]),
                    ("active=FALSE&_id=eDoe,eRoe", ["eDoe"]),
                    ("active:missing=true&_id=eDoe,eRoe", ["eRoe"]),
                    ("family=doe&active:not=true", ["eDoe"]),
                    ("family=M%C3%9CLLER-L%C3%BC", []),
                    ):
        ids, _, probs = search_all(c, "STU3", "Patient", q)
        bf = brute(data["STU3"], "Patient", q, "STU3")
        check("hand case Patient?%s" % urllib.parse.unquote(q),
              ids == sorted(want) and not probs, (ids, want, probs))
        check("brute force agrees with hand case Patient?%s" % urllib.parse.unquote(q),
              bf == sorted(want), (bf, want))

    # -- brute-force equivalence over the generated data ------------------------------
    pats = data["STU3"]["Patient"]
    some = pats[10]
    mrn = [i["value"] for i in some["identifier"] if i.get("system") == MRN_SYSTEM][0]
    phone = [t["value"] for t in pats[0]["telecom"]][0]
    queries = {
        ("STU3", "Patient"): [
            "family=lo", "family=LO", "family=mül", "family=muller", "family=Müller",
            "family:exact=Müller", "family:exact=müller", "family:contains=son",
            "family:contains=ÜLL", "family=o'", "family=van der", "family=st.",
            "given=jo", "given=an", "given=Mary Ann", "given=é", "given=e",
            "name=mary", "name=camila maria", "name=lopez,lin", "name=jr",
            "birthdate=1955", "birthdate=1987-09", "birthdate=1987-09-12",
            "birthdate=ge1990-01-01", "birthdate=lt1950", "birthdate=sa1987-09",
            "birthdate=eb1955", "birthdate=ne1987-09-12", "birthdate=le1960",
            "birthdate=gt1987-09-12T10:00:00Z", "birthdate=1987-09-12T10:00:00Z",
            "birthdate=ge1980&birthdate=lt1990", "birthdate=1955,1987",
            "gender=female", "gender=other,unknown", "gender:not=male", "gender=Female",
            "identifier=%s|%s" % (MRN_SYSTEM, mrn), "identifier=%s" % mrn,
            "identifier=|%s" % mrn, "identifier=%s|" % MRN_SYSTEM,
            "identifier:not=%s|" % MRN_SYSTEM,
            "identifier=urn:oid:1.2.840.114350.1.13.0.1.7.3.878082.110|",
            "telecom=%s" % phone, "telecom=phone|%s" % phone, "telecom=email|%s" % phone,
            "telecom:missing=true", "address-city=san", "address-city=SAINT,st.",
            "address-state=tx", "address-postalcode=750", "address=rd",
            "address=españ", "address=espan", "address=united", "address=us",
            "active=true", "active=false", "active:missing=true", "active:not=true",
            "_id=%s,%s" % (CAMILA, pats[20]["id"]), "_id:not=%s" % CAMILA,
            "family=lo&given=ca", "family=lo&gender=female&birthdate=1987-09-12",
            "given=a&given=n", "family:missing=false",
        ],
        ("STU3", "MedicationStatement"): [
            "patient=%s" % CAMILA, "patient=Patient/%s" % pats[30]["id"],
            "patient=%s,%s" % (pats[7]["id"], pats[8]["id"]), "subject=%s" % pats[9]["id"],
            "status=active", "status=active,completed", "status:not=active",
            "status=entered-in-error", "category=outpatient",
            "category=%s|inpatient" % STU3_CAT, "category=wrong|inpatient",
            "category=%s|" % STU3_CAT, "category:not=outpatient,inpatient",
            "effective=2020", "effective=ge2020", "effective=lt2010-06",
            "effective=sa2018-05-01", "effective=eb2015", "effective=ne2019",
            "effective=gt2024-06-30T12:00:00+02:00", "effective=le2012-02-29",
            "effective:missing=true", "patient=%s&status=active,on-hold" % CAMILA,
            "effective=ge2015&effective=lt2016&category=outpatient",
        ],
        ("R4", "Patient"): [
            "phone=%s" % phone, "email=camila.lopez@example.com", "telecom=%s" % phone,
            "phone=phone|%s" % phone, "phone=email|camila.lopez@example.com",
            "family=lo", "birthdate=1987-09-12", "gender=female&given=ca",
        ],
        ("R4", "MedicationRequest"): [
            "patient=%s" % CAMILA, "intent=order", "intent:not=order", "status=active",
            "category=discharge", "category=http://terminology.hl7.org/CodeSystem/"
            "medicationrequest-category|community", "authoredon=2020",
            "authoredon=ge2020-06-15", "authoredon=lt2010", "authoredon:missing=true",
            "authoredon=sa2023-12-31T23:59:59Z", "authoredon=eb2006-01",
        ],
    }
    queries.update(clinical_queries(data))
    nonempty = 0
    for (v, rt), qs in queries.items():
        for q in qs:
            qq = "&".join("%s=%s" % (urllib.parse.quote(k, safe=":"),
                                     urllib.parse.quote(val, safe=",|:/"))
                          for k, _, val in (p.partition("=") for p in q.split("&")))
            ids, _, probs = search_all(c, v, rt, qq + "&_count=50")
            bf = brute(data[v], rt, qq, v)
            nonempty += bool(bf)
            check("brute force %s %s?%s (%d)" % (v, rt, q, len(bf)),
                  ids == bf and not probs, (ids and ids[:5], bf[:5], len(ids or []), len(bf),
                                            probs))
    check("most brute-force queries have results", nonempty > 200, nonempty)

    # -- Epic's required parameters ----------------------------------------------------
    check_required(c)

    # -- paging ----------------------------------------------------------------------
    all_ms = sorted(r["id"] for r in data["STU3"]["MedicationStatement"])
    ids, pages, probs = search_all(c, "STU3", "MedicationStatement", "_count=7")
    check("paging _count=7: all pages = full result", ids == all_ms and not probs
          and pages == (len(all_ms) + 6) // 7, (len(ids or []), len(all_ms), pages, probs))
    ids, pages, probs = search_all(c, "STU3", "MedicationStatement", "status=active&_count=1")
    bf = brute(data["STU3"], "MedicationStatement", "status=active", "STU3")
    check("paging _count=1", ids == bf and pages == len(bf) and not probs, (pages, probs))
    st, hd, doc = c.get("/dataset/STU3/MedicationStatement")
    check("default _count is 100", st == 200 and doc["total"] == 100
          and any(l["relation"] == "next" for l in doc["link"]), doc.get("total"))
    self_link = [l["url"] for l in doc["link"] if l["relation"] == "self"]
    check("self link", self_link == ["https://localhost:%d/dataset/STU3/MedicationStatement"
                                     % port], self_link)
    all_mr = sorted(r["id"] for r in data["R4"]["MedicationRequest"])
    st, hd, doc = c.get("/dataset/R4/MedicationRequest?_count=5000")
    check("_count clamped to 1000", st == 200 and doc["total"] == 1000
          and match_ids(doc) == all_mr[:1000] and len(all_mr) > 1000, (st, doc.get("total")))
    ids, pages, probs = search_all(c, "R4", "MedicationRequest", "_count=1000")
    check("R4 paging 1000", ids == all_mr and pages == 2 and not probs, (pages, probs))
    st, hd, doc = c.get("/dataset/STU3/Patient?family=zzzz")
    check("empty result: total 0 + 4101 outcome", st == 200 and doc["total"] == 0
          and match_ids(doc) == [] and doc["entry"][0]["search"]["mode"] == "outcome"
          and "4101" in json.dumps(doc["entry"][0]), doc)
    st, hd, doc = c.get("/dataset/STU3/MedicationStatement?_count=3")
    nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"][0]
    u = urllib.parse.urlsplit(nxt)
    st2, _, doc2 = c.get(u.path + "?" + u.query)
    st3, _, doc3 = c.get(u.path + "?" + u.query)
    check("a next link can be fetched twice", st2 == st3 == 200
          and match_ids(doc2) == match_ids(doc3) == all_ms[3:6], (st2, st3))
    check("ctl expire-pages", ctl("expire-pages").returncode == 0)
    st, hd, doc = c.get(u.path + "?" + u.query)
    check("expired next link -> 400 4113", st == 400 and "4113" in json.dumps(doc), (st, doc))
    st, hd, doc = c.get("/dataset/STU3/MedicationStatement?_getpages=bogus")
    check("unknown _getpages -> 400 4113", st == 400 and "4113" in json.dumps(doc), (st, doc))

    # -- errors ----------------------------------------------------------------------
    for q, code, part in (("Patient?foo=1", "not-supported", "foo"),
                          ("Patient?family=lo&bogus-param=x", "not-supported", "bogus-param"),
                          ("Patient?phone=469-555-5555", "not-supported", "phone"),  # STU3
                          ("Patient?family=", "invalid", "family"),
                          ("Patient?family=a,", "invalid", "family"),
                          ("Patient?family:fuzzy=a", "not-supported", "fuzzy"),
                          ("Patient?gender:exact=male", "not-supported", "exact"),
                          ("Patient?birthdate=1987-13", "invalid", "birthdate"),
                          ("Patient?birthdate=xx1987", "invalid", "birthdate"),
                          ("Patient?birthdate=ap1987", "not-supported", "ap"),
                          ("Patient?active=yes", "invalid", "active"),
                          ("Patient?active:missing=maybe", "invalid", "missing"),
                          ("Patient?_count=abc", "invalid", "_count"),
                          ("Patient?_count=0", "invalid", "_count"),
                          ("Patient?_count=5&_count=6", "invalid", "_count"),
                          ("MedicationStatement?authoredon=2020", "not-supported", "authoredon")):
        st, hd, doc = c.get("/dataset/STU3/" + q)
        iss = (doc or {}).get("issue", [{}])[0] if isinstance(doc, dict) else {}
        check("error %s -> 400 %s" % (q, code), st == 400 and iss.get("severity") == "error"
              and iss.get("code") == code and part in iss.get("diagnostics", ""), (st, doc))
    st, hd, doc = c.get("/dataset/STU3/Patient?_count=2")
    nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"][0]
    u = urllib.parse.urlsplit(nxt)
    st, hd, doc = c.get(u.path + "?" + u.query + "&family=x")
    check("_getpages with other parameters -> 400", st == 400, st)

    # -- request log -----------------------------------------------------------------
    check("ctl reset", ctl("reset").returncode == 0)
    c.get("/dataset/STU3/Patient?family=lo%C3%BC&_count=2")
    st, hd, doc = c.get("/dataset/STU3/Patient?gender=female&_count=2")
    nxt = [l["url"] for l in doc["link"] if l["relation"] == "next"][0]
    u = urllib.parse.urlsplit(nxt)
    c.get(u.path + "?" + u.query)
    c.get("/dataset/R4/Patient/" + CAMILA)
    c.get("/dataset/STU3/Patient?nope=1")
    r = ctl("log")
    want = ("fhir GET Patient?family=loü&_count=2 200\n"
            "fhir GET Patient?gender=female&_count=2 200\n"
            "fhir GET Patient?_getpages=* 200\n"
            "fhir GET Patient/%s 200\n"
            "fhir GET Patient?nope=1 400\n" % CAMILA)
    check("ctl log for dataset requests", r.stdout == want, repr(r.stdout))
    check("ctl count fhir Patient", ctl("count", "fhir", "Patient").stdout == "5\n")
    raw = json.loads(c.req("GET", "/_sandbox/log")[2])
    check("log entries carry base=dataset and version", all(
        e.get("base") == "dataset" for e in raw) and raw[3]["fhir_version"] == "R4", raw[:1])
    # recorded bases are unchanged
    st, hd, body = c.req("GET", "/api/FHIR/STU3/Patient/" + CAMILA,
                         headers={"Authorization": "Bearer " + c.token})
    raw = json.loads(c.req("GET", "/_sandbox/log")[2])
    check("recorded base still served and logged without base field",
          st == 200 and "base" not in raw[-1], (st, raw[-1]))

    # -- latency ---------------------------------------------------------------------
    check("ctl latency 300", ctl("latency", "300").returncode == 0)
    t0 = time.time()
    st, _, _ = c.get("/dataset/STU3/Patient/" + CAMILA)
    dt = time.time() - t0
    check("latency applied", st == 200 and dt >= 0.3, dt)
    ctl("latency", "0")
    t0 = time.time()
    c.get("/dataset/STU3/Patient/" + CAMILA)
    dt = time.time() - t0
    check("latency off", dt < 0.25, dt)
    st, _, body = c.req("POST", "/_sandbox/latency?ms=-1")
    check("latency rejects negative", st == 400, st)

    # -- named ad-hoc datasets ---------------------------------------------------------
    check_named(c, d, port, ctl)


def main():
    global VERBOSE
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="leave the temp dir in place")
    ap.add_argument("-v", action="store_true", help="print passing checks too")
    a = ap.parse_args()
    VERBOSE = a.v
    t_start = time.time()
    d = tempfile.mkdtemp(prefix="epic_dataset_test_")
    os.chmod(d, 0o755)
    stu3, r4 = os.path.join(d, "stu3"), os.path.join(d, "r4")
    gen = os.path.join(REPO, "test", "dataset", "generate.py")
    for v, out, n in (("STU3", stu3, 60), ("R4", r4, 400)):
        r = sh(PY, gen, "--version", v, "--patients", str(n), "--statements-per-patient", "3",
               "--seed", "7", "--out", out)
        if r.returncode != 0:
            print(r.stderr)
            sys.exit(1)
    extra_resources(stu3)
    # determinism of the generator
    r = sh(PY, gen, "--version", "STU3", "--patients", "60", "--statements-per-patient", "3",
           "--seed", "7", "--out", os.path.join(d, "again"))
    check("generator is deterministic", all(
        open(os.path.join(stu3, f), "rb").read() == open(os.path.join(d, "again", f), "rb").read()
        for f in os.listdir(os.path.join(d, "again"))) and len(os.listdir(os.path.join(
            d, "again"))) == 9)
    data = {"STU3": load_dir(stu3), "R4": load_dir(r4)}
    check_generated(data, d)
    sizes = [len(json.dumps(p, ensure_ascii=False, separators=(",", ":")))
             for p in data["STU3"]["Patient"]]
    check("generated patients ~2.5 KB", 2000 < sum(sizes) / len(sizes) < 3500,
          sum(sizes) / len(sizes))

    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", d + "/rsa.key"], check=True, stderr=subprocess.DEVNULL)
    subprocess.run(["openssl", "pkey", "-in", d + "/rsa.key", "-pubout", "-out", d + "/rsa.pub"],
                   check=True)
    json.dump({"clients": [{"client_id": "test-client", "keys": [
        {"kid": "rsa-1", "alg": "RS384", "public_key_file": d + "/rsa.pub"}]}]},
        open(d + "/clients.json", "w"))
    key = open(d + "/rsa.key").read()
    r = sh(os.path.join(HERE, "start.sh"), d, "--dataset", "STU3=" + stu3, "--dataset",
           "R4=" + r4)
    if r.returncode != 0:
        print(r.stderr)
        sys.exit(1)
    port = int(r.stdout.strip())
    print("sandbox on port %d, state dir %s" % (port, d))
    env = dict(os.environ, EPIC_SANDBOX_DIR=d)
    try:
        run_checks(d, port, key, data, env)
    finally:
        sh(os.path.join(HERE, "stop.sh"), d)
    log = open(d + "/sandbox.log").read()
    check("sandbox.log reports the datasets", "dataset STU3 from" in log and "dataset R4" in log)
    check("no load warnings", "not indexed" not in log, log[-2000:])
    # bad --dataset arguments are rejected
    r = sh(PY, os.path.join(HERE, "sandbox.py"), "--state-dir", d + "/x", "--clients",
           d + "/clients.json", "--dataset", "DSTU2=" + stu3)
    check("--dataset DSTU2 rejected", r.returncode != 0 and "VERSION" in r.stderr, r.stderr)
    if not a.keep:
        subprocess.run(["rm", "-rf", d])
    print("%.1f s" % (time.time() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
