--
-- concurrency: searches in flight at once (server option max_concurrency),
-- and a page fetched ahead while the current one is read
--
\i sql/include/setup.sql
\i sql/include/dataset.sql
-- one search per patient, as on servers that take no comma lists
ALTER SERVER dataset OPTIONS (ADD or_lists 'false');
CREATE TEMP TABLE forty AS SELECT id FROM patients ORDER BY id LIMIT 40;

-- the same rows with 1 and with 8 requests in flight
ALTER SERVER dataset OPTIONS (ADD max_concurrency '1');
\! $EPIC_CTL reset
CREATE TEMP TABLE one_at_a_time AS
  SELECT id, patient_id, status, medication, effective_start
    FROM medication_statements WHERE patient_id = ANY (ARRAY(SELECT id FROM forty));
\! $EPIC_CTL count fhir MedicationStatement
ALTER SERVER dataset OPTIONS (SET max_concurrency '8');
\! $EPIC_CTL reset
CREATE TEMP TABLE eight_at_a_time AS
  SELECT id, patient_id, status, medication, effective_start
    FROM medication_statements WHERE patient_id = ANY (ARRAY(SELECT id FROM forty));
\! $EPIC_CTL count fhir MedicationStatement
SELECT (SELECT count(*) FROM one_at_a_time) AS rows,
       (SELECT count(*) FROM (SELECT * FROM one_at_a_time EXCEPT ALL SELECT * FROM eight_at_a_time) a) AS only_sequential,
       (SELECT count(*) FROM (SELECT * FROM eight_at_a_time EXCEPT ALL SELECT * FROM one_at_a_time) b) AS only_concurrent;
-- a parameter: the same
PREPARE meds(text[]) AS
  SELECT id, patient_id, status, medication, effective_start
    FROM medication_statements WHERE patient_id = ANY ($1);
SELECT array_agg(id) AS ids FROM forty \gset
CREATE TEMP TABLE prepared AS EXECUTE meds(:'ids');
SELECT count(*) AS differences
  FROM (SELECT * FROM prepared EXCEPT ALL SELECT * FROM one_at_a_time) d;
-- a join from a local table is one search per distinct patient, and the same
SELECT count(*) AS joined,
       count(*) = (SELECT count(*) FROM one_at_a_time) AS same_count
  FROM forty f JOIN medication_statements m ON m.patient_id = f.id;

-- two epic_fdw tables joined: the driving side's search, then one search per
-- patient (or_lists off), all at once: a join of epic_fdw's own
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id, m.id FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.state IN ('TX', 'CO', 'NM') AND m.status <> 'entered-in-error';
\! $EPIC_CTL reset
CREATE TEMP TABLE join8 AS
  SELECT p.id AS pid, p.family, m.id AS mid, m.status, m.medication
    FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state IN ('TX', 'CO', 'NM');
-- 3 patient searches (one per state), then one per patient found
SELECT (SELECT count(*) FROM patients WHERE state IN ('TX', 'CO', 'NM')) + 3 AS expected_requests \gset
\! $EPIC_CTL reset
CREATE TEMP TABLE join8b AS
  SELECT p.id AS pid, p.family, m.id AS mid, m.status, m.medication
    FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state IN ('TX', 'CO', 'NM');
\setenv EXPECTED :expected_requests
\! test "$($EPIC_CTL count fhir)" -eq "$EXPECTED" && echo "one search per patient, and the 3 patient searches" || echo "unexpected request count"
ALTER SERVER dataset OPTIONS (SET max_concurrency '1');
CREATE TEMP TABLE join1 AS
  SELECT p.id AS pid, p.family, m.id AS mid, m.status, m.medication
    FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state IN ('TX', 'CO', 'NM');
ALTER SERVER dataset OPTIONS (SET max_concurrency '8', SET or_lists 'true');
CREATE TEMP TABLE join_or AS
  SELECT p.id AS pid, p.family, m.id AS mid, m.status, m.medication
    FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state IN ('TX', 'CO', 'NM');
ALTER SERVER dataset OPTIONS (SET or_lists 'false');
SET epic_fdw.pushdown = off;
CREATE TEMP TABLE join_local AS
  SELECT p.id AS pid, p.family, m.id AS mid, m.status, m.medication
    FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state IN ('TX', 'CO', 'NM');
