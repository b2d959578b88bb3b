'use strict';
/*
 * oracle.js — the differential FHIRPath tier: expressions generated over the
 * documented subset, evaluated by fhirpath.js (the HL7 community's engine,
 * pinned at 5.2.2, with its R4 and STU3 models) and by epic_fdw's evaluator
 * (oracle_fhirpath.c), results compared.  Run by run.sh; see README.md here.
 *
 *   node oracle.js --fhirpath NODE_MODULES --runner PROG --resources DIR...
 *        [--seed N] [--count N] [--known known.json]
 *
 * Prints, per function and operator, how many evaluations used it and how
 * many gave a non-empty result; the disagreements (the first ones in full);
 * and "N passed, N failed" last.  A disagreement passes only when it is one
 * of the classes of known.json (each with its reason); a function or
 * operator used fewer than 200 times or non-empty in fewer than 30% of them
 * fails the run too.  Exit status 1 when anything failed.
 */
const fs = require('fs');
const path = require('path');
const cp = require('child_process');

/* ---- arguments ---------------------------------------------------------- */
const args = { resources: [], seed: 1, count: 27000 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const v = process.argv[++i];
  if (a === '--resources') args.resources.push(v);
  else if (a === '--seed') args.seed = Number(v);
  else if (a === '--count') args.count = Number(v);
  else args[a.replace(/^--/, '')] = v;
}
const fp = require(path.join(args.fhirpath, 'fhirpath'));
const pkg = require(path.join(args.fhirpath, 'fhirpath', 'package.json'));
const MODELS = {
  r4: require(path.join(args.fhirpath, 'fhirpath', 'fhir-context', 'r4')),
  stu3: require(path.join(args.fhirpath, 'fhirpath', 'fhir-context', 'stu3')),
};
const known = JSON.parse(fs.readFileSync(args.known, 'utf8'));

