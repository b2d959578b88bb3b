#!/usr/bin/python3
"""Generate a deterministic, Epic-shaped FHIR dataset for the epic_fdw sandbox.

Usage:
  /usr/bin/python3 test/dataset/generate.py --version STU3|R4 --patients N \
      --statements-per-patient M [--seed S] --out DIR

Writes DIR/Patient.ndjson and DIR/MedicationStatement.ndjson (STU3) or
DIR/MedicationRequest.ndjson (R4), one resource a line, UTF-8. The same arguments always
produce the same bytes. The first 7 patients are Epic's public sandbox patients (same ids,
names, MRNs); the rest are synthetic, with edge cases for search: names with spaces,
apostrophes, hyphens and accents, shared family names and given-name prefixes, usual-only
names, patients without telecom, partial birth dates (YYYY, YYYY-MM), deceased flags and
dates, active true/false/absent, four genders. Medication resources vary status,
category, effective[x]/authoredOn precision and offsets, open and closed periods,
medicationReference vs medicationCodeableConcept. Each patient gets M medication
resources on average (every 20th none, every 20th 2*M; Desiree Powell none).
"""

import argparse
import json
import os
import random
import sys

MRN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"
LEGAL_SEX_URL = "http://open.epic.com/FHIR/StructureDefinition/extension/legal-sex"
LEGAL_SEX_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.10.698084.130.657370.19999000"
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-."

PUBLIC = [
    # id, given list, family, birthDate, gender, MRN, phones [(use, number)]
    ("erXuFYUfucBZaryVksYEcMg3", ["Camila", "Maria"], "Lopez", "1987-09-12", "female", "203713",
     [("home", "469-555-5555"), ("work", "469-888-8888")]),
    ("eq081-VQEgP8drUUqCWzHfw3", ["Derrick"], "Lin", "1973-06-03", "male", "203711",
     [("home", "785-555-5555"), ("work", "785-666-6666")]),
    ("eAB3mDIBBcyUKviyzrxsnAw3", ["Desiree", "Caroline"], "Powell", "2014-11-14", "female",
     "203714", []),
    ("egqBHVfQlt4Bw3XGXoxVxHg3", ["Elijah"], "Davis", "1948-02-29", "male", "203709",
     [("home", "512-555-0147")]),
    ("eIXesllypH3M9tAA5WdJftQ3", ["Linda"], "Ross", "1961-04-22", "female", "203712",
     [("mobile", "214-555-0199")]),
    ("e0w0LEDCYtfckT6N.CkJKCw3", ["Warren"], "McGinnis", "1952-11-30", "male", "203710",
     [("home", "608-555-0172")]),
    ("eh2xYHuzl9nkSFVvV3osUHg3", ["Olivia"], "Roberts", "1990-07-15", "female", "203715",
     [("home", "303-555-0110"), ("mobile", "303-555-0111")]),
]

