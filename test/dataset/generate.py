#!/usr/bin/python3
"""Generate a deterministic, Epic-shaped FHIR dataset for the epic_fdw sandbox.

Usage:
  /usr/bin/python3 test/dataset/generate.py --version STU3|R4 --patients N \
      --statements-per-patient M [--seed S] [--types LIST] --out DIR

Writes, one resource a line, UTF-8, into DIR:

  Patient.ndjson                  both versions
  MedicationStatement.ndjson      STU3 (M a patient on average)
  MedicationRequest.ndjson        R4 (M a patient on average, Epic's R4 shape); STU3 too,
                                  in the STU3 shape (0-4 a patient, see below)
  Observation.ndjson              both versions, 0-4 a patient of each of these types
  Condition.ndjson
  AllergyIntolerance.ndjson
  Encounter.ndjson
  Immunization.ndjson
  Procedure.ndjson
  Group.ndjson                    both versions: Epic-like registries (Group.Read) over
                                  the patients, see groups()

The same arguments always produce the same bytes. Patient, MedicationStatement (STU3) and
MedicationRequest (R4) come from one random stream seeded with S, exactly as before the
other types existed; every other type has its own stream seeded with "S:<type>" and is
generated after them, so adding or changing one type never changes another's bytes.
--types (default all) limits the clinical types written: a comma-separated list of the
type names above, or "none" (Patient and the medication file of M are always written).

The first 7 patients are Epic's public sandbox patients (same ids, names, MRNs); the rest
are synthetic, with edge cases for search: names with spaces, apostrophes, hyphens and
accents, shared family names and given-name prefixes, usual-only names, patients without
telecom, partial birth dates (YYYY, YYYY-MM), deceased flags and dates, active
true/false/absent, four genders. Medication resources vary status, category,
effective[x]/authoredOn precision and offsets, open and closed periods,
medicationReference vs medicationCodeableConcept. Each patient gets M medication
resources on average (every 20th none, every 20th 2*M; Desiree Powell none).

Clinical types (Epic-shaped per version; references are "Patient/<id>" with Epic's
"Family, Given" display; every 20th patient has none of them, Camila Lopez at least 2 of
each, the others 0-4 of each):
  Observation      category (CodeableConcept list, observation-category system of the
                   version) vital-signs / laboratory / social-history; code with LOINC
                   (vitals also Epic flowsheet codings) + text; valueQuantity (UCUM),
                   valueString, valueCodeableConcept, or no value (blood pressure has
                   component[], preliminary labs nothing); effectiveDateTime (instants
                   with offsets, some date-only) or, for social history, effectivePeriod
                   {end}; issued; status final/amended/preliminary; subject.
  Condition        category problem-list-item / encounter-diagnosis; code with ICD-10-CM
                   and SNOMED codings + text; clinicalStatus and verificationStatus (STU3:
                   codes; R4: CodeableConcepts), clinicalStatus absent on some encounter
                   diagnoses; onsetDateTime (some absent, some YYYY-MM); abatementDateTime
                   on some resolved/inactive; assertedDate (STU3) / recordedDate (R4).
  AllergyIntolerance clinicalStatus/verificationStatus (STU3 codes, R4 CodeableConcepts),
                   type, category, criticality, code (RxNorm/SNOMED + text),
                   reaction[].manifestation[].text, onsetDateTime, assertedDate (STU3) /
                   recordedDate (R4), patient; some "Not on File" entries without them.
  Encounter        identifier (CSN), status, class (R4: Epic's
                   urn:oid:1.2.840.114350.1.72.1.7.7.10.696784.13260 codes; STU3: v3
                   ActCode), type[] (Epic code + text), subject, period (open on
                   in-progress/planned ones), participant, reasonCode (R4) / reason (STU3).
  Immunization     identifier, status, vaccineCode (CVX + text), patient, date (STU3, with
                   notGiven) / occurrenceDateTime (R4), primarySource, manufacturer,
                   lotNumber, doseQuantity.
  Procedure        status, category, code (Epic + CPT/SNOMED codings + text), subject,
                   performedDateTime or performedPeriod (some neither).
  MedicationRequest (STU3) status, intent, category (one CodeableConcept),
                   medicationReference or medicationCodeableConcept, subject, authoredOn,
                   requester.agent, dosageInstruction[] (text, timing, route, doseQuantity).
"""

import argparse
import datetime
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
# official names (every third patient with one of these first given names) whose
# text is the nickname, not the parts; no nickname is a prefix of a given name
NICKNAMES = {"William": "Bill", "Elizabeth": "Betty", "James": "Jim", "Michael": "Mike",
             "Alexander": "Sasha", "Margaret": "Peggy", "Isabella": "Bella"}
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
        if not public and n % 3 == 0 and given[0] in NICKNAMES:
            # a name whose text is not made of its parts ("Bill Smith" for William
            # Smith): FHIR's name search may match the parts only
            official["text"] = " ".join([NICKNAMES[given[0]]] + [family])
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


# --------------------------------------------------------------------------------------
# Clinical types (generated after Patient and the medication file, each type from its own
# random stream: see Clinical and main())
# --------------------------------------------------------------------------------------