/* ---- a seeded PRNG (mulberry32) ----------------------------------------- */
let state = args.seed >>> 0;
function rnd() {
  state = (state + 0x6D2B79F5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (a) => a[Math.floor(rnd() * a.length)];
const chance = (p) => rnd() < p;

/* ---- resources ------------------------------------------------------------ */
/* DIR/stu3|r4/*.json: a resource, an array of resources, a Bundle, or fixture
 * exchanges ({request, response: {body}}); *.ndjson: one resource a line. */
const resources = [];
function addResource(version, r) {
  if (r == null || typeof r !== 'object') return;
  if (Array.isArray(r)) { r.forEach((x) => addResource(version, x)); return; }
  if (r.response && r.request) { addResource(version, r.response.body); return; }
  if (r.resourceType === 'Bundle') { (r.entry || []).forEach((e) => addResource(version, e.resource)); return; }
  if (typeof r.resourceType !== 'string' || r.resourceType === 'OperationOutcome') return;
  resources.push({ version, res: r });
}
for (const dir of args.resources) {
  for (const version of ['stu3', 'r4']) {
    const d = path.join(dir, version);
    if (!fs.existsSync(d)) continue;
    for (const f of fs.readdirSync(d).sort()) {
      const text = fs.readFileSync(path.join(d, f), 'utf8');
      if (f.endsWith('.ndjson')) text.split('\n').filter((l) => l.trim()).forEach((l) => addResource(version, JSON.parse(l)));
      else if (f.endsWith('.json')) addResource(version, JSON.parse(text));
    }
  }
}

/* ---- what a resource offers: paths, leaves, extensions -------------------- */
const CHOICE_TYPES = ['Quantity', 'CodeableConcept', 'String', 'Boolean', 'Integer', 'Decimal', 'DateTime',
  'Date', 'Time', 'Instant', 'Period', 'Range', 'Ratio', 'Reference', 'Age', 'Duration', 'Code', 'Uri',
  'Attachment', 'Coding', 'Identifier', 'SampledData', 'Timing', 'Count', 'Distance', 'Money', 'Annotation'];
const choiceBases = new Set();
for (const m of Object.values(MODELS)) for (const k of Object.keys(m.choiceTypePaths)) choiceBases.add(k.split('.').pop());
const DATE_RE = /^\d{4}(-\d\d(-\d\d(T\d\d(:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:\d\d)?)?)?)?$/;
const TIME_RE = /^\d\d(:\d\d(:\d\d(\.\d+)?)?)?$/;

/* The FHIRPath name of member key of a value of type ptype (the model's
 * choice elements only: valueQuantity -> value; Immunization.doseQuantity
 * stays), and the type of its value (a BackboneElement: its path). */
function fpName(model, ptype, key) {
  for (const t of CHOICE_TYPES) {
    if (key.length > t.length && key.endsWith(t)) {
      const base = key.slice(0, key.length - t.length);
      if (ptype && model.choiceTypePaths[ptype + '.' + base]) return { name: base, choice: t, type: typeOf(model, ptype, key) };
    }
  }
  return { name: key, choice: null, type: typeOf(model, ptype, key) };
}
function typeOf(model, ptype, name) {
  if (!ptype) return null;
  for (let t = ptype, depth = 0; t && depth < 8; depth++) {
    const key = t + '.' + name;
    if (model.pathsDefinedElsewhere[key]) return model.pathsDefinedElsewhere[key];
    let v = model.path2Type[key];
    if (v) {
      if (typeof v === 'object') v = v.code;
      return v === 'BackboneElement' || v === 'Element' ? key : v;
    }
    t = t.includes('.') ? null : model.type2Parent[t];
  }
  return null;
}

function catalogue(entry) {
  if (entry.cat) return entry.cat;
  const paths = new Map();     /* path -> {path, objects, leaves: [values], choice, multi} */
  const exts = [];             /* {path, url, sub: [urls]} */
  function add(p, v, choice, multi, type) {
    let e = paths.get(p);
    if (!e) { e = { path: p, objects: 0, leaves: [], choices: new Set(), multi: false, type }; paths.set(p, e); }
    if (choice) e.choices.add(choice);
    if (multi) e.multi = true;
    if (v !== null && typeof v === 'object') e.objects++;
    else e.leaves.push(v);
  }
  const model = MODELS[entry.version];
  function walk(obj, prefix, depth, ptype) {
    if (depth > 6) return;
    for (const [k, v] of Object.entries(obj)) {
      if (k.startsWith('_') && v !== null && typeof v === 'object') {
        /* a primitive's extensions ("_family"): the primitive is an element even without a value */
        const { name, type } = fpName(model, ptype, k.slice(1));
        const p = prefix ? prefix + '.' + name : name;
        for (const it of Array.isArray(v) ? v : [v]) {
          if (it === null || typeof it !== 'object') continue;
          if (!paths.has(p)) add(p, {}, null, Array.isArray(v), type);
          for (const x of it.extension || []) {
            if (typeof x.url === 'string') exts.push({ path: p, url: x.url, sub: [] });
          }
        }
        continue;
      }
      if (k === 'resourceType' || k.startsWith('_') || k === 'contained' || k === 'text' && typeof v === 'object') continue;
      const { name, choice, type } = fpName(model, ptype, k);
      const p = prefix ? prefix + '.' + name : name;
      const items = Array.isArray(v) ? v : [v];
      for (const it of items) {
        if (it === null) continue;
        add(p, it, choice, Array.isArray(v), type);
        if (typeof it === 'object') {
          if (k === 'extension' && typeof it.url === 'string') {
            exts.push({ path: prefix, url: it.url, sub: (it.extension || []).map((x) => x.url).filter(Boolean) });
          }
          walk(it, p, depth + 1, type);
        }
      }
    }
  }
  walk(entry.res, '', 0, entry.res.resourceType);
  const all = [...paths.values()];
  entry.cat = {
    all,
    objs: all.filter((e) => e.objects > 0 && e.leaves.length === 0 && all.some((c) => c.path.startsWith(e.path + '.') && c.leaves.length)),
    leaves: all.filter((e) => e.leaves.length > 0),
    strings: all.filter((e) => e.leaves.some((v) => typeof v === 'string')),
    numbers: all.filter((e) => e.leaves.some((v) => typeof v === 'number')),
    bools: all.filter((e) => e.leaves.length && e.leaves.every((v) => typeof v === 'boolean')),
    /* (only dates: a number compared with a date is empty in fhirpath.js, false in FHIRPath: README) */
    dates: all.filter((e) => e.leaves.length && e.leaves.every((v) => typeof v === 'string' && (DATE_RE.test(v) || TIME_RE.test(v)))),
    choices: all.filter((e) => e.choices.size > 0),
    /* elements the model types (ofType on others is not defined) */
    typed: all.filter((e) => e.type && e.type !== 'Extension'),
    exts,
  };
  return entry.cat;
}

/* ---- literals --------------------------------------------------------------- */
function strLit(s) {
  return "'" + String(s).replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r').replace(/\t/g, '\\t') + "'";
}
function numLit(n) {
  const s = String(n);
  return s.includes('e') ? '0' : s;
}
const ZONES = ['Z', '+01:00', '-05:00', '+05:30', '+14:00', '-12:00', '+00:00'];
/* a date/time literal near v (a date, dateTime or time string) at a random precision */
function dateLitNear(v) {
  if (TIME_RE.test(v)) {
    const parts = v.split(/[:.]/);
    const n = 1 + Math.floor(rnd() * Math.min(3, parts.length));
    let t = parts.slice(0, n).join(':');
    if (chance(0.3)) t = t.replace(/^\d\d/, (h) => String((Number(h) + pick([1, 23])) % 24).padStart(2, '0'));
    return '@T' + t;
  }
  const m = v.match(/^(\d{4})(?:-(\d\d))?(?:-(\d\d))?(?:T(\d\d)(?::(\d\d))?(?::(\d\d))?(\.\d+)?)?(Z|[+-]\d\d:\d\d)?$/);
  if (!m) return '@2020';
  let comps = [m[1], m[2], m[3], m[4], m[5], m[6]].filter((x) => x !== undefined);
  /* mostly the same precision as the data, sometimes coarser or finer */
  let prec = comps.length;
  const r = rnd();
  if (r < 0.2) prec = Math.max(1, prec - 1 - Math.floor(rnd() * 2));
  else if (r < 0.3) prec = Math.min(6, prec + 1);
  while (comps.length < prec) comps.push(comps.length < 3 ? '01' : '00');
  comps = comps.slice(0, prec);
  if (chance(0.35)) {
    /* shift one component */
    const i = Math.floor(rnd() * comps.length);
    const lim = [9999, 12, 28, 23, 59, 59][i];
    const base = i < 3 ? 1 : 0;
    comps[i] = String(((Number(comps[i]) - base + pick([1, -1]) + lim + 1 - base) % (lim + 1 - base)) + base)
      .padStart(i === 0 ? 4 : 2, '0');
  }
  let s = comps[0];
  if (prec >= 2) s += '-' + comps[1];
  if (prec >= 3) s += '-' + comps[2];
  if (prec >= 4) {
    s += 'T' + comps[3];
    if (prec >= 5) s += ':' + comps[4];
    /* fractions of 3 digits: fhirpath.js reads '.5' as 5 ms when ordering (README) */
    if (prec >= 6) s += ':' + comps[5] + (m[7] && chance(0.5) ? m[7] : chance(0.2) ? '.' + String(Math.floor(rnd() * 1000)).padStart(3, '0') : '');
    /* a zone: the data's, another, or none */
    if (prec >= 5) {
      const z = m[8] && chance(0.6) ? m[8] : chance(0.6) ? pick(ZONES) : '';
      s += z;
    }
  } else if (prec === 3 && chance(0.1)) s += 'T';
  return '@' + s;
}
function randomDateLit() {
  const y = 1990 + Math.floor(rnd() * 40);
  const base = `${y}-${String(1 + Math.floor(rnd() * 12)).padStart(2, '0')}-${String(1 + Math.floor(rnd() * 28)).padStart(2, '0')}` +
    `T${String(Math.floor(rnd() * 24)).padStart(2, '0')}:${String(Math.floor(rnd() * 60)).padStart(2, '0')}:${String(Math.floor(rnd() * 60)).padStart(2, '0')}` +
    (chance(0.3) ? '.' + String(Math.floor(rnd() * 1000)).padStart(3, '0') : '') + pick(ZONES.concat(['']));
  return chance(0.2) ? dateLitNear(base.slice(11, 19)) : dateLitNear(base);
}
/* a literal for a value v of the data: the same value or a near one */
function litNear(v) {
  if (typeof v === 'boolean') return chance(0.7) ? String(v) : String(!v);
  if (typeof v === 'number') {
    if (chance(0.5)) return numLit(v);
    return numLit(pick([v + 1, v - 1, v * 2, 0, 1, 2.5, Math.round(v)]));
  }
  if (typeof v === 'string' && (DATE_RE.test(v) || TIME_RE.test(v)) && chance(0.6)) return dateLitNear(v);
  if (chance(0.6)) return strLit(v);
  return strLit(pick([v + 'x', v.slice(0, -1), v.toUpperCase(), '', 'a']));
}
const LIT_KINDS = [() => strLit(pick(['a', 'final', 'female', 'x y', '', '2020'])), () => String(Math.floor(rnd() * 20) - 5),
  () => (rnd() * 20 - 5).toFixed(1 + Math.floor(rnd() * 3)), () => pick(['true', 'false']), () => randomDateLit()];
function anyLit() { return pick(LIT_KINDS)(); }

/* ---- the expression generator ----------------------------------------------- */
const OPS_CMP = ['=', '!=', '<', '>', '<=', '>='];
const SYSTEM_TYPES = ['String', 'Integer', 'Decimal', 'Boolean', 'Date', 'DateTime', 'Time'];
const FHIR_TYPES = ['string', 'code', 'uri', 'boolean', 'integer', 'decimal', 'date', 'dateTime', 'instant', 'time',
  'Quantity', 'Age', 'Duration', 'CodeableConcept', 'Coding', 'Reference', 'Period', 'Identifier', 'HumanName',
  'Address', 'ContactPoint', 'Element', 'Range', 'Annotation', 'Meta'];
/* not Extension: fhirpath.js 5.2.2 types extension elements as Object (README) */
const T = (e, tags, extra) => Object.assign({ e, t: tags }, extra || {});

function leafValue(L) { return pick(L.leaves); }
function dateValue(L) { return pick(L.leaves.filter((v) => typeof v === 'string' && (DATE_RE.test(v) || TIME_RE.test(v)))); }
/* a singleton of a leaf path */
function one(L) { return L.multi || L.path.includes('.') ? L.path + '.first()' : L.path; }
function childOf(cat) {
  const O = pick(cat.objs);
  const kids = cat.leaves.filter((c) => c.path.startsWith(O.path + '.') && !c.path.slice(O.path.length + 1).includes('.'));
  const C = kids.length ? pick(kids) : cat.leaves.find((c) => c.path.startsWith(O.path + '.'));
  return { O, C, rel: C.path.slice(O.path.length + 1) };
}
function cmpOn(cat) {
  const L = pick(cat.leaves.filter((e) => !e.leaves.some((v) => typeof v === 'boolean')).concat(cat.leaves).slice(0, Math.max(1, cat.leaves.length - cat.bools.length)));
  return `${one(L)} ${pick(OPS_CMP)} ${litNear(leafValue(L))}`;
}
function missingPath(cat) { return pick(cat.all).path + pick(['X', '.nothing', 'Zz']); }

const GENERATORS = [
  { need: 'all', gen: (c) => T(pick(c.all).path, ['nav']) },
  { need: 'all', gen: (c) => { const P = pick(c.all); return T(`${P.path}[${pick([0, 0, 1, 2, -1])}]`, ['index']); } },
  { need: 'all', gen: (c) => { const P = pick(c.all); const f = pick(['first', 'last', 'count']); return T(`${P.path}.${f}()`, [f]); } },
  { need: 'all', gen: (c) => { const f = pick(['exists', 'empty']); const p = chance(0.6) ? pick(c.all).path : missingPath(c); return T(`${p}.${f}()`, [f]); } },
  { need: 'all', gen: (c) => { const P = pick(c.all); return chance(0.5) ? T(`${P.path}.distinct()`, ['distinct']) : T(`(${P.path} | ${P.path}).distinct().count()`, ['distinct', '|', 'count']); } },
  { need: 'objs', gen: (c) => { const { O, C, rel } = childOf(c); const cond = chance(0.8) ? `${rel} = ${litNear(leafValue(C))}` : `${rel}.exists()`; return T(`${O.path}.where(${cond})` + pick(['', '.count()', '.' + rel]), ['where', '=']); } },
  { need: 'leaves', gen: (c) => { const L = pick(c.leaves); return T(`${L.path}.where($this ${pick(['=', '!='])} ${litNear(leafValue(L))})`, ['where']); } },
  { need: 'bools', gen: (c) => T(`${pick(c.bools).path}.where($this)`, ['where'], { whereThis: true }) },
  { need: 'objs', gen: (c) => { const { O, C, rel } = childOf(c); return T(`${O.path}.exists(${rel} = ${litNear(leafValue(C))})`, ['exists']); } },
  { need: 'objs', gen: (c) => { const { O, C, rel } = childOf(c); const s = pick([rel, `${rel} | ${litNear(leafValue(C))}`, `${rel}.first()`, `${rel} | ${rel}`]); return T(`${O.path}.select(${s})`, s.includes('|') ? ['select', '|'] : ['select']); } },
  { need: 'all', gen: (c) => { const a = pick(c.all).path; const b = chance(0.8) ? pick(c.all).path : missingPath(c); return T(`${a}.combine(${b})` + pick(['', '.count()']), ['combine']); } },
  { need: 'leaves', gen: (c) => { const cond = chance(0.5) ? `${pick(c.all).path}.exists()` : cmpOn(c); return T(`iif(${cond}, ${pick([() => pick(c.all).path, anyLit])()}` + (chance(0.7) ? `, ${pick([() => pick(c.all).path, anyLit])()})` : ')'), ['iif']); } },
  { need: 'choices', gen: (c) => { const P = pick(c.choices); const real = [...P.choices][0]; const t = chance(0.6) ? (/^[A-Z][a-z]+$/.test(real) && ['String', 'Boolean', 'Integer', 'Decimal', 'Date', 'Time'].includes(real) && chance(0.5) ? real : real[0].toLowerCase() + real.slice(1)) : pick(FHIR_TYPES.concat(SYSTEM_TYPES, ['Quantity', 'DateTime'])); const tt = /^(string|boolean|integer|decimal|date|dateTime|time|code|uri|instant)$/.test(t) || SYSTEM_TYPES.includes(t) ? t : t[0].toUpperCase() + t.slice(1); return T(`${P.path}.ofType(${tt})` + pick(['', '.exists()']), ['ofType']); } },
  /* (not System Date/DateTime of a FHIR date: fhirpath.js 5.2.2 takes a date for a DateTime, README) */
  { need: 'typed', gen: (c) => { const P = pick(c.typed); const t = chance(0.4) && !P.type.includes('.') ? P.type : pick(FHIR_TYPES.concat(SYSTEM_TYPES).filter((x) => P.type !== 'date' || !/^Date/.test(x))); return T(`${P.path}.ofType(${t})`, ['ofType']); } },
  /* is / as, as operators and as functions: the element's own type, or another (a FHIR element is of no System type) */
  { need: 'typed', gen: (c) => { const P = pick(c.typed); const t = chance(0.4) && !P.type.includes('.') ? P.type : pick(FHIR_TYPES.concat(SYSTEM_TYPES, ['Element', 'Quantity', 'Coding'])); const op = pick(['is', 'as']); const e = chance(0.5) ? `${one(P)} ${op} ${t}` : `${one(P)}.${op}(${t})`; return T(op === 'as' ? `(${e})` + pick(['', '.exists()']) : e, [op]); } },
  { need: 'choices', gen: (c) => { const P = pick(c.choices); const real = [...P.choices][0]; const t = chance(0.5) ? real[0].toLowerCase() + real.slice(1) : pick(['Quantity', 'CodeableConcept', 'string', 'dateTime', 'Period', 'boolean', 'Reference']); const tt = /^(string|boolean|integer|decimal|date|dateTime|time|code|uri|instant)$/.test(t) ? t : t[0].toUpperCase() + t.slice(1); const op = pick(['is', 'as']); return T(op === 'is' ? `${one(P)} is ${tt}` : `(${one(P)} as ${tt})` + pick(['', '.exists()']), [op]); } },
  { need: 'all', gen: () => { const k = pick(LIT_KINDS); const op = pick(['is', 'as']); const t = pick(SYSTEM_TYPES.concat(['string', 'integer', 'decimal', 'boolean', 'date'])); return T(`${k()} ${op} ${chance(0.3) ? 'System.' + pick(SYSTEM_TYPES) : t}` + (op === 'as' ? pick(['', '.exists()']) : ''), [op]); } },
  { need: 'exts', gen: (c) => { const x = pick(c.exts); const pre = x.path ? x.path + '.' : ''; let e = `${pre}extension(${strLit(chance(0.9) ? x.url : 'http://example.org/none')})`; if (x.sub.length && chance(0.4)) e += `.extension(${strLit(pick(x.sub))})`; e += pick(['', '.value', '.value.ofType(Coding).code', '.url', '.exists()']); return T(e, e.includes('ofType') ? ['extension', 'ofType'] : ['extension']); } },
  { need: 'strings', gen: (c) => { const L = pick(c.strings.filter((e) => e.leaves.every((v) => typeof v === 'string'))); return T(`${L.path}.join(${pick(["', '", "''", "'|'", ''])})`, ['join']); } },
  { need: 'objs', gen: (c) => { const { O, rel } = childOf(c); return T(`${O.path}.select(${rel}.join('+')).join(';')`, ['join', 'select'], { joinSelect: true }); } },
  { need: 'leaves', gen: (c) => { const e = pick([() => `(${cmpOn(c)}).not()`, () => `${pick(c.all).path}.exists().not()`, () => `${pick(c.all).path}.empty().not()`]); return T(e(), ['not']); } },
  { need: 'bools', gen: (c) => T(`${one(pick(c.bools))}.not()`, ['not']) },
  { need: 'dates', gen: (c) => { const L = pick(c.dates); const f = pick(['lowBoundary', 'highBoundary']); return T(`${one(L)}.${f}()`, [f]); } },
  { need: 'numbers', gen: (c) => { const L = pick(c.numbers); const f = pick(['lowBoundary', 'highBoundary']); return T(`${one(L)}.${f}()`, [f]); } },
  { need: 'all', gen: () => { const f = pick(['lowBoundary', 'highBoundary']); const l = chance(0.5) ? randomDateLit() : (rnd() * 100).toFixed(Math.floor(rnd() * 4)); return T(`${l}.${f}()`, [f]); } },
  { need: 'leaves', gen: (c) => { const L = pick(c.leaves); const op = pick(OPS_CMP); return T(`${one(L)} ${op} ${litNear(leafValue(L))}`, [op], { lhs: one(L) }); } },
  { need: 'dates', gen: (c) => { const L = pick(c.dates); const op = pick(OPS_CMP); return T(`${one(L)} ${op} ${dateLitNear(dateValue(L))}`, [op]); } },
  { need: 'all', gen: () => { const op = pick(OPS_CMP); const a = randomDateLit(); const b = chance(0.5) ? dateLitNear(a.slice(a.startsWith('@T') ? 2 : 1)) : randomDateLit(); return T(`${a} ${op} ${b}`, [op]); } },
  /* literals of one kind, or a string and a date (a number and a date: see README, not generated) */
  { need: 'all', gen: () => { const op = pick(OPS_CMP); const k = pick(LIT_KINDS); const a = k(); const z = chance(0.8) ? k() : (k === LIT_KINDS[0] ? randomDateLit() : LIT_KINDS[0]()); return T(`${a} ${op} ${z}`, [op], { boolOperands: k === LIT_KINDS[3] }); } },
  { need: 'numbers', gen: (c) => { const L = pick(c.numbers); const op = pick(['+', '-', '*', '/']); return T(`${one(L)} ${op} ${litNear(pick(L.leaves.filter((v) => typeof v === 'number')))}`, [op]); } },
  { need: 'all', gen: () => { const op = pick(['+', '-', '*', '/']); const n = () => (chance(0.5) ? String(Math.floor(rnd() * 20) - 5) : (rnd() * 20 - 5).toFixed(1 + Math.floor(rnd() * 2))); return T(`${n()} ${op} ${n()}`, [op]); } },
  { need: 'numbers', gen: (c) => T(`-${one(pick(c.numbers))}`, ['neg']) },
  { need: 'all', gen: () => T(`-(${(rnd() * 20 - 5).toFixed(Math.floor(rnd() * 3))})`, ['neg']) },
  { need: 'strings', gen: (c) => { const L = pick(c.strings); const op = pick(['+', '&']); const rhs = chance(0.8) ? strLit(pick(['x', ' ', '-'])) : (op === '&' ? missingPath(c) : strLit('')); return T(`${one(L)} ${op} ${rhs}`, [op]); } },
  { need: 'all', gen: (c) => { const a = pick(c.all).path; const b = chance(0.7) ? pick(c.all).path : anyLit(); return T(`${a} | ${b}` + pick(['', '.count()']), ['|']); } },
  { need: 'leaves', gen: (c) => { const op = pick(['and', 'or']); const x = () => (chance(0.8) ? `(${cmpOn(c)})` : `(${missingPath(c)} = 'a')`); return T(`${x()} ${op} ${x()}`, [op]); } },
];

/* resources able to feed each generator */
const pools = {};
function pool(need) {
  if (!pools[need]) pools[need] = resources.filter((r) => catalogue(r)[need].length > 0);
  return pools[need];
}

/* ---- comparison --------------------------------------------------------------- */
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) o[k] = canon(v[k]);
    return o;
  }
  return v;
}
function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}
function sameList(a, b) { return a.length === b.length && a.every((x, i) => same(x, b[i])); }

