--
-- bulk: FHIR Bulk Data export as foreign tables (table option bulk_group)
-- against the sandbox's Group-level $export (test/sandbox/bulk.py): first
-- load, incremental refresh, and every fault switch with its outcome.
--
\i sql/include/setup.sql
\! $EPIC_CTL dataset bulkpop R4 test/bulk/population.json
\! $EPIC_CTL bulk '{"polls": 1, "retry_after": "0", "file_size": 2}'
SELECT replace(:'dataset_url_r4', '/dataset/R4/', '/dataset/bulkpop/') AS bulk_url \gset
CREATE SERVER bulk FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'bulk_url', fhir_version 'R4', ca_file :'ca_file', max_retries '1');
CREATE USER MAPPING FOR CURRENT_USER SERVER bulk
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE bulk_patients (
  id text, family text, given text, birthdate date, gender text, last_updated timestamptz,
  resource jsonb
) SERVER bulk OPTIONS (resource 'Patient', bulk_group 'diabetics');
CREATE FOREIGN TABLE bulk_meds (
  id text, patient_id text, status text, medication text, authored_on timestamptz,
  last_updated timestamptz, resource jsonb
) SERVER bulk OPTIONS (resource 'MedicationRequest', bulk_group 'diabetics');

-- options
CREATE FOREIGN TABLE bad (id text) SERVER bulk OPTIONS (resource 'Patient', bulk_group 'no/slash');
CREATE FOREIGN TABLE bad (id text) SERVER bulk OPTIONS (resource 'Patient', bulk_group 'g', bulk_errors 'ignore');
CREATE FOREIGN TABLE bad (id text) SERVER bulk OPTIONS (resource 'Patient', bulk_group 'g', bulk_timeout '0');
CREATE SERVER stu3_bulk FOREIGN DATA WRAPPER epic_fdw OPTIONS (fhir_url :'bulk_url', fhir_version 'STU3');
CREATE FOREIGN TABLE stu3_patients (id text) SERVER stu3_bulk OPTIONS (resource 'Patient', bulk_group 'g');
SELECT * FROM stu3_patients;

-- EXPLAIN shows the kick-off request without sending it; last_updated > t
-- is _since=t, >= t an earlier instant (_since means "changed after")
\! $EPIC_CTL reset
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM bulk_patients;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM bulk_patients WHERE last_updated > '2024-01-03 10:00:00+00';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM bulk_patients WHERE '2024-01-03 10:00:00+00' <= last_updated;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM bulk_patients WHERE last_updated < '2024-01-03 10:00:00+00';
-- no search parameter is required, none is sent
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM bulk_meds WHERE patient_id = 'p1' AND status = 'active';
-- a ViewDefinition table may declare last_updated: pushed only when it is meta.lastUpdated
CREATE FOREIGN TABLE vd_meta (id text, last_updated timestamptz) SERVER bulk OPTIONS (
  bulk_group 'diabetics', view_definition '{"resourceType": "ViewDefinition", "resource": "Patient",
  "select": [{"column": [{"name": "id", "path": "id"}, {"name": "last_updated", "path": "meta.lastUpdated", "type": "instant"}]}]}');
CREATE FOREIGN TABLE vd_other (id text, last_updated timestamptz) SERVER bulk OPTIONS (
  bulk_group 'diabetics', view_definition '{"resourceType": "ViewDefinition", "resource": "Patient",
  "select": [{"column": [{"name": "id", "path": "id"}, {"name": "last_updated", "path": "birthDate", "type": "dateTime"}]}]}');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM vd_meta WHERE last_updated > '2024-01-03 10:00:00+00';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM vd_other WHERE last_updated > '2024-01-03 10:00:00+00';
PREPARE since_q(timestamptz) AS SELECT id FROM bulk_patients WHERE last_updated > $1 ORDER BY id;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE since_q('2024-01-03 10:00:00+00');
\! $EPIC_CTL count fhir
\! $EPIC_CTL count bulk

-- first load: CREATE TABLE ... AS SELECT, one export per table
\! $EPIC_CTL reset
CREATE TABLE local_patients AS SELECT * FROM bulk_patients;
ALTER TABLE local_patients ADD PRIMARY KEY (id);
CREATE TABLE local_meds AS SELECT * FROM bulk_meds;
-- (files download concurrently: sorted within each export)
\! $EPIC_CTL log | awk '/^fhir/ {n++} {print n, $0}' | sort -s -k1,1n -k2 | cut -d' ' -f2-
SELECT id, family, given, birthdate, gender, last_updated FROM local_patients ORDER BY id;
SELECT count(*) AS meds, count(DISTINCT patient_id) AS patients,
       count(*) FILTER (WHERE resource->>'resourceType' = 'MedicationRequest') AS typed
  FROM local_meds;