CLINICAL_TYPES = ("Observation", "Condition", "AllergyIntolerance", "Encounter",
                  "Immunization", "Procedure")
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
CVX = "http://hl7.org/fhir/sid/cvx"
FLOWSHEET_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.2.707679"
FLOWSHEET_ID_SYSTEM = "http://open.epic.com/FHIR/StructureDefinition/observation-flowsheet-id"
EPIC_CLASS_SYSTEM = "urn:oid:1.2.840.114350.1.72.1.7.7.10.696784.13260"
EPIC_ENC_TYPE_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.10.698084.30"
CSN_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.3.698084.8"
IMM_ID_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.2.768076"
IMM_DOSE_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.10.768076.4019"
EPIC_PROC_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.2.696580"
PHYSICIAN = {"reference": "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3", "display": "Physician"}

OBS_CAT = {"STU3": "http://hl7.org/fhir/observation-category",
           "R4": "http://terminology.hl7.org/CodeSystem/observation-category"}
OBS_CAT_DISPLAY = {"vital-signs": "Vital Signs", "laboratory": "Laboratory",
                   "social-history": "Social History"}
# flowsheet code, text, LOINC code, LOINC display, UCUM unit, low, high, decimals
VITALS = [
    ("6", "Temperature", "8310-5", "Body temperature", "Cel", 35.8, 38.9, 1),
    ("8", "Pulse", "8867-4", "Heart rate", "/min", 48, 125, 0),
    ("9", "Resp", "9279-1", "Respiratory rate", "/min", 11, 26, 0),
    ("10", "SpO2", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%",
     88, 100, 0),
    ("11", "Height", "8302-2", "Body height", "cm", 50, 200, 1),
    ("14", "Weight", "29463-7", "Body weight", "kg", 3, 150, 1),
    ("301070", "BMI (Calculated)", "39156-5", "Body mass index (BMI) [Ratio]", "kg/m2",
     15, 45, 2),
]
# LOINC code, LOINC display, text, kind (q/s/cc), then for q: unit, low, high, decimals,
# reference low, reference high; for s: strings; for cc: [(SNOMED code, display, text)]
LABS = [
    ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "Glucose", "q", "mg/dL", 60, 260,
     0, 70, 99),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "Hemoglobin", "q", "g/dL", 8.5, 17.5, 1,
     12.0, 16.0),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "Hemoglobin A1C", "q", "%", 4.4,
     11.5, 1, 4.0, 5.6),
    ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "Potassium", "q", "mmol/L", 3.1,
     5.8, 1, 3.5, 5.1),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "Creatinine", "q", "mg/dL", 0.5,
     2.4, 2, 0.6, 1.3),
    ("33914-3", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or "
     "Plasma by Creatinine-based formula (MDRD)", "eGFR", "s", [">60", ">60", "52", "38", "<15"]),
    ("5778-6", "Color of Urine", "Color, UA", "s", ["Yellow", "Straw", "Amber", "Colorless"]),
    ("630-4", "Bacteria identified in Urine by Culture", "Urine Culture", "cc",
     [("264868006", "No growth", "No Growth"),
      ("112283007", "Escherichia coli", "Escherichia coli >100,000 CFU/mL")]),
    ("94500-6", "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory specimen by NAA with probe "
     "detection", "COVID-19 PCR", "cc",
     [("260385009", "Negative", "Not Detected"), ("260373001", "Detected", "Detected")]),
]
# LOINC code, LOINC display, text, kind, values
SOCIAL = [
    ("72166-2", "Tobacco smoking status", "Smoking History", "cc",
     [("266919005", "Never smoker", "Never"), ("8517006", "Ex-smoker", "Former"),
      ("449868002", "Smokes tobacco daily", "Every Day"),
      ("266927001", "Tobacco smoking consumption unknown", "Never Assessed")]),
    ("11331-6", "History of Alcohol use", "Alcohol Use", "s", ["Yes", "No", "Not Currently"]),
    ("76690-7", "Sexual orientation", "Sexual Orientation", "cc",
     [("38628009", "Homosexual", "Lesbian or gay"),
      ("20430005", "Heterosexual", "Straight (not lesbian or gay)"),
      ("42035005", "Bisexual", "Bisexual")]),
]
# ICD-10-CM code, ICD display, SNOMED code (or None), SNOMED display, text, acute
CONDITIONS = [
    ("E11.9", "Type 2 diabetes mellitus without complications", "44054006",
     "Diabetes mellitus type 2", "Type 2 diabetes mellitus without complication, without "
     "long-term current use of insulin", False),
    ("I10", "Essential (primary) hypertension", "59621000", "Essential hypertension",
     "Essential hypertension", False),
    ("J45.909", "Unspecified asthma, uncomplicated", "195967001", "Asthma", "Asthma", False),
    ("E78.5", "Hyperlipidemia, unspecified", "55822004", "Hyperlipidemia", "Hyperlipidemia",
     False),
    ("F41.1", "Generalized anxiety disorder", "21897009", "Generalized anxiety disorder",
     "GAD (generalized anxiety disorder)", False),
    ("E03.9", "Hypothyroidism, unspecified", "40930008", "Hypothyroidism", "Hypothyroidism",
     False),
    ("K21.9", "Gastro-esophageal reflux disease without esophagitis", "235595009",
     "Gastroesophageal reflux disease", "GERD (gastroesophageal reflux disease)", False),
    ("Z87.891", "Personal history of nicotine dependence", None, None,
     "History of tobacco use", False),
    ("M54.50", "Low back pain, unspecified", "279039007", "Low back pain", "Low back pain",
     True),
    ("J06.9", "Acute upper respiratory infection, unspecified", "54150009",
     "Upper respiratory infection", "Acute URI", True),
    ("N39.0", "Urinary tract infection, site not specified", "68566005",
     "Urinary tract infectious disease", "UTI (urinary tract infection)", True),
    ("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter", "44465007",
     "Sprain of ankle", "Sprain of right ankle, unspecified ligament, initial encounter", True),
]
CONDITION_CATEGORY = {
    "STU3": "http://hl7.org/fhir/condition-category",
    "R4": "http://terminology.hl7.org/CodeSystem/condition-category"}
