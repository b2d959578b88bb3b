--
-- golive: what a real Epic connection needs beyond the sandbox basics: the
-- JWK Set to publish (jku), key rotation, request conventions (Epic-Client-ID,
-- Accept, extra headers), a connection check, and the audit log
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql

-- the JWK Set of the mapping's key: public members only
SELECT k->>'kty' AS kty, k->>'kid' AS kid, k->>'alg' AS alg, k->>'use' AS use,
       k->>'e' AS e, length(k->>'n') AS n_chars, k ? 'd' AS has_private
  FROM jsonb_array_elements(epic_fdw_public_jwks('sandbox')->'keys') k;

-- host it as the JWK Set of a client registered by jku (the sandbox reads
-- the document the way an authorization server fetches a jku URL)
\! psql -X -At -d contrib_regression -c "SELECT epic_fdw_public_jwks('sandbox')" > "$EPIC_SANDBOX_DIR/jwks.json"
\! /usr/bin/python3 -c "import json,os,sys; d=os.environ['EPIC_SANDBOX_DIR']; p=d+'/clients.json'; c=json.load(open(p)); c['clients']=[x for x in c['clients'] if x['client_id']!='epic-fdw-jku']+[{'client_id':'epic-fdw-jku','jku':'https://app.example.org/jwks.json','jwks_file':d+'/jwks.json'}]; json.dump(c,open(p+'.tmp','w')); os.replace(p+'.tmp',p)"
CREATE SERVER by_jku FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER by_jku
  OPTIONS (client_id 'epic-fdw-jku', private_key_file :'rsa_key', key_id 'rs1',
           jku 'https://app.example.org/jwks.json');
CREATE FOREIGN TABLE jku_patients (id text, name text) SERVER by_jku OPTIONS (resource 'Patient');
SELECT * FROM jku_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
-- the registered jku must match
\set SHOW_CONTEXT never
ALTER USER MAPPING FOR CURRENT_USER SERVER by_jku OPTIONS (SET jku 'https://evil.example.org/jwks.json');
SELECT * FROM jku_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
ALTER USER MAPPING FOR CURRENT_USER SERVER by_jku OPTIONS (SET jku 'https://app.example.org/jwks.json');

-- rotation to an ES384 key: publish old and new, switch the mapping, drop the old
\set ec_pub `openssl pkey -in "$EPIC_EC_KEY" -pubout`
SELECT jsonb_array_length(epic_fdw_public_jwks('by_jku', ARRAY[:'ec_pub'])->'keys') AS published;
SELECT k->>'kty' AS kty, k->>'alg' AS alg, length(k->>'kid') AS kid_chars,
       length(k->>'x') AS x_chars, length(k->>'y') AS y_chars
  FROM jsonb_array_elements(epic_fdw_public_jwks('by_jku', ARRAY[:'ec_pub'])->'keys') k;
\! psql -X -At -d contrib_regression -c "SELECT epic_fdw_public_jwks('by_jku', ARRAY['$(openssl pkey -in "$EPIC_EC_KEY" -pubout)'])" > "$EPIC_SANDBOX_DIR/jwks.json" && touch "$EPIC_SANDBOX_DIR/clients.json"
SELECT (epic_fdw_public_jwks('by_jku', ARRAY[:'ec_pub'])->'keys'->1->>'kid') AS new_kid \gset
\set ec_pem `cat "$EPIC_EC_KEY"`
ALTER USER MAPPING FOR CURRENT_USER SERVER by_jku
  OPTIONS (DROP private_key_file, ADD private_key :'ec_pem', SET key_id :'new_kid', ADD algorithm 'ES384');
SELECT * FROM jku_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
-- publish the new key only: the old one no longer signs in
\! psql -X -At -d contrib_regression -c "SELECT epic_fdw_public_jwks('by_jku')" > "$EPIC_SANDBOX_DIR/jwks.json" && touch "$EPIC_SANDBOX_DIR/clients.json"
SELECT * FROM jku_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
CREATE SERVER by_jku_old FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER by_jku_old
  OPTIONS (client_id 'epic-fdw-jku', private_key_file :'rsa_key', key_id 'rs1',
           jku 'https://app.example.org/jwks.json');
CREATE FOREIGN TABLE old_patients (id text) SERVER by_jku_old OPTIONS (resource 'Patient');
SELECT * FROM old_patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\set SHOW_CONTEXT errors
-- a private key is refused as an "additional public key"
SELECT epic_fdw_public_jwks('by_jku', ARRAY[:'ec_pem']);