FAMILIES = [
    "Lopez", "Lopes", "Lin", "Powell", "Davis", "Davison", "Ross", "Rossi", "McGinnis",
    "Roberts", "Robertson", "O'Brien", "O'Connor", "Müller-Lüdenscheidt", "Müller", "Muller",
    "García", "Garcia", "Nguyen", "Smith", "Smithson", "Smythe", "Johnson", "Johns",
    "van der Berg", "De la Cruz", "Lee", "Leeson", "Kowalski", "Brontë", "Núñez", "Çelik",
    "Łukasz", "Anderson", "Andersen", "Wilson", "Taylor", "Thomas", "Moore", "Martin",
    "Jackson", "White", "Harris", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright",
    "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Carter",
    "Phillips", "Evans", "Turner", "Torres", "Parker", "Collins", "Edwards", "Stewart",
    "Sánchez", "Morris", "Rogers", "Reed", "Cook", "Morgan", "Bell", "Murphy", "Bailey",
    "Rivera", "Cooper", "Richardson", "Cox", "Howard", "Ward", "Peterson", "Gray", "Ramírez",
    "James", "Watson", "Brooks", "Kelly", "Sanders", "Price", "Bennett", "Wood", "Barnes",
    "Ross-Taylor", "St. John", "D'Amico", "Østergaard", "Dupont", "Dupond",
]
GIVEN_F = [
    "Camila", "Camille", "Maria", "Mary", "Mary Ann", "Marie", "Mariana", "Zoë", "Zoe",
    "Chloé", "Chloe", "Anne-Marie", "Ann", "Anna", "Annabelle", "Élodie", "Elodie",
    "Josefina", "Linda", "Lindsay", "Olivia", "Olive", "Desiree", "Caroline", "Carol",
    "Sophia", "Sophie", "Emma", "Emily", "Emilia", "Isabella", "Isabel", "Ava", "Mia",
    "Harper", "Evelyn", "Abigail", "Ella", "Elizabeth", "Eliza", "Grace", "Renée", "Siobhán",
]
GIVEN_M = [
    "José", "Jose", "Joseph", "Josef", "Derrick", "Derek", "Elijah", "Eli", "Warren",
    "William", "Will", "Liam", "Noah", "Oliver", "James", "Jameson", "Benjamin", "Ben",
    "Lucas", "Luca", "Henry", "Alexander", "Alex", "Mason", "Michael", "Ethan", "Daniel",
    "Dan", "Jacob", "Logan", "Jackson", "D'Angelo", "Björn", "François", "Jean-Luc",
    "Søren", "Matthew", "Matteo", "Mateo", "Samuel", "Sam", "Sebastián",
]
GIVEN_X = GIVEN_F[:10] + GIVEN_M[:10] + ["Alex", "Jordan", "Taylor", "Casey", "Riley"]
CITIES = [
    ("GARLAND", "DALLAS", "TX", "750"), ("DALLAS", "DALLAS", "TX", "752"),
    ("ROWLETT", "DALLAS", "TX", "750"), ("AUSTIN", "TRAVIS", "TX", "787"),
    ("MADISON", "DANE", "WI", "537"), ("VERONA", "DANE", "WI", "535"),
    ("SAN ANTONIO", "BEXAR", "TX", "782"), ("SAN ANGELO", "TOM GREEN", "TX", "769"),
    ("SANTA FE", "SANTA FE", "NM", "875"), ("ST. PAUL", "RAMSEY", "MN", "551"),
    ("SAINT LOUIS", "ST. LOUIS", "MO", "631"), ("NEW YORK", "NEW YORK", "NY", "100"),
    ("NEWARK", "ESSEX", "NJ", "071"), ("DENVER", "DENVER", "CO", "802"),
    ("BOULDER", "BOULDER", "CO", "803"), ("COEUR D'ALENE", "KOOTENAI", "ID", "838"),
    ("ESPAÑOLA", "RIO ARRIBA", "NM", "875"), ("MILWAUKEE", "MILWAUKEE", "WI", "532"),
]
STREETS = ["West Johnson St.", "Bobtown Rd", "Preston Rd", "Riverside Dr", "Main St",
           "Oak Ave", "Elm St", "O'Farrell St", "Calle de la Paz", "Rue Saint-Honoré",
           "Martin Luther King Jr Blvd", "1st Ave", "Maple Ln", "Park Pl", "Lake Shore Dr"]
MARITAL = ["Married", "Single", "Divorced", "Widowed", "Legally Separated", "Unknown"]
LANGS = [("en", "English"), ("en", "English"), ("en", "English"), ("es", "Spanish"),
         ("vi", "Vietnamese"), ("de", "German"), ("fr", "French")]
RACES = [("2106-3", "White"), ("2054-5", "Black or African American"), ("2028-9", "Asian"),
         ("1002-5", "American Indian or Alaska Native"),
         ("2076-8", "Native Hawaiian or Other Pacific Islander"), ("2131-1", "Other Race")]