/* Does expression e give one boolean on c's resource (fhirpath.js)? */
function isBool(c, e) {
  try {
    const r = fp.evaluate(resources[c.r].res, e, null, MODELS[c.v]);
    return r.length === 1 && typeof r[0] === 'boolean';
  } catch (err) {
    return false;
  }
}

/* Does the expression apply .value to a primitive (fhirpath.js: the primitive)? */
function valueOnPrimitive(c) {
  const re = /\.value\b/g;
  let m;
  while ((m = re.exec(c.e)) !== null) {
    try {
      /* the navigation just before it: "component.value" of iif(x, component.value.value) */
      const focus = c.e.slice(0, m.index).match(/[\w.$]+$/);
      if (!focus) continue;
      const r = fp.evaluate(resources[c.r].res, focus[0], null, MODELS[c.v]);
      if (r.some((x) => x === null || typeof x !== 'object')) return true;
    } catch (err) {
      /* not an expression by itself (inside an argument): look further */
    }
  }
  return false;
}

/* The known class (known.json) a disagreement belongs to, or null. */
function classify(c, ours, theirs) {
  const tags = new Set(c.t);
  if (c.whereThis && theirs.length > ours.length && theirs.filter((x) => x !== false).length === ours.length) return 'where-this';
  if ([...tags].some((t) => ['+', '-', '*', '/', 'lowBoundary', 'highBoundary'].includes(t)) && ours.length === 1 &&
      theirs.length === 1 && typeof ours[0] === 'number' && typeof theirs[0] === 'number' &&
      Math.abs(ours[0] - theirs[0]) <= 1e-9 * Math.max(1, Math.abs(ours[0]))) return 'decimal-arithmetic';
  /* a negated decimal literal is a JS number in fhirpath.js: -2.0 is then an Integer, no Decimal */
  if ((tags.has('is') || tags.has('as')) && /^-\(?\d+\.\d+\)? (is|as) /.test(c.e)) return 'decimal-arithmetic';
  if ((c.boolOperands || /^(true|false) [<>]=? (true|false)$/.test(c.e) || (c.lhs && isBool(c, c.lhs))) &&
      ['<', '>', '<=', '>='].some((o) => tags.has(o)) && ours.length === 0 && theirs.length === 1 &&
      typeof theirs[0] === 'boolean') return 'boolean-order';
  if (valueOnPrimitive(c)) return 'primitive-value';
  if (tags.has('join') && ((ours.length === 1 && ours[0] === '' && theirs.length === 0) ||
      (c.joinSelect && ours.length === 1 && theirs.length <= 1 && typeof ours[0] === 'string' &&
       ours[0].split(';').filter((s) => s !== '').join(';') === (theirs[0] || '')))) return 'join-empty';
  if ((tags.has('lowBoundary') || tags.has('highBoundary')) && ours.length === 1 && theirs.length === 1 &&
      typeof ours[0] === 'string' && (ours[0] === theirs[0] + '+14:00' || ours[0] === theirs[0] + '-12:00')) return 'boundary-zone';
  return null;
}

