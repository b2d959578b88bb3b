-- Queries of the Medplum equivalence tier (see equivalence.py for the format).
-- Each runs with epic_fdw.pushdown on, off, and over the truth tables.
-- Values refer to generate.py's data (seed 12, 150 patients): pat-0001 is
-- "Bobby Tables" (given Robert), pat-0002 Camila Maria Lopez, pat-0003 has
-- an official name that is not the first one, pat-0004 a text-only name.

-- q: every column of every patient (checks the truth's reading of each column)
SELECT id, mrn, family, given, given_names, name, birthdate, gender, phone, phones, email, address_line,
       city, state, postal_code, active, deceased FROM patients;
-- q: every column of the medication requests of 50 patients
SELECT id, patient_id, status, intent, category, medication, medication_code, dosage, route,
       authored_on, requester FROM medication_requests
 WHERE patient_id IN (SELECT 'pat-' || lpad(g::text, 4, '0') FROM generate_series(1, 50) g);
-- q: every column of the conditions of 50 patients
SELECT id, patient_id, clinical_status, verification_status, category, code, display, onset,
       abatement, recorded FROM conditions
 WHERE patient_id IN (SELECT 'pat-' || lpad(g::text, 4, '0') FROM generate_series(51, 100) g);
-- q: every column of the observations of 50 patients
SELECT id, patient_id, status, category, code, display, value_quantity, unit, value_string,
       effective, issued FROM observations
 WHERE patient_id IN (SELECT 'pat-' || lpad(g::text, 4, '0') FROM generate_series(101, 150) g)
   AND category IN ('vital-signs', 'laboratory', 'social-history');
-- q: every column of the encounters of 150 patients
SELECT e.id, e.patient_id, e.status, e.class_code, e.class_display, e.type, e.reason,
       e.period_start, e.period_end FROM patients p JOIN encounters e ON e.patient_id = p.id;
-- q: name equal to HumanName.text that differs from the parts (issue 12 defect 1)
SELECT id, name FROM patients WHERE name = 'Bobby Tables';
-- q: name equal to a text that matches the parts
SELECT id, name FROM patients WHERE name = 'Camila Maria Lopez';
-- q: name prefix from a nickname text
SELECT id, name FROM patients WHERE name LIKE 'Kate%';
-- q: name of a text-only HumanName
SELECT id, name FROM patients WHERE name = 'Cher';
-- q: name IN list of texts that differ from the parts
SELECT id, name FROM patients WHERE name IN ('Bill Smith-Jones', 'Dr. Jane Q. Public', 'Pepe Tables');
-- q: family equality (the server's string match is wider)
SELECT id, family FROM patients WHERE family = 'Smith';
-- q: family equality in another case
SELECT id, family FROM patients WHERE family = 'smith';
-- q: family with accents and a hyphen
SELECT id, family FROM patients WHERE family = 'Müller-Lüdenscheidt';
-- q: family without the accents
SELECT id, family FROM patients WHERE family = 'Muller-Ludenscheidt';
-- q: family IN list
SELECT id, family FROM patients WHERE family IN ('Lin', 'Parker', 'Nguyen');
-- q: family LIKE prefix
SELECT id, family FROM patients WHERE family LIKE 'Smith%';
-- q: family ILIKE prefix
SELECT id, family FROM patients WHERE family ILIKE 'dav%';
-- q: family with an apostrophe and with spaces
SELECT id, family FROM patients WHERE family IN ('O''Brien', 'van der Berg');
-- q: given of several given names
SELECT id, given FROM patients WHERE given = 'Camila Maria';
-- q: given of the name whose text differs
SELECT id, given FROM patients WHERE given = 'Robert';
-- q: one given name of several, with the family (issue 12 defect 8)
SELECT id, given_names FROM patients WHERE family = 'Lopez' AND 'Camila' = ANY(given_names);
-- q: the second given name
SELECT id, given_names FROM patients WHERE 'Maria' = ANY(given_names);
-- q: a given name only in the official name that is not the first name
SELECT id, given_names FROM patients WHERE 'Ann' = ANY(given_names);
-- q: given equal to one of several given names (the joined column: no match)
SELECT id, given FROM patients WHERE family = 'Lopez' AND given = 'Camila';
-- q: given LIKE prefix with an accent
SELECT id, given FROM patients WHERE given LIKE 'Jos%';
-- q: given from the official name that is not the first name
SELECT id, given, family FROM patients WHERE given = 'Elizabeth Ann';
-- q: city equality
SELECT id, city FROM patients WHERE city = 'SAINT LOUIS';
-- q: state and city
SELECT id, city, state FROM patients WHERE state = 'TX' AND city = 'DALLAS';
-- q: postal code prefix
SELECT id, postal_code FROM patients WHERE postal_code LIKE '75%';
-- q: city prefix that is a prefix of two cities
SELECT id, city FROM patients WHERE city LIKE 'SAN%';
-- q: gender token
SELECT id, gender FROM patients WHERE gender = 'female';
-- q: gender IN list
SELECT id, gender FROM patients WHERE gender IN ('unknown', 'other');
-- q: gender inequality (local) with a pushed state
SELECT id, gender FROM patients WHERE gender <> 'male' AND state = 'TX';
-- q: phone (home before mobile)
SELECT id, phone FROM patients WHERE phone = '469-555-5002';
-- q: a mobile phone that is not the phone column
SELECT id, phone FROM patients WHERE phone = '785-555-0002';
-- q: value = ANY(phones)
SELECT id, phones FROM patients WHERE '785-555-0002' = ANY(phones);
-- q: email token
SELECT id, email FROM patients WHERE email = 'patient5@example.com';
-- q: mrn from the MRN system
SELECT id, mrn FROM patients WHERE mrn = '300007';
-- q: mrn IN list, one known only by its MR type coding (not an MRN when mrn_system is set)
SELECT id, mrn FROM patients WHERE mrn IN ('300014', 'MR00020', '300049');
-- q: id IN list
SELECT id, name FROM patients WHERE id IN ('pat-0001', 'pat-0004', 'pat-0006', 'pat-0150', 'no-such-id');
-- q: id = ANY of an empty array (issue 12 defect 2)
SELECT id FROM patients WHERE id = ANY('{}'::text[]);
-- q: id = ANY of an array of NULLs
SELECT id FROM patients WHERE id = ANY(ARRAY[NULL, NULL]::text[]);
-- q: family = ANY of an empty array
SELECT id FROM patients WHERE family = ANY('{}'::text[]);
-- q: birthdate equality
SELECT id, birthdate FROM patients WHERE birthdate = '1987-09-12';
-- q: birthdate before 1950 (partial dates are NULL)
SELECT id, birthdate FROM patients WHERE birthdate < '1950-01-01';
-- q: birthdate from 2010
SELECT id, birthdate FROM patients WHERE birthdate >= '2010-01-01';
-- q: birthdate BETWEEN
SELECT id, birthdate FROM patients WHERE birthdate BETWEEN '1960-01-01' AND '1969-12-31';
-- q: birthdate and gender
SELECT id, birthdate, gender FROM patients WHERE birthdate > '1970-06-15' AND gender = 'male';
-- q: birthdate IS NULL (partial or missing)
SELECT id FROM patients WHERE birthdate IS NULL;
-- q: birthdate relative to current_date (issue 12 defect 6)
SELECT count(*) FROM patients WHERE birthdate > current_date - interval '30 years';
-- q: local-only LIKE
SELECT id, email FROM patients WHERE email LIKE '%mail.test';
-- q: OR across columns
SELECT id FROM patients WHERE id = 'pat-0001' OR family = 'Lin';
-- q: booleans
SELECT id, active, deceased FROM patients WHERE active = false OR deceased;
-- q: ORDER BY with LIMIT over a prefix match (issue 12 defect 5)
SELECT id, family FROM patients WHERE family = 'Smith' ORDER BY id LIMIT 2;
-- q: aggregate over a date filter
SELECT gender, count(*) FROM patients WHERE birthdate < '1980-01-01' GROUP BY gender;
-- q: medication requests of one patient
SELECT id, status, medication_code, authored_on FROM medication_requests WHERE patient_id = 'pat-0001';
-- q: medication requests of three patients with a status list
SELECT id, patient_id, status FROM medication_requests
 WHERE patient_id IN ('pat-0002', 'pat-0011', 'pat-0012') AND status IN ('active', 'on-hold', 'completed');
-- q: medication requests authored since a date (time zones)
SELECT id, authored_on FROM medication_requests WHERE patient_id = 'pat-0002' AND authored_on >= '2015-01-01';
-- q: medication requests at an exact instant given in another zone
SELECT m.id FROM medication_requests m
 WHERE m.patient_id = 'pat-0001' AND m.authored_on = '2009-10-27 11:13:52+00';
-- q: conditions of a patient list, active
SELECT id, patient_id, code FROM conditions
 WHERE patient_id IN ('pat-0001', 'pat-0002', 'pat-0013', 'pat-0014') AND clinical_status = 'active';
-- q: conditions with patient_id = ANY of an empty array (issue 12 defect 2)
SELECT id FROM conditions WHERE patient_id = ANY('{}'::text[]);
-- q: a condition by id alone
SELECT id, code, onset FROM conditions WHERE id = 'cond-0001-1';
-- q: conditions with an onset range
SELECT id, onset FROM conditions WHERE patient_id IN ('pat-0001', 'pat-0002', 'pat-0015', 'pat-0016')
   AND onset >= '2000-01-01' AND onset < '2020-01-01';
-- q: observations of a patient and category
SELECT id, code, value_quantity FROM observations WHERE patient_id = 'pat-0001' AND category = 'vital-signs';
-- q: observations by code and value
SELECT o.id, o.value_quantity FROM observations o
 WHERE o.code = '4548-4' AND o.patient_id IN (SELECT 'pat-' || lpad(g::text, 4, '0') FROM generate_series(1, 60) g)
   AND o.value_quantity > 6.5;
-- q: encounters before a date
SELECT id, class_code, period_start FROM encounters
 WHERE patient_id IN ('pat-0011', 'pat-0012', 'pat-0013', 'pat-0014', 'pat-0015') AND period_start < '2020-01-01';
-- q: join patients to medication requests
SELECT p.id, m.id AS m_id FROM patients p JOIN medication_requests m ON m.patient_id = p.id
 WHERE p.state = 'CO' AND m.status = 'active';
-- q: join patients to conditions by family
SELECT p.id, c.code FROM patients p JOIN conditions c ON c.patient_id = p.id WHERE p.family = 'Lopez';
-- q: LEFT JOIN patients to encounters
SELECT p.id, e.id AS e_id FROM patients p LEFT JOIN encounters e ON e.patient_id = p.id WHERE p.gender = 'other';
-- q: join with the name whose text differs
SELECT p.id, m.medication_code FROM patients p JOIN medication_requests m ON m.patient_id = p.id
 WHERE p.name = 'Bobby Tables';
-- q: 3-way join, conditions and medication requests (issue 12 defect 3)
SELECT DISTINCT p.id FROM patients p JOIN conditions c ON c.patient_id = p.id
  JOIN medication_requests m ON m.patient_id = p.id
 WHERE c.code = '44054006' AND m.medication_code = '860975';
-- q: 3-way join with a patient filter
SELECT p.id, c.code, o.value_quantity FROM patients p
  JOIN conditions c ON c.patient_id = p.id JOIN observations o ON o.patient_id = p.id
 WHERE p.state = 'TX' AND c.code IN ('44054006', '73211009') AND o.code = '4548-4';
-- q: 4-way join
SELECT p.id, count(DISTINCT c.id) AS c, count(DISTINCT m.id) AS m, count(DISTINCT o.id) AS o
  FROM patients p JOIN conditions c ON c.patient_id = p.id
  JOIN medication_requests m ON m.patient_id = p.id
  JOIN observations o ON o.patient_id = p.id
 WHERE p.city = 'DALLAS' AND c.clinical_status = 'active' AND m.status = 'active' AND o.category = 'laboratory'
 GROUP BY p.id;
-- q: 4-way LEFT JOIN with aggregates per state
SELECT p.state, count(DISTINCT p.id), count(DISTINCT c.id), count(DISTINCT m.id), count(DISTINCT e.id)
  FROM patients p LEFT JOIN conditions c ON c.patient_id = p.id
  LEFT JOIN medication_requests m ON m.patient_id = p.id
  LEFT JOIN encounters e ON e.patient_id = p.id
 WHERE p.state IN ('NM', 'ID')
 GROUP BY p.state;
-- q: semi-join EXISTS
SELECT id FROM patients p WHERE p.state = 'MO' AND EXISTS
  (SELECT 1 FROM medication_requests m WHERE m.patient_id = p.id AND m.status = 'on-hold');
-- q: semi-join IN (sub-select)
SELECT id FROM patients p WHERE p.gender = 'female' AND p.state = 'TX'
   AND p.id IN (SELECT c.patient_id FROM conditions c WHERE c.code = '195967001');
-- q: anti-join NOT EXISTS
SELECT id FROM patients p WHERE p.state = 'NJ' AND NOT EXISTS
  (SELECT 1 FROM medication_requests m WHERE m.patient_id = p.id);
-- q: patient_id = ANY(ARRAY(sub-select))
SELECT id, patient_id FROM medication_requests
 WHERE patient_id = ANY(ARRAY(SELECT id FROM patients WHERE family = 'Lopez'));
-- q: patient_id = ANY of an array with a NULL
SELECT id FROM medication_requests WHERE patient_id = ANY(ARRAY['pat-0001', NULL]);
-- q: patient_id = ANY of an empty sub-select array
SELECT id FROM medication_requests
 WHERE patient_id = ANY(ARRAY(SELECT id FROM patients WHERE family = 'No-Such-Family'));
-- q: LATERAL count per patient
SELECT p.id, x.n FROM patients p,
  LATERAL (SELECT count(*) AS n FROM observations o WHERE o.patient_id = p.id AND o.code = '8867-4') x
 WHERE p.state = 'ID';
-- p auto: family as a parameter, past the switch to a generic plan
PREPARE q(text) AS SELECT id, family FROM patients WHERE family = $1;
EXECUTE q('Lopez');
EXECUTE q('Smith');
EXECUTE q('Tables');
EXECUTE q('Lin');
EXECUTE q('Parker');
EXECUTE q('Smith');
EXECUTE q('Nobody');
-- p generic: family as a parameter
PREPARE q(text) AS SELECT id, family FROM patients WHERE family = $1;
EXECUTE q('Lopez');
EXECUTE q('Smith');
EXECUTE q('smith');
-- p auto: name as a parameter (issue 12 defect 1)
PREPARE q(text) AS SELECT id FROM patients WHERE name = $1;
EXECUTE q('Bobby Tables');
EXECUTE q('Camila Maria Lopez');
EXECUTE q('Kate Smithers');
EXECUTE q('Cher');
EXECUTE q('Bill Smith');
EXECUTE q('Bobby Tables');
EXECUTE q('Pepe Tables');
-- p generic: name as a parameter
PREPARE q(text) AS SELECT id FROM patients WHERE name = $1;
EXECUTE q('Bobby Tables');
EXECUTE q('Camila Maria Lopez');
-- p auto: id = ANY($1) with empty and NULL arrays (issue 12 defect 2)
PREPARE q(text[]) AS SELECT id, birthdate FROM patients WHERE id = ANY($1);
EXECUTE q('{pat-0001,pat-0002}');
EXECUTE q('{}');
EXECUTE q('{NULL}');
EXECUTE q('{pat-0003,no-such-id}');
EXECUTE q('{pat-0004}');
EXECUTE q('{pat-0005,pat-0006,pat-0007}');
EXECUTE q('{}');
-- p generic: id = ANY($1) with empty and NULL arrays
PREPARE q(text[]) AS SELECT id, birthdate FROM patients WHERE id = ANY($1);
EXECUTE q('{pat-0001,pat-0002}');
EXECUTE q('{}');
EXECUTE q('{NULL,NULL}');
-- p auto: patient_id = ANY($1) with an empty array (issue 12 defect 2)
PREPARE q(text[]) AS SELECT id FROM medication_requests WHERE patient_id = ANY($1);
EXECUTE q('{pat-0001}');
EXECUTE q('{}');
EXECUTE q('{pat-0002,pat-0011}');
EXECUTE q('{NULL}');
EXECUTE q('{pat-0012}');
EXECUTE q('{pat-0013}');
EXECUTE q('{}');
-- p generic: patient_id = ANY($1) with an empty array
PREPARE q(text[]) AS SELECT id FROM medication_requests WHERE patient_id = ANY($1);
EXECUTE q('{pat-0001}');
EXECUTE q('{}');
EXECUTE q('{NULL}');
-- p auto: birthdate and gender parameters
PREPARE q(date, text) AS SELECT id FROM patients WHERE birthdate >= $1 AND gender = $2;
EXECUTE q('1990-01-01', 'female');
EXECUTE q('1950-01-01', 'male');
EXECUTE q('2000-01-01', 'other');
EXECUTE q('1980-05-05', 'female');
EXECUTE q('1970-01-01', 'male');
EXECUTE q('1960-01-01', 'female');
EXECUTE q('2030-01-01', 'female');
-- p generic: join with a family and an onset parameter
PREPARE q(text, timestamptz) AS
  SELECT p.id, c.id FROM patients p JOIN conditions c ON c.patient_id = p.id
   WHERE p.family = $1 AND c.onset >= $2;
EXECUTE q('Lopez', '2000-01-01');
EXECUTE q('Smith', '1990-01-01 00:00+05:30');
-- p generic: observations by patient and code
PREPARE q(text, text) AS SELECT id, value_quantity FROM observations WHERE patient_id = $1 AND code = $2;
EXECUTE q('pat-0001', '8867-4');
EXECUTE q('pat-0002', '8480-6');
EXECUTE q('pat-0003', '2339-0');
-- p auto: 3-way join with parameters
PREPARE q(text, text) AS
  SELECT DISTINCT p.id FROM patients p JOIN conditions c ON c.patient_id = p.id
    JOIN medication_requests m ON m.patient_id = p.id
   WHERE c.code = $1 AND m.medication_code = $2;
EXECUTE q('44054006', '860975');
EXECUTE q('38341003', '197361');
EXECUTE q('195967001', '745679');
EXECUTE q('55822004', '617314');
EXECUTE q('73211009', '314076');
EXECUTE q('44054006', '197361');
