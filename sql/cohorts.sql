--
-- cohorts: group_members (GET Group/{id}), the cohort joins, searches packed
-- under max_url_length, Epic's rules on the Epic-shaped sandbox
--
\i sql/include/setup.sql

-- The Epic-shaped sandbox (R4): recorded answers, and behind them an
-- Epic-like registry of 600 patients with Groups; Patient searches need
-- criteria there, and URLs over 2048 bytes are refused (414).
CREATE SERVER epic FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url_r4', fhir_version 'R4', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER epic
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE SCHEMA epic;
IMPORT FOREIGN SCHEMA fhir LIMIT TO (patients, group_members, medication_requests)
  FROM SERVER epic INTO epic;
SET search_path = epic, public;
\d group_members

-- one read, one row per member
\! $EPIC_CTL reset
SELECT group_id, patient_id, inactive, period_start, period_end, resource->'entity'->>'display' AS display
  FROM group_members WHERE group_id = 'registry-sample' ORDER BY period_start, patient_id LIMIT 5;
\! $EPIC_CTL log
SELECT count(*) AS members, count(patient_id) AS patients, count(*) FILTER (WHERE inactive) AS inactive
  FROM group_members WHERE group_id = 'registry-all';
-- members that are not Patients keep their row, with patient_id NULL
SELECT patient_id, resource->'entity'->>'reference' AS reference, resource->'entity'->>'display' AS display
  FROM group_members WHERE group_id = 'registry-mixed';
-- a Group without members: no row, no error
SELECT count(*) FROM group_members WHERE group_id = 'registry-empty';
-- three groups: three reads (concurrent, so the log is sorted)
\! $EPIC_CTL reset
SELECT group_id, count(*) FROM group_members
 WHERE group_id IN ('registry-mixed', 'registry-empty', 'registry-sample') GROUP BY 1 ORDER BY 1;
\! $EPIC_CTL log | sort
-- a Group that does not exist
SELECT * FROM group_members WHERE group_id = 'no-such-group';
-- a value that is not a FHIR id names no Group: nothing is read
\! $EPIC_CTL reset
SELECT count(*) FROM group_members WHERE group_id = 'not a/valid id';
\! $EPIC_CTL count fhir
-- group_id is required
SELECT * FROM group_members;
EXPLAIN (VERBOSE, COSTS OFF) SELECT patient_id FROM group_members WHERE group_id = 'registry-all';

-- Epic refuses a Patient search without criteria (59159)
SELECT count(*) FROM patients;

-- The cohort: one Group read, then the members as _id searches, packed
-- into URLs of at most max_url_length bytes, max_concurrency at a time
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id, p.family, p.birthdate FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all';
\! $EPIC_CTL reset
CREATE TEMP TABLE cohort8 AS
SELECT p.id, p.family, p.given, p.birthdate, p.gender, g.inactive
  FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all';
SELECT count(*) AS rows, count(DISTINCT id) AS patients FROM cohort8;
\! $EPIC_CTL count fhir Group
\! $EPIC_CTL count fhir Patient > /tmp/epic_fdw_cohorts_patient_requests
\! $EPIC_CTL longest-url > /tmp/epic_fdw_cohorts_longest
-- The bound, computed here from the keys: the bytes of the keys and their
-- separators over the room a URL leaves for them, plus one.
\set patient_requests `cat /tmp/epic_fdw_cohorts_patient_requests`
\set longest `cat /tmp/epic_fdw_cohorts_longest`
SELECT length(:'fhir_url_r4' || 'Patient?_id=&_count=100') AS url_without_keys,
       sum(length(patient_id)) + count(*) - 1 AS key_bytes
  FROM group_members WHERE group_id = 'registry-all' \gset
SELECT :patient_requests AS patient_searches,
       :patient_requests <= ceil(:key_bytes::numeric / (2048 - :url_without_keys)) + 1 AS within_bound,
       :patient_requests > 1 AS split,
       :longest <= 2048 AS every_url_under_limit;
\! $EPIC_CTL log | grep -c ' 414' || true
-- the same rows one search at a time
ALTER SERVER epic OPTIONS (ADD max_concurrency '1');
CREATE TEMP TABLE cohort1 AS
SELECT p.id, p.family, p.given, p.birthdate, p.gender, g.inactive
  FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all';