SELECT request, files, resources, errors, deleted, transaction_time > now() - interval '1 hour' AS recent
  FROM epic_fdw_last_export('bulk_patients');
SELECT files, resources FROM epic_fdw_last_export('bulk_meds');
SELECT epic_fdw_last_export('local_patients') IS NULL AS no_export;
-- the run-time _since: rows changed after the value only
EXECUTE since_q('2024-01-03 10:00:00+00');
EXECUTE since_q(NULL);
RESET plan_cache_mode;

-- incremental refresh: the stored transactionTime is the next _since
CREATE TABLE bulk_state (tbl regclass PRIMARY KEY, since timestamptz NOT NULL);
INSERT INTO bulk_state SELECT 'bulk_patients', transaction_time FROM epic_fdw_last_export('bulk_patients');
CREATE PROCEDURE refresh_patients() LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz;
  e record;
BEGIN
  SELECT since INTO t FROM bulk_state WHERE tbl = 'bulk_patients'::regclass;
  INSERT INTO local_patients SELECT * FROM bulk_patients WHERE last_updated > t
    ON CONFLICT (id) DO UPDATE
      SET family = EXCLUDED.family, given = EXCLUDED.given, birthdate = EXCLUDED.birthdate,
          gender = EXCLUDED.gender, last_updated = EXCLUDED.last_updated,
          resource = EXCLUDED.resource;
  SELECT * INTO e FROM epic_fdw_last_export('bulk_patients');
  DELETE FROM local_patients WHERE id = ANY (e.deleted);
  UPDATE bulk_state SET since = e.transaction_time WHERE tbl = 'bulk_patients'::regclass;
END $$;
-- the server changes: p2 renamed, p7 new in the group, p3 deleted
\! $EPIC_CTL bulk-update bulkpop '{"upsert": [{"resourceType": "Patient", "id": "p2", "name": [{"family": "Brown-Smith", "given": ["Pat2"]}], "gender": "male", "birthDate": "1952-02-12"}, {"resourceType": "Patient", "id": "p7", "name": [{"family": "Garcia", "given": ["Pat7"]}], "gender": "female", "birthDate": "1957-07-17"}, {"resourceType": "Group", "id": "diabetics", "type": "person", "actual": true, "member": [{"entity": {"reference": "Patient/p1"}}, {"entity": {"reference": "Patient/p2"}}, {"entity": {"reference": "Patient/p4"}}, {"entity": {"reference": "Patient/p5"}}, {"entity": {"reference": "Patient/p7"}}]}], "delete": [{"type": "Patient", "id": "p3"}]}'
\! $EPIC_CTL reset
CALL refresh_patients();
\! $EPIC_CTL log | sed -e 's/_since=[^&]*/_since=<stored transactionTime>/'
SELECT id, family, last_updated > (SELECT since FROM bulk_state) - interval '1 hour' AS changed
  FROM local_patients ORDER BY id;
SELECT files, resources, deleted FROM epic_fdw_last_export('bulk_patients');
-- a second refresh with nothing changed brings nothing
CALL refresh_patients();
SELECT files, resources, deleted FROM epic_fdw_last_export('bulk_patients');
SELECT count(*) FROM local_patients;

-- a rescan reads the same manifest's files again: one export
\! $EPIC_CTL reset
SET enable_material = off;
SELECT g, (SELECT count(*) FROM bulk_patients p WHERE p.id <> g::text) FROM generate_series(1, 3) g;
RESET enable_material;
\! $EPIC_CTL count fhir
\! $EPIC_CTL log | grep -c 'bulk DELETE'

-- the resource column is built from the parsed document (not by jsonb_in):
-- the same jsonb as jsonb_in of the server's text, duplicate names (the last
-- wins), escapes, numbers and empty containers included
CREATE FOREIGN TABLE json_check (id text, resource jsonb, raw text OPTIONS (path '$this'))
  SERVER bulk OPTIONS (resource 'Patient');
\! $EPIC_CTL fault '{"match": "Patient?", "kind": "body", "raw": "{\"resourceType\": \"Bundle\", \"type\": \"searchset\", \"entry\": [{\"resource\": {\"resourceType\": \"Patient\", \"id\": \"j1\", \"bb\": [], \"n\": {\"z\": [1, 2.50, -0, 1e2, 0.1E-3, 12345678901234567890], \"y\": \"\\u00e9\\\"x\\n\\ud83d\\ude00\", \"\": null}, \"a\": {\"first\": 1}, \"a\": {\"dup\": true, \"ab\": false}, \"c\": {}, \"name\": [{\"family\": \"Ünïcode\", \"given\": [\"A\", \"B\"]}], \"ca\": [[], [{}], [null]]}}]}"}'
SELECT id, resource = raw::jsonb AS same_as_jsonb_in, resource::text = raw::jsonb::text AS same_text,
       resource::text FROM json_check;
