#!/usr/bin/env python3
"""The truth for the Medplum equivalence tier, computed from the seed data alone.

Reads the seed (a JSON array of R4 resources, see generate.py) and writes SQL
that fills plain tables truth.patients, truth.medication_requests,
truth.conditions, truth.observations and truth.encounters (created by the
runner LIKE the built-in foreign tables, so the column types are the same) with
each built-in column computed here in Python, from the column definitions in
the README / views/*.json, without epic_fdw's FHIRPath engine, its converter or
any server.  The SQL queries then run unchanged over the truth tables.

Conventions (README "Dates"): a dateTime without an offset is UTC, a date in a
timestamptz column is midnight UTC, partial dates (YYYY, YYYY-MM) are NULL;
a view collection with no items is an empty array.  A key for a column the
tables do not have is ignored (jsonb_populate_recordset).

Usage: truth.py SEED.json MRN_SYSTEM > truth.sql
"""
import json
import re
import sys

FULL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?$")


def first(*seqs):
    """FHIRPath (a | b | ...).first(): the first item of the first non-empty one."""
    for s in seqs:
        for v in s:
            if v is not None:
                return v
    return None


def ts(v):
    """A FHIR date/dateTime/instant as text PostgreSQL reads as timestamptz, or None."""
    if v is None:
        return None
    if FULL_DATE.match(v):
        return v + " 00:00:00+00"
    if DATETIME.match(v):
        if v.endswith("Z") or re.search(r"[+-]\d{2}:\d{2}$", v):
            return v
        return v + "+00"
    return None                                 # partial: NULL


def date(v):
    return v if v is not None and FULL_DATE.match(v) else None


def ref_key(ref, rtype):
    """getReferenceKey(Patient) of a Reference."""
    r = (ref or {}).get("reference") or ""
    parts = r.split("/")
    if len(parts) >= 2 and parts[-2] == rtype:
        return parts[-1]
    return None


def codes(concept):
    return [c.get("code") for c in (concept or {}).get("coding", [])]


def displays(concept):
    return [c.get("display") for c in (concept or {}).get("coding", [])]


def patient_row(p, mrn_system):
    names = p.get("name", [])
    official = [n for n in names if n.get("use") == "official"]
    chosen = official[0] if official else (names[0] if names else None)
    family = first([official[0].get("family")] if official else [],
                   [names[0].get("family")] if names else [])
    if official and official[0].get("given"):
        given_list = official[0]["given"]
    else:
        given_list = names[0].get("given", []) if names else []
    given = " ".join(given_list) or None
    name = None
    if chosen is not None:
        if chosen.get("text"):
            name = chosen["text"]
        else:
            name = " ".join(chosen.get("given", []) +
                            ([chosen["family"]] if chosen.get("family") else [])) or None
    ids = p.get("identifier", [])

    def has_type_code(i, code):
        return any(c.get("code") == code for c in (i.get("type") or {}).get("coding", []))
    if mrn_system:
        # with mrn_system, only that system's identifier (issue 12: pushed as
        # identifier=<mrn_system>|value, which no other identifier could match)
        mrn = first([i.get("value") for i in ids if i.get("system") == mrn_system])
    else:
        mrn = first([i.get("value") for i in ids if has_type_code(i, "MR")],
                    [i.get("value") for i in ids if (i.get("type") or {}).get("text") == "MRN"],
                    [i.get("value") for i in ids if (i.get("type") or {}).get("text") == "EPI"])
    tel = p.get("telecom", [])

    def tel_of(system):
        return first([t.get("value") for t in tel if t.get("system") == system and t.get("use") == "home"],
                     [t.get("value") for t in tel if t.get("system") == system and t.get("use") == "mobile"],
                     [t.get("value") for t in tel if t.get("system") == system])
    addr = (p.get("address") or [None])[0] or {}
    deceased = None
    if "deceasedBoolean" in p:
        deceased = p["deceasedBoolean"]
    elif "deceasedDateTime" in p:
        deceased = True
    return {
        "id": p["id"], "mrn": mrn, "family": family, "given": given,
        "given_names": [g for g in given_list if g != ""],
        "name": name,
        "birthdate": date(p.get("birthDate")), "gender": p.get("gender"),
        "phone": tel_of("phone"),
        "phones": [t["value"] for t in tel if t.get("system") == "phone" and "value" in t],
        "email": tel_of("email"),
        "address_line": (addr.get("line") or [None])[0],
        "city": addr.get("city"), "state": addr.get("state"), "postal_code": addr.get("postalCode"),
        "active": p.get("active"), "deceased": deceased, "resource": p,
    }


