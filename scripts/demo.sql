-- epic_fdw demo: live FHIR data as SQL tables, against the bundled sandbox.
\set QUIET on
\pset footer off
\getenv fhir_url EPIC_FHIR_URL_STU3
\getenv ca_file EPIC_CA_FILE
\getenv rsa_key EPIC_RSA_KEY
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS epic_fdw CASCADE;
CREATE EXTENSION epic_fdw;
RESET client_min_messages;

-- 1. One server (the FHIR endpoint), one user mapping (the SMART backend
--    client and its private key), two built-in tables.
CREATE SERVER epic FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file',
           mrn_system 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14');
CREATE USER MAPPING FOR CURRENT_USER SERVER epic
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE patients (
  id text, mrn text, name text, birthdate date, gender text, phone text,
  phones text[], email text, city text, state text, resource jsonb
) SERVER epic;
CREATE FOREIGN TABLE medication_statements (
  id text, patient_id text, status text, medication text, dosage text, route text,
  effective_start timestamptz, effective_end timestamptz
) SERVER epic;
SET TimeZone = 'UTC';

\echo
\echo '== The IVR: a caller is identified by phone, birth date and gender; read out their medications'
\echo
\set QUIET off
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.name, m.medication, m.dosage
  FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female';
SELECT p.name, m.medication, m.dosage
  FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female'
 ORDER BY m.medication;
\set QUIET on

\echo
\echo '== Look a patient up by MRN'
\echo
\set QUIET off
SELECT id, name, birthdate, gender, phones, city, state FROM patients WHERE mrn = '203711';
\set QUIET on

\echo
\echo '== Join live EHR data with a local table: today''s call list'
\echo
CREATE TEMP TABLE call_list (patient_id text, reason text);
INSERT INTO call_list VALUES
  ('erXuFYUfucBZaryVksYEcMg3', 'refill reminder'),
  ('eq081-VQEgP8drUUqCWzHfw3', 'annual review');
ANALYZE call_list;
\set QUIET off
SELECT c.reason, p.name, p.phone,
       count(m.id) FILTER (WHERE m.status = 'active') AS active_medications
  FROM call_list c
  JOIN patients p ON p.id = c.patient_id
  LEFT JOIN medication_statements m ON m.patient_id = p.id
 GROUP BY 1, 2, 3 ORDER BY 2;
\set QUIET on

\echo
\echo '== Any field of the resource is one FHIRPath away'
\echo
CREATE FOREIGN TABLE patient_details (
  id text,
  legal_sex text OPTIONS (path 'extension.where(url = ''http://open.epic.com/FHIR/StructureDefinition/extension/legal-sex'').valueCodeableConcept.coding.code'),
  marital_status text OPTIONS (path 'maritalStatus.text'),
  language text OPTIONS (path 'communication.language.text')
) SERVER epic OPTIONS (resource 'Patient');
\set QUIET off
SELECT * FROM patient_details WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\set QUIET on

\echo
\echo '== A SQL on FHIR ViewDefinition as a table: one row per name of the patient'
\echo
SELECT epic_fdw_view_ddl('{
  "name": "patient_names", "resource": "Patient",
  "select": [
    {"column": [{"name": "id", "path": "getResourceKey()", "type": "id"}]},
    {"forEach": "name",
     "column": [{"name": "use", "path": "use", "type": "code"},
                {"name": "full_name", "path": "iif(text.exists(), text, given.combine(family).join(\u0027 \u0027))", "type": "string"}]}]}',
  NULL, 'epic') \gexec
\set QUIET off
SELECT * FROM patient_names WHERE id = 'erXuFYUfucBZaryVksYEcMg3' ORDER BY use;
\set QUIET on

\echo
\echo '== What the FHIR server did (EXPLAIN ANALYZE counters)'
\echo
\set QUIET off
EXPLAIN (ANALYZE, VERBOSE, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT id, medication FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
