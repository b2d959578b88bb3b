"""Dataset serving for the epic_fdw sandbox: FHIR search semantics over a directory of resources.

A Dataset is loaded from a directory of *.json files (one resource, a JSON array of
resources, or a Bundle whose entry[].resource are taken) and *.ndjson files (one resource
a line). Resources are indexed by resourceType and id; for each resource only the values of
the supported search parameters are kept (pre-normalised), plus its JSON text as UTF-8
bytes, so that page bodies are rendered by joining bytes.

Search semantics follow FHIR R4 §3.1.1.4 (see search()): parameters are AND-ed (also a
repeated name), a comma inside a value is OR (with the escapes \\, \\| \\$ \\\\), strings are
case- and accent-insensitive prefix matches (:exact, :contains), tokens are exact
[system]|[code] matches (:not), dates use range semantics with the prefixes
eq ne gt lt ge le sa eb, references match the target id (ignoring _history); every
parameter also accepts :missing=true|false. The parameters of each resource type are in
param_table(); Epic's required ones (check_required) answer HTTP 400 with code 59159.

A dataset can also be made from resources in memory (the sandbox's POST /_sandbox/dataset
for named ad-hoc datasets): then any resource type is searchable with _id and _count.

Only the standard library is used; sandbox.py wires this into its HTTP handler.
"""

import array
import collections
import gc
import glob
import json
import os
import re
import secrets
import sys
import threading
import unicodedata
import urllib.parse

FHIR_JSON_STD = "application/fhir+json; charset=utf-8"
DEFAULT_COUNT = 100
MAX_COUNT = 1000
MAX_PAGE_TOKENS = 5000
NEG_INF = float("-inf")
POS_INF = float("inf")
CONTROL_PARAMS = ("_count", "_getpages")
EPIC_OUTCOME_SYSTEM = "urn:oid:1.2.840.114350.1.13.0.1.7.2.657369"


class SearchError(Exception):
    """An error answered as an OperationOutcome."""

    def __init__(self, status, code, diagnostics, epic_code=None, severity="error",
                 display=None, expression=None):
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics
        self.epic_code, self.severity = epic_code, severity
        self.display, self.expression = display, expression

    def outcome(self):
        issue = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.epic_code:
            display = self.display or self.diagnostics
            issue["details"] = {"coding": [{"system": EPIC_OUTCOME_SYSTEM, "code": self.epic_code,
                                            "display": display}],
                                "text": display}
        if self.expression:
            issue["location"] = ["/f:" + e for e in self.expression]
            issue["expression"] = list(self.expression)
        return {"resourceType": "OperationOutcome", "issue": [issue]}


class LoadError(ValueError):
    """A dataset that cannot be loaded (bad JSON, not a resource, duplicate id)."""


# --------------------------------------------------------------------------------------
# Value normalisation
# --------------------------------------------------------------------------------------

def norm_string(s):
    """Case- and accent-insensitive form: NFKD, combining marks dropped, casefolded."""
    if s.isascii():
        return s.lower()
    d = unicodedata.normalize("NFKD", s)
    return "".join(c for c in d if not unicodedata.combining(c)).casefold()