def medication_request_row(r):
    mcc = r.get("medicationCodeableConcept") or {}
    cats = r.get("category", [])
    dos = r.get("dosageInstruction", [])
    route = (dos[0].get("route") if dos else None) or {}
    req = r.get("requester") or {}
    return {
        "id": r["id"], "patient_id": ref_key(r.get("subject"), "Patient"),
        "status": r.get("status"), "intent": r.get("intent"),
        "category": first([c.get("text") for c in cats],
                          [d for c in cats for d in displays(c)],
                          [d for c in cats for d in codes(c)]),
        "medication": first([mcc.get("text")], displays(mcc),
                            [(r.get("medicationReference") or {}).get("display")]),
        "medication_code": first(codes(mcc)),
        "dosage": first([d.get("text") for d in dos]),
        "route": first([route.get("text")], displays(route)),
        "authored_on": ts(r.get("authoredOn")),
        "requester": first([req.get("display")], [(req.get("agent") or {}).get("display")]),
        "resource": r,
    }


def condition_row(r):
    code = r.get("code") or {}
    return {
        "id": r["id"], "patient_id": ref_key(r.get("subject"), "Patient"),
        "clinical_status": first(codes(r.get("clinicalStatus"))),
        "verification_status": first(codes(r.get("verificationStatus"))),
        "category": first([c for cat in r.get("category", []) for c in codes(cat)]),
        "code": first(codes(code)),
        "display": first([code.get("text")], displays(code)),
        "onset": ts(first([r.get("onsetDateTime")], [(r.get("onsetPeriod") or {}).get("start")])),
        "abatement": ts(first([r.get("abatementDateTime")],
                              [(r.get("abatementPeriod") or {}).get("start")])),
        "recorded": ts(r.get("recordedDate")),
        "resource": r,
    }


def observation_row(r):
    code = r.get("code") or {}
    q = r.get("valueQuantity") or {}
    vcc = r.get("valueCodeableConcept") or {}
    return {
        "id": r["id"], "patient_id": ref_key(r.get("subject"), "Patient"),
        "status": r.get("status"),
        "category": first([c for cat in r.get("category", []) for c in codes(cat)]),
        "code": first(codes(code)),
        "display": first([code.get("text")], displays(code)),
        "value_quantity": q.get("value"),
        "unit": first([q.get("unit")], [q.get("code")]),
        "value_string": first([r.get("valueString")], [vcc.get("text")], displays(vcc)),
        "effective": ts(first([r.get("effectiveDateTime")],
                              [(r.get("effectivePeriod") or {}).get("start")],
                              [r.get("effectiveInstant")])),
        "issued": ts(r.get("issued")),
        "resource": r,
    }


def encounter_row(r):
    klass = r.get("class") or {}
    types = r.get("type", [])
    reasons = r.get("reasonCode", [])
    period = r.get("period") or {}
    return {
        "id": r["id"], "patient_id": ref_key(r.get("subject"), "Patient"),
        "status": r.get("status"), "class_code": klass.get("code"),
        "class_display": first([klass.get("display")], [klass.get("code")]),
        "type": first([t.get("text") for t in types], [d for t in types for d in displays(t)]),
        "reason": first([c.get("text") for c in reasons], [d for c in reasons for d in displays(c)]),
        "period_start": ts(period.get("start")), "period_end": ts(period.get("end")),
        "resource": r,
    }


TABLES = {
    "Patient": "patients",
    "MedicationRequest": "medication_requests",
    "Condition": "conditions",
    "Observation": "observations",
    "Encounter": "encounters",
}


def main():
    seed, mrn_system = sys.argv[1], sys.argv[2]
    with open(seed, encoding="utf-8") as f:
        resources = json.load(f)
    rows = {t: [] for t in TABLES.values()}
    for r in resources:
        t = r["resourceType"]
        if t == "Patient":
            rows["patients"].append(patient_row(r, mrn_system))
        elif t == "MedicationRequest":
            rows["medication_requests"].append(medication_request_row(r))
        elif t == "Condition":
            rows["conditions"].append(condition_row(r))
        elif t == "Observation":
            rows["observations"].append(observation_row(r))
        elif t == "Encounter":
            rows["encounters"].append(encounter_row(r))
    out = sys.stdout
    for table, rs in rows.items():
        doc = json.dumps(rs, ensure_ascii=False)
        assert "$truth$" not in doc
        out.write("INSERT INTO truth.%s SELECT * FROM jsonb_populate_recordset(NULL::truth.%s, "
                  "$truth$%s$truth$::jsonb);\n" % (table, table, doc))


if __name__ == "__main__":
    main()