CONDITION_CATEGORY_DISPLAY = {"problem-list-item": "Problem List Item",
                              "encounter-diagnosis": "Encounter Diagnosis"}
R4_CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
R4_CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
R4_ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
R4_ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
# system, code, display, text, category, type, [(manifestation SNOMED, display, text)]
ALLERGENS = [
    (RXNORM, "70618", "Penicillin", "Penicillins", "medication", "allergy",
     [("247472004", "Hives", "Hives"), ("271807003", "Eruption of skin", "Rash")]),
    (RXNORM, "10180", "Sulfamethoxazole", "Sulfa (Sulfonamide Antibiotics)", "medication",
     "allergy", [("271807003", "Eruption of skin", "Rash")]),
    (RXNORM, "2670", "Codeine", "Codeine", "medication", "intolerance",
     [("422587007", "Nausea", "Nausea And Vomiting")]),
    (RXNORM, "1191", "Aspirin", "Aspirin", "medication", "intolerance",
     [("79890006", "Loss of appetite", "GI Upset")]),
    (SNOMED, "256349002", "Peanut", "Peanut", "food", "allergy",
     [("39579001", "Anaphylaxis", "Anaphylaxis"), ("65124004", "Swelling", "Swelling")]),
    (SNOMED, "44027008", "Seafood", "Shellfish Allergy", "food", "allergy",
     [("247472004", "Hives", "Hives")]),
    (SNOMED, "111088007", "Latex", "Latex", "environment", "allergy",
     [("40275004", "Contact dermatitis", "Contact Dermatitis")]),
    (SNOMED, "288328004", "Bee venom", "Bee Venom", "environment", "allergy",
     [("65124004", "Swelling", "Swelling")]),
]
# R4 class (Epic's patient class codes), STU3 class (v3 ActCode), type code, type text
ENCOUNTER_KINDS = [
    (("5", "Appointment"), ("AMB", "ambulatory"), "101", "Office Visit"),
    (("5", "Appointment"), ("AMB", "ambulatory"), "101", "Office Visit"),
    (("5", "Appointment"), ("VR", "virtual"), "1214", "Telemedicine"),
    (("13", "Support OP Encounter"), ("AMB", "ambulatory"), "2101", "Lab Visit"),
    (("13", "Support OP Encounter"), ("AMB", "ambulatory"), "51", "Immunization"),
    (("1", "Inpatient"), ("IMP", "inpatient encounter"), "3", "Hospital Encounter"),
    (("3", "Emergency"), ("EMER", "emergency"), "3", "Hospital Encounter"),
]
ENCOUNTER_REASONS = [("25064002", "Headache"), ("49727002", "Cough"), ("386661006", "Fever"),
                     ("185349003", "Encounter for check up"), ("22253000", "Pain"),
                     ("267036007", "Dyspnea")]
# CVX, text, manufacturer, dose (mL)
VACCINES = [
    ("20", "DTaP", "GlaxoSmithKline", 0.5),
    ("08", "Hepatitis B, Pediatric/Adolescent", "Merck & Co., Inc.", 0.5),
    ("140", "Influenza, Seasonal, Injectable, Preservative Free", "Sanofi Pasteur", 0.5),
    ("208", "COVID-19 (Pfizer), mRNA, 30 mcg/0.3 mL", "Pfizer, Inc", 0.3),
    ("207", "COVID-19 (Moderna), mRNA, 100 mcg/0.5 mL", "Moderna US, Inc.", 0.5),
    ("115", "Tdap", "Sanofi Pasteur", 0.5),
    ("33", "Pneumococcal Polysaccharide (PPSV23)", "Merck & Co., Inc.", 0.5),
    ("03", "MMR", "Merck & Co., Inc.", 0.5),
    ("187", "Zoster Recombinant (Shingrix)", "GlaxoSmithKline", 0.5),
]
# Epic code, system, code, display, text, category
PROCEDURES = [
    ("6040", CPT, "45378", "Colonoscopy, flexible; diagnostic", "COLONOSCOPY", "surg"),
    ("6051", CPT, "47562", "Laparoscopy, surgical; cholecystectomy",
     "LAPAROSCOPIC CHOLECYSTECTOMY", "surg"),
    ("6107", CPT, "27447", "Arthroplasty, knee, condyle and plateau",
     "TOTAL KNEE ARTHROPLASTY", "surg"),
    ("6112", SNOMED, "80146002", "Excision of appendix", "APPENDECTOMY", "surg"),
    ("ECG12", CPT, "93000", "Electrocardiogram, routine ECG with at least 12 leads; with "
     "interpretation and report", "ECG 12-LEAD", "dx"),
    ("IMG36", CPT, "71046", "Radiologic examination, chest; 2 views", "XR CHEST 2 VIEWS", "dx"),
    ("LAB90", CPT, "36415", "Collection of venous blood by venipuncture", "VENIPUNCTURE", "dx"),
]
PROC_CATEGORIES = {
    "surg": ("387713003", "Surgical procedure", "Surgical History"),
    "dx": ("103693007", "Diagnostic procedure", "Ordered Procedures"),
}
PROC_STATUSES = {
    "STU3": ["completed"] * 14 + ["in-progress", "aborted", "entered-in-error", "preparation"],
    "R4": ["completed"] * 14 + ["in-progress", "not-done", "entered-in-error", "stopped"],
}
STU3_MR_STATUSES = (["active"] * 8 + ["completed"] * 4 + ["stopped"] * 2 + ["on-hold",
                    "cancelled", "entered-in-error", "draft"])