_DATE_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?"
                      r"(Z|[+-]\d{2}:\d{2})?)?)?)?$")
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
US = 1000000  # microseconds per second


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def date_range(s):
    """FHIR date/dateTime/instant text -> half-open [low, high) in UTC epoch microseconds.

    The range covers the value's precision: a year, a month, a day, a minute, a second, or
    the given fraction of a second. A time without an offset is taken as UTC. Raises
    ValueError for anything else."""
    m = _DATE_RE.match(s)
    if not m:
        raise ValueError("not a FHIR date/dateTime: %r" % s)
    ys, ms, ds, hs, mins, ss, frac, tz = m.groups()
    y = int(ys)
    if ms is None:
        return _days_from_civil(y, 1, 1) * 86400 * US, _days_from_civil(y + 1, 1, 1) * 86400 * US
    mo = int(ms)
    if not 1 <= mo <= 12:
        raise ValueError("bad month in %r" % s)
    if ds is None:
        ny, nm = (y + 1, 1) if mo == 12 else (y, mo + 1)
        return (_days_from_civil(y, mo, 1) * 86400 * US,
                _days_from_civil(ny, nm, 1) * 86400 * US)
    d = int(ds)
    dim = 29 if (mo == 2 and _leap(y)) else _DAYS_IN_MONTH[mo - 1]
    if not 1 <= d <= dim:
        raise ValueError("bad day in %r" % s)
    day0 = _days_from_civil(y, mo, d) * 86400 * US
    if hs is None:
        return day0, day0 + 86400 * US
    h, mi = int(hs), int(mins)
    if h > 23 or mi > 59:
        raise ValueError("bad time in %r" % s)
    off = 0
    if tz and tz != "Z":
        oh, om = int(tz[1:3]), int(tz[4:6])
        if oh > 14 or om > 59:
            raise ValueError("bad offset in %r" % s)
        off = (oh * 3600 + om * 60) * (1 if tz[0] == "+" else -1)
    low = day0 + (h * 3600 + mi * 60 - off) * US
    if ss is None:
        return low, low + 60 * US
    sec = int(ss)
    if sec > 60:
        raise ValueError("bad seconds in %r" % s)
    low += sec * US
    if not frac:
        return low, low + US
    digits = frac[1:]
    if len(digits) >= 6:
        return low + int(digits[:6]), low + int(digits[:6]) + 1
    unit = 10 ** (6 - len(digits))
    return low + int(digits) * unit, low + int(digits) * unit + unit


# --------------------------------------------------------------------------------------
# Extractors: resource dict -> tuple of indexed values
#   string    -> (original, normalised)
#   token     -> (system or None, code)
#   date      -> (low, high)      half-open, microseconds, +-inf for open Period ends
#   reference -> (type or None, id)
# --------------------------------------------------------------------------------------

def _strs(*vals):
    out = []
    for v in vals:
        if isinstance(v, str) and v:
            out.append((v, norm_string(v)))
        elif isinstance(v, list):
            out.extend((x, norm_string(x)) for x in v if isinstance(x, str) and x)
    return tuple(out)


def _names(r, parts):
    vals = []
    for n in r.get("name") or ():
        for p in parts:
            vals.append(n.get(p))
    return _strs(*vals)


def _addr(r, parts):
    vals = []
    for a in r.get("address") or ():
        for p in parts:
            vals.append(a.get(p))
    return _strs(*vals)


def _identifiers(r):
    return tuple((i.get("system"), i["value"]) for i in r.get("identifier") or ()
                 if isinstance(i.get("value"), str))


def _telecom(r, system=None):
    return tuple((t.get("system"), t["value"]) for t in r.get("telecom") or ()
                 if isinstance(t.get("value"), str) and (system is None or t.get("system") == system))


def _code(v):
    return ((None, v),) if isinstance(v, str) and v else ()


def _bool(v):
    return ((None, "true" if v else "false"),) if isinstance(v, bool) else ()


def _codings(cc):
    if isinstance(cc, dict):
        cc = [cc]
    out = []
    for c in cc or ():
        for cd in (c.get("coding") or ()) if isinstance(c, dict) else ():
            if isinstance(cd.get("code"), str):
                out.append((cd.get("system"), cd["code"]))
    return tuple(out)


def _date(v):
    if not isinstance(v, str):
        return ()
    return (date_range(v),)


def _period(p):
    if not isinstance(p, dict):
        return ()
    low = date_range(p["start"])[0] if isinstance(p.get("start"), str) else NEG_INF
    high = date_range(p["end"])[1] if isinstance(p.get("end"), str) else POS_INF
    return ((low, high),)


def parse_reference(s):
    """'id', 'Type/id', 'http://x/Type/id', '.../Type/id/_history/2' -> (Type or None, id)."""
    s = s.strip()
    parts = [p for p in s.split("/") if p != ""]
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if not parts:
        return None, ""
    if len(parts) == 1:
        return None, parts[0]
    return parts[-2], parts[-1]


def _refs(v, only_type=None):
    if isinstance(v, dict):
        v = [v]
    out = []
    for x in v or ():
        ref = x.get("reference") if isinstance(x, dict) else None
        if isinstance(ref, str) and ref:
            t, i = parse_reference(ref)
            if only_type is None or t == only_type:
                out.append((t, i))
    return tuple(out)


def _coding(c):
    """A Coding (not a CodeableConcept), e.g. Encounter.class."""
    if isinstance(c, dict) and isinstance(c.get("code"), str):
        return ((c.get("system"), c["code"]),)
    return ()