ETHNICITIES = [("2135-2", "Hispanic or Latino"), ("2186-5", "Not Hispanic or Latino")]
MEDS = [
    ("197361", "Amlodipine 5 MG Oral Tablet", "Take 1 tablet (5 mg total) by mouth daily.",
     "Daily", 5, "mg"),
    ("314076", "Lisinopril 10 MG Oral Tablet", "Take 1 tablet (10 mg total) by mouth daily.",
     "Daily", 10, "mg"),
    ("308182", "Amoxicillin 500 MG Oral Capsule",
     "Take 1 capsule (500 mg total) by mouth 3 (three) times daily for 10 days.",
     "3 times daily", 500, "mg"),
    ("860975", "Metformin 500 MG Oral Tablet", "Take 1 tablet (500 mg total) by mouth 2 times "
     "daily with meals.", "2 times daily", 500, "mg"),
    ("617314", "Atorvastatin 10 MG Oral Tablet", "Take 1 tablet (10 mg total) by mouth nightly.",
     "Nightly", 10, "mg"),
    ("198211", "Simvastatin 40 MG Oral Tablet", "Take 1 tablet (40 mg total) by mouth at "
     "bedtime.", "At bedtime", 40, "mg"),
    ("310965", "Ibuprofen 200 MG Oral Tablet", "Take 2 tablets (400 mg total) by mouth every "
     "6 (six) hours as needed for pain.", "Every 6 hours PRN", 400, "mg"),
    ("313782", "Acetaminophen 325 MG Oral Tablet", "Take 2 tablets (650 mg total) by mouth "
     "every 4 (four) hours as needed.", "Every 4 hours PRN", 650, "mg"),
    ("966247", "Levothyroxine Sodium 0.05 MG Oral Tablet", "Take 1 tablet (50 mcg total) by "
     "mouth every morning before breakfast.", "Every morning", 50, "mcg"),
    ("311036", "Insulin Glargine 100 UNT/ML Injectable Solution", "Inject 20 Units under the "
     "skin nightly.", "Nightly", 20, "Units"),
    ("1049621", "Oxycodone 5 MG Oral Tablet", "Take 1 tablet (5 mg total) by mouth every 4 "
     "(four) hours as needed for severe pain.", "Every 4 hours PRN", 5, "mg"),
    ("245314", "Albuterol 0.09 MG/ACTUAT Inhaler", "Inhale 2 puffs every 4 (four) hours as "
     "needed for wheezing.", "Every 4 hours PRN", 2, "puff"),
]
ROUTES = {"mg": ("15", "Oral"), "mcg": ("15", "Oral"), "Units": ("18", "Subcutaneous"),
          "puff": ("20", "Inhalation")}
STU3_STATUSES = (["active"] * 8 + ["completed"] * 4 + ["stopped"] * 2 + ["on-hold", "intended",
                 "entered-in-error"])
STU3_CATEGORIES = (["outpatient"] * 5 + ["inpatient"] * 2 + ["community", "patientspecified"])
R4_STATUSES = (["active"] * 8 + ["completed"] * 4 + ["stopped"] * 2 + ["on-hold", "cancelled",
               "entered-in-error", "draft"])
R4_CATEGORIES = (["outpatient"] * 5 + ["inpatient"] * 2 + ["community", "discharge"])
TZS = ["-05:00", "-06:00", "Z", "+00:00", "-04:00", "+01:00", "+05:30"]