ALTER SERVER epic OPTIONS (DROP max_concurrency);
SELECT (SELECT count(*) FROM (SELECT * FROM cohort8 EXCEPT ALL SELECT * FROM cohort1) a) +
       (SELECT count(*) FROM (SELECT * FROM cohort1 EXCEPT ALL SELECT * FROM cohort8) b) AS differences;
-- a smaller limit: more searches, every URL still under it
ALTER SERVER epic OPTIONS (ADD max_url_length '512');
\! $EPIC_CTL max-url-length 512
\! $EPIC_CTL reset
SELECT count(*) FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all';
\! $EPIC_CTL longest-url
\! $EPIC_CTL count fhir Patient
\! $EPIC_CTL max-url-length 2048
ALTER SERVER epic OPTIONS (SET max_url_length '2048');

-- The same registry without Epic's rules (a named dataset), where the plan
-- without pushdown is allowed: the rows are the same
SELECT replace(:'dataset_url_r4', '/dataset/R4/', '/dataset/registry/') AS registry_url \gset
\! /usr/bin/python3 -c 'import json,sys; print(json.dumps([json.loads(l) for f in sys.argv[1:] for l in open(f)]))' $EPIC_SANDBOX_DIR/registry/r4/*.ndjson | $EPIC_CTL dataset registry R4 -
CREATE SERVER registry FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'registry_url', fhir_version 'R4', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER registry
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE SCHEMA reg;
IMPORT FOREIGN SCHEMA fhir LIMIT TO (patients, group_members, medication_requests)
  FROM SERVER registry INTO reg;
SET epic_fdw.pushdown = off;
EXPLAIN (COSTS OFF)
SELECT p.id, p.family, p.given, p.birthdate, p.gender, g.inactive
  FROM reg.group_members g JOIN reg.patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all';
CREATE TEMP TABLE cohort_off AS
SELECT p.id, p.family, p.given, p.birthdate, p.gender, g.inactive
  FROM reg.group_members g JOIN reg.patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all';
RESET epic_fdw.pushdown;
SELECT (SELECT count(*) FROM (SELECT * FROM cohort8 EXCEPT ALL SELECT * FROM cohort_off) a) +
       (SELECT count(*) FROM (SELECT * FROM cohort_off EXCEPT ALL SELECT * FROM cohort8) b) AS differences,
       (SELECT count(*) FROM cohort_off) AS rows;

-- the cohort's medication requests: one Group read, then patient searches
EXPLAIN (VERBOSE, COSTS OFF)
SELECT m.id, m.patient_id, m.status FROM group_members g
  JOIN medication_requests m ON m.patient_id = g.patient_id
 WHERE g.group_id = 'registry-sample';
\! $EPIC_CTL reset
CREATE TEMP TABLE cohort_meds AS
SELECT m.id, m.patient_id, m.status, m.medication FROM group_members g
  JOIN medication_requests m ON m.patient_id = g.patient_id
 WHERE g.group_id = 'registry-sample';
\! $EPIC_CTL count fhir Group
\! $EPIC_CTL count fhir MedicationRequest
SET epic_fdw.pushdown = off;
CREATE TEMP TABLE cohort_meds_off AS
SELECT m.id, m.patient_id, m.status, m.medication FROM reg.group_members g
  JOIN reg.medication_requests m ON m.patient_id = g.patient_id
 WHERE g.group_id = 'registry-sample';
RESET epic_fdw.pushdown;
SELECT (SELECT count(*) FROM cohort_meds) AS rows,
       (SELECT count(*) FROM (SELECT * FROM cohort_meds EXCEPT ALL SELECT * FROM cohort_meds_off) a) +
       (SELECT count(*) FROM (SELECT * FROM cohort_meds_off EXCEPT ALL SELECT * FROM cohort_meds) b) AS differences;

-- a member that is not a Patient is never searched as one
\! $EPIC_CTL reset
SELECT g.resource->'entity'->>'reference' AS member, p.family
  FROM group_members g LEFT JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-mixed' ORDER BY 1;
SELECT count(*) FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-mixed';
\! $EPIC_CTL log

-- LIMIT through the join: the keys are searched chunk by chunk as rows
-- are consumed; a cursor that fetches 5 rows of the 600-key cohort stops
-- after the Group read and one Patient search
BEGIN;
DECLARE c CURSOR FOR SELECT p.id, p.family FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all';
\! $EPIC_CTL reset
FETCH 5 FROM c \g /dev/null
\! $EPIC_CTL log | cut -c1-60
FETCH 200 FROM c \g /dev/null
\! $EPIC_CTL count fhir Patient
COMMIT;
\! $EPIC_CTL reset
SELECT count(*) FROM (SELECT p.id FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-all' LIMIT 10) s;
\! $EPIC_CTL count fhir
-- a parameterized nested loop (local ids, one search each) stops too
CREATE TEMP TABLE local_ids AS
  SELECT patient_id AS id FROM group_members WHERE group_id = 'registry-sample';
ANALYZE local_ids;
EXPLAIN (COSTS OFF) SELECT p.family FROM local_ids l JOIN patients p ON p.id = l.id LIMIT 3;
\! $EPIC_CTL reset
SELECT count(*) FROM (SELECT p.family FROM local_ids l JOIN patients p ON p.id = l.id LIMIT 3) s;
\! $EPIC_CTL count fhir Patient

-- max_url_length: a static IN list packed into several searches
SELECT string_agg(quote_literal(patient_id), ',') AS ids
  FROM (SELECT patient_id FROM group_members WHERE group_id = 'registry-all' LIMIT 150) s \gset
CREATE FUNCTION pg_temp.explain_fhir(query text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE line text;
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || query LOOP
    IF line ~ 'FHIR (Searches|Request)' THEN
      RETURN NEXT left(line, 90);
    END IF;
  END LOOP;
END $$;
SELECT pg_temp.explain_fhir(format('SELECT count(*) FROM patients WHERE id IN (%s)', :'ids'));
\! $EPIC_CTL reset
SELECT count(*) FROM patients WHERE id IN (:ids);
\! $EPIC_CTL count fhir Patient
\! $EPIC_CTL longest-url
-- without OR lists, one key per search, as before
ALTER SERVER epic OPTIONS (ADD or_lists 'false');
\! $EPIC_CTL reset
SELECT count(*) FROM group_members g JOIN patients p ON p.id = g.patient_id
 WHERE g.group_id = 'registry-sample';
\! $EPIC_CTL count fhir Patient
ALTER SERVER epic OPTIONS (DROP or_lists);
-- a single value that cannot fit is an error naming the option
SELECT * FROM patients WHERE family = repeat('x', 3000);
SELECT pg_temp.sqlstate_of($$SELECT * FROM patients WHERE family = repeat('y', 2100)$$);
SELECT count(*) FROM patients WHERE family = repeat('x', 1900);
ALTER SERVER epic OPTIONS (SET max_url_length '1024');
SELECT pg_temp.sqlstate_of($$SELECT * FROM patients WHERE family = repeat('x', 1900)$$);
ALTER SERVER epic OPTIONS (SET max_url_length '100');
ALTER SERVER epic OPTIONS (SET max_url_length '70000');
ALTER SERVER epic OPTIONS (DROP max_url_length);

\! $EPIC_CTL dataset-delete registry
SET client_min_messages = warning;
DROP SERVER epic, registry CASCADE;
RESET client_min_messages;

-- Concurrent first pages (one search per key): a LIMIT stops the searches,
-- and batch_memory bounds the pages fetched ahead
\i sql/include/dataset.sql
ALTER SERVER dataset OPTIONS (ADD or_lists 'false');
SELECT array_agg(id ORDER BY id) AS ids FROM (SELECT id FROM patients ORDER BY id LIMIT 40) s \gset
\! $EPIC_CTL reset
SELECT count(*) FROM (SELECT id FROM medication_statements WHERE patient_id = ANY (:'ids') LIMIT 1) s;
\! $EPIC_CTL count fhir MedicationStatement
\! $EPIC_CTL reset
SELECT count(*) FROM (SELECT id FROM medication_statements WHERE patient_id = ANY (:'ids') LIMIT 10) s;
\! $EPIC_CTL count fhir MedicationStatement
-- without a LIMIT every key is searched
\! $EPIC_CTL reset
CREATE TEMP TABLE all_meds AS
  SELECT id, patient_id, status FROM medication_statements WHERE patient_id = ANY (:'ids');
\! $EPIC_CTL count fhir MedicationStatement
-- 30 rows through a cursor: the default budget fetches the remaining first
-- pages in one batch; a budget of 64 kB in smaller ones, as needed
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM medication_statements WHERE patient_id = ANY (:'ids');
\! $EPIC_CTL reset
FETCH 30 FROM c \g /dev/null
\! $EPIC_CTL count fhir MedicationStatement
COMMIT;
ALTER SERVER dataset OPTIONS (ADD batch_memory '65536');
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM medication_statements WHERE patient_id = ANY (:'ids');
\! $EPIC_CTL reset
FETCH 30 FROM c \g /dev/null
\! $EPIC_CTL count fhir MedicationStatement
COMMIT;
-- A view joining patients to their statements, LIMIT 10: the first page
-- of patients and the statements of the first keys, not every patient
CREATE VIEW v_patient_meds AS
  SELECT p.id AS patient_id, p.family, m.id, m.medication, m.status
    FROM patients p JOIN medication_statements m ON m.patient_id = p.id;
ALTER SERVER dataset OPTIONS (DROP or_lists);
\! $EPIC_CTL reset
SELECT count(*) FROM (SELECT * FROM v_patient_meds LIMIT 10) s;
\! $EPIC_CTL log
SELECT pg_temp.explain_analyze('SELECT * FROM v_patient_meds LIMIT 10');
-- without the LIMIT the same rows as the plan without pushdown
CREATE TEMP TABLE vpm AS SELECT * FROM v_patient_meds;
SET epic_fdw.pushdown = off;
CREATE TEMP TABLE vpm_off AS SELECT * FROM v_patient_meds;
RESET epic_fdw.pushdown;
SELECT (SELECT count(*) FROM vpm) AS rows,
       (SELECT count(*) FROM (SELECT * FROM vpm EXCEPT ALL SELECT * FROM vpm_off) a) +
       (SELECT count(*) FROM (SELECT * FROM vpm_off EXCEPT ALL SELECT * FROM vpm) b) AS differences;
ALTER SERVER dataset OPTIONS (ADD or_lists 'false');
CREATE TEMP TABLE all_meds_small AS
  SELECT id, patient_id, status FROM medication_statements WHERE patient_id = ANY (:'ids');
SELECT (SELECT count(*) FROM all_meds) AS rows,
       (SELECT count(*) FROM (SELECT * FROM all_meds EXCEPT ALL SELECT * FROM all_meds_small) a) +
       (SELECT count(*) FROM (SELECT * FROM all_meds_small EXCEPT ALL SELECT * FROM all_meds) b) AS differences;
ALTER SERVER dataset OPTIONS (SET batch_memory '1000');
ALTER SERVER dataset OPTIONS (DROP batch_memory, DROP or_lists);

-- A member of a batch told to wait (503, Retry-After: 3) waits once the
-- others are done: the others (sent byte by byte, about a second) are not
-- left undriven past their 2-second timeout while it sleeps
ALTER SERVER dataset OPTIONS (ADD timeout '2', ADD max_retries '1');
\! $EPIC_CTL reset
\! $EPIC_CTL fault '{"match": "Group/", "kind": "status", "status": 503, "headers": {"Retry-After": "3"}}'
\! $EPIC_CTL fault '{"match": "Group/", "kind": "drip", "interval_ms": 1, "times": 2}'
SELECT group_id, count(*) FROM group_members
 WHERE group_id IN ('registry-mixed', 'registry-empty') GROUP BY 1 ORDER BY 1;
\! $EPIC_CTL log | sed 's/registry-[a-z]*/registry-*/' | sort
\! $EPIC_CTL faults-clear
ALTER SERVER dataset OPTIONS (DROP timeout, DROP max_retries);