STU3_MR_CATEGORIES = ["outpatient"] * 5 + ["inpatient"] * 2 + ["community", "discharge"]
OFFSETS = [("Z", 0), ("Z", 0), ("Z", 0), ("-05:00", -300), ("-06:00", -360), ("+00:00", 0),
           ("+05:30", 330)]


class Person:
    __slots__ = ("n", "id", "display", "born")

    def __init__(self, n, pat):
        self.n, self.id, self.display = n, pat["id"], display_name(pat)
        self.born = int(pat["birthDate"][:4])

    def ref(self):
        return {"reference": "Patient/" + self.id, "display": self.display}


class Clinical(Gen):
    """Generator of one clinical resource type, with its own random stream."""

    def __init__(self, version, seed, rtype, ids):
        super().__init__(version, "%d:%s" % (seed, rtype))
        self.rtype = rtype
        self.ids = ids          # shared with the main generator: ids unique dataset-wide

    def count(self, person):
        """How many resources of this type the patient gets."""
        k = self.rng.choice((0, 0, 1, 1, 2, 2, 2, 3, 3, 4))
        if person.n % 20 == 19:
            return 0
        if person.n == 0:
            return max(k, 2)
        return k

    # -- times ------------------------------------------------------------------------

    def moment(self, person, y0=1995, y1=2024):
        """A random UTC datetime between Jan 1 of max(y0, birth year) and the end of y1."""
        lo = datetime.datetime(min(max(y0, person.born), y1), 1, 1)
        hi = datetime.datetime(y1 + 1, 1, 1)
        return lo + datetime.timedelta(seconds=self.rng.randrange(int((hi - lo).total_seconds())))

    def fmt(self, t, style, offset=None):
        """t (naive UTC) as FHIR text: 'instant' (with `offset`, an item of OFFSETS, or a
        random one), 'Z', 'local' (no offset), 'date', 'month', 'year'."""
        if style == "instant":
            tz, minutes = offset or self.rng.choice(OFFSETS)
            local = t + datetime.timedelta(minutes=minutes)
            return local.strftime("%Y-%m-%dT%H:%M:%S") + tz
        if style == "Z":
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        if style == "local":
            return t.strftime("%Y-%m-%dT%H:%M:%S")
        if style == "date":
            return t.strftime("%Y-%m-%d")
        if style == "month":
            return t.strftime("%Y-%m")
        return t.strftime("%Y")

    def pick_style(self, weights):
        """weights: [(style, weight)]."""
        x = self.rng.random() * sum(w for _, w in weights)
        for style, w in weights:
            x -= w
            if x < 0:
                return style
        return weights[-1][0]

    def later(self, t, max_days):
        return t + datetime.timedelta(seconds=self.rng.randrange(1, int(max_days * 86400) + 2))

    # -- Observation ------------------------------------------------------------------

    def observation(self, person):
        r = self.rng
        v = self.version
        res = {"resourceType": "Observation", "id": self.epic_id(62)}
        cat = r.choice(("vital-signs",) * 5 + ("laboratory",) * 4 + ("social-history",) * 2)
        status = r.choice(("final",) * 16 + ("amended",) * 2 + ("preliminary",) * 2)
        if cat == "social-history" and status == "preliminary":
            status = "final"
        res["status"] = status
        res["category"] = [{"coding": [{"system": OBS_CAT[v], "code": cat,
                                        "display": OBS_CAT_DISPLAY[cat]}],
                            "text": OBS_CAT_DISPLAY[cat]}]
        t = self.moment(person)
        value = None
        extra = {}
        if cat == "vital-signs":
            if r.random() < 0.2:
                code = {"coding": [
                    {"system": FLOWSHEET_SYSTEM, "code": "5", "display": "Blood Pressure"},
                    {"system": FLOWSHEET_ID_SYSTEM, "code": "tBdNYepLeojPG60x7nUx9kQ0",
                     "display": "Blood Pressure"},
                    {"system": LOINC, "code": "85354-9",
                     "display": "Blood pressure panel with all children optional"},
                    {"system": LOINC, "code": "8716-3", "display": "Vital signs"}],
                    "text": "Blood Pressure"}
                sys_, dia = r.randint(95, 175), r.randint(55, 105)
                extra["component"] = [
                    {"code": {"coding": [{"system": LOINC, "code": lc, "display": ld}],
                              "text": ld},
                     "valueQuantity": {"value": val, "unit": "mm[Hg]", "system": UCUM,
                                       "code": "mm[Hg]"}}
                    for lc, ld, val in (("8480-6", "Systolic blood pressure", sys_),
                                        ("8462-4", "Diastolic blood pressure", dia))]
            else:
                fs, text, lc, ld, unit, lo, hi, dec = r.choice(VITALS)
                code = {"coding": [
                    {"system": FLOWSHEET_SYSTEM, "code": fs, "display": text},
                    {"system": LOINC, "code": lc, "display": ld},
                    {"system": LOINC, "code": "8716-3", "display": "Vital signs"}],
                    "text": text}
                value = ("valueQuantity", self.quantity(lo, hi, dec, unit))
            eff = ("effectiveDateTime", self.fmt(t, self.pick_style(
                [("Z", 7), ("instant", 2), ("date", 1)])))
        elif cat == "laboratory":
            lab = r.choice(LABS)
            lc, ld, text, kind = lab[:4]
            code = {"coding": [{"system": LOINC, "code": lc, "display": ld}], "text": text}
            if status == "preliminary" and r.random() < 0.7:
                value = None
            elif kind == "q":
                unit, lo, hi, dec, rlo, rhi = lab[4:]
                q = self.quantity(lo, hi, dec, unit)
                value = ("valueQuantity", q)
                if r.random() < 0.7:
                    extra["referenceRange"] = [{
                        "low": {"value": rlo, "unit": unit, "system": UCUM, "code": unit},
                        "high": {"value": rhi, "unit": unit, "system": UCUM, "code": unit},
                        "text": "%s - %s %s" % (rlo, rhi, unit)}]
                    flag = "H" if q["value"] > rhi else "L" if q["value"] < rlo else "N"
                    extra["interpretation"] = [{"coding": [{
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
                        if v == "R4" else "http://hl7.org/fhir/v2/0078",
                        "code": flag, "display": {"H": "High", "L": "Low", "N": "Normal"}[flag]}],
                        "text": {"H": "High", "L": "Low", "N": "Normal"}[flag]}]
            elif kind == "s":
                value = ("valueString", r.choice(lab[4]))
            else:
                sc, sd, st = r.choice(lab[4])
                value = ("valueCodeableConcept", {"coding": [
                    {"system": SNOMED, "code": sc, "display": sd}], "text": st})
            eff = ("effectiveDateTime", self.fmt(t, self.pick_style(
                [("Z", 6), ("instant", 2), ("date", 2)])))
        else:
            lc, ld, text, kind, vals = r.choice(SOCIAL)
            code = {"coding": [{"system": LOINC, "code": lc, "display": ld}], "text": text}
            if kind == "s":
                value = ("valueString", r.choice(vals))
            else:
                sc, sd, st = r.choice(vals)
                value = ("valueCodeableConcept", {"coding": [
                    {"system": SNOMED, "code": sc, "display": sd}], "text": st})
            style = self.pick_style([("date", 5), ("period", 3), ("Z", 2)])
            if style == "period":
                eff = ("effectivePeriod", {"end": self.fmt(t, "date")})
            else:
                eff = ("effectiveDateTime", self.fmt(t, style))
        res["code"] = code
        res["subject"] = person.ref()
        res[eff[0]] = eff[1]
        res["issued"] = self.fmt(self.later(t, 3), "Z")
        if cat != "social-history" and r.random() < 0.6:
            res["performer"] = [PHYSICIAN]
        if value is not None:
            res[value[0]] = value[1]
        res.update(extra)
        return res

    def quantity(self, lo, hi, dec, unit):
        val = round(self.rng.uniform(lo, hi), dec)
        if dec == 0:
            val = int(val)
        return {"value": val, "unit": unit, "system": UCUM, "code": unit}

    # -- Condition --------------------------------------------------------------------

    def condition(self, person):
        r = self.rng
        v = self.version
        icd, icd_d, sct, sct_d, text, acute = r.choice(CONDITIONS)
        res = {"resourceType": "Condition", "id": self.epic_id(42)}
        cat = "encounter-diagnosis" if (acute and r.random() < 0.7) or r.random() < 0.15 \
            else "problem-list-item"
        if cat == "problem-list-item":
            clinical = r.choice(("active",) * 7 + ("resolved",) * 2 + ("inactive",))
            if acute and r.random() < 0.6:
                clinical = "resolved"
        else:
            clinical = r.choice((None,) * 3 + ("active",) * 4 + ("resolved",) * 3)
        verification = r.choice(("confirmed",) * 17 + ("provisional",) * 2 + ("differential",))
        if clinical is not None:
            if v == "STU3":
                res["clinicalStatus"] = clinical
            else:
                res["clinicalStatus"] = {"coding": [{
                    "system": R4_CONDITION_CLINICAL, "version": "4.0.0", "code": clinical,
                    "display": clinical.capitalize()}], "text": clinical.capitalize()}
        if v == "STU3":
            res["verificationStatus"] = verification
        else:
            res["verificationStatus"] = {"coding": [{
                "system": R4_CONDITION_VERIFICATION, "version": "4.0.0", "code": verification,
                "display": verification.capitalize()}], "text": verification.capitalize()}
        res["category"] = [{"coding": [{
            "system": CONDITION_CATEGORY[v], "code": cat,
            "display": CONDITION_CATEGORY_DISPLAY[cat]}], "text": CONDITION_CATEGORY_DISPLAY[cat]}]
        coding = [{"system": ICD10, "code": icd, "display": icd_d}]
        if sct:
            coding.append({"system": SNOMED, "code": sct, "display": sct_d})
        res["code"] = {"coding": coding, "text": text}
        res["subject"] = person.ref()
        t = self.moment(person)
        style = self.pick_style([(None, 2), ("date", 5), ("month", 1), ("instant", 2)])
        if style is not None:
            res["onsetDateTime"] = self.fmt(t, style)
        if clinical in ("resolved", "inactive") and r.random() < 0.75:
            res["abatementDateTime"] = self.fmt(self.later(t, 120), "date")
        recorded = self.fmt(self.later(t, 30), "date")
        res["recordedDate" if v == "R4" else "assertedDate"] = recorded
        if r.random() < 0.5:
            res["recorder" if v == "R4" else "asserter"] = PHYSICIAN
        return res

    # -- AllergyIntolerance -----------------------------------------------------------

    def allergy(self, person):
        r = self.rng
        v = self.version
        res = {"resourceType": "AllergyIntolerance", "id": self.epic_id(86)}
        t = self.moment(person)
        if r.random() < 0.12:
            # Epic's "Not on File" entry (as in the recorded R4 sandbox traffic)
            if v == "STU3":
                res["clinicalStatus"] = "active"
                res["verificationStatus"] = "unconfirmed"
            else:
                res["clinicalStatus"] = self.cc(R4_ALLERGY_CLINICAL, "active", "Active")
                res["verificationStatus"] = self.cc(R4_ALLERGY_VERIFICATION, "unconfirmed",
                                                    "Unconfirmed")
            res["code"] = {"coding": [{"system": SNOMED, "code": "1631000175102",
                                       "display": "Patient not asked"}], "text": "Not on File"}
            res["patient"] = person.ref()
            return res
        system, code, display, text, category, type_, reactions = r.choice(ALLERGENS)
        clinical = r.choice(("active",) * 8 + ("inactive", "resolved"))
        verification = r.choice(("confirmed",) * 4 + ("unconfirmed",))
        if v == "STU3":
            res["clinicalStatus"] = clinical
            res["verificationStatus"] = verification
        else:
            res["clinicalStatus"] = self.cc(R4_ALLERGY_CLINICAL, clinical, clinical.capitalize())
            res["verificationStatus"] = self.cc(R4_ALLERGY_VERIFICATION, verification,
                                                verification.capitalize())
        res["type"] = type_
        res["category"] = [category]
        res["criticality"] = r.choice(("low", "low", "high", "unable-to-assess"))
        res["code"] = {"coding": [{"system": system, "code": code, "display": display}],
                       "text": text}
        res["patient"] = person.ref()
        style = self.pick_style([(None, 3), ("date", 4), ("year", 1), ("instant", 2)])
        if style is not None:
            res["onsetDateTime"] = self.fmt(t, style)
        res["recordedDate" if v == "R4" else "assertedDate"] = self.fmt(self.later(t, 400), "Z")
        if r.random() < 0.8:
            rx = []
            for sc, sd, st in reactions[:r.randint(1, len(reactions))]:
                one = {"manifestation": [{"coding": [{"system": SNOMED, "code": sc,
                                                      "display": sd}], "text": st}]}
                if r.random() < 0.6:
                    one["severity"] = r.choice(("mild", "moderate", "severe"))
                rx.append(one)
            res["reaction"] = rx
        return res

    @staticmethod
    def cc(system, code, display):
        return {"coding": [{"system": system, "version": "4.0.0", "code": code,
                            "display": display}], "text": display}

    # -- Encounter --------------------------------------------------------------------

    def encounter(self, person):
        r = self.rng
        v = self.version
        r4_class, stu3_class, type_code, type_text = r.choice(ENCOUNTER_KINDS)
        res = {"resourceType": "Encounter", "id": self.epic_id(22),
               "identifier": [{"use": "usual", "system": CSN_SYSTEM,
                               "value": "%d" % r.randint(20000, 99999999)}]}
        status = r.choice(("finished",) * 14 + ("in-progress", "arrived", "planned",
                                                  "cancelled", "cancelled",
                                                  "entered-in-error"))
        res["status"] = status
        if v == "R4":
            res["class"] = {"system": EPIC_CLASS_SYSTEM, "code": r4_class[0],
                            "display": r4_class[1]}
        else:
            res["class"] = {"system": "http://hl7.org/fhir/v3/ActCode", "code": stu3_class[0],
                            "display": stu3_class[1]}
        res["type"] = [{"coding": [{"system": EPIC_ENC_TYPE_SYSTEM, "code": type_code,
                                    "display": type_text}], "text": type_text}]
        res["subject"] = person.ref()
        res["participant"] = [{"individual": dict(PHYSICIAN)}]
        if status == "planned":
            t = self.moment(person, 2025, 2025)
        else:
            t = self.moment(person)
        style = self.pick_style([("Z", 6), ("instant", 3), ("date", 1)])
        offset = r.choice(OFFSETS)
        period = {"start": self.fmt(t, style, offset)}
        if status in ("finished", "entered-in-error") or (status == "cancelled"
                                                          and r.random() < 0.5):
            days = 8 if r4_class[0] == "1" else 0.4
            period["end"] = self.fmt(self.later(t, days), style, offset)
        res["period"] = period
        if r.random() < 0.6:
            sc, sd = r.choice(ENCOUNTER_REASONS)
            reason = [{"coding": [{"system": SNOMED, "code": sc, "display": sd}], "text": sd}]
            res["reasonCode" if v == "R4" else "reason"] = reason
        res["serviceProvider"] = {"reference": "Organization/enRyWnSP963FYDpoks4NHOA3",
                                  "display": "EHS Service Area"}
        return res

    # -- Immunization -----------------------------------------------------------------

    def immunization(self, person):
        r = self.rng
        v = self.version
        cvx, text, mfr, dose = r.choice(VACCINES)
        res = {"resourceType": "Immunization", "id": self.epic_id(22),
               "identifier": [{"use": "usual", "system": IMM_ID_SYSTEM,
                               "value": "%d" % r.randint(10000, 999999)}]}
        not_given = r.random() < 0.06
        if v == "R4":
            res["status"] = "not-done" if not_given else r.choice(
                ("completed",) * 19 + ("entered-in-error",))
            if not_given:
                res["statusReason"] = {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActReason",
                    "code": "PATOBJ", "display": "patient objection"}], "text": "Patient refused"}
        else:
            res["status"] = r.choice(("completed",) * 19 + ("entered-in-error",))
            res["notGiven"] = not_given
            if not_given:
                res["explanation"] = {"reasonNotGiven": [{"coding": [{
                    "system": "http://hl7.org/fhir/v3/ActReason", "code": "PATOBJ",
                    "display": "patient objection"}], "text": "Patient refused"}]}
        res["vaccineCode"] = {"coding": [{"system": CVX, "code": cvx}], "text": text}
        res["patient"] = person.ref()
        t = self.moment(person, 2000)
        when = self.fmt(t, self.pick_style([("date", 7), ("Z", 2), ("instant", 1)]))
        res["occurrenceDateTime" if v == "R4" else "date"] = when
        res["primarySource"] = r.random() < 0.3
        if not not_given:
            res["manufacturer"] = {"display": mfr}
            res["lotNumber"] = "%d" % r.randint(100, 99999)
            res["doseQuantity"] = {"value": dose, "unit": "mL", "system": IMM_DOSE_SYSTEM,
                                   "code": "1"}
        return res

    # -- Procedure --------------------------------------------------------------------

    def procedure(self, person):
        r = self.rng
        v = self.version
        epic_code, system, code, display, text, cat = r.choice(PROCEDURES)
        res = {"resourceType": "Procedure", "id": self.epic_id(42),
               "status": r.choice(PROC_STATUSES[v])}
        cc, cd, ct = PROC_CATEGORIES[cat]
        res["category"] = {"coding": [{"system": SNOMED, "code": cc, "display": cd}],
                           "text": ct}
        res["code"] = {"coding": [
            {"system": EPIC_PROC_SYSTEM, "code": epic_code, "display": text},
            {"system": system, "code": code, "display": display}], "text": text}
        res["subject"] = person.ref()
        t = self.moment(person)
        k = r.random()
        if res["status"] in ("not-done", "aborted", "preparation") and k < 0.7:
            pass
        elif k < 0.6:
            res["performedDateTime"] = self.fmt(t, self.pick_style(
                [("date", 4), ("Z", 4), ("instant", 2)]))
        elif k < 0.92:
            start = self.fmt(t, "Z")
            if res["status"] == "in-progress":
                res["performedPeriod"] = {"start": start}
            else:
                res["performedPeriod"] = {"start": start,
                                          "end": self.fmt(self.later(t, 0.3), "Z")}
        if r.random() < 0.7:
            res["performer"] = [{"actor": dict(PHYSICIAN)}]
        return res

    # -- MedicationRequest (STU3) -----------------------------------------------------

    def stu3_request(self, person):
        r = self.rng
        rid = self.epic_id(42)
        med, dosage = self.medication(None)
        res = {"resourceType": "MedicationRequest", "id": rid,
               "status": r.choice(STU3_MR_STATUSES),
               "intent": "order" if r.random() < 0.9 else "plan"}
        cat = r.choice(STU3_MR_CATEGORIES)
        res["category"] = {"coding": [{
            "system": "http://hl7.org/fhir/medication-request-category", "code": cat,
            "display": cat.capitalize()}], "text": cat.capitalize()}
        res.update(med)
        res["subject"] = person.ref()
        style = self.pick_style([("Z", 6), ("instant", 2), ("date", 2), (None, 1)])
        if style is not None:
            res["authoredOn"] = self.fmt(self.moment(person, 2005), style)
        res["requester"] = {"agent": dict(PHYSICIAN)}
        res["dosageInstruction"] = [dosage]
        return res


