--
-- paging: next links are followed as opaque URLs, every row comes exactly
-- once, outcome entries are never rows, their issues are reported once
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql

-- Derrick's statements come in three pages (2 + 2 + 1) via session links
\! $EPIC_CTL reset
SELECT id, medication FROM medication_statements
 WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3' ORDER BY id;
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_ids FROM medication_statements
 WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
\! $EPIC_CTL log

-- patients too: 5 patients over three pages
SELECT id, state FROM patients WHERE state = 'TX' ORDER BY id;

-- outcome issues: informational ones (4119 "may not contain the entire
-- record", on pages 1 and 3) are DEBUG1 messages, reported once per scan
SET client_min_messages = debug1;
SELECT count(*) FROM medication_statements WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
RESET client_min_messages;

-- "no results" (4101) is not a row and not an error
SELECT count(*) FROM medication_statements WHERE patient_id = 'eAB3mDIBBcyUKviyzrxsnAw3';

-- withheld data (suppressed, severity error) is a WARNING, once per scan
-- even when the same issue arrives for several patients of a join
SELECT medication FROM medication_statements WHERE patient_id = 'egqBHVfQlt4Bw3XGXoxVxHg3';
SELECT count(*) FROM (VALUES ('egqBHVfQlt4Bw3XGXoxVxHg3'), ('egqBHVfQlt4Bw3XGXoxVxHg3')) v(id)
  JOIN medication_statements m ON m.patient_id = v.id;

-- a next link to another origin is refused, and never requested
\! $EPIC_CTL reset
SELECT id FROM patients WHERE city = 'GARLAND';
\! $EPIC_CTL log

-- a server whose next link repeats a page of the search (a paging loop):
-- an error once the link comes again, not the same rows for ever
\! $EPIC_CTL reset
SELECT id FROM patients WHERE city = 'MANHATTAN';
\! $EPIC_CTL log

-- a cursor closed early stops fetching: one page for the first row, and at
-- most the next one, fetched ahead while the first is read (of 4 pages)
\! $EPIC_CTL reset
BEGIN;
DECLARE c CURSOR FOR SELECT id FROM medication_statements
  WHERE patient_id = 'eq081-VQEgP8drUUqCWzHfw3';
FETCH 1 FROM c;
CLOSE c;
COMMIT;
\! $EPIC_CTL count fhir MedicationStatement | awk '{print ($1 >= 1 && $1 <= 2) ? "1 or 2 requests" : $1 " requests"}'

DROP SERVER sandbox CASCADE;