def _common():
    return {"_id": ("id", None)}


def _clinical(subject="subject", patient_only=False):
    """patient (and subject unless patient_only) over the element `subject`."""
    out = _common()
    out["patient"] = ("reference", lambda r: _refs(r.get(subject), "Patient"))
    if not patient_only:
        out["subject"] = ("reference", lambda r: _refs(r.get(subject)))
    return out


def _status_cc(version, field):
    """clinical-status style token: a code in STU3, a CodeableConcept in R4."""
    if version == "STU3":
        return ("token", lambda r: _code(r.get(field)))
    return ("token", lambda r: _codings(r.get(field)))


def param_table(version):
    """resourceType -> {param name: (type, extractor)}."""
    patient = _common()
    patient.update({
        "identifier": ("token", _identifiers),
        "family": ("string", lambda r: _names(r, ("family",))),
        "given": ("string", lambda r: _names(r, ("given",))),
        # FHIR leaves name matching to the server ("may match any of the string fields");
        # this one matches the parts only, never HumanName.text, as some servers do
        "name": ("string", lambda r: _names(r, ("family", "given", "prefix", "suffix"))),
        "birthdate": ("date", lambda r: _date(r.get("birthDate"))),
        "gender": ("token", lambda r: _code(r.get("gender"))),
        "address-city": ("string", lambda r: _addr(r, ("city",))),
        "address-state": ("string", lambda r: _addr(r, ("state",))),
        "address-postalcode": ("string", lambda r: _addr(r, ("postalCode",))),
        "address": ("string", lambda r: _addr(r, ("line", "city", "state", "postalCode",
                                                   "country", "text"))),
        "active": ("bool", lambda r: _bool(r.get("active"))),
        "telecom": ("token", _telecom),
    })
    if version == "R4":
        patient["phone"] = ("token", lambda r: _telecom(r, "phone"))
        patient["email"] = ("token", lambda r: _telecom(r, "email"))
    ms = _common()
    ms.update({
        "patient": ("reference", lambda r: _refs(r.get("subject"), "Patient")),
        "subject": ("reference", lambda r: _refs(r.get("subject"))),
        "status": ("token", lambda r: _code(r.get("status"))),
        "category": ("token", lambda r: _codings(r.get("category"))),
        "effective": ("date", lambda r: _date(r.get("effectiveDateTime"))
                      + _period(r.get("effectivePeriod"))),
    })
    mr = _common()
    mr.update({
        "patient": ("reference", lambda r: _refs(r.get("subject"), "Patient")),
        "subject": ("reference", lambda r: _refs(r.get("subject"))),
        "status": ("token", lambda r: _code(r.get("status"))),
        "intent": ("token", lambda r: _code(r.get("intent"))),
        "category": ("token", lambda r: _codings(r.get("category"))),
        "authoredon": ("date", lambda r: _date(r.get("authoredOn"))),
    })
    obs = _clinical()
    obs.update({
        "category": ("token", lambda r: _codings(r.get("category"))),
        "code": ("token", lambda r: _codings(r.get("code"))),
        "date": ("date", lambda r: _date(r.get("effectiveDateTime"))
                 + _period(r.get("effectivePeriod")) + _date(r.get("effectiveInstant"))),
        "status": ("token", lambda r: _code(r.get("status"))),
    })
    cond = _clinical()
    cond.update({
        "category": ("token", lambda r: _codings(r.get("category"))),
        "clinical-status": _status_cc(version, "clinicalStatus"),
        "code": ("token", lambda r: _codings(r.get("code"))),
        "onset-date": ("date", lambda r: _date(r.get("onsetDateTime"))
                       + _period(r.get("onsetPeriod"))),
    })
    allergy = _clinical("patient", patient_only=True)
    allergy["clinical-status"] = _status_cc(version, "clinicalStatus")
    enc = _clinical()
    enc.update({
        "date": ("date", lambda r: _period(r.get("period"))),
        "status": ("token", lambda r: _code(r.get("status"))),
        "class": ("token", lambda r: _coding(r.get("class"))),
    })
    imm = _clinical("patient", patient_only=True)
    imm_date = "date" if version == "STU3" else "occurrenceDateTime"
    imm.update({
        "date": ("date", lambda r: _date(r.get(imm_date))),
        "status": ("token", lambda r: _code(r.get("status"))),
    })
    proc = _clinical()
    proc.update({
        "date": ("date", lambda r: _date(r.get("performedDateTime"))
                 + _period(r.get("performedPeriod"))),
        "status": ("token", lambda r: _code(r.get("status"))),
        "code": ("token", lambda r: _codings(r.get("code"))),
    })
    return {"Patient": patient, "MedicationStatement": ms, "MedicationRequest": mr,
            "Observation": obs, "Condition": cond, "AllergyIntolerance": allergy,
            "Encounter": enc, "Immunization": imm, "Procedure": proc}


