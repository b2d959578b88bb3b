#!/usr/bin/python3
"""Release metadata checks: META.json against the PGXN Meta Spec 1.0.0, and one version everywhere.

Usage: python3 scripts/check_meta.py [REPO]

The extension's version has one source of truth, default_version in epic_fdw.control.
META.json (the same version as a SemVer: 0.2 -> 0.2.0, for the distribution and for the
extension it provides), the upstream part of debian/changelog's first entry (0.2-1 -> 0.2)
and a heading of CHANGELOG.md must all agree with it.  The META.json checks follow the
PGXN Meta Spec 1.0.0 (https://pgxn.org/spec/): required keys, Terms, SemVers, licenses,
version ranges, and no unknown keys except x_/X_ custom keys.  Before the real files
are checked, each rule is shown to reject a broken copy of META.json.
Prints one ok/not ok line per check and "N passed, N failed".
"""
import copy
import json
import os
import re
import sys

SEMVER = r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
RANGE_ITEM = r"(([=!]=|[<>]=?)\s*)?" + SEMVER
RANGE = re.compile(r"^(0|" + RANGE_ITEM + r"(,\s*" + RANGE_ITEM + r")*)$")
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
            "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
            "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay",
            "sun", "zlib", "open_source", "restricted", "unrestricted", "unknown"}
REQUIRED = ["name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"]
OPTIONAL = ["description", "generated_by", "tags", "no_index", "prereqs", "release_status", "resources"]
PHASES = {"configure", "build", "test", "runtime", "develop"}
RELATIONS = {"requires", "recommends", "suggests", "conflicts"}


def is_custom(key):
    return re.match(r"^[xX]_.", key) is not None


def is_term(v):
    return isinstance(v, str) and re.match(r"^[^/\\\s\x00-\x1f\x7f]{2,}$", v) is not None


def is_semver(v):
    return isinstance(v, str) and re.fullmatch(SEMVER, v) is not None


def is_text(v):
    return isinstance(v, str) and len(v) > 0