MAKERS = {"Observation": Clinical.observation, "Condition": Clinical.condition,
          "AllergyIntolerance": Clinical.allergy, "Encounter": Clinical.encounter,
          "Immunization": Clinical.immunization, "Procedure": Clinical.procedure,
          "MedicationRequest": Clinical.stu3_request}


def norm_login(s):
    import unicodedata
    d = unicodedata.normalize("NFKD", s)
    return "".join(c for c in d if c.isalnum() and c.isascii()).upper()


def display_name(pat):
    n = pat["name"][0]
    return "%s, %s" % (n["family"], " ".join(n.get("given", [])))


def groups(version, pats):
    """Epic-like registries (Group.Read) over the patients pats (in generation order):
    registry-all (every patient), registry-sample (every 10th, with periods; every 30th
    inactive), registry-500 (the first 500), registry-empty (no member) and
    registry-mixed (three patients, a Practitioner, a Device and a member with only a
    display: members that are not Patients)."""
    def member(p, n=None, period=False):
        m = {"entity": {"reference": "Patient/" + p["id"], "display": display_name(p)}}
        if period:
            m["period"] = {"start": "2020-%02d-%02dT08:00:00Z" % (1 + n % 12, 1 + n % 28)}
            if n % 30 == 0:
                m["period"]["end"] = "2024-06-30T17:00:00Z"
                m["inactive"] = True
            else:
                m["inactive"] = False
        return m

    def group(gid, name, members):
        g = {"resourceType": "Group", "id": gid,
             "identifier": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.2.798268",
                             "value": gid.upper()}],
             "active": True, "type": "person", "actual": True, "name": name,
             "quantity": len(members)}
        if members:
            g["member"] = members
        return g

    sample = [member(p, n, True) for n, p in enumerate(pats) if n % 10 == 0]
    mixed = [member(p) for p in pats[:3]]
    mixed[1:1] = [{"entity": {"reference": "Practitioner/eM5CWtq15N0WJeuCet5bJlQ3",
                              "display": "Physician, Family Medicine, MD"}},
                  {"entity": {"reference": "Device/eDevice0000000000000003",
                              "display": "Glucose monitor"}, "inactive": False}]
    mixed.append({"entity": {"display": "Patient not on file"}})
    return [group("registry-all", "All patients of the registry", [member(p) for p in pats]),
            group("registry-sample", "Registry sample", sample),
            group("registry-500", "The first 500 patients", [member(p) for p in pats[:500]]),
            group("registry-empty", "Empty registry", []),
            group("registry-mixed", "Registry with members that are not patients", mixed)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--version", required=True, choices=("STU3", "R4"))
    ap.add_argument("--patients", required=True, type=int)
    ap.add_argument("--statements-per-patient", required=True, type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--types", default="all",
                    help="clinical types to write: all (default), none, or a comma-separated "
                    "list of " + ", ".join(CLINICAL_TYPES + ("MedicationRequest (STU3)",)))
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.patients < 0 or a.statements_per_patient < 0:
        ap.error("counts must be >= 0")
    clinical = CLINICAL_TYPES + (("MedicationRequest",) if a.version == "STU3" else ())
    if a.types == "none":
        types = ()
    elif a.types == "all":
        types = clinical
    else:
        want = a.types.split(",")
        bad = [t for t in want if t not in clinical]
        if bad:
            ap.error("--types: unknown for %s: %s" % (a.version, ", ".join(bad)))
        types = tuple(t for t in clinical if t in want)
    os.makedirs(a.out, exist_ok=True)
    g = Gen(a.version, a.seed)
    for p in PUBLIC:
        g.ids.add(p[0])
    med_type = "MedicationStatement" if a.version == "STU3" else "MedicationRequest"
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    np = nm = 0
    people = []
    pats = []
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
            pats.append({"id": pat["id"], "name": pat["name"]})
            if types:
                people.append(Person(n, pat))
            m = a.statements_per_patient
            if n == 2 or n % 20 == 19:
                m = 0
            elif n % 20 == 9:
                m = 2 * m
            for _ in range(m):
                mf.write(dumps(make(pat)))
                mf.write("\n")
                nm += 1
    # the clinical types: each from its own random stream, after the stream above is done
    counts = []
    for rtype in types:
        cg = Clinical(a.version, a.seed, rtype, g.ids)
        make = MAKERS[rtype].__get__(cg)
        path = os.path.join(a.out, rtype + ".ndjson")
        k = 0
        with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
            for person in people:
                for _ in range(cg.count(person)):
                    f.write(dumps(make(person)))
                    f.write("\n")
                    k += 1
        os.replace(path + ".tmp", path)
        counts.append("%d %s" % (k, rtype))
    # Groups (registries) last: they only name patients, no random stream
    path = os.path.join(a.out, "Group.ndjson")
    with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
        for grp in groups(a.version, pats):
            f.write(dumps(grp))
            f.write("\n")
    os.replace(path + ".tmp", path)
    counts.append("5 Group")
    os.replace(pat_path + ".tmp", pat_path)
    os.replace(med_path + ".tmp", med_path)
    sys.stderr.write("generate.py: %d Patient, %d %s%s in %s\n"
                     % (np, nm, med_type, "".join(", " + c for c in counts), a.out))
    return 0

if __name__ == "__main__":
    sys.exit(main())