# Epic's minimum search criteria (enforced when a Dataset has epic_rules): a search of
# these types without a patient (patient or subject, where the type has both) answers
# HTTP 400 with Epic's code 59159; so does an Observation search without category (R4:
# category or code, as Epic's R4 says "Must have either code or category"). _id alone is
# always enough. Patient, MedicationStatement and MedicationRequest have no such rule here.
PATIENT_REQUIRED = ("Observation", "Condition", "AllergyIntolerance", "Encounter",
                    "Immunization", "Procedure")
BUSINESS_RULE = "The content/operation failed to pass a business rule, and so could not proceed."
OBSERVATION_CATEGORY_HELP = ("missing a required parameter: this resource requires a category "
                             "for searching. Use laboratory for lab results, vital-signs for vital signs, social-history for "
                             "social history, or core-characteristics for core characteristics.")
RTYPE_RE = re.compile(r"^[A-Z][A-Za-z]{0,63}$")


def required_error(diag, param):
    return SearchError(400, "required", diag, epic_code="59159", severity="fatal",
                       display=BUSINESS_RULE, expression=[param])


def check_required(version, rtype, params, given):
    """given: the search parameter names (without modifiers) used, :missing ones left out."""
    if rtype not in PATIENT_REQUIRED or "_id" in given:
        return
    pats = [p for p in ("patient", "subject") if p in params]
    if not any(p in given for p in pats):
        raise required_error("missing a required parameter: a %s search requires %s (or _id)"
                             % (rtype, " or ".join(pats)), "patient")
    if rtype == "Observation" and "category" not in given \
            and not (version == "R4" and "code" in given):
        raise required_error(OBSERVATION_CATEGORY_HELP, "category")


# --------------------------------------------------------------------------------------
# Parameter value parsing
# --------------------------------------------------------------------------------------