\! $EPIC_CTL faults-clear

-- fault switches: for each, the outcome (rows, or SQLSTATE and message)
-- and the sandbox's log of the job
\i sql/include/fault_case.sql

-- 429 on a status poll: retried after its Retry-After
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"polls": 2, "retry_after": "0", "poll_429": 2}'
SELECT pg_temp.run_case('429 on a status poll', 'SELECT * FROM bulk_patients', 10);
\! $EPIC_CTL log
-- 500 on one file, then success
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "0", "file_500": true, "file_size": 3}'
SELECT pg_temp.run_case('500 on a file, then success', 'SELECT * FROM bulk_meds', 10);
\! $EPIC_CTL log | sort -s -k3,3
-- an expired file (404): an error, and the job is DELETEd
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "0", "expired": true}'
SELECT pg_temp.run_case('expired file', 'SELECT * FROM bulk_patients', 10);
\! $EPIC_CTL log
-- gzip output: decoded
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "0", "gzip": true, "file_size": 4}'
SELECT pg_temp.run_case('gzip', 'SELECT * FROM bulk_meds', 10);
\! $EPIC_CTL log | sort -s -k3,3
-- error files: one WARNING per distinct issue, or an error with bulk_errors 'error'
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "0", "error_file": true, "file_size": 10}'
SELECT count(*) FROM bulk_patients;
SELECT errors FROM epic_fdw_last_export('bulk_patients');
ALTER FOREIGN TABLE bulk_patients OPTIONS (ADD bulk_errors 'error');
SELECT pg_temp.run_case('error file, bulk_errors error', 'SELECT * FROM bulk_patients', 10);
ALTER FOREIGN TABLE bulk_patients OPTIONS (DROP bulk_errors);
-- files on another origin that need the token: an error, no file requested
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "0", "other_origin": true}'
SELECT pg_temp.run_case('other origin, requiresAccessToken', 'SELECT * FROM bulk_patients', 10);
\! $EPIC_CTL log
-- pre-signed files on another origin (requiresAccessToken false): no token sent
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "0", "other_origin": true, "requires_token": false}'
SELECT pg_temp.run_case('other origin, pre-signed', 'SELECT * FROM bulk_patients', 10);
\! $EPIC_CTL log
-- a job that fails: the server's OperationOutcome
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "0", "fail_job": true}'
SELECT pg_temp.run_case('failed job', 'SELECT * FROM bulk_patients', 10);
-- a kick-off the server rejects
\! $EPIC_CTL bulk '{}'
\! $EPIC_CTL fault '{"match": "Group/", "kind": "status", "status": 403, "body": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden", "diagnostics": "not authorized for this group"}]}}'
SELECT pg_temp.run_case('kick-off rejected', 'SELECT * FROM bulk_patients', 10);
\! $EPIC_CTL faults-clear
-- a job that never completes: bulk_timeout, then DELETE
\! $EPIC_CTL reset
\! $EPIC_CTL bulk '{"retry_after": "1", "never_complete": true}'
ALTER FOREIGN TABLE bulk_patients OPTIONS (ADD bulk_timeout '2');
SELECT pg_temp.run_case('never completes, bulk_timeout 2', 'SELECT * FROM bulk_patients', 8);
ALTER FOREIGN TABLE bulk_patients OPTIONS (DROP bulk_timeout);
\! $EPIC_CTL log | sort | uniq -c | sed -e 's/^ *[0-9]* bulk GET job/<n> bulk GET job/'
-- ... or a cancel (statement_timeout): DELETE sent during the abort
\! $EPIC_CTL reset
SET statement_timeout = '1500ms';
SELECT count(*) FROM bulk_patients;
RESET statement_timeout;
\! $EPIC_CTL log | grep -v 'bulk GET job'
SELECT fault, outcome, within_bound FROM fault_results ORDER BY seq;
\! $EPIC_CTL bulk '{}'

-- progress: with epic_fdw.progress on, the NOTICEs carry the server's
-- X-Progress while the export runs, then the files and resources read
\! $EPIC_CTL bulk '{"polls": 3, "retry_after": "1", "file_size": 2}'
SELECT current_database() AS db \gset
\setenv PGDATABASE :db
\! psql -X -q -d "$PGDATABASE" -c "SET epic_fdw.progress = on; SET epic_fdw.progress_interval = 1; SELECT count(*) FROM bulk_patients" 2>&1 | sed -n -e 's/^NOTICE:  epic_fdw progress: bulk_patients: .*; \(Bulk Data export in progress: [0-9]*% complete\)$/\1/p' -e 's/^NOTICE:  epic_fdw progress: bulk_patients: .*; \(Bulk Data files\): reading.*/\1/p' | sed 's/[0-9]*% complete/N% complete/' | sort -u
\! $EPIC_CTL bulk '{}'
