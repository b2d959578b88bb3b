--
-- equivalence: every query gives the same rows with pushdown on and with
-- epic_fdw.pushdown = off (searches carry only required parameters and all
-- filtering is local), against a server with real FHIR search semantics
--
\i sql/include/setup.sql
\i sql/include/dataset.sql

-- run a query both ways; report its row count and whether the results match
CREATE FUNCTION pg_temp.same(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  n_on bigint;
  n_off bigint;
  differ bigint;
BEGIN
  DROP TABLE IF EXISTS r_on, r_off;
  PERFORM set_config('epic_fdw.pushdown', 'on', true);
  EXECUTE 'CREATE TEMP TABLE r_on AS ' || query;
  PERFORM set_config('epic_fdw.pushdown', 'off', true);
  EXECUTE 'CREATE TEMP TABLE r_off AS ' || query;
  PERFORM set_config('epic_fdw.pushdown', 'on', true);
  SELECT count(*) INTO n_on FROM r_on;
  SELECT count(*) INTO n_off FROM r_off;
  SELECT count(*) INTO differ FROM
    ((TABLE r_on EXCEPT ALL TABLE r_off) UNION ALL (TABLE r_off EXCEPT ALL TABLE r_on)) d;
  RETURN format('%s rows, %s', n_on,
                CASE WHEN differ = 0 AND n_on = n_off THEN 'identical'
                     ELSE format('DIFFERENT (%s without pushdown, %s rows differ)', n_off, differ) END);
END $$;

CREATE TEMP TABLE queries (n serial, q text);
INSERT INTO queries (q) VALUES
-- strings: FHIR matches prefixes, case- and accent-insensitively
($$SELECT id, family FROM patients WHERE family = 'Lopez'$$),
($$SELECT id, family FROM patients WHERE family = 'lopez'$$),
($$SELECT id, family FROM patients WHERE family = 'Müller-Lüdenscheidt'$$),
($$SELECT id, family FROM patients WHERE family = 'Muller-Ludenscheidt'$$),
($$SELECT id, family FROM patients WHERE family IN ('Lin', 'Jackson', 'Parker')$$),
($$SELECT id, family FROM patients WHERE family LIKE 'Smith%'$$),
($$SELECT id, family FROM patients WHERE family ILIKE 'dav%'$$),
($$SELECT id, family FROM patients WHERE family LIKE 'Dav%son'$$),
($$SELECT id, given FROM patients WHERE given = 'Camila Maria'$$),
($$SELECT id, given FROM patients WHERE given LIKE 'Jos%'$$),
($$SELECT id, name FROM patients WHERE name = 'Camila Maria Lopez'$$),
($$SELECT id, name FROM patients WHERE name LIKE 'Ann%'$$),
-- names whose text is not made of their parts (Jim Campbell is James
-- Campbell): FHIR leaves name matching to the server, which may match the parts
-- only, so name is not pushed
($$SELECT id, name FROM patients WHERE name = 'Jim Campbell'$$),
($$SELECT id, name FROM patients WHERE name LIKE 'Bill %'$$),
($$SELECT id, name FROM patients WHERE name IN ('Sasha Davis', 'Mike Østergaard', 'Camila Maria Lopez')$$),
($$SELECT id FROM patients WHERE name = 'Sasha Davis' AND birthdate = '1963-01-13' AND gender = 'male'$$),
($$SELECT id, given_names FROM patients WHERE family = 'Campbell' AND 'James' = ANY(given_names)$$),
($$SELECT id, city FROM patients WHERE city = 'SAINT LOUIS'$$),
($$SELECT id, city FROM patients WHERE city LIKE 'COEUR%'$$),
($$SELECT id, city, state FROM patients WHERE state = 'TX' AND city = 'DALLAS'$$),
($$SELECT id, postal_code FROM patients WHERE postal_code LIKE '75%'$$),
-- tokens
($$SELECT id, gender FROM patients WHERE gender = 'female'$$),
($$SELECT id, gender FROM patients WHERE gender IN ('unknown', 'other')$$),
($$SELECT id, gender FROM patients WHERE gender <> 'male' AND state = 'TX'$$),
($$SELECT id, phone FROM patients WHERE phone = '469-555-5555'$$),
($$SELECT id, phones FROM patients WHERE '785-555-5555' = ANY(phones)$$),
($$SELECT id, mrn FROM patients WHERE mrn = '203713'$$),
($$SELECT id, mrn FROM patients WHERE mrn IN ('203713', '203711', '203714')$$),
($$SELECT id, name FROM patients WHERE id IN ('erXuFYUfucBZaryVksYEcMg3', 'eq081-VQEgP8drUUqCWzHfw3',
   'eAB3mDIBBcyUKviyzrxsnAw3', 'egqBHVfQlt4Bw3XGXoxVxHg3', 'eIXesllypH3M9tAA5WdJftQ3')$$),
-- dates, partial birth dates included
($$SELECT id, birthdate FROM patients WHERE birthdate = '1987-09-12'$$),
($$SELECT id, birthdate FROM patients WHERE birthdate < '1950-01-01'$$),
($$SELECT id, birthdate FROM patients WHERE birthdate >= '2010-01-01'$$),
($$SELECT id, birthdate FROM patients WHERE birthdate BETWEEN '1960-01-01' AND '1969-12-31'$$),
($$SELECT id, birthdate, gender FROM patients WHERE birthdate > '1970-06-15' AND gender = 'male'$$),
($$SELECT id, birthdate FROM patients WHERE birthdate <= '1955-12-31'$$),
-- bounds that fall exactly on a value (Camila 1987-09-12, Derrick 1973-06-03)
($$SELECT id FROM patients WHERE birthdate >= '1987-09-12' AND gender = 'female'$$),
($$SELECT id FROM patients WHERE birthdate <= '1973-06-03' AND gender = 'male'$$),
($$SELECT id FROM patients WHERE birthdate > '1987-09-11' AND birthdate < '1987-09-13'$$),
($$SELECT id FROM medication_statements WHERE patient_id = 'erXuFYUfucBZaryVksYEcMg3'
   AND effective_start >= '2024-07-29 03:31:00+00'$$),
($$SELECT id FROM medication_statements WHERE patient_id = 'erXuFYUfucBZaryVksYEcMg3'
   AND effective_start <= '2011-05-04 00:00:00+00'$$),
($$SELECT id FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3'
   AND effective_start = '2018-08-05 19:00:00+00'$$),
($$SELECT id FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3'
   AND effective_start > '2009-12-15 17:19:47+00' AND effective_start < '2009-12-15 17:19:49+00'$$),
-- a date column against timestamps (the day boundaries SQL uses, in the
-- session's time zone for timestamptz), a timestamptz column against dates
($$SELECT id FROM patients WHERE birthdate >= '1987-09-12 00:00'::timestamp AND gender = 'female'$$),
($$SELECT id FROM patients WHERE birthdate > '1987-09-11 23:59'::timestamp AND birthdate < '1987-09-12 00:00:01'::timestamp$$),
($$SELECT id FROM patients WHERE birthdate <= '1987-09-12 00:00'::timestamp AND birthdate >= '1987-09-12 00:00'::timestamp$$),
($$SELECT id FROM patients WHERE birthdate = '1987-09-12 00:00'::timestamp$$),
($$SELECT id FROM patients WHERE birthdate = '1987-09-12 08:00'::timestamp$$),
($$SELECT id FROM patients WHERE birthdate >= '1987-09-12 03:00+00'::timestamptz AND birthdate < '1987-09-13 03:00+00'::timestamptz$$),
($$SELECT id FROM patients WHERE birthdate > '1973-06-02 12:00+00'::timestamptz AND birthdate <= '1973-06-03 12:00+00'::timestamptz$$),
($$SELECT id FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3'
   AND effective_start >= '2018-08-05'::date AND effective_start < '2018-08-06'::date$$),
($$SELECT id FROM medication_statements WHERE patient_id = 'erXuFYUfucBZaryVksYEcMg3'
   AND effective_start < '2011-05-04 00:00'::timestamp$$),
-- local-only conditions, OR across columns
($$SELECT id, email FROM patients WHERE email LIKE '%example%'$$),
($$SELECT id FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3' OR family = 'Lin'$$),
($$SELECT id, active, deceased FROM patients WHERE active = false OR deceased$$),
-- medication statements: patient required, status tokens, effective dates
($$SELECT id, status FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3'$$),
($$SELECT id, patient_id FROM medication_statements
   WHERE patient_id IN ('erXuFYUfucBZaryVksYEcMg3', 'eq081-VQEgP8drUUqCWzHfw3', 'egqBHVfQlt4Bw3XGXoxVxHg3')$$),
($$SELECT id FROM medication_statements WHERE patient_id = 'erXuFYUfucBZaryVksYEcMg3' AND status = 'active'$$),
($$SELECT id, status FROM medication_statements
   WHERE patient_id IN ('erXuFYUfucBZaryVksYEcMg3', 'eq081-VQEgP8drUUqCWzHfw3') AND status IN ('completed', 'stopped')$$),
-- joins (parameterized scans), outer joins, semi-joins
($$SELECT p.id, m.id AS m_id, m.effective_start FROM patients p
   JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state = 'CO' AND m.effective_start >= '2015-01-01'$$),
($$SELECT p.id, m.id AS m_id FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state = 'NM' AND m.effective_start < '2010-01-01'$$),
($$SELECT p.id, m.id AS m_id FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state = 'ID' AND m.effective_start BETWEEN '2012-01-01' AND '2018-12-31'$$),
($$SELECT p.id, m.medication FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.family = 'Lopez'$$),
($$SELECT p.state, count(*) FROM patients p JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.state IN ('TX', 'NJ') AND m.status = 'active' GROUP BY p.state$$),
($$SELECT p.id, m.id AS m_id FROM patients p LEFT JOIN medication_statements m ON m.patient_id = p.id
   WHERE p.gender = 'other'$$),
($$SELECT m.id, p.name FROM medication_statements m LEFT JOIN patients p ON p.id = m.patient_id
   WHERE m.patient_id = 'eIXesllypH3M9tAA5WdJftQ3'$$),
($$SELECT id FROM patients p WHERE p.state = 'MO' AND EXISTS
   (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id AND m.status = 'on-hold')$$),
-- three and four relations: every plan supplies each table's required
-- patient parameter, with pushdown on and off, whatever the join order
($$SELECT DISTINCT p.id FROM patients p JOIN conditions c ON c.patient_id = p.id
   JOIN medication_requests m ON m.patient_id = p.id WHERE c.code = 'E11.9' AND m.medication_code = '197361'$$),
($$SELECT p.id, c.id AS c_id, m.id AS m_id FROM patients p JOIN conditions c ON c.patient_id = p.id
   JOIN medication_statements m ON m.patient_id = p.id WHERE p.state = 'CO' AND c.clinical_status = 'active'$$),
($$SELECT p.id, e.id AS e_id, c.code FROM encounters e JOIN patients p ON p.id = e.patient_id
   JOIN conditions c ON c.patient_id = e.patient_id WHERE p.family IN ('Lopez', 'Lin') AND e.status = 'finished'$$),
($$SELECT m.id, c.id AS c_id FROM medication_statements m JOIN conditions c ON c.patient_id = m.patient_id
   JOIN patients p ON p.id = c.patient_id WHERE p.birthdate < '1950-01-01' AND m.status = 'active'$$),
($$SELECT p.id, count(DISTINCT c.id) AS c, count(DISTINCT m.id) AS m, count(DISTINCT o.id) AS o
   FROM patients p JOIN conditions c ON c.patient_id = p.id JOIN medication_statements m ON m.patient_id = p.id
   JOIN observations o ON o.patient_id = p.id WHERE p.state = 'WI' AND o.category = 'vital-signs' GROUP BY p.id$$),
($$SELECT p.id, e.id AS e_id, pr.id AS pr_id, i.id AS i_id FROM patients p
   JOIN encounters e ON e.patient_id = p.id JOIN procedures pr ON pr.patient_id = e.patient_id
   JOIN immunizations i ON i.patient_id = pr.patient_id WHERE p.gender = 'other'$$),
($$SELECT p.id, c.id AS c_id, a.id AS a_id FROM patients p LEFT JOIN conditions c ON c.patient_id = p.id
   AND c.code = 'J06.9' LEFT JOIN allergy_intolerances a ON a.patient_id = p.id WHERE p.family = 'Parker'$$),
-- semi- and anti-joins
($$SELECT id FROM patients p WHERE p.state = 'TX' AND EXISTS
   (SELECT 1 FROM conditions c WHERE c.patient_id = p.id AND c.code = 'E11.9')$$),
($$SELECT id FROM patients p WHERE p.family LIKE 'Da%' AND p.id IN
   (SELECT patient_id FROM medication_statements WHERE status = 'active')$$),
($$SELECT id FROM patients p WHERE p.family LIKE 'D%' AND NOT EXISTS
   (SELECT 1 FROM medication_statements m WHERE m.patient_id = p.id)$$),
($$SELECT id FROM patients p WHERE p.state = 'NM' AND EXISTS
   (SELECT 1 FROM encounters e JOIN conditions c ON c.patient_id = e.patient_id
     WHERE e.patient_id = p.id AND e.status = 'finished')$$),
-- empty and NULL arrays select nothing
($$SELECT id FROM patients WHERE id = ANY('{}'::text[])$$),
($$SELECT id FROM medication_statements WHERE patient_id = ANY('{NULL}'::text[])$$),
($$SELECT id FROM patients WHERE gender = ANY(ARRAY[NULL, NULL]::text[])$$),
($$SELECT id FROM conditions WHERE patient_id = ANY('{}'::text[]) AND code = 'E11.9'$$),
($$SELECT p.id, m.id AS m_id FROM patients p LEFT JOIN medication_statements m ON m.patient_id = p.id
   AND m.status = ANY('{}'::text[]) WHERE p.family = 'Lopez'$$),
($$SELECT p.id FROM patients p WHERE p.id IN (SELECT unnest('{}'::text[]))$$),
($$SELECT id FROM patients WHERE id = ANY('{erXuFYUfucBZaryVksYEcMg3,NULL}'::text[])$$),
-- LIMIT and ORDER BY
($$SELECT id FROM patients WHERE gender = 'female' LIMIT 5$$),
($$SELECT id FROM patients WHERE family LIKE 'D%' ORDER BY id LIMIT 3$$),
($$SELECT id FROM patients WHERE birthdate < '1990-01-01' ORDER BY birthdate, id LIMIT 4 OFFSET 2$$),
-- aggregates
($$SELECT gender, count(*) FROM patients WHERE birthdate < '1980-01-01' GROUP BY gender$$);

-- the same in another time zone (SQL reads dates and timestamps there)
SET TimeZone = 'America/Chicago';
CREATE TEMP TABLE outcome_tz AS SELECT n, pg_temp.same(q) AS result FROM queries
  WHERE q LIKE '%timestamp%' OR q LIKE '%::date%';
SET TimeZone = 'UTC';
SELECT count(*) AS queries, count(*) FILTER (WHERE result LIKE '%identical') AS identical
  FROM outcome_tz;
-- stable expressions of the current date: evaluated at executor start
SELECT pg_temp.same($$SELECT id FROM patients WHERE birthdate > current_date - interval '30 years'$$) LIKE '%identical';
SELECT pg_temp.same($$SELECT id FROM patients WHERE birthdate <= (now() - interval '80 years')::date AND gender = 'male'$$) LIKE '%identical';

CREATE TEMP TABLE outcome AS SELECT n, pg_temp.same(q) AS result FROM queries;
SELECT n, result FROM outcome ORDER BY n;

-- prepared statements: values pushed at execution time
PREPARE by_family(text) AS SELECT id, family FROM patients WHERE family = $1;
PREPARE by_ids(text[]) AS SELECT id, birthdate FROM patients WHERE id = ANY($1);
PREPARE meds_since(text, timestamptz) AS
  SELECT id FROM medication_statements WHERE patient_id = $1 AND effective_start >= $2;
SELECT pg_temp.same($$EXECUTE by_family('Lin')$$);
SELECT pg_temp.same($$EXECUTE by_ids(ARRAY['erXuFYUfucBZaryVksYEcMg3', 'eh2xYHuzl9nkSFVvV3osUHg3', 'nosuchid'])$$);
SELECT pg_temp.same($$EXECUTE meds_since('eq081-VQEgP8drUUqCWzHfw3', '2012-01-01')$$);

-- prepared statements under plan_cache_mode auto (custom plans, then
-- perhaps a generic one) and force_generic_plan, with empty, NULL and
-- ordinary values
PREPARE p_ids(text[]) AS SELECT id FROM patients WHERE id = ANY($1);
PREPARE p_meds(text[]) AS SELECT id FROM medication_statements WHERE patient_id = ANY($1);
PREPARE p_three(text, text) AS SELECT DISTINCT p.id FROM patients p
  JOIN conditions c ON c.patient_id = p.id JOIN medication_statements m ON m.patient_id = p.id
  WHERE p.family = $1 AND c.clinical_status = $2;
PREPARE p_born(date, text) AS SELECT id FROM patients WHERE birthdate >= $1 AND gender = $2;
CREATE TEMP TABLE prepared (mode text, q text);
INSERT INTO prepared SELECT m, q FROM (VALUES ('auto'), ('force_generic_plan')) AS modes(m),
  (VALUES ($$EXECUTE p_ids('{}')$$), ($$EXECUTE p_ids('{NULL}')$$),
          ($$EXECUTE p_ids('{erXuFYUfucBZaryVksYEcMg3,eq081-VQEgP8drUUqCWzHfw3}')$$),
          ($$EXECUTE p_ids(NULL)$$), ($$EXECUTE p_ids('{erXuFYUfucBZaryVksYEcMg3}')$$),
          ($$EXECUTE p_ids('{}')$$), ($$EXECUTE p_ids('{eq081-VQEgP8drUUqCWzHfw3,NULL}')$$),
          ($$EXECUTE p_meds('{}')$$), ($$EXECUTE p_meds('{NULL,NULL}')$$),
          ($$EXECUTE p_meds('{erXuFYUfucBZaryVksYEcMg3}')$$), ($$EXECUTE p_meds('{}')$$),
          ($$EXECUTE p_meds('{eq081-VQEgP8drUUqCWzHfw3,egqBHVfQlt4Bw3XGXoxVxHg3}')$$),
          ($$EXECUTE p_meds('{}')$$), ($$EXECUTE p_meds('{NULL}')$$),
          ($$EXECUTE p_three('Lopez', 'active')$$), ($$EXECUTE p_three('Lin', 'resolved')$$),
          ($$EXECUTE p_three('Parker', 'active')$$), ($$EXECUTE p_three(NULL, 'active')$$),
          ($$EXECUTE p_three('Jackson', 'active')$$), ($$EXECUTE p_three('Davis', 'active')$$),
          ($$EXECUTE p_born('1980-01-01', 'female')$$), ($$EXECUTE p_born('1950-06-01', 'male')$$),
          ($$EXECUTE p_born(NULL, 'male')$$), ($$EXECUTE p_born('2000-01-01', 'other')$$),
          ($$EXECUTE p_born('1990-01-01', 'female')$$), ($$EXECUTE p_born('1930-01-01', 'unknown')$$)) AS qs(q);
CREATE TEMP TABLE prepared_outcome (mode text, q text, result text);
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT * FROM prepared LOOP
    PERFORM set_config('plan_cache_mode', r.mode, false);
    INSERT INTO prepared_outcome VALUES (r.mode, r.q, pg_temp.same(r.q));
  END LOOP;
  PERFORM set_config('plan_cache_mode', 'auto', false);
END $$;
SELECT mode, count(*) AS executions, count(*) FILTER (WHERE result LIKE '%identical') AS identical,
       count(*) FILTER (WHERE result LIKE '0 rows%') AS empty
  FROM prepared_outcome GROUP BY mode ORDER BY mode;
SELECT mode, q, result FROM prepared_outcome WHERE result NOT LIKE '%identical';
DEALLOCATE p_ids;
DEALLOCATE p_meds;
DEALLOCATE p_three;
DEALLOCATE p_born;

-- run-time values FHIR cannot express are not sent (a generic plan); the
-- conditions still hold locally
SET plan_cache_mode = force_generic_plan;
PREPARE odd_ids(text[]) AS SELECT id FROM patients WHERE id = ANY($1);
PREPARE since(text, timestamptz) AS
  SELECT id FROM medication_statements WHERE patient_id = $1 AND effective_start >= $2;
SELECT pg_temp.same($$EXECUTE odd_ids('{"",erXuFYUfucBZaryVksYEcMg3}')$$);
SELECT pg_temp.same($$EXECUTE since('eq081-VQEgP8drUUqCWzHfw3', '-infinity')$$);
RESET plan_cache_mode;

-- how many comparisons were of empty results (which prove little)
SELECT count(*) FILTER (WHERE result LIKE '0 rows%') AS empty_results,
       count(*) FILTER (WHERE result LIKE '%identical') AS identical,
       count(*) AS queries
  FROM outcome;

RESET search_path;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
