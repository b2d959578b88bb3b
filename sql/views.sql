--
-- views: SQL on FHIR v2 ViewDefinitions as foreign tables, against the
-- dataset server (real FHIR search semantics)
--
\i sql/include/setup.sql
\i sql/include/dataset.sql
\getenv view_dir EPIC_VIEW_DIR

-- a ViewDefinition with forEach over name and a where filter: one row per
-- name of each female patient
SELECT epic_fdw_view_ddl('{
  "name": "patient_names", "resource": "Patient",
  "where": [{"path": "gender = ''female''"}],
  "select": [
    {"column": [{"name": "id", "path": "getResourceKey()", "type": "id"}]},
    {"forEach": "name",
     "column": [{"name": "use", "path": "use", "type": "code"},
                {"name": "family", "path": "family", "type": "string"},
                {"name": "given", "path": "given", "type": "string", "collection": true}]}]}',
  NULL, 'dataset') AS ddl \gset
\echo :ddl
:ddl;
\d patient_names
-- the id column is getResourceKey(): pushed down as _id
EXPLAIN (VERBOSE, COSTS OFF)
SELECT * FROM patient_names WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\! $EPIC_CTL reset
SELECT * FROM patient_names
 WHERE id IN ('erXuFYUfucBZaryVksYEcMg3', 'eq081-VQEgP8drUUqCWzHfw3', 'eAB3mDIBBcyUKviyzrxsnAw3')
 ORDER BY id, use;
-- one request, with the IN list as an OR list; Derrick (male) is filtered by where
\! $EPIC_CTL log
-- the same rows as SQL over the built-in table's resource column
SELECT p.id, n->>'use' AS use, n->>'family' AS family,
       ARRAY(SELECT jsonb_array_elements_text(n->'given')) AS given
  FROM ds.patients p, jsonb_array_elements(p.resource->'name') n
 WHERE p.id IN ('erXuFYUfucBZaryVksYEcMg3', 'eq081-VQEgP8drUUqCWzHfw3', 'eAB3mDIBBcyUKviyzrxsnAw3')
   AND p.gender = 'female'
 ORDER BY 1, 2;
-- a count(*) evaluates forEach (it decides the rows) but no column
SELECT count(*) FROM patient_names WHERE id = 'erXuFYUfucBZaryVksYEcMg3';

-- forEachOrNull: a patient without telecom gives one row of NULLs
CREATE FOREIGN TABLE contacts (patient_id text, system text, value text, use text)
  SERVER dataset OPTIONS (view_definition '{
    "resource": "Patient",
    "select": [{"column": [{"name": "patient_id", "path": "getResourceKey()"}]},
               {"forEachOrNull": "telecom",
                "column": [{"name": "system", "path": "system"}, {"name": "value", "path": "value"},
                           {"name": "use", "path": "use"}]}]}');
SELECT * FROM contacts WHERE patient_id IN ('erXuFYUfucBZaryVksYEcMg3', 'eAB3mDIBBcyUKviyzrxsnAw3')
 ORDER BY 1, 2, 3;

-- %rowIndex numbers the items of the nearest forEach from 0 (0 on the row of
-- NULLs of a forEachOrNull without items); epic_fdw_view_ddl gives an untyped
-- column the type its path always has (boolean, integer, numeric, ...) and
-- text otherwise
SELECT epic_fdw_view_ddl('{
  "resource": "Patient",
  "select": [{"column": [{"name": "patient_id", "path": "getResourceKey()"},
                         {"name": "has_phone", "path": "telecom.where(system = ''phone'').exists()"},
                         {"name": "contacts", "path": "telecom.count()"},
                         {"name": "gender", "path": "gender"}]},
             {"forEachOrNull": "telecom",
              "column": [{"name": "position", "path": "%rowIndex"},
                         {"name": "rank", "path": "%rowIndex + 1"},
                         {"name": "value", "path": "value"}]}]}', 'telecom_positions', 'dataset') \gexec
SELECT column_name, data_type FROM information_schema.columns
 WHERE table_name = 'telecom_positions' ORDER BY ordinal_position;
