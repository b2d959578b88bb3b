--
-- errors: what the FHIR server answers becomes a clear ERROR with an
-- SQLSTATE, the server's explanation in DETAIL and the request in CONTEXT
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql

-- 400 with an OperationOutcome (Epic requires minimum search criteria)
SELECT id FROM patients;
SELECT pg_temp.sqlstate_of($$SELECT id FROM patients$$);

-- 403 with an empty body: the reason is only in WWW-Authenticate
CREATE FOREIGN TABLE coverage (id text, patient_id text OPTIONS (path 'beneficiary.getReferenceKey(Patient)'))
  SERVER sandbox OPTIONS (resource 'Coverage', search 'patient=erXuFYUfucBZaryVksYEcMg3');
SELECT * FROM coverage;
SELECT pg_temp.sqlstate_of($$SELECT * FROM coverage$$);

-- 403 with an OperationOutcome
SELECT medication FROM medication_statements WHERE patient_id = 'eh2xYHuzl9nkSFVvV3osUHg3';

-- Epic's Observation search needs patient and category: the built-in table
-- says so before any request is sent
CREATE FOREIGN TABLE observations (id text, code text OPTIONS (path 'code.text'))
  SERVER sandbox OPTIONS (resource 'Observation', search 'patient=erXuFYUfucBZaryVksYEcMg3');
SELECT * FROM observations;
-- a ViewDefinition of Observation declares no required parameter: the
-- server's 400 is reported
CREATE FOREIGN TABLE observations_view (id text, code text) SERVER sandbox
  OPTIONS (search 'patient=erXuFYUfucBZaryVksYEcMg3', view_definition '{
    "resource": "Observation",
    "select": [{"column": [{"name": "id", "path": "id"}, {"name": "code", "path": "code.text"}]}]}');
SELECT * FROM observations_view;

-- 404 with an HTML page
CREATE FOREIGN TABLE practitioners (id text) SERVER sandbox OPTIONS (resource 'Practitioner');
SELECT * FROM practitioners;
SELECT pg_temp.sqlstate_of($$SELECT * FROM practitioners$$);

-- a Bundle entry of another type than the table's
CREATE FOREIGN TABLE not_patients (id text) SERVER sandbox
  OPTIONS (view_definition '{"resource": "Encounter", "select": [{"column": [{"name": "id", "path": "id"}]}]}');
ALTER FOREIGN TABLE not_patients OPTIONS (ADD search '_id=erXuFYUfucBZaryVksYEcMg3');
SELECT * FROM not_patients;

-- transport failures (the context names the request; ports vary, so hide it)
\set SHOW_CONTEXT never
-- nothing listens on port 1
CREATE SERVER closed FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url 'https://127.0.0.1:1/api/FHIR/STU3/', fhir_version 'STU3', connect_timeout '5');
CREATE USER MAPPING FOR CURRENT_USER SERVER closed
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key');
CREATE FOREIGN TABLE closed_patients (id text) SERVER closed OPTIONS (resource 'Patient');
\set VERBOSITY terse
SELECT * FROM closed_patients WHERE id = 'x';
\set VERBOSITY default
SELECT pg_temp.sqlstate_of($$SELECT * FROM closed_patients WHERE id = 'x'$$);
-- the sandbox's certificate is not trusted without ca_file
CREATE SERVER untrusted FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3');
CREATE USER MAPPING FOR CURRENT_USER SERVER untrusted
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key');
CREATE FOREIGN TABLE untrusted_patients (id text) SERVER untrusted OPTIONS (resource 'Patient');
SELECT * FROM untrusted_patients WHERE id = 'x';
\set SHOW_CONTEXT errors

-- after all these errors the session still works, with its cached token
\! $EPIC_CTL reset
SELECT name FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL log

DROP SERVER sandbox, closed, untrusted CASCADE;
