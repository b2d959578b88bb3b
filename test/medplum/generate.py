#!/usr/bin/env python3
"""Deterministic FHIR R4 test data for the Medplum-based equivalence tier.

Writes one JSON array of resources (Patient, MedicationRequest, Condition,
Observation, Encounter) to --out.  The data is made to catch a client that
reads the specification through one server's habits:

  - names whose HumanName.text differs from the parts ("Bobby Tables" with
    given Robert, family Tables), several given names, an official name that
    is not the first one, a text-only name, a family-only name, no name,
    accents and hyphens;
  - partial birth dates (YYYY, YYYY-MM) and missing ones; partial dateTimes;
  - several identifiers (the MRN system, an SSN, an external id; an MRN known
    only by its type coding; two MRNs);
  - dateTimes in many time zones (Z, -05:00, +05:30, +14:00, -12:00), and
    date-only dateTimes;
  - patients with no clinical resources at all.

Usage: generate.py --out FILE [--patients N] [--seed S]
"""
import argparse
import json
import random

MRN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn"
EXT_SYSTEM = "urn:oid:2.16.840.1.113883.3.42.10001"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"

GIVEN_F = ["Camila", "Ann", "Anna", "Maria", "Sofia", "Zoë", "Elizabeth", "Katherine", "Li",
           "Amélie", "Grace", "Olivia", "Nora"]
GIVEN_M = ["Robert", "William", "José", "James", "Derrick", "Mateo", "Ahmed", "Noah", "Liam",
           "Jean-Luc", "Ethan", "Lucas"]
NICK = {"Robert": "Bobby", "William": "Bill", "Katherine": "Kate", "Elizabeth": "Liz",
        "James": "Jim", "Anna": "Annie", "José": "Pepe"}
FAMILY = ["Lopez", "Smith", "Smithers", "Smith-Jones", "Müller-Lüdenscheidt", "Lin", "Parker",
          "Davidson", "Dávila", "O'Brien", "Tables", "Nguyen", "Jackson", "van der Berg"]
PLACES = [("DALLAS", "TX", "75201"), ("GARLAND", "TX", "75043"), ("SAINT LOUIS", "MO", "63101"),
          ("DENVER", "CO", "80202"), ("SANTA FE", "NM", "87501"), ("BOISE", "ID", "83702"),
          ("SAN ANTONIO", "TX", "78205"), ("NEWARK", "NJ", "07102")]
ZONES = ["Z", "-05:00", "+05:30", "+14:00", "-12:00", "+01:00", "-08:00"]
MEDS = [("860975", "metformin 500 MG Oral Tablet"), ("197361", "amlodipine 5 MG Oral Tablet"),
        ("314076", "lisinopril 10 MG Oral Tablet"), ("617314", "atorvastatin 10 MG Oral Tablet"),
        ("745679", "albuterol 0.09 MG/ACTUAT Inhaler")]
MED_STATUS = ["active", "active", "completed", "stopped", "on-hold", "cancelled"]
CONDITIONS = [("44054006", "Diabetes mellitus type 2"), ("38341003", "Hypertensive disorder"),
              ("195967001", "Asthma"), ("55822004", "Hyperlipidemia"),
              ("73211009", "Diabetes mellitus")]
OBS = [("8867-4", "Heart rate", "vital-signs", "/min", 50, 110),
       ("8480-6", "Systolic blood pressure", "vital-signs", "mm[Hg]", 95, 170),
       ("2339-0", "Glucose [Mass/volume] in Blood", "laboratory", "mg/dL", 70, 250),
       ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "laboratory", "%", 4, 11),
       ("72166-2", "Tobacco smoking status", "social-history", None, 0, 0)]
SMOKING = ["Never smoker", "Former smoker", "Current every day smoker"]