def split_escaped(s, sep):
    """Split on unescaped `sep`; escapes are kept (for a later split or unescape())."""
    out, cur, i = [], [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if c == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return out


def unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in ",|$\\":
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def _date_pred(prefix, plo, phi):
    if prefix == "eq":
        return lambda lo, hi: plo <= lo and hi <= phi
    if prefix == "ne":
        return lambda lo, hi: not (plo <= lo and hi <= phi)
    if prefix == "gt":
        return lambda lo, hi: hi > phi
    if prefix == "lt":
        return lambda lo, hi: lo < plo
    if prefix == "ge":
        return lambda lo, hi: hi > phi or (plo <= lo and hi <= phi)
    if prefix == "le":
        return lambda lo, hi: lo < plo or (plo <= lo and hi <= phi)
    if prefix == "sa":
        return lambda lo, hi: lo >= phi
    if prefix == "eb":
        return lambda lo, hi: hi <= plo
    raise AssertionError(prefix)


def bad(diag):
    return SearchError(400, "invalid", diag, epic_code="59108")


def compile_param(name, mod, ptype, raw):
    """-> predicate(values tuple) -> bool."""
    if raw == "":
        raise bad("search parameter %s has an empty value" % name)
    if mod == "missing":
        if raw not in ("true", "false"):
            raise bad("%s:missing must be true or false" % name)
        want_missing = raw == "true"
        return lambda vals: (not vals) == want_missing
    alts = split_escaped(raw, ",")
    if any(a == "" for a in alts):
        raise bad("search parameter %s has an empty value in %r" % (name, raw))

    if ptype == "string":
        if mod not in ("", "exact", "contains"):
            raise not_supported_mod(name, mod)
        if mod == "exact":
            want = [unescape(a) for a in alts]
            return lambda vals: any(o == w for o, _ in vals for w in want)
        want = [norm_string(unescape(a)) for a in alts]
        if mod == "contains":
            return lambda vals: any(w in n for _, n in vals for w in want)
        want = tuple(want)
        return lambda vals: any(n.startswith(want) for _, n in vals)

    if ptype in ("token", "bool", "id"):
        if mod not in ("", "not"):
            raise not_supported_mod(name, mod)
        specs = []
        for a in alts:
            parts = split_escaped(a, "|")
            if ptype == "id":
                parts = [a]
            if len(parts) == 1:
                system, code = None, unescape(parts[0])   # any system
            elif len(parts) == 2:
                system, code = unescape(parts[0]), unescape(parts[1])
                if code == "":
                    code = None                           # system| : any code
                if system == "" and code is None:
                    raise bad("search parameter %s: %r is not a token" % (name, a))
            else:
                raise bad("search parameter %s: too many | in %r" % (name, a))
            if ptype == "bool" and code is not None:
                code = code.lower()
                if code not in ("true", "false"):
                    raise bad("search parameter %s must be true or false" % name)
            specs.append((system, code))

        def one(el_sys, el_code):
            for system, code in specs:
                if code is not None and code != el_code:
                    continue
                if system is None:
                    return True
                if system == "":
                    if not el_sys:
                        return True
                elif system == el_sys:
                    return True
            return False

        if mod == "not":
            return lambda vals: not any(one(s, c) for s, c in vals)
        return lambda vals: any(one(s, c) for s, c in vals)

    if ptype == "date":
        if mod != "":
            raise not_supported_mod(name, mod)
        preds = []
        for a in alts:
            a = unescape(a)
            prefix = "eq"
            if a[:2] in DATE_PREFIXES:
                prefix, a = a[:2], a[2:]
            if prefix == "ap":
                raise SearchError(400, "not-supported", "sandbox: the ap prefix is not supported "
                                  "(search parameter %s)" % name)
            try:
                plo, phi = date_range(a)
            except ValueError as e:
                raise bad("search parameter %s: %s" % (name, e))
            preds.append(_date_pred(prefix, plo, phi))
        return lambda vals: any(p(lo, hi) for lo, hi in vals for p in preds)

    if ptype == "reference":
        if mod not in ("",) and not (mod[:1].isupper() and mod.isalnum()):
            raise not_supported_mod(name, mod)
        specs = []
        for a in alts:
            t, i = parse_reference(unescape(a))
            if mod:
                if t is not None and t != mod:
                    raise bad("search parameter %s:%s: value %r has another type" % (name, mod, a))
                t = mod
            specs.append((t, i))
        return lambda vals: any(i == ei and (t is None or t == et)
                                for et, ei in vals for t, i in specs)
    raise AssertionError(ptype)


def not_supported_mod(name, mod):
    return SearchError(400, "not-supported", "modifier :%s is not supported for search parameter "
                       "%s" % (mod, name))


# --------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------

def resource_items(doc):
    """The resources of a JSON document: a Bundle's entry[].resource, an array's items,
    or the document itself."""
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        return [e.get("resource") if isinstance(e, dict) else None
                for e in doc.get("entry") or ()]
    if isinstance(doc, list):
        return doc
    return [doc]


class TypeStore:
    __slots__ = ("rtype", "params", "ids", "texts", "vals", "by_id", "ref_index")

    def __init__(self, rtype, params):
        self.rtype = rtype
        self.params = params          # name -> (type, extractor)
        self.ids = []                 # sorted by id after finish()
        self.texts = []               # UTF-8 JSON bytes
        self.vals = []                # per resource: {param: tuple} (non-empty only)
        self.by_id = {}               # id -> index
        self.ref_index = {}           # param -> {target id -> [index...]}


class Dataset:
    """The resources of one dataset, indexed for search.

    Dataset(version, directory) loads a directory (errors end the process, as at sandbox
    start); Dataset(version, resources=[...], name=NAME) loads resources given in memory
    (errors raise LoadError). name (default: the version) is the path segment the dataset
    is served under, /dataset/NAME/. any_type: every resource type name is searchable
    (with _id and _count at least; none of a type -> an empty searchset) instead of 404 for
    types neither loaded nor in param_table; resources without an id are accepted too (they
    are served as given, indexed under a made-up id anon-N). epic_rules: enforce Epic's
    required search parameters (check_required). lenient: an unknown search parameter is
    ignored, as FHIR's default handling=lenient allows, instead of answering 400: the
    searchset then carries an OperationOutcome issue "not-supported" naming it, and its
    self link leaves it out (the self link lists the parameters the server used)."""

    def __init__(self, version, directory=None, resources=None, name=None, any_type=False,
                 epic_rules=True, lenient=False):
        self.version = version
        self.lenient = lenient
        self.name = name or version
        self.directory = directory
        self.any_type = any_type
        self.epic_rules = epic_rules
        self.table = param_table(version)
        self.stores = {}
        self.pages = collections.OrderedDict()   # token -> (store, indexes array, offset, count)
        self.lock = threading.Lock()
        self._staging = {}
        self._anon = 0
        if resources is not None:
            self._load_items(resources, "body")
        else:
            self.load()

    # -- loading -------------------------------------------------------------------------

    def load(self):
        files = sorted(glob.glob(os.path.join(self.directory, "*.json"))
                       + glob.glob(os.path.join(self.directory, "*.ndjson")))
        if not files:
            raise SystemExit("sandbox: dataset %s: no *.json or *.ndjson files in %s"
                             % (self.version, self.directory))
        gc_was_enabled = gc.isenabled()
        gc.disable()   # millions of small tuples: generational GC would dominate loading
        try:
            self._load_files(files)
        except LoadError as e:
            raise SystemExit("sandbox: %s" % e)
        finally:
            if gc_was_enabled:
                gc.enable()
        gc.collect()
        gc.freeze()    # keep the loaded data out of later collections

    def _load_files(self, files):
        for path in files:
            if path.endswith(".ndjson"):
                add, loads = self._add, json.loads
                with open(path, "rb") as f:
                    for lineno, line in enumerate(f, 1):
                        line = line.strip()
                        if not line:
                            continue
                        try:
                            res = loads(line)
                        except ValueError as e:
                            raise LoadError("%s:%d: %s" % (path, lineno, e))
                        add(res, line, (path, lineno))
            else:
                with open(path, "rb") as f:
                    try:
                        doc = json.load(f)
                    except ValueError as e:
                        raise LoadError("%s: %s" % (path, e))
                for i, res in enumerate(resource_items(doc)):
                    self._add(res, None, (path, i))
        self._finish_all()

    def _load_items(self, items, where):
        for i, res in enumerate(items):
            self._add(res, None, (where, i))
        self._finish_all()

    def _finish_all(self):
        for rtype, store in self._staging.items():
            self._finish(store)
            self.stores[rtype] = store
        del self._staging

    def _add(self, res, text, where):
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str) \
                or not (isinstance(res.get("id"), str)
                        or (self.any_type and res.get("id") is None)):
            raise LoadError("%s:%s: not a resource with resourceType and id" % where)
        rtype = res["resourceType"]
        if self.any_type and not RTYPE_RE.match(rtype):
            raise LoadError("%s:%s: bad resourceType %r" % (where + (rtype,)))
        store = self._staging.get(rtype)
        if store is None:
            params = self.table.get(rtype) or _common()
            store = self._staging[rtype] = TypeStore(rtype, params)
        rid = res.get("id")
        if rid is None:
            self._anon += 1
            rid = "anon-%d" % self._anon
        vals = {}
        for pname, (ptype, ex) in store.params.items():
            if ptype == "id":
                continue
            try:
                v = ex(res)
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                sys.stderr.write("sandbox: %s:%s: %s/%s: %s not indexed: %s\n"
                                 % (where + (rtype, rid, pname, e)))
                continue
            if v:
                vals[pname] = v
        if text is None:
            text = json.dumps(res, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        store.ids.append(rid)
        store.texts.append(text)
        store.vals.append(vals)

    @staticmethod
    def _finish(store):
        order = sorted(range(len(store.ids)), key=store.ids.__getitem__)
        store.ids = [store.ids[i] for i in order]
        store.texts = [store.texts[i] for i in order]
        store.vals = [store.vals[i] for i in order]
        for i, rid in enumerate(store.ids):
            if rid in store.by_id:
                raise LoadError("dataset: duplicate %s/%s" % (store.rtype, rid))
            store.by_id[rid] = i
        for pname, (ptype, _) in store.params.items():
            if ptype != "reference":
                continue
            idx = {}
            for i, v in enumerate(store.vals):
                for _, target in v.get(pname, ()):
                    lst = idx.get(target)
                    if lst is None:
                        idx[target] = [i]
                    elif lst[-1] != i:
                        lst.append(i)
            store.ref_index[pname] = idx

    def summary(self):
        return ", ".join("%d %s" % (len(s.ids), t) for t, s in sorted(self.stores.items()))

    def counts(self):
        return {t: len(s.ids) for t, s in sorted(self.stores.items())}

    def supports(self, rtype):
        return rtype in self.stores or rtype in self.table or bool(
            self.any_type and RTYPE_RE.match(rtype))

    def store(self, rtype):
        s = self.stores.get(rtype)
        if s is None and self.supports(rtype):
            s = TypeStore(rtype, self.table.get(rtype) or _common())
            self._finish(s)
            s = self.stores.setdefault(rtype, s)
        return s

    # -- reads and searches ------------------------------------------------------------

    def read(self, rtype, rid):
        s = self.store(rtype)
        i = s.by_id.get(rid) if s else None
        if i is None:
            raise SearchError(404, "not-found", "Resource %s/%s is not known" % (rtype, rid),
                              epic_code="4102")
        return s.texts[i]

    def search(self, rtype, pairs):
        """pairs: list of (name, value), URL-decoded. Returns (store, indexes, count)."""
        s = self.store(rtype)
        count = None
        preds = []
        candidates = None
        given = set()
        ignored = []
        for name, value in pairs:
            if name == "_count":
                if count is not None:
                    raise bad("_count is repeated")
                try:
                    count = int(value)
                except ValueError:
                    raise bad("_count must be a positive integer, got %r" % value)
                if count < 1:
                    raise bad("_count must be a positive integer, got %r" % value)
                continue
            if name == "_getpages":
                raise bad("_getpages cannot be combined with search parameters")
            base, _, mod = name.partition(":")
            spec = s.params.get(base)
            if spec is None and self.lenient:
                ignored.append(name)
                continue
            if spec is None:
                raise SearchError(400, "not-supported", "Unknown search parameter '%s' for %s"
                                  % (base, rtype), epic_code="59100")
            ptype = spec[0]
            pred = compile_param(base, mod, ptype, value)
            if mod != "missing":
                given.add(base)
            if ptype == "id" and mod == "":
                want = {unescape(a) for a in split_escaped(value, ",")}
                cand = {s.by_id[w] for w in want if w in s.by_id}
                candidates = cand if candidates is None else candidates & cand
                continue
            if ptype == "reference" and mod != "missing":
                idx = s.ref_index[base]
                cand = set()
                for a in split_escaped(value, ","):
                    cand.update(idx.get(parse_reference(unescape(a))[1], ()))
                candidates = cand if candidates is None else candidates & cand
            preds.append((base, pred, ptype == "id"))
        if self.epic_rules:
            check_required(self.version, rtype, s.params, given)
        if candidates is None:
            candidates = range(len(s.ids))
        else:
            candidates = sorted(candidates)
        vals, ids = s.vals, s.ids
        empty = ()
        out = array.array("l")
        for i in candidates:
            v = vals[i]
            for base, pred, is_id in preds:
                if not pred(((None, ids[i]),) if is_id else v.get(base, empty)):
                    break
            else:
                out.append(i)
        count = min(count or DEFAULT_COUNT, MAX_COUNT)
        self.last_ignored = ignored
        return s, out, count

    # -- paging --------------------------------------------------------------------------

    def new_page_token(self, store, indexes, offset, count):
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.pages[token] = (store, indexes, offset, count)
            while len(self.pages) > MAX_PAGE_TOKENS:
                self.pages.popitem(last=False)
        return token

    def take_page_token(self, token):
        with self.lock:
            got = self.pages.get(token)
            if got is not None:
                self.pages.move_to_end(token)
        if got is None:
            raise SearchError(400, "processing", "The search session has expired or is not "
                              "known (4113): restart the search", epic_code="4113")
        return got

    def expire_pages(self):
        with self.lock:
            n = len(self.pages)
            self.pages.clear()
        return n

    # -- rendering -----------------------------------------------------------------------

    def render_page(self, base_url, self_url, store, indexes, offset, count, ignored=()):
        """base_url: 'https://host/dataset/VER/'. Returns Bundle bytes. ignored: search
        parameters the search did not use (lenient): left out of the self link and named
        in an outcome issue."""
        page = indexes[offset:offset + count]
        if ignored:
            path, _, query = self_url.partition("?")
            kept = [(k, v) for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
                    if k not in ignored]
            self_url = path + ("?" + urllib.parse.urlencode(kept) if kept else "")
        links = [{"relation": "self", "url": self_url}]
        if offset + count < len(indexes):
            token = self.new_page_token(store, indexes, offset + count, count)
            links.append({"relation": "next",
                          "url": "%s%s?_getpages=%s" % (base_url, store.rtype, token)})
        head = {"resourceType": "Bundle", "type": "searchset", "total": len(page), "link": links}
        out = [json.dumps(head, ensure_ascii=False)[:-1].encode("utf-8"), b',"entry":[']
        prefix = json.dumps(base_url + store.rtype + "/")[:-1].encode("utf-8")
        ids, texts = store.ids, store.texts
        first = True
        for i in page:
            if not first:
                out.append(b",")
            first = False
            out.append(b'{"fullUrl":')
            out.append(prefix)
            out.append(json.dumps(ids[i])[1:].encode("utf-8"))
            out.append(b',"resource":')
            out.append(texts[i])
            out.append(b',"search":{"mode":"match"}}')
        if ignored:
            if not first:
                out.append(b",")
            first = False
            out.append(json.dumps({
                "fullUrl": "urn:uuid:" + secrets.token_hex(16),
                "resource": {"resourceType": "OperationOutcome", "issue": [{
                    "severity": "warning", "code": "not-supported",
                    "diagnostics": "Unknown search parameter '%s' for %s: ignored"
                                   % (name, store.rtype)} for name in ignored]},
                "search": {"mode": "outcome"}}).encode("utf-8"))
        if not page:
            if not first:
                out.append(b",")
            out.append(json.dumps({
                "fullUrl": "urn:uuid:" + secrets.token_hex(16),
                "resource": {"resourceType": "OperationOutcome", "issue": [{
                    "severity": "information", "code": "processing",
                    "details": {"coding": [{"system": EPIC_OUTCOME_SYSTEM, "code": "4101",
                                            "display": "Resource request returns no results."}],
                                "text": "Resource request returns no results."}}]},
                "search": {"mode": "outcome"}}).encode("utf-8"))
        out.append(b"]}")
        return b"".join(out)

    # -- HTTP entry point ----------------------------------------------------------------

    def handle(self, method, rel, base_url):
        """rel: path relative to the dataset base, with query string (raw, undecoded).

        Returns (status, body bytes)."""

        try:
            if method != "GET":
                raise SearchError(405, "not-supported", "sandbox dataset: only GET is supported")
            path, _, query = rel.partition("?")
            path = urllib.parse.unquote(path).strip("/")
            parts = path.split("/")
            rtype = parts[0]
            if not rtype or not self.supports(rtype):
                raise SearchError(404, "not-supported", "sandbox dataset: resource type %r is "
                                  "not supported" % rtype)
            if len(parts) == 2 and parts[1]:
                if query:
                    raise bad("a read takes no parameters")
                return 200, self.read(rtype, parts[1])
            if len(parts) != 1:
                raise SearchError(404, "not-supported", "sandbox dataset: unsupported path %r"
                                  % path)
            try:
                pairs = urllib.parse.parse_qsl(query, keep_blank_values=True,
                                               strict_parsing=bool(query), errors="strict")
            except (ValueError, UnicodeDecodeError) as e:
                raise bad("malformed query string: %s" % e)
            self_url = base_url + rel
            gp = [v for k, v in pairs if k == "_getpages"]
            if gp:
                if len(pairs) != 1 or not gp[0]:
                    raise bad("_getpages must be the only parameter")
                store, indexes, offset, count = self.take_page_token(gp[0])
                if store.rtype != rtype:
                    raise bad("_getpages token belongs to another resource type")
                return 200, self.render_page(base_url, self_url, store, indexes, offset, count)
            store, indexes, count = self.search(rtype, pairs)
            return 200, self.render_page(base_url, self_url, store, indexes, 0, count,
                                         self.last_ignored)
        except SearchError as e:
            return e.status, json.dumps(e.outcome()).encode("utf-8")
