--
-- planning: the pushed request for every operator and search-parameter type
-- (EXPLAIN does no network I/O), what stays local, LIMIT, estimates, the
-- pushdown GUC, IMPORT FOREIGN SCHEMA
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql
\! $EPIC_CTL reset

-- token: =, IN, = ANY(array); <> stays local
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE gender = 'female';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE gender IN ('female', 'other');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE gender = ANY(ARRAY['male', NULL, 'male']);
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE gender <> 'male' AND id = 'x';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements
  WHERE patient_id = 'p1' AND status IN ('active', 'on-hold');
-- identifier (MRN): system|value for each value
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE mrn IN ('203713', '203711');
-- _id and reference lists
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE id IN ('a', 'b,c', 'd');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements
  WHERE patient_id IN ('erXuFYUfucBZaryVksYEcMg3', 'eq081-VQEgP8drUUqCWzHfw3');

-- string: =, IN, LIKE/ILIKE 'literal%'; other patterns stay local
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family = 'Lopez';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family IN ('Lopez', 'Lin');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family LIKE 'Lo%';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family ILIKE 'lo%';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE city LIKE 'SAN\_%';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family LIKE '%ez' AND id = 'x';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family LIKE 'L_pez' AND id = 'x';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family LIKE 'Lo%z' AND id = 'x';
-- given and name join several strings: only the first word is sent
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE given LIKE 'Camila Ma%';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE name = 'Camila Maria Lopez';

-- date (birthdate): = < <= > >= BETWEEN -> eq lt le gt ge
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE birthdate = '1987-09-12';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE birthdate < '1990-01-01' AND gender = 'female';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE birthdate <= '1990-01-01' AND gender = 'female';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE birthdate > '1990-01-01' AND gender = 'female';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE '1990-01-01' <= birthdate AND gender = 'female';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients
  WHERE birthdate BETWEEN '1980-01-01' AND '1989-12-31' AND gender = 'female';
-- a date compared with a timestamp: the day SQL compares with (the date is
-- midnight; 1990-01-01 12:00 is before 1990-01-02)
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients
  WHERE birthdate < '1990-01-01 12:00+00'::timestamptz AND id = 'x';

-- dateTime (effective): bounds widened by two days (server time zones)
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements
  WHERE patient_id = 'p1' AND effective_start >= '2020-01-01 00:00+00';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements
  WHERE patient_id = 'p1' AND effective_start < '2020-01-01 12:30:15.5+00';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements
  WHERE patient_id = 'p1' AND effective_start = '2020-01-01 08:00-05';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements
  WHERE patient_id = 'p1' AND effective_start BETWEEN '2019-01-01' AND '2019-12-31';

-- conditions OR-ed across columns, on expressions, volatile: local
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE (family = 'Lopez' OR given = 'Derrick') AND id = 'x';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE upper(family) = 'LOPEZ' AND id = 'x';
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family = (random()::text) AND id = 'x';

-- values of statement parameters are pushed at execution time ($n)
PREPARE q1(text[], date) AS SELECT id FROM patients WHERE id = ANY($1) AND birthdate >= $2;
SET plan_cache_mode = force_generic_plan;
EXPLAIN (VERBOSE, COSTS OFF) EXECUTE q1('{a,b}', '1980-01-01');
RESET plan_cache_mode;
DEALLOCATE q1;

-- LIMIT: _count = n when the scan alone answers the LIMIT and every pushed
-- condition is exact (tokens on one code, _id, references, date equality)
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE gender = 'female' LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE gender = 'female' LIMIT 5 OFFSET 2;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE birthdate = '1987-09-12' AND gender IN ('female', 'other') LIMIT 2;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements WHERE patient_id = 'x' AND status = 'active' LIMIT 3;
-- ...not when a pushed condition matches more loosely than SQL: string
-- prefixes, widened dateTime bounds, date ranges (which match partial dates),
-- the first of several codes or phones
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family = 'Lopez' LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE gender = 'female' AND birthdate < '1990-01-01' LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE phone = '469-555-5555' LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements WHERE patient_id = 'x' AND effective_start > '2020-01-01' LIMIT 3;
-- ...but not when rows may be filtered locally, sorted, or grouped first
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family = 'Lopez' AND id <> 'x' LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family = 'Lopez' ORDER BY id LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT DISTINCT gender FROM patients WHERE family = 'Lopez' LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM patients WHERE family = 'Lopez' LIMIT 500;

-- required parameters: without a patient the plan says what is missing
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM medication_statements WHERE status = 'active';
-- outer joins plan and use the join value
EXPLAIN (VERBOSE, COSTS OFF)
SELECT p.name, m.medication FROM patients p
  LEFT JOIN medication_statements m ON m.patient_id = p.id WHERE p.family = 'Lopez';
EXPLAIN (VERBOSE, COSTS OFF)
SELECT m.medication, p.name FROM medication_statements m
  LEFT JOIN patients p ON p.id = m.patient_id WHERE m.patient_id = 'erXuFYUfucBZaryVksYEcMg3';

