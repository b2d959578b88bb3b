--
-- auth: SMART Backend Services client assertions (RS384, ES384), the token
-- cache, discovery, and token endpoint errors.  The sandbox verifies every
-- assertion with PyJWT (signature, iss/sub, aud, exp <= 5 min, unused jti).
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql
\! $EPIC_CTL reset

-- RS384: three queries in one session make exactly one token request; the
-- token endpoint is discovered once from .well-known/smart-configuration
SELECT id, family FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT id, family FROM patients WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
SELECT count(*) FROM medication_statements WHERE patient_id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL log

-- the server revokes the token: the 401 makes one new token request and the
-- query still succeeds
\! $EPIC_CTL reset
\! $EPIC_CTL revoke
SELECT id, family FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL log

-- a short-lived token is renewed before it runs out (expires_in 2 s: the
-- token is reused at once, and replaced once the renewal margin has passed)
\! $EPIC_CTL token-lifetime 2
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox OPTIONS (SET key_id 'rs1');
\! $EPIC_CTL reset
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT pg_sleep(2.2);
SELECT count(*) FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL count token
\! $EPIC_CTL token-lifetime 300

-- ES384 (JWS raw r||s signature), key given inline, explicit token_url (no discovery)
CREATE SERVER sandbox_es FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', token_url :'token_url', fhir_version 'STU3', ca_file :'ca_file');
\set ec_pem `cat "$EPIC_EC_KEY"`
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox_es
  OPTIONS (client_id 'epic-fdw-es384', private_key :'ec_pem', algorithm 'ES384', key_id 'ec1');
CREATE FOREIGN TABLE patients_es (id text, name text, birthdate date)
  SERVER sandbox_es OPTIONS (resource 'Patient');
\! $EPIC_CTL reset
SELECT * FROM patients_es WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
\! $EPIC_CTL log

-- the verifier rejects a wrong key; the user sees its error_description
CREATE SERVER sandbox_wrong FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', token_url :'token_url', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox_wrong
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'wrong_key', key_id 'rs1');
CREATE FOREIGN TABLE patients_wrong (id text) SERVER sandbox_wrong OPTIONS (resource 'Patient');
-- (the error context names the token URL, whose port varies: hide it here)
\set SHOW_CONTEXT never
SELECT * FROM patients_wrong WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
SELECT pg_temp.sqlstate_of($$SELECT * FROM patients_wrong$$);
-- an unknown client, and a key id the client did not register
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox_wrong OPTIONS (SET client_id 'nobody');
SELECT * FROM patients_wrong WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox_wrong
  OPTIONS (SET client_id 'epic-fdw-rs384', SET private_key_file :'rsa_key', SET key_id 'rs9');
SELECT * FROM patients_wrong WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
-- the right key id: ALTER USER MAPPING takes effect in this session at once
ALTER USER MAPPING FOR CURRENT_USER SERVER sandbox_wrong OPTIONS (SET key_id 'rs1');
SELECT * FROM patients_wrong WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';

-- a scope the client may not have: invalid_scope
CREATE SERVER sandbox_scoped FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file',
           scope 'system/Patient.read system/Observation.read');
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox_scoped
  OPTIONS (client_id 'epic-fdw-scoped', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE patients_scoped (id text) SERVER sandbox_scoped OPTIONS (resource 'Patient');
SELECT * FROM patients_scoped WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';
ALTER SERVER sandbox_scoped OPTIONS (SET scope 'system/Patient.read');
SELECT * FROM patients_scoped WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';

-- a key file that is missing: refused at CREATE, and reported at the first
-- query when it goes missing later
CREATE SERVER sandbox_nokey FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', token_url :'token_url', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox_nokey
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file '/nonexistent/key.pem');
\! install -o postgres -m 600 "$EPIC_RSA_KEY" /tmp/epic_fdw_regress_gone.pem
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox_nokey
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file '/tmp/epic_fdw_regress_gone.pem');
\! rm -f /tmp/epic_fdw_regress_gone.pem
CREATE FOREIGN TABLE patients_nokey (id text) SERVER sandbox_nokey OPTIONS (resource 'Patient');
SELECT * FROM patients_nokey WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';

-- a fhir_url that is not the FHIR base: the discovery 404 points at it
SELECT replace(:'fhir_url', '/STU3/', '/NOPE/') AS bad_base \gset
CREATE SERVER sandbox_badbase FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'bad_base', fhir_version 'STU3', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox_badbase
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE patients_badbase (id text) SERVER sandbox_badbase OPTIONS (resource 'Patient');
DO $$
DECLARE m text; h text; st text;
BEGIN
  PERFORM * FROM patients_badbase WHERE id = 'x';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, m = MESSAGE_TEXT, h = PG_EXCEPTION_HINT;
  RAISE NOTICE '% %: %', st, m, h;
END $$;
DROP SERVER sandbox_badbase CASCADE;

\set SHOW_CONTEXT errors
DROP SERVER sandbox, sandbox_es, sandbox_wrong, sandbox_scoped, sandbox_nokey CASCADE;