-- Semi- and anti-joins between two epic_fdw tables: EXISTS, NOT EXISTS and
-- IN (subquery) run as one join scan; rows as PostgreSQL's own plan gives
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id FROM patients p
 WHERE EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id);
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id FROM patients p WHERE p.state = 'TX'
   AND NOT EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id AND m.status = 'active');
EXPLAIN (VERBOSE, COSTS OFF)
SELECT m.id FROM medication_statements m
 WHERE m.patient_id IN (SELECT id FROM patients WHERE family = 'Lopez');
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.id, p.family FROM patients p
 WHERE p.id IN (SELECT patient_id FROM group_members WHERE group_id = 'registry-sample');
\! $EPIC_CTL reset
SELECT count(*) FROM patients p
 WHERE EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id);
\! $EPIC_CTL count fhir Patient
\! $EPIC_CTL count fhir MedicationStatement
\! $EPIC_CTL reset
SELECT count(*) FROM patients p
 WHERE p.id IN (SELECT patient_id FROM group_members WHERE group_id = 'registry-sample');
\! $EPIC_CTL count fhir

-- each query with pushdown on (the join scan) and off (PostgreSQL's plan)
CREATE FUNCTION pg_temp.compare(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint; d bigint; plan text;
BEGIN
  EXECUTE 'EXPLAIN (COSTS OFF) ' || q INTO plan;
  EXECUTE 'CREATE TEMP TABLE cmp_on AS ' || q;
  PERFORM set_config('epic_fdw.pushdown', 'off', true);
  EXECUTE 'CREATE TEMP TABLE cmp_off AS ' || q;
  PERFORM set_config('epic_fdw.pushdown', 'on', true);
  SELECT count(*) INTO n FROM cmp_on;
  SELECT (SELECT count(*) FROM (SELECT * FROM cmp_on EXCEPT ALL SELECT * FROM cmp_off) a) +
         (SELECT count(*) FROM (SELECT * FROM cmp_off EXCEPT ALL SELECT * FROM cmp_on) b) INTO d;
  DROP TABLE cmp_on, cmp_off;
  RETURN format('%s: %s rows, %s differences', plan, n, d);
END $$;
SELECT pg_temp.compare(q) AS "plan: rows, differences from pushdown off" FROM (VALUES
 -- EXISTS, NOT EXISTS, IN
 ($$SELECT p.id, p.family FROM patients p WHERE EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id)$$),
 ($$SELECT p.id, p.family FROM patients p WHERE NOT EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id)$$),
 ($$SELECT p.id FROM patients p WHERE p.id IN (SELECT patient_id FROM medication_statements)$$),
 -- with correlated extra conditions of the subquery's table
 ($$SELECT p.id FROM patients p WHERE EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id AND m.status = 'active')$$),
 ($$SELECT p.id FROM patients p WHERE NOT EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id AND m.status IN ('active', 'completed'))$$),
 ($$SELECT p.id FROM patients p WHERE p.gender = 'female' AND p.id IN (SELECT patient_id FROM medication_statements WHERE status <> 'stopped')$$),
 -- conditions across both tables (checked on each pair)
 ($$SELECT p.id FROM patients p WHERE EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id AND m.effective_start < p.birthdate + interval '30 years')$$),
 ($$SELECT p.id FROM patients p WHERE NOT EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id AND m.medication <> p.family)$$),
 ($$SELECT p.id FROM patients p WHERE p.state = 'TX' AND NOT EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id AND m.status = 'active')$$),
 -- the kept rows from the fan-out side (driven by the subquery's table)
 ($$SELECT m.id, m.status FROM medication_statements m WHERE m.patient_id IN (SELECT id FROM patients WHERE family = 'Lopez')$$),
 ($$SELECT m.id FROM medication_statements m WHERE EXISTS (SELECT 1 FROM patients p WHERE p.id = m.patient_id AND p.state IN ('TX', 'CO'))$$),
 -- cohorts: Group members, NULL keys (members that are not Patients)
 ($$SELECT p.id, p.family FROM patients p WHERE p.id IN (SELECT patient_id FROM group_members WHERE group_id = 'registry-sample')$$),
 ($$SELECT g.patient_id, g.resource FROM group_members g WHERE g.group_id = 'registry-mixed' AND NOT EXISTS (SELECT 1 FROM patients p WHERE p.id = g.patient_id)$$),
 ($$SELECT g.patient_id FROM group_members g WHERE g.group_id = 'registry-sample' AND EXISTS (SELECT 1 FROM patients p WHERE p.id = g.patient_id AND p.gender = 'female')$$),
 ($$SELECT g.patient_id FROM group_members g WHERE g.group_id = 'registry-all' AND NOT EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = g.patient_id)$$),
 ($$SELECT g.patient_id, g.inactive FROM group_members g WHERE g.group_id = 'registry-sample' AND EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = g.patient_id AND m.effective_start > g.period_start)$$),
 -- an aggregate over a semi-join
 ($$SELECT count(*) AS n, count(DISTINCT p.state) AS states FROM patients p WHERE EXISTS (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id)$$),
 -- NOT IN stays a SubPlan (for correctness only)
 ($$SELECT p.id FROM patients p WHERE p.state = 'TX' AND p.id NOT IN (SELECT m.patient_id FROM medication_statements m WHERE m.patient_id = p.id AND m.status = 'active')$$)
) v(q);
RESET search_path;
SET client_min_messages = warning;
DROP SCHEMA epic, reg, ds CASCADE;
DROP SERVER dataset CASCADE;