-- estimates: a pushed unique key is one row per value, a patient a few; the
-- rows option scales the rest; a query that reads tens of rows costs far
-- less than jit_above_cost
EXPLAIN SELECT id FROM patients WHERE id = 'x';
EXPLAIN SELECT id FROM patients WHERE id IN ('a', 'b', 'c', 'd', 'e');
EXPLAIN SELECT id FROM patients WHERE family = 'Lopez';
EXPLAIN SELECT id FROM patients WHERE family = 'Lopez' AND gender = 'female';
EXPLAIN SELECT id FROM medication_statements WHERE patient_id IN ('a', 'b');
CREATE FUNCTION pg_temp.plan_cost(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE j json;
BEGIN
  EXECUTE 'EXPLAIN (FORMAT JSON) ' || q INTO j;
  RETURN (j->0->'Plan'->>'Total Cost')::float8;
END $$;
SELECT pg_temp.plan_cost($$SELECT p.id, m.id FROM patients p
  LEFT JOIN medication_statements m ON m.patient_id = p.id WHERE p.family = 'Lopez'$$)
  < current_setting('jit_above_cost')::float8 AS below_jit_above_cost;
SELECT pg_temp.plan_cost($$SELECT p.id, count(m.id) FROM patients p
  LEFT JOIN medication_statements m ON m.patient_id = p.id
  WHERE p.id IN ('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
                 'p', 'q', 'r', 's', 't', 'u', 'v') GROUP BY p.id$$)
  < current_setting('jit_above_cost')::float8 AS below_jit_above_cost;
ALTER FOREIGN TABLE patients OPTIONS (ADD rows '5000');
EXPLAIN SELECT id FROM patients WHERE family = 'Lopez';
EXPLAIN SELECT id FROM patients;
ALTER FOREIGN TABLE patients OPTIONS (DROP rows);

-- the GUC epic_fdw.pushdown = off sends only required parameters
SET epic_fdw.pushdown = off;
EXPLAIN (VERBOSE, COSTS OFF) SELECT m.id FROM patients p
  JOIN medication_statements m ON m.patient_id = p.id
 WHERE p.family = 'Lopez' AND m.status = 'active';
RESET epic_fdw.pushdown;

-- user columns name their own search parameters
CREATE FOREIGN TABLE med_requests (
  id text,
  patient_id text OPTIONS (path 'subject.getReferenceKey(Patient)', search_param 'patient:reference'),
  status text OPTIONS (path 'status', search_param 'status'),
  authored timestamptz OPTIONS (path 'authoredOn', search_param 'authoredon:datetime'),
  intent text OPTIONS (path 'intent')
) SERVER sandbox OPTIONS (resource 'MedicationRequest');
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM med_requests
  WHERE patient_id = 'p1' AND status IN ('active', 'completed') AND authored > '2020-06-01'
    AND intent = 'order';
CREATE FOREIGN TABLE bad (x text OPTIONS (path 'x', search_param 'x:number')) SERVER sandbox
  OPTIONS (resource 'Patient');
CREATE FOREIGN TABLE bad (id text OPTIONS (search_param 'y')) SERVER sandbox
  OPTIONS (resource 'Patient');
SELECT * FROM bad;

-- none of the above sent a request
\! $EPIC_CTL log

-- IMPORT FOREIGN SCHEMA fhir: the built-in tables of the server's version
CREATE SCHEMA imported;
IMPORT FOREIGN SCHEMA fhir FROM SERVER sandbox INTO imported;
SELECT c.relname, ft.ftoptions, count(a.*) AS columns
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_foreign_table ft ON ft.ftrelid = c.oid
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE n.nspname = 'imported' GROUP BY 1, 2 ORDER BY 1;
SELECT name, birthdate FROM imported.patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
SELECT count(*) FROM imported.medication_statements WHERE patient_id = 'erXuFYUfucBZaryVksYEcMg3';
DROP SCHEMA imported CASCADE;
CREATE SCHEMA imported;
IMPORT FOREIGN SCHEMA fhir LIMIT TO (patients) FROM SERVER sandbox INTO imported;
IMPORT FOREIGN SCHEMA fhir EXCEPT (patients) FROM SERVER sandbox INTO imported;
SELECT relname FROM pg_class WHERE relnamespace = 'imported'::regnamespace ORDER BY 1;
IMPORT FOREIGN SCHEMA hl7 FROM SERVER sandbox INTO imported;
DROP SCHEMA imported CASCADE;
-- an R4 server gets the R4 definitions (phone/email search parameters)
CREATE SERVER sandbox_r4 FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url_r4', ca_file :'ca_file');
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox_r4
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE SCHEMA r4;
IMPORT FOREIGN SCHEMA fhir FROM SERVER sandbox_r4 INTO r4;
EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM r4.patients
  WHERE birthdate = '1987-09-12' AND gender = 'female' AND phone = '469-555-5555';
SELECT name, phone FROM r4.patients
  WHERE birthdate = '1987-09-12' AND gender = 'female' AND phone = '469-555-5555';
DROP SCHEMA r4 CASCADE;

DROP SERVER sandbox, sandbox_r4 CASCADE;