def dt(rng, year_from, year_to, allow_partial=True):
    """A dateTime: mostly with a time and a zone, sometimes date-only or partial."""
    y = rng.randint(year_from, year_to)
    mo = rng.randint(1, 12)
    d = rng.randint(1, 28)
    r = rng.random()
    if allow_partial and r < 0.05:
        return "%04d-%02d" % (y, mo)
    if r < 0.15:
        return "%04d-%02d-%02d" % (y, mo, d)
    h, mi, s = rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)
    return "%04d-%02d-%02dT%02d:%02d:%02d%s" % (y, mo, d, h, mi, s, rng.choice(ZONES))


def instant(rng, year_from, year_to):
    v = dt(rng, year_from, year_to, allow_partial=False)
    return v if "T" in v else v + "T12:00:00Z"


def cc(system, code, display=None, text=None):
    c = {"coding": [{"system": system, "code": code}]}
    if display:
        c["coding"][0]["display"] = display
    if text:
        c["text"] = text
    return c


def special_patients():
    """Hand-made patients (ids pat-0001..)."""
    return [
        # defect 1 of issue 12: text differs from the parts
        {"name": [{"use": "official", "text": "Bobby Tables", "family": "Tables",
                   "given": ["Robert"]}], "gender": "male", "birthDate": "1985-03-14"},
        {"name": [{"use": "official", "text": "Camila Maria Lopez", "family": "Lopez",
                   "given": ["Camila", "Maria"]}], "gender": "female", "birthDate": "1987-09-12"},
        # the official name is not the first one
        {"name": [{"use": "usual", "text": "Liz Smith", "given": ["Liz"], "family": "Smith"},
                  {"use": "official", "family": "Smith", "given": ["Elizabeth", "Ann"]}],
         "gender": "female", "birthDate": "1950-01"},
        # a name with only text; a name with only a family; no name at all
        {"name": [{"text": "Cher"}], "gender": "female", "birthDate": "1946"},
        {"name": [{"family": "Nguyen"}], "gender": "unknown"},
        {"gender": "other", "birthDate": "2001-07-04"},
        {"name": [{"use": "official", "text": "Dr. Jane Q. Public", "family": "Public",
                   "given": ["Jane", "Quincy"], "prefix": ["Dr."]}], "gender": "female",
         "birthDate": "1973-06-03"},
        {"name": [{"use": "official", "family": "Müller-Lüdenscheidt", "given": ["José"]}],
         "gender": "male", "birthDate": "1969-12-31"},
        {"name": [{"use": "official", "text": "Kate Smithers", "family": "Smithers",
                   "given": ["Katherine"]}], "gender": "female", "birthDate": "1990-02-28"},
        {"name": [{"use": "official", "family": "Smith-Jones", "given": ["William", "Henry"],
                   "text": "Bill Smith-Jones"}], "gender": "male", "birthDate": "2010-01-01"},
    ]


