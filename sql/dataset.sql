--
-- dataset: how few requests queries make, against a server with real FHIR
-- search semantics (the request log shows exactly what was asked)
--
\i sql/include/setup.sql
\i sql/include/dataset.sql

-- an IN list of 5 patient ids is one request
\! $EPIC_CTL reset
SELECT count(*) FROM patients
 WHERE id IN ('erXuFYUfucBZaryVksYEcMg3', 'eq081-VQEgP8drUUqCWzHfw3', 'eAB3mDIBBcyUKviyzrxsnAw3',
              'egqBHVfQlt4Bw3XGXoxVxHg3', 'eIXesllypH3M9tAA5WdJftQ3');
\! $EPIC_CTL log

-- 20 patients joined to their statements: one patient search, then at most
-- one statement search per distinct patient
CREATE TEMP TABLE twenty AS
  SELECT id FROM patients WHERE state = 'TX' ORDER BY id LIMIT 20;
SELECT count(*) FROM twenty;
\! $EPIC_CTL reset
SELECT count(DISTINCT p.id) AS patients, count(m.id) AS statements
  FROM patients p LEFT JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.id = ANY (ARRAY(SELECT id FROM twenty));
\! $EPIC_CTL count fhir Patient
\! $EPIC_CTL count fhir MedicationStatement

-- repeated join keys do not repeat requests: 3 outer rows, 1 request
CREATE TEMP TABLE calls (patient_id text);
INSERT INTO calls VALUES ('eq081-VQEgP8drUUqCWzHfw3'), ('eq081-VQEgP8drUUqCWzHfw3'),
                         ('eq081-VQEgP8drUUqCWzHfw3');
ANALYZE calls;
\! $EPIC_CTL reset
SELECT count(*) FROM calls c JOIN medication_statements m ON m.patient_id = c.patient_id;
\! $EPIC_CTL log

-- LIMIT 5 over a 10-page search fetches one page of 5
ALTER SERVER dataset OPTIONS (ADD page_size '10');
SELECT count(*) FROM patients WHERE gender = 'female';
\! $EPIC_CTL reset
SELECT count(*) FROM (SELECT id FROM patients WHERE gender = 'female' LIMIT 5) s;
\! $EPIC_CTL log
-- a cursor closed early stops fetching: two pages of 10 for 12 rows, and at
-- most one more, fetched ahead
\! $EPIC_CTL reset
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM patients WHERE gender = 'female' AND birthdate < '2000-01-01';
FETCH 12 FROM c;
CLOSE c;
COMMIT;
\! $EPIC_CTL count fhir Patient | awk '{print ($1 >= 2 && $1 <= 3) ? "2 or 3 requests" : $1 " requests"}'
ALTER SERVER dataset OPTIONS (DROP page_size);

-- or_lists = false: one request per value; a resource matching two values
-- is returned once
ALTER SERVER dataset OPTIONS (ADD or_lists 'false');
\! $EPIC_CTL reset
SELECT id, phones FROM patients
 WHERE '469-555-5555' = ANY(phones) AND phone IN ('469-555-5555', '469-888-8888')
 ORDER BY id;
SELECT count(*) FROM patients WHERE gender IN ('other', 'unknown');
-- each query's searches run concurrently (max_concurrency) and may reach
-- the sandbox in any order, so the log is sorted
\! $EPIC_CTL log | LC_ALL=C sort
ALTER SERVER dataset OPTIONS (DROP or_lists);
SELECT count(*) FROM patients WHERE gender IN ('other', 'unknown');

-- EXPLAIN ANALYZE counts what a scan did: here a join of two epic_fdw
-- tables, 2 requests (the patients, then their statements as one OR list)
SELECT * FROM pg_temp.explain_analyze($$SELECT count(*) FROM patients p
  JOIN medication_statements m ON m.patient_id = p.id WHERE p.family = 'Lopez'$$);

-- given joins the given names with spaces, so given = 'Camila' misses
-- Camila Maria Lopez; given_names (imported right after given) holds each
-- given name and is pushed down as given=
\! $EPIC_CTL reset
SELECT id, given, given_names FROM patients WHERE family = 'Lopez' AND given = 'Camila';
SELECT id, given, given_names FROM patients WHERE family = 'Lopez' AND 'Camila' = ANY(given_names);
SELECT id, given, given_names FROM patients WHERE family = 'Lopez' AND 'Maria' = ANY(given_names);
\! $EPIC_CTL log

RESET search_path;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
