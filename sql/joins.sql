--
-- joins: parameterized scans (one search per outer row), the IVR query,
-- required search parameters
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql

-- The IVR: a caller identified by phone number, birth date and gender hears
-- their medications.  One Patient search, then one MedicationStatement
-- search for the matching patient(s): a join of epic_fdw's own.
EXPLAIN (VERBOSE, COSTS OFF)
SELECT m.medication, m.dosage
  FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female';
\! $EPIC_CTL reset
SELECT m.medication, m.dosage
  FROM patients p JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female'
 ORDER BY 1;
\! $EPIC_CTL log
\! $EPIC_CTL count fhir Patient
\! $EPIC_CTL count fhir MedicationStatement

-- the same join inside subqueries the planner keeps (each has a LIMIT): the
-- final plan renumbers their tables, and the join still reads the right ones
EXPLAIN (COSTS OFF)
SELECT * FROM (SELECT 'first' AS k, m.medication FROM patients p
                 JOIN medication_statements m ON m.patient_id = p.id
                WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female'
                ORDER BY 2 LIMIT 1) a
UNION ALL
SELECT * FROM (SELECT 'last', m.medication FROM patients p
                 JOIN medication_statements m ON m.patient_id = p.id
                WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female'
                ORDER BY 2 DESC LIMIT 1) b;
SELECT * FROM (SELECT 'first' AS k, m.medication FROM patients p
                 JOIN medication_statements m ON m.patient_id = p.id
                WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female'
                ORDER BY 2 LIMIT 1) a
UNION ALL
SELECT * FROM (SELECT 'last', m.medication FROM patients p
                 JOIN medication_statements m ON m.patient_id = p.id
                WHERE p.phone = '469-555-5555' AND p.birthdate = '1987-09-12' AND p.gender = 'female'
                ORDER BY 2 DESC LIMIT 1) b;

-- a local table of patient ids joined to patients: one _id search each
CREATE TEMP TABLE callers (patient_id text, called_at date);
INSERT INTO callers VALUES ('erXuFYUfucBZaryVksYEcMg3', '2026-11-01'),
                           ('eq081-VQEgP8drUUqCWzHfw3', '2026-11-02');
ANALYZE callers;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT c.called_at, p.name FROM callers c JOIN patients p ON p.id = c.patient_id;
SELECT c.called_at, p.name FROM callers c JOIN patients p ON p.id = c.patient_id ORDER BY 1;

-- three tables: callers -> patients -> medications
SELECT p.name, count(m.*) AS medications
  FROM callers c
  JOIN patients p ON p.id = c.patient_id
  JOIN medication_statements m ON m.patient_id = p.id
 GROUP BY p.name ORDER BY p.name;

-- a LEFT JOIN still plans (and finds no statements for Desiree)
SELECT p.name, m.medication
  FROM patients p LEFT JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.id = 'eAB3mDIBBcyUKviyzrxsnAw3';

-- MedicationStatement searches need a patient: without one, the query fails
-- with a clear error before any request is sent
\! $EPIC_CTL reset
EXPLAIN (VERBOSE, COSTS OFF) SELECT medication FROM medication_statements WHERE status = 'active';
SELECT medication FROM medication_statements WHERE status = 'active';
SELECT pg_temp.sqlstate_of($$SELECT * FROM medication_statements$$);
\! $EPIC_CTL log

-- a fixed search option can supply the required parameter too
CREATE FOREIGN TABLE camila_meds (id text, medication text) SERVER sandbox
  OPTIONS (resource 'MedicationStatement', search 'patient=erXuFYUfucBZaryVksYEcMg3');
SELECT count(*) FROM camila_meds;

DROP SERVER sandbox CASCADE;