SELECT patient_id, has_phone, contacts, position, rank, value FROM telecom_positions
 WHERE patient_id IN ('erXuFYUfucBZaryVksYEcMg3', 'eAB3mDIBBcyUKviyzrxsnAw3')
 ORDER BY patient_id, position;

-- unionAll: phones and e-mail addresses as one column, with constants;
-- a nested select repeats the parent's values
CREATE FOREIGN TABLE reach (id text, kind text, contact text, home boolean)
  SERVER dataset OPTIONS (view_definition '{
    "resource": "Patient",
    "constant": [{"name": "home", "valueCode": "home"}, {"name": "yes", "valueBoolean": true}],
    "select": [{"column": [{"name": "id", "path": "id"}],
                "select": [{"unionAll": [
                  {"forEach": "telecom.where(system = ''phone'')",
                   "column": [{"name": "kind", "path": "''phone''"}, {"name": "contact", "path": "value"},
                              {"name": "home", "path": "(use = %home) = %yes", "type": "boolean"}]},
                  {"forEach": "telecom.where(system = ''email'')",
                   "column": [{"name": "kind", "path": "''email''"}, {"name": "contact", "path": "value"},
                              {"name": "home", "path": "(use = %home) = %yes", "type": "boolean"}]}]}]}]}');
SELECT * FROM reach WHERE id = 'erXuFYUfucBZaryVksYEcMg3' ORDER BY kind, contact;

-- repeat: every extension at any depth (US Core race and ethnicity nest theirs)
CREATE FOREIGN TABLE extensions (id text, url text)
  SERVER dataset OPTIONS (view_definition '{
    "resource": "Patient",
    "select": [{"column": [{"name": "id", "path": "id"}]},
               {"repeat": ["extension"], "column": [{"name": "url", "path": "url"}]}]}');
SELECT url, count(*) FROM extensions WHERE id = 'erXuFYUfucBZaryVksYEcMg3' GROUP BY url ORDER BY url;

-- a reference key column is pushed down as patient (a required parameter)
CREATE FOREIGN TABLE meds (id text, patient_id text, medication text)
  SERVER dataset OPTIONS (view_definition '{
    "resource": "MedicationStatement",
    "extension": [{"url": "urn:epic_fdw:required-search-param", "valueString": "patient"}],
    "select": [{"column": [{"name": "id", "path": "getResourceKey()"},
                           {"name": "patient_id", "path": "subject.getReferenceKey(Patient)"},
                           {"name": "medication", "path": "medicationReference.display"}]}]}');
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id, m.medication FROM ds.patients p JOIN meds m ON m.patient_id = p.id
 WHERE p.id = 'eq081-VQEgP8drUUqCWzHfw3';
SELECT count(*) = (SELECT count(*) FROM ds.medication_statements
                    WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3') AS same_count
  FROM meds WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
-- without the required parameter: a clear error, no request
SELECT * FROM meds;

-- errors: at CREATE time, with the position of a FHIRPath error
CREATE FOREIGN TABLE bad (id text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"column": [{"name": "id", "path": "name.where(use = )"}]}]}');
CREATE FOREIGN TABLE bad (id text) SERVER dataset
  OPTIONS (view_definition '{"select": [{"column": [{"name": "id", "path": "id"}]}]}');
CREATE FOREIGN TABLE bad (id text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"forEach": "name.where(use = %nope)", "column": [{"name": "id", "path": "id"}]}]}');
CREATE FOREIGN TABLE bad (id text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"unionAll": [{"column": [{"name": "a", "path": "id"}]}, {"column": [{"name": "b", "path": "id"}]}]}]}');
CREATE FOREIGN TABLE bad (id text) SERVER dataset OPTIONS (view_definition 'not json');
SELECT epic_fdw_view_ddl('{"resource": "Patient", "select": [{"column": [{"name": "1d", "path": "id"}]}]}', 'x', 'dataset');
SELECT pg_temp.sqlstate_of($$SELECT epic_fdw_view_ddl('[]', 'x', 'dataset')$$);
-- a path option may not name a constant no view defines
CREATE FOREIGN TABLE bad (id text, x text OPTIONS (path 'identifier.where(system = %nope).value'))
  SERVER dataset OPTIONS (resource 'Basic');