class Gen:
    def __init__(self, version, seed):
        self.version = version
        self.rng = random.Random(seed)
        self.ids = set()

    def epic_id(self, n):
        r = self.rng
        while True:
            s = "e" + "".join(r.choice(ID_ALPHABET) for _ in range(n)) + "3"
            if s not in self.ids:
                self.ids.add(s)
                return s

    def phone(self, area=None):
        r = self.rng
        return "%03d-%03d-%04d" % (area or r.randint(201, 989), r.randint(200, 999),
                                   r.randint(0, 9999))

    def full_date(self, y0, y1):
        r = self.rng
        y = r.randint(y0, y1)
        m = r.randint(1, 12)
        d = r.randint(1, 28 if m == 2 else 30)
        return "%04d-%02d-%02d" % (y, m, d)

    def datetime_(self, y0, y1, tz=True):
        r = self.rng
        s = "%sT%02d:%02d:%02d" % (self.full_date(y0, y1), r.randint(0, 23), r.randint(0, 59),
                                   r.choice((0, 0, 0, r.randint(0, 59))))
        return s + (r.choice(TZS) if tz else "")

    # -- Patient ---------------------------------------------------------------------------

    def patient(self, n, public=None):
        r = self.rng
        if public:
            pid, given, family, birth, gender, mrn, phones = public
            usual_only = False
            usual_given = given[:1] if n == 4 else given   # Linda Jane Ross style difference
            city = CITIES[n % 4]
        else:
            pid = self.epic_id(22)
            gender = r.choice(("female", "male") * 9 + ("other", "unknown"))
            pool = GIVEN_F if gender == "female" else GIVEN_M if gender == "male" else GIVEN_X
            given = [r.choice(pool)]
            if r.random() < 0.3:
                given.append(r.choice(pool))
            usual_given = given if r.random() < 0.8 else given[:1]
            family = r.choice(FAMILIES)
            u = r.random()
            if u < 0.01:
                birth = "%d" % r.randint(1925, 1960)
            elif u < 0.02:
                birth = "%d-%02d" % (r.randint(1930, 2000), r.randint(1, 12))
            else:
                birth = self.full_date(1925, 2023)
            mrn = "%d" % (300000 + n)
            phones = []
            if r.random() >= 0.1:
                area = r.choice((469, 214, 972, 512, 608, 303, 720, 212))
                if n > 20 and r.random() < 0.05:
                    phones.append(("home", self.shared_phone))  # family sharing a phone
                else:
                    phones.append(("home", self.phone(area)))
                if r.random() < 0.4:
                    phones.append(("work", self.phone(area)))
                if r.random() < 0.5:
                    phones.append(("mobile", self.phone()))
            usual_only = r.random() < 0.05
            city = r.choice(CITIES)
        if phones and not public:
            self.shared_phone = phones[0][1]
        elif not hasattr(self, "shared_phone"):
            self.shared_phone = "469-555-5555"

        legal = {"female": ("female", "Female"), "male": ("male", "Male"),
                 "other": ("nonbinary", "Nonbinary"), "unknown": ("unknown", "Unknown")}[gender]
        race = RACES[n % len(RACES)] if public else r.choice(RACES)
        eth = ETHNICITIES[n % 2] if public else r.choice(ETHNICITIES)
        ext = [
            {"url": LEGAL_SEX_URL, "valueCodeableConcept": {"coding": [
                {"system": LEGAL_SEX_SYSTEM, "code": legal[0], "display": legal[0]}],
                "text": legal[1]}},
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race", "extension": [
                {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                       "code": race[0], "display": race[1]}},
                {"url": "text", "valueString": race[1]}]},
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
             "extension": [
                 {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                        "code": eth[0], "display": eth[1]}},
                 {"url": "text", "valueString": eth[1]}]},
            {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-birthsex",
             "valueCode": {"female": "F", "male": "M"}.get(gender, "UNK")},
        ]
        fhir_id_type = "FHIR STU3" if self.version == "STU3" else "FHIR"
        ident = [
            {"use": "usual", "type": {"text": "CEID"},
             "system": "urn:oid:1.2.840.114350.1.13.0.1.7.3.688884.100",
             "value": "FHR%012X" % (0x59C56D219C42 + n * 7919)},
            {"use": "usual", "type": {"text": "EPIC"},
             "system": "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.0", "value": "E%s" % mrn[2:]},
            {"use": "usual", "type": {"text": "FHIR"},
             "system": "http://open.epic.com/FHIR/StructureDefinition/patient-dstu2-fhir-id",
             "value": "T" + "".join(r.choice(ID_ALPHABET) for _ in range(44))},
            {"use": "usual", "type": {"text": fhir_id_type},
             "system": "http://open.epic.com/FHIR/StructureDefinition/patient-fhir-id",
             "value": pid},
            {"use": "usual", "type": {"text": "EPI"}, "system": MRN_SYSTEM, "value": mrn},
        ]
        if public or r.random() < 0.5:
            ident.append({"use": "usual", "type": {"text": "MYCHARTLOGIN"},
                          "system": "urn:oid:1.2.840.114350.1.13.0.1.7.3.878082.110",
                          "value": "FHIR" + norm_login(given[0])})
        res = {"resourceType": "Patient", "id": pid, "extension": ext, "identifier": ident}
        if public:
            res["active"] = True
        else:
            a = r.random()
            if a < 0.8:
                res["active"] = True
            elif a < 0.9:
                res["active"] = False
        official = {"use": "official", "text": " ".join(given + [family]), "family": family,
                    "given": list(given)}
        usual = {"use": "usual", "text": " ".join(usual_given + [family]), "family": family,
                 "given": list(usual_given)}
        if not public and r.random() < 0.03:
            official["suffix"] = [r.choice(("Jr.", "Sr.", "III"))]
        if not public and r.random() < 0.03:
            official["prefix"] = [r.choice(("Dr.", "Mr.", "Ms."))]
        res["name"] = [usual] if usual_only else [official, usual]
        tel = [{"system": "phone", "value": v, "use": u} for u, v in phones]
        if phones and (public is None or n == 0 or n == 4):
            email_user = norm_login(given[0]).lower() + "." + norm_login(family).lower()
            if public is None and r.random() < 0.5:
                tel.append({"system": "email", "value": "%s%d@example.com" % (email_user, n),
                            "use": "home"})
            elif public:
                tel.append({"system": "email", "value": email_user + "@example.com",
                            "use": "home"})
        if tel:
            res["telecom"] = tel
        res["gender"] = gender
        res["birthDate"] = birth
        if public:
            if n == 3:
                res["deceasedDateTime"] = "2020-01-02T10:00:00-06:00"
            else:
                res["deceasedBoolean"] = False
        else:
            d = r.random()
            if d < 0.85:
                res["deceasedBoolean"] = False
            elif d < 0.9:
                res["deceasedBoolean"] = True
            elif d < 0.95:
                res["deceasedDateTime"] = self.datetime_(2000, 2024)
        cname, district, state, zip3 = city
        postal = "%s%02d" % (zip3, n % 100 if public else r.randint(0, 99))
        line = ["%d %s" % ((3268 if n == 0 else r.randint(1, 9999)), STREETS[0] if n == 0
                           else r.choice(STREETS))]
        if not public and r.random() < 0.15:
            line.append("Apt %d" % r.randint(1, 400))
        res["address"] = [{
            "use": "home",
            "text": "\r\n".join(line + ["%s %s %s" % (cname, state, postal),
                                        "United States of America"]),
            "line": line, "city": cname, "district": district, "state": state,
            "postalCode": postal, "country": "US",
            "period": {"start": self.full_date(1995, 2023)}}]
        res["maritalStatus"] = {"text": MARITAL[n % len(MARITAL)] if public else r.choice(MARITAL)}
        lang = LANGS[1 if n == 0 else 0] if public else r.choice(LANGS)
        if n == 0:
            lang = ("es", "Spanish")
        res["communication"] = [{"language": {"coding": [
            {"system": "urn:ietf:bcp:47", "code": lang[0], "display": lang[1]}],
            "text": lang[1]}, "preferred": True}]
        res["generalPractitioner"] = [{"reference": "Practitioner/eoScyX3bs1SY.2lMoHCGcVw3",
                                       "display": "Physician"}]
        res["managingOrganization"] = {"reference": "Organization/enRyWnSP963FYDpoks4NHOA3",
                                       "display": "EHS Service Area"}
        return res

    # -- medications -------------------------------------------------------------------

    def medication(self, r_):
        r = self.rng
        code, name, sig, timing, dose, unit = r.choice(MEDS)
        k = r.random()
        if k < 0.5:
            med = {"medicationReference": {
                "reference": "Medication/" + self.epic_id(40), "display": name}}
        elif k < 0.8:
            med = {"medicationCodeableConcept": {"coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code,
                 "display": name}], "text": name}}
        elif k < 0.9:
            med = {"medicationCodeableConcept": {"text": name}}
        else:
            med = {"medicationCodeableConcept": {"coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code,
                 "display": name}]}}
        rc, rd = ROUTES[unit]
        route = {"coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.698288.330",
                             "code": rc, "display": rd}]}
        if r.random() < 0.7:
            route["text"] = rd
        dosage = {"text": sig, "timing": {"code": {"text": timing}},
                  "asNeededBoolean": "PRN" in timing, "route": route,
                  "doseQuantity": {"value": dose, "unit": unit,
                                   "system": "http://unitsofmeasure.org", "code": unit}}
        return med, dosage

    def effective(self):
        """-> (key, value) for effective[x], or None."""
        r = self.rng
        k = r.random()
        if k < 0.25:
            return "effectiveDateTime", self.datetime_(2005, 2024)
        if k < 0.30:
            return "effectiveDateTime", self.datetime_(2005, 2024, tz=False)
        if k < 0.45:
            return "effectiveDateTime", self.full_date(2005, 2024)
        if k < 0.50:
            y = r.randint(2005, 2024)
            return "effectiveDateTime", ("%d" % y) if r.random() < 0.4 else "%d-%02d" % (
                y, r.randint(1, 12))
        if k < 0.75:
            start = self.datetime_(2005, 2024) if r.random() < 0.7 else self.full_date(2005, 2024)
            return "effectivePeriod", {"start": start}
        if k < 0.97:
            y = r.randint(2005, 2023)
            if r.random() < 0.6:
                tz = r.choice(TZS)
                s = "%d-%02d-%02dT%02d:00:00%s" % (y, r.randint(1, 12), r.randint(1, 28),
                                                    r.randint(0, 23), tz)
                e = "%d-%02d-%02dT%02d:00:00%s" % (y + r.randint(0, 1), r.randint(1, 12),
                                                    r.randint(1, 28), r.randint(0, 23), tz)
            else:
                s = "%d-%02d-%02d" % (y, r.randint(1, 12), r.randint(1, 28))
                e = "%d-%02d-%02d" % (y + r.randint(0, 1), r.randint(1, 12), r.randint(1, 28))
            if e < s:
                s, e = e, s
            return "effectivePeriod", {"start": s, "end": e}
        if k < 0.985:
            return "effectivePeriod", {"end": self.full_date(2005, 2024)}
        return None

    def statement(self, pat):
        r = self.rng
        sid = self.epic_id(42)
        med, dosage = self.medication(None)
        res = {"resourceType": "MedicationStatement", "id": sid,
               "status": r.choice(STU3_STATUSES)}
        cat = r.choice(STU3_CATEGORIES)
        res["category"] = {"coding": [{"system": "http://hl7.org/fhir/medication-statement-category",
                                       "code": cat, "display": cat.capitalize()}],
                           "text": cat.capitalize()}
        res.update(med)
        eff = self.effective()
        if eff:
            res[eff[0]] = eff[1]
        res["dateAsserted"] = self.datetime_(2005, 2024)
        res["informationSource"] = {"reference": "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3",
                                    "display": "Physician"}
        res["subject"] = {"reference": "Patient/" + pat["id"], "display": display_name(pat)}
        res["taken"] = "unk"
        res["dosage"] = [dosage]
        return res

    def request(self, pat):
        r = self.rng
        rid = self.epic_id(42)
        med, dosage = self.medication(None)
        res = {"resourceType": "MedicationRequest", "id": rid, "status": r.choice(R4_STATUSES),
               "intent": "order" if r.random() < 0.95 else "plan"}
        cat = r.choice(R4_CATEGORIES)
        res["category"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
            "code": cat, "display": cat.capitalize()}], "text": cat.capitalize()}]
        res.update(med)
        res["subject"] = {"reference": "Patient/" + pat["id"], "display": display_name(pat)}
        k = r.random()
        if k < 0.8:
            res["authoredOn"] = self.datetime_(2005, 2024)
        elif k < 0.95:
            res["authoredOn"] = self.full_date(2005, 2024)
        res["requester"] = {"reference": "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3",
                            "display": "Physician"}
        res["dosageInstruction"] = [dosage]
        return res