-- the command-line tool makes the same document from the PEM file
\! psql -X -At -d contrib_regression -c "SELECT epic_fdw_public_jwks('sandbox')" > "$EPIC_SANDBOX_DIR/jwks-sql.json"
\! sh scripts/jwks.sh --kid rs1 "$EPIC_RSA_KEY" | /usr/bin/python3 -c "import json,os,sys; a=json.load(sys.stdin); b=json.load(open(os.environ['EPIC_SANDBOX_DIR']+'/jwks-sql.json')); print('command line matches SQL:', a == b)"

-- request conventions: Epic-Client-ID only with send_client_id, the Accept
-- header, extra headers (server: public; user mapping: secret)
\! $EPIC_CTL reset
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
ALTER SERVER sandbox OPTIONS (ADD send_client_id 'true', ADD accept 'application/json+fhir',
                              ADD headers '{"X-Request-Source": "reporting"}');
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox OPTIONS (ADD headers '{"X-Api-Key": "s3cr3t-header-value"}');
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL log-json | /usr/bin/python3 -c "import json,sys; [print(e.get('path').split('?')[0], e.get('epic_client_id'), e.get('accept')) for e in json.load(sys.stdin) if e['kind']=='fhir']"
-- invalid headers are refused without echoing their values
ALTER SERVER sandbox OPTIONS (SET headers '{"Authorization": "Bearer x"}');
ALTER SERVER sandbox OPTIONS (SET headers '{"X-Bad": "line\nbreak"}');
ALTER SERVER sandbox OPTIONS (SET headers '["X-A"]');
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox OPTIONS (SET headers '{"bad name": "s3cr3t"}');

-- the connection check, step by step
SELECT step, status, ok, regexp_replace(detail, 'https://[^ ]*', 'URL') AS detail, hint
  FROM epic_fdw_check('sandbox');
CREATE SERVER wrong_version FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'R4', ca_file :'ca_file', token_url :'token_url');
CREATE USER MAPPING FOR CURRENT_USER SERVER wrong_version
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
SELECT step, status, ok, regexp_replace(detail, 'https://[^ ]*', 'URL') AS detail, hint
  FROM epic_fdw_check('wrong_version');
CREATE SERVER bad_client FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER bad_client
  OPTIONS (client_id 'nobody', private_key_file :'rsa_key');
SELECT step, status, ok, regexp_replace(detail, 'https://[^ ]*', 'URL') AS detail,
       hint IS NOT NULL AS has_hint
  FROM epic_fdw_check('bad_client');

-- the audit log: one LOG line per FHIR request, values redacted by default
-- (read back from the server log; bytes and durations vary, so masked)
CREATE FUNCTION pg_temp.audit_lines(since bigint) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT regexp_replace(m[1], 'bytes=\d+ duration_ms=\d+', 'bytes=N duration_ms=N')
    FROM regexp_matches(pg_read_file('/proc/self/fd/2', since,
                                     (pg_stat_file('/proc/self/fd/2')).size - since),
                        'LOG:  (epic_fdw audit: [^\n]*)', 'g') AS m $$;
SELECT (pg_stat_file('/proc/self/fd/2')).size AS log_start \gset
SELECT count(*) FROM patients WHERE birthdate = '1987-09-12' AND gender = 'female' AND phone = '469-555-5555';
SELECT count(*) AS audit_lines_while_off FROM pg_temp.audit_lines(:log_start);
SET epic_fdw.audit_log = on;
SELECT count(*) FROM patients WHERE birthdate = '1987-09-12' AND gender = 'female' AND phone = '469-555-5555';
SELECT count(*) FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
SET epic_fdw.audit_log_values = on;
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
RESET epic_fdw.audit_log_values;
-- a page fetched ahead but never read (a cursor closed early) is logged too
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
FETCH 1 FROM c;
CLOSE c;
COMMIT;
RESET epic_fdw.audit_log;
SELECT * FROM pg_temp.audit_lines(:log_start);
-- only superusers may change it
CREATE ROLE regress_audited;
SET ROLE regress_audited;
SET epic_fdw.audit_log = off;
RESET ROLE;
DROP ROLE regress_audited;

DROP SERVER sandbox, by_jku, by_jku_old, wrong_version, bad_client CASCADE;