RESET epic_fdw.pushdown;
SELECT (SELECT count(*) FROM join_local) AS rows,
       (SELECT count(*) FROM (SELECT * FROM join8 EXCEPT ALL SELECT * FROM join_local) a) +
       (SELECT count(*) FROM (SELECT * FROM join_local EXCEPT ALL SELECT * FROM join8) b) AS diff_8,
       (SELECT count(*) FROM (SELECT * FROM join1 EXCEPT ALL SELECT * FROM join_local) a) +
       (SELECT count(*) FROM (SELECT * FROM join_local EXCEPT ALL SELECT * FROM join1) b) AS diff_1,
       (SELECT count(*) FROM (SELECT * FROM join_or EXCEPT ALL SELECT * FROM join_local) a) +
       (SELECT count(*) FROM (SELECT * FROM join_local EXCEPT ALL SELECT * FROM join_or) b) AS diff_or_list;
-- conditions of both sides are rechecked on the joined rows
SELECT count(*) = (SELECT count(*) FROM join_local WHERE status = 'active' AND family LIKE 'L%') AS same
  FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.state IN ('TX', 'CO', 'NM') AND m.status = 'active' AND p.family LIKE 'L%';
-- an error of one fan-out search fails the join
SELECT pid AS some_patient FROM join8 ORDER BY pid LIMIT 1 \gset
SELECT format('{"match": "MedicationStatement?patient=%s", "kind": "status", "status": 403}', :'some_patient') AS fault_403 \gset
\setenv FAULT_403 :fault_403
\! $EPIC_CTL fault "$FAULT_403"
\set SHOW_CONTEXT never
SELECT count(*) FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.state IN ('TX', 'CO', 'NM');
\set SHOW_CONTEXT errors
\! $EPIC_CTL faults-clear

-- one failed search stops the others and fails the query with its error:
-- the fourth search fails at once while the others would hang for 30 s
\! $EPIC_CTL reset
SELECT id AS fourth FROM forty ORDER BY id OFFSET 3 LIMIT 1 \gset
SELECT format('{"match": "MedicationStatement?patient=%s", "kind": "status", "status": 400, "body": {"resourceType": "OperationOutcome", "issue": [{"severity": "fatal", "code": "invalid", "diagnostics": "no such patient"}]}}', :'fourth') AS fault_bad \gset
\setenv FAULT_BAD :fault_bad
\! $EPIC_CTL fault "$FAULT_BAD"
\! $EPIC_CTL fault '{"match": "MedicationStatement?", "kind": "hang", "seconds": 30, "times": -1}'
SELECT clock_timestamp() AS t0 \gset
\set SHOW_CONTEXT never
SELECT count(*) FROM medication_statements WHERE patient_id = ANY (ARRAY(SELECT id FROM forty ORDER BY id));
\set SHOW_CONTEXT errors
SELECT clock_timestamp() - :'t0'::timestamptz < interval '10 s' AS ended_within_10s;
\! $EPIC_CTL faults-clear
SELECT count(*) > 0 AS usable_after FROM medication_statements WHERE patient_id = ANY (ARRAY(SELECT id FROM forty LIMIT 3));

-- a query cancel stops every transfer: 8 searches hang, statement_timeout ends them
\! $EPIC_CTL fault '{"match": "MedicationStatement?", "kind": "hang", "seconds": 30, "times": -1}'
SELECT clock_timestamp() AS t0 \gset
SET statement_timeout = '1s';
SELECT count(*) FROM medication_statements WHERE patient_id = ANY (ARRAY(SELECT id FROM forty));
RESET statement_timeout;
SELECT clock_timestamp() - :'t0'::timestamptz < interval '6 s' AS ended_within_6s;
\! $EPIC_CTL faults-clear
SELECT count(*) > 0 AS usable_after FROM medication_statements WHERE patient_id = ANY (ARRAY(SELECT id FROM forty LIMIT 3));

-- a 429 with Retry-After in the middle of a batch is waited for and retried
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "MedicationStatement?", "kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "skip": 5, "times": 2}'
SELECT count(*) = (SELECT count(*) FROM one_at_a_time) AS same_count
  FROM medication_statements WHERE patient_id = ANY (ARRAY(SELECT id FROM forty));
\! $EPIC_CTL faults-clear
\! $EPIC_CTL count fhir MedicationStatement

-- a page is fetched ahead while the current one is read; every page once
ALTER SERVER dataset OPTIONS (ADD page_size '20');
\! $EPIC_CTL reset
SELECT count(*) FROM patients WHERE gender = 'female';
\! $EPIC_CTL count fhir Patient
SELECT count(*) FROM patients WHERE gender = 'female' AND birthdate IS NOT NULL;
ALTER SERVER dataset OPTIONS (DROP page_size, DROP or_lists, DROP max_concurrency);

DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