def make_patient(rng, i, base):
    pid = "pat-%04d" % i
    p = {"resourceType": "Patient", "id": pid}
    if base is not None:
        p.update(base)
    else:
        male = rng.random() < 0.5
        given = [rng.choice(GIVEN_M if male else GIVEN_F)]
        if rng.random() < 0.3:
            given.append(rng.choice(GIVEN_M if male else GIVEN_F))
        family = rng.choice(FAMILY)
        name = {"use": "official", "family": family, "given": given}
        r = rng.random()
        if r < 0.2 and given[0] in NICK:
            name["text"] = "%s %s" % (NICK[given[0]], family)      # text differs from parts
        elif r < 0.7:
            name["text"] = " ".join(given + [family])
        p["name"] = [name]
        if rng.random() < 0.1:
            p["name"].insert(0, {"use": "nickname", "given": [rng.choice(GIVEN_F + GIVEN_M)]})
        p["gender"] = rng.choice(["male", "female"] * 6 + ["other", "unknown"]) \
            if rng.random() < 0.95 else None
        if p["gender"] is None:
            del p["gender"]
        r = rng.random()
        y = rng.randint(1935, 2022)
        if r < 0.7:
            p["birthDate"] = "%04d-%02d-%02d" % (y, rng.randint(1, 12), rng.randint(1, 28))
        elif r < 0.8:
            p["birthDate"] = "%04d-%02d" % (y, rng.randint(1, 12))
        elif r < 0.9:
            p["birthDate"] = "%04d" % y
    # identifiers: MRN, SSN, an external id; variations
    ids = []
    r = rng.random()
    if r < 0.85 or base is not None:
        ids.append({"use": "usual", "system": MRN_SYSTEM, "value": str(300000 + i * 7)})
    elif r < 0.93:
        ids.append({"type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                    "system": "urn:oid:9.9.9", "value": "MR%05d" % i})
    if rng.random() < 0.05:
        ids.append({"system": MRN_SYSTEM, "value": str(900000 + i)})
    if rng.random() < 0.7:
        ids.insert(0, {"system": SSN_SYSTEM, "value": "%03d-%02d-%04d" % (
            rng.randint(100, 899), rng.randint(10, 99), rng.randint(1000, 9999))})
    ids.append({"system": EXT_SYSTEM, "value": "EXT-%d" % (i * 13)})
    p["identifier"] = ids
    tel = []
    if rng.random() < 0.6:
        tel.append({"system": "phone", "use": "mobile", "value": "%03d-555-%04d" % (
            rng.choice([214, 469, 785, 303]), i)})
    if rng.random() < 0.5:
        tel.append({"system": "phone", "use": "home", "value": "%03d-555-%04d" % (
            rng.choice([214, 469, 785, 303]), 5000 + i)})
    if rng.random() < 0.5:
        tel.append({"system": "email", "use": "home",
                    "value": "patient%d@%s" % (i, rng.choice(["example.com", "mail.test"]))})
    if tel:
        p["telecom"] = tel
    if rng.random() < 0.9:
        city, state, postal = rng.choice(PLACES)
        p["address"] = [{"use": "home", "line": ["%d Main St" % i], "city": city,
                         "state": state, "postalCode": postal}]
        if rng.random() < 0.1:
            c2, s2, z2 = rng.choice(PLACES)
            p["address"].append({"use": "old", "city": c2, "state": s2, "postalCode": z2})
    r = rng.random()
    if r < 0.7:
        p["active"] = True
    elif r < 0.85:
        p["active"] = False
    r = rng.random()
    if r < 0.05:
        p["deceasedBoolean"] = True
    elif r < 0.1:
        p["deceasedDateTime"] = dt(rng, 2015, 2024, allow_partial=False)
    elif r < 0.3:
        p["deceasedBoolean"] = False
    return p


def clinical(rng, p, i, out):
    pid = p["id"]
    ref = {"reference": "Patient/" + pid}
    empty = i % 10 == 0
    if empty:
        return
    for k in range(rng.randint(0, 4) if i > 2 else 3):
        code, disp = MEDS[(i + k - 1) % len(MEDS)] if i <= 2 else rng.choice(MEDS)
        mr = {"resourceType": "MedicationRequest", "id": "mr-%04d-%d" % (i, k),
              "status": rng.choice(MED_STATUS), "intent": rng.choice(["order", "order", "plan"]),
              "subject": ref,
              "medicationCodeableConcept": cc("http://www.nlm.nih.gov/research/umls/rxnorm",
                                              code, disp, disp.split(" ")[0]
                                              if rng.random() < 0.5 else None),
              "authoredOn": dt(rng, 2008, 2025)}
        if rng.random() < 0.7:
            mr["category"] = [cc("http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                                 "outpatient", "Outpatient")]
        if rng.random() < 0.8:
            mr["dosageInstruction"] = [{"text": "take %d daily" % rng.randint(1, 3),
                                        "route": {"text": "oral"}}]
        if rng.random() < 0.5:
            mr["requester"] = {"display": "Dr. %s" % rng.choice(FAMILY)}
        out.append(mr)
    for k in range(rng.randint(0, 3) if i > 2 else 2):
        code, disp = CONDITIONS[(i + k) % 2] if i <= 2 else rng.choice(CONDITIONS)
        status = rng.choice(["active", "active", "resolved", "inactive"])
        c = {"resourceType": "Condition", "id": "cond-%04d-%d" % (i, k),
             "clinicalStatus": cc("http://terminology.hl7.org/CodeSystem/condition-clinical",
                                  status),
             "verificationStatus": cc(
                 "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                 rng.choice(["confirmed", "confirmed", "provisional"])),
             "category": [cc("http://terminology.hl7.org/CodeSystem/condition-category",
                             rng.choice(["problem-list-item", "encounter-diagnosis"]))],
             "code": cc("http://snomed.info/sct", code, disp,
                        disp if rng.random() < 0.5 else None),
             "subject": ref}
        if rng.random() < 0.8:
            c["onsetDateTime"] = dt(rng, 1990, 2024)
        elif rng.random() < 0.5:
            c["onsetPeriod"] = {"start": dt(rng, 1990, 2024)}
        if status != "active" and rng.random() < 0.7:
            c["abatementDateTime"] = dt(rng, 2020, 2025)
        if rng.random() < 0.8:
            c["recordedDate"] = dt(rng, 2000, 2025)
        out.append(c)
    for k in range(rng.randint(0, 5) if i > 2 else 3):
        code, disp, cat, unit, lo, hi = OBS[(i + k) % 3] if i <= 2 else rng.choice(OBS)
        o = {"resourceType": "Observation", "id": "obs-%04d-%d" % (i, k),
             "status": rng.choice(["final", "final", "amended", "preliminary"]),
             "category": [cc("http://terminology.hl7.org/CodeSystem/observation-category", cat)],
             "code": cc("http://loinc.org", code, disp), "subject": ref}
        if unit is None:
            o["valueCodeableConcept"] = cc("http://snomed.info/sct", "8517006",
                                           text=rng.choice(SMOKING))
        else:
            v = round(rng.uniform(lo, hi), 1)
            if v == int(v):
                v += 0.5        # JSON writers differ on 80.0 vs 80: keep one decimal digit
            o["valueQuantity"] = {"value": v, "unit": unit, "system": "http://unitsofmeasure.org",
                                  "code": unit}
        o["effectiveDateTime"] = dt(rng, 2010, 2025)
        if rng.random() < 0.7:
            o["issued"] = instant(rng, 2010, 2025)
        out.append(o)
    for k in range(rng.randint(0, 2)):
        klass = rng.choice([("AMB", "ambulatory"), ("IMP", "inpatient encounter"),
                            ("EMER", "emergency")])
        e = {"resourceType": "Encounter", "id": "enc-%04d-%d" % (i, k),
             "status": rng.choice(["finished", "finished", "in-progress", "cancelled"]),
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                       "code": klass[0], "display": klass[1]},
             "type": [{"text": rng.choice(["Office Visit", "Telephone", "Hospital Admission"])}],
             "subject": ref}
        start = dt(rng, 2012, 2025, allow_partial=False)
        e["period"] = {"start": start}
        if rng.random() < 0.6 and "T" in start:
            e["period"]["end"] = start[:11] + "23:59:59" + start[19:]
        if rng.random() < 0.5:
            e["reasonCode"] = [{"text": rng.choice(["Check-up", "Chest pain", "Follow-up"])}]
        out.append(e)


def generate(n, seed):
    rng = random.Random(seed)
    specials = special_patients()
    out = []
    for i in range(1, n + 1):
        p = make_patient(rng, i, specials[i - 1] if i <= len(specials) else None)
        out.append(p)
        clinical(rng, p, i, out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--patients", type=int, default=150)
    ap.add_argument("--seed", type=int, default=12)
    a = ap.parse_args()
    res = generate(a.patients, a.seed)
    with open(a.out, "w", encoding="utf-8") as f:
        json.dump(res, f, ensure_ascii=False, indent=0)
    counts = {}
    for r in res:
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    print(json.dumps(counts, sort_keys=True))


if __name__ == "__main__":
    main()