def is_uri(v):
    return isinstance(v, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$", v) is not None


def is_path(v):
    return isinstance(v, str) and v != "" and not v.startswith("/") and "\\" not in v


def check_keys(obj, where, known, errors, required=()):
    if not isinstance(obj, dict):
        errors.append("%s: not an object" % where)
        return False
    for k in required:
        if k not in obj:
            errors.append("%s: missing required key %r" % (where, k))
    for k in obj:
        if k not in known and not is_custom(k):
            errors.append("%s: unknown key %r" % (where, k))
    return True


def validate(meta):
    """The PGXN Meta Spec 1.0.0 rules; returns a list of errors (empty: valid)."""
    e = []
    if not check_keys(meta, "META.json", set(REQUIRED) | set(OPTIONAL), e, REQUIRED):
        return e
    ms = meta.get("meta-spec")
    if check_keys(ms, "meta-spec", {"version", "url"}, e, ["version"]):
        if not (isinstance(ms.get("version"), str) and re.fullmatch(r"1\.0\.\d+", ms["version"])):
            e.append("meta-spec.version: not 1.0.x")
        if "url" in ms and ms["url"] not in ("https://pgxn.org/meta/spec.txt", "http://pgxn.org/meta/spec.txt"):
            e.append("meta-spec.url: not the spec's URL")
    if "name" in meta and not is_term(meta["name"]):
        e.append("name: not a Term")
    if "version" in meta and not is_semver(meta["version"]):
        e.append("version: not a SemVer: %r" % meta["version"])
    for k in ("abstract", "description", "generated_by"):
        if k in meta and not is_text(meta[k]):
            e.append("%s: not a non-empty string" % k)
    m = meta.get("maintainer")
    if "maintainer" in meta and not (is_text(m) or (isinstance(m, list) and m and all(is_text(x) for x in m))):
        e.append("maintainer: not a string or a list of strings")
    lic = meta.get("license")
    if "license" in meta:
        if isinstance(lic, str):
            ok = lic in LICENSES
        elif isinstance(lic, list):
            ok = len(lic) > 0 and all(x in LICENSES for x in lic)
        elif isinstance(lic, dict):
            ok = len(lic) > 0 and all(is_uri(v) for v in lic.values())
        else:
            ok = False
        if not ok:
            e.append("license: not a known license name, a list of them, or names mapped to URIs")
    prov = meta.get("provides")
    if "provides" in meta:
        if not isinstance(prov, dict) or not prov:
            e.append("provides: not a non-empty object")
        else:
            for ext, d in prov.items():
                w = "provides.%s" % ext
                if not is_term(ext):
                    e.append("%s: name not a Term" % w)
                if check_keys(d, w, {"file", "version", "abstract", "docfile"}, e, ["file", "version"]):
                    if "file" in d and not is_path(d["file"]):
                        e.append("%s.file: not a relative path" % w)
                    if "docfile" in d and not is_path(d["docfile"]):
                        e.append("%s.docfile: not a relative path" % w)
                    if "version" in d and not is_semver(d["version"]):
                        e.append("%s.version: not a SemVer: %r" % (w, d["version"]))
                    if "abstract" in d and not is_text(d["abstract"]):
                        e.append("%s.abstract: not a non-empty string" % w)
    if "prereqs" in meta and check_keys(meta["prereqs"], "prereqs", PHASES, e):
        for ph, rels in meta["prereqs"].items():
            if is_custom(ph) or not check_keys(rels, "prereqs." + ph, RELATIONS, e):
                continue
            for rel, exts in rels.items():
                w = "prereqs.%s.%s" % (ph, rel)
                if is_custom(rel):
                    continue
                if not isinstance(exts, dict):
                    e.append("%s: not an object" % w)
                    continue
                for name, rng in exts.items():
                    if not is_term(name):
                        e.append("%s: %r not a Term" % (w, name))
                    if not (rng == 0 or (isinstance(rng, str) and RANGE.match(rng))):
                        e.append("%s.%s: not a version range: %r" % (w, name, rng))
    if "release_status" in meta and meta["release_status"] not in ("stable", "testing", "unstable"):
        e.append("release_status: not stable, testing or unstable")
    if "tags" in meta:
        t = meta["tags"]
        if not (isinstance(t, list) and t and all(isinstance(x, str) and 0 < len(x) <= 255 for x in t)):
            e.append("tags: not a list of strings of 1 to 255 characters")
    if "no_index" in meta and check_keys(meta["no_index"], "no_index", {"file", "directory"}, e):
        for k in ("file", "directory"):
            v = meta["no_index"].get(k)
            if v is not None and not (isinstance(v, list) and all(is_text(x) for x in v)):
                e.append("no_index.%s: not a list of strings" % k)
    if "resources" in meta and check_keys(meta["resources"], "resources", {"homepage", "bugtracker", "repository"}, e):
        r = meta["resources"]
        if "homepage" in r and not is_uri(r["homepage"]):
            e.append("resources.homepage: not a URI")
        for k, fields in (("bugtracker", {"web", "mailto"}), ("repository", {"url", "web", "type"})):
            if k in r and check_keys(r[k], "resources." + k, fields, e):
                for f in ("web", "url"):
                    if f in r[k] and not is_uri(r[k][f]):
                        e.append("resources.%s.%s: not a URI" % (k, f))
    return e


def semver_of(v):
    """An extension version as PGXN's SemVer: 0.2 -> 0.2.0."""
    parts = v.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts))) if len(parts) < 3 else v


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    results = []

    def check(ok, what, detail=""):
        results.append(ok)
        print(("ok - " if ok else "not ok - ") + what + ("" if ok or not detail else ": " + detail))

    with open(os.path.join(repo, "META.json")) as f:
        meta = json.load(f)

    # The validator rejects what the spec forbids (each broken copy must fail).
    broken = {
        "no license": lambda m: m.pop("license"),
        "an unknown license name": lambda m: m.__setitem__("license", "postgres"),
        "a two-part version": lambda m: m.__setitem__("version", "0.2"),
        "meta-spec 2.0.0": lambda m: m["meta-spec"].__setitem__("version", "2.0.0"),
        "a provided extension without file": lambda m: next(iter(m["provides"].values())).pop("file"),
        "an unknown top-level key": lambda m: m.__setitem__("homepage", "https://example.org/"),
        "a bad version range": lambda m: m.__setitem__("prereqs", {"runtime": {"requires": {"PostgreSQL": ">= 15"}}}),
        "a name with a slash": lambda m: m.__setitem__("name", "epic/fdw"),
    }
    for what, breaker in broken.items():
        m = copy.deepcopy(meta)
        breaker(m)
        check(len(validate(m)) > 0, "the META.json validator rejects " + what)

    errors = validate(meta)
    check(not errors, "META.json is valid against the PGXN Meta Spec 1.0.0", "; ".join(errors))

    with open(os.path.join(repo, "epic_fdw.control")) as f:
        m = re.search(r"^default_version\s*=\s*'([^']+)'", f.read(), re.M)
    version = m.group(1) if m else None
    check(version is not None, "epic_fdw.control has a default_version")
    if version is None:
        version = "?"
    sv = semver_of(version)
    check(meta.get("version") == sv, "META.json version is %s (default_version %s)" % (sv, version),
          "it is %r" % meta.get("version"))
    pv = meta.get("provides", {}).get("epic_fdw", {}).get("version")
    check(pv == sv, "META.json provides epic_fdw %s" % sv, "it says %r" % pv)

    with open(os.path.join(repo, "debian", "changelog")) as f:
        m = re.match(r"^(\S+) \(([^)]+)\)", f.readline())
    debver = m.group(2) if m else ""
    upstream = re.sub(r"^\d+:", "", debver).rsplit("-", 1)[0] if "-" in debver else re.sub(r"^\d+:", "", debver)
    check(upstream == version, "debian/changelog's first entry is upstream version %s" % version,
          "it is %r (add an entry: dch -v %s-1)" % (debver, version))

    with open(os.path.join(repo, "CHANGELOG.md")) as f:
        heads = [l for l in f if l.startswith("## ")]
    check(any(re.search(r"(^|[^0-9.])" + re.escape(version) + r"([^0-9.]|$)", h) for h in heads),
          "CHANGELOG.md has a section for %s" % version)

    print("%d passed, %d failed" % (results.count(True), results.count(False)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