def norm_login(s):
    import unicodedata
    d = unicodedata.normalize("NFKD", s)
    return "".join(c for c in d if c.isalnum() and c.isascii()).upper()


def display_name(pat):
    n = pat["name"][0]
    return "%s, %s" % (n["family"], " ".join(n.get("given", [])))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--version", required=True, choices=("STU3", "R4"))
    ap.add_argument("--patients", required=True, type=int)
    ap.add_argument("--statements-per-patient", required=True, type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.patients < 0 or a.statements_per_patient < 0:
        ap.error("counts must be >= 0")
    os.makedirs(a.out, exist_ok=True)
    g = Gen(a.version, a.seed)
    for p in PUBLIC:
        g.ids.add(p[0])
    med_type = "MedicationStatement" if a.version == "STU3" else "MedicationRequest"
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    np = nm = 0
    pat_path = os.path.join(a.out, "Patient.ndjson")
    med_path = os.path.join(a.out, med_type + ".ndjson")
    with open(pat_path + ".tmp", "w", encoding="utf-8", newline="\n") as pf, \
            open(med_path + ".tmp", "w", encoding="utf-8", newline="\n") as mf:
        make = g.statement if a.version == "STU3" else g.request
        for n in range(a.patients):
            pat = g.patient(n, PUBLIC[n] if n < len(PUBLIC) else None)
            pf.write(dumps(pat))
            pf.write("\n")
            np += 1
            m = a.statements_per_patient
            if n == 2 or n % 20 == 19:
                m = 0
            elif n % 20 == 9:
                m = 2 * m
            for _ in range(m):
                mf.write(dumps(make(pat)))
                mf.write("\n")
                nm += 1
    os.replace(pat_path + ".tmp", pat_path)
    os.replace(med_path + ".tmp", med_path)
    sys.stderr.write("generate.py: %d Patient, %d %s in %s\n" % (np, nm, med_type, a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