/* ---- run ------------------------------------------------------------------------ */
const t0 = Date.now();
const cases = [];
const jsErrors = [];
const compiled = new Map();
while (cases.length < args.count) {
  const g = GENERATORS[cases.length % GENERATORS.length];
  const p = pool(g.need);
  if (!p.length) { cases.push(null); continue; }
  const ri = Math.floor(rnd() * p.length);
  const entry = p[ri];
  const c = g.gen(catalogue(entry));
  c.r = resources.indexOf(entry);
  c.v = entry.version;
  try {
    const key = c.v + '\u0000' + c.e;
    let f = compiled.get(key);
    if (!f) { f = fp.compile(c.e, MODELS[c.v]); compiled.set(key, f); }
    c.want = JSON.parse(JSON.stringify(f(entry.res)));
  } catch (err) {
    c.jsError = String(err.message || err).split('\n')[0];
  }
  cases.push(c);
}
const real = cases.filter((c) => c !== null);
const resFile = path.join(args.tmp, 'resources.json');
fs.writeFileSync(resFile, JSON.stringify(resources.map((r) => r.res)));
const input = real.map((c) => `${c.r}\t${c.v === 'stu3' ? 1 : 2}\t${c.e}`).join('\n') + '\n';
const out = cp.execFileSync(args.runner, [resFile], { input, maxBuffer: 1 << 30 }).toString().split('\n');