-- a misspelled element is an error at first use (not a column silently NULL):
-- member names are checked against the FHIR type of their context
CREATE FOREIGN TABLE bad (id text, given text OPTIONS (path 'name.givne.first()'))
  SERVER dataset OPTIONS (resource 'Patient');
SELECT * FROM bad WHERE id = 'x';
DROP FOREIGN TABLE bad;
CREATE FOREIGN TABLE bad (id text, family text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}, {"forEach": "name", "column": [{"name": "family", "path": "famly"}]}]}');
SELECT * FROM bad WHERE id = 'x';
DROP FOREIGN TABLE bad;
-- a column that is not in the view
CREATE FOREIGN TABLE bad (id text, nope text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}]}]}');
SELECT * FROM bad;
DROP FOREIGN TABLE bad;
-- a search parameter on a column inside forEach cannot be right
CREATE FOREIGN TABLE bad (family text OPTIONS (search_param 'family:string')) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"forEach": "name", "column": [{"name": "family", "path": "family"}]}]}');
SELECT * FROM bad;
DROP FOREIGN TABLE bad;
-- errors while reading: several values in a column that is not a collection,
-- and a where path that is not boolean
CREATE FOREIGN TABLE bad (id text, given text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}, {"name": "given", "path": "name.given"}]}]}');
SELECT * FROM bad WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT pg_temp.sqlstate_of($$SELECT * FROM bad WHERE id = 'erXuFYUfucBZaryVksYEcMg3'$$);
DROP FOREIGN TABLE bad;
CREATE FOREIGN TABLE bad (id text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "where": [{"path": "name.family"}], "select": [{"column": [{"name": "id", "path": "id"}]}]}');
SELECT * FROM bad WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
DROP FOREIGN TABLE bad;
-- a typed column checks the JSON type of the value
CREATE FOREIGN TABLE bad (id text, active text) SERVER dataset
  OPTIONS (view_definition '{"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}, {"name": "active", "path": "active", "type": "string"}]}]}');
SELECT * FROM bad WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
DROP FOREIGN TABLE bad;

-- IMPORT FOREIGN SCHEMA views reads the ViewDefinition files of view_dir
CREATE SCHEMA v;
IMPORT FOREIGN SCHEMA views FROM SERVER dataset INTO v;
ALTER SERVER dataset OPTIONS (ADD view_dir :'view_dir');
IMPORT FOREIGN SCHEMA views LIMIT TO (patient_contacts) FROM SERVER dataset INTO v;
\d v.patient_contacts
-- an invalid file fails the import, naming the file, unless LIMIT TO or
-- EXCEPT leaves it out
\set VERBOSITY terse
IMPORT FOREIGN SCHEMA views FROM SERVER dataset INTO v;
\set VERBOSITY default
IMPORT FOREIGN SCHEMA views EXCEPT (patient_contacts, broken) FROM SERVER dataset INTO v;
SELECT * FROM v.statement_dosages WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3' ORDER BY id, dosage LIMIT 4;
SELECT count(*) FROM v.patient_contacts WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
-- view_dir is for superusers
CREATE ROLE view_user;
GRANT USAGE ON FOREIGN DATA WRAPPER epic_fdw TO view_user;
SET ROLE view_user;
CREATE SERVER own FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/', view_dir '/');
CREATE SERVER own FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url 'https://fhir.example.org/');
ALTER SERVER own OPTIONS (ADD view_dir '/');
RESET ROLE;
DROP OWNED BY view_user;
DROP ROLE view_user;
ALTER SERVER dataset OPTIONS (SET view_dir '/nonexistent');
IMPORT FOREIGN SCHEMA views FROM SERVER dataset INTO v;
ALTER SERVER dataset OPTIONS (DROP view_dir);

-- IMPORT FOREIGN SCHEMA fhir still imports the built-in tables
SELECT foreign_table_name FROM information_schema.foreign_tables
 WHERE foreign_table_schema = 'ds' ORDER BY 1;
DROP SCHEMA v CASCADE;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