const stats = {};
const knownCount = {};
const failures = [];
let passed = 0;
let failed = 0;
real.forEach((c, i) => {
  const got = JSON.parse(out[i]);
  const nonEmpty = got.r ? got.r.length > 0 : false;
  for (const t of new Set(c.t)) {
    stats[t] = stats[t] || { n: 0, nonEmpty: 0 };
    stats[t].n++;
    if (nonEmpty) stats[t].nonEmpty++;
  }
  if (c.jsError !== undefined) {
    /* fhirpath.js raised an error: epic_fdw is lenient (README) or raises too */
    jsErrors.push(c);
    return;
  }
  if (got.e !== undefined) { failed++; failures.push(`${c.v} #${c.r} ${c.e}\n    epic_fdw error: ${got.e}\n    fhirpath.js: ${JSON.stringify(c.want)}`); return; }
  if (sameList(got.r, c.want)) { passed++; return; }
  const k = classify(c, got.r, c.want);
  if (k && known.classes[k]) { passed++; knownCount[k] = (knownCount[k] || 0) + 1; return; }
  failed++;
  failures.push(`${c.v} #${c.r} ${c.e}\n    epic_fdw:    ${JSON.stringify(got.r)}\n    fhirpath.js: ${JSON.stringify(c.want)}`);
});

console.log(`fhirpath.js ${pkg.version}, seed ${args.seed}, ${resources.length} resources, ${real.length} expressions (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
console.log('function/operator  evaluations  non-empty');
let coverageFailed = 0;
for (const t of Object.keys(stats).sort()) {
  const s = stats[t];
  const pct = (100 * s.nonEmpty) / s.n;
  const ok = s.n >= 200 && pct >= 30;
  console.log(`${ok ? 'ok' : 'not ok'} - ${t.padEnd(14)} ${String(s.n).padStart(6)} ${String(s.nonEmpty).padStart(10)} (${pct.toFixed(0)}%)`);
  if (!ok) coverageFailed++;
}
for (const [k, n] of Object.entries(knownCount)) console.log(`known disagreement ${k}: ${n} (${known.classes[k].engine}: ${known.classes[k].reason})`);
if (jsErrors.length) {
  console.log(`fhirpath.js raised an error on ${jsErrors.length} expressions (not compared), e.g.:`);
  jsErrors.slice(0, 3).forEach((c) => console.log(`    ${c.e}: ${c.jsError}`));
}
failures.slice(0, 40).forEach((f) => console.log('not ok - ' + f));
if (failures.length > 40) console.log(`... and ${failures.length - 40} more`);
console.log(`${passed} passed, ${failed + coverageFailed} failed`);
process.exit(failed + coverageFailed ? 1 : 0);
