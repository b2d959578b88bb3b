--
-- scan: built-in columns of patients and medication_statements, subsets in
-- any order, extra columns with a path, partial dates, the search option
--
\i sql/include/setup.sql
\i sql/include/sandbox.sql

-- every patients column, for Camila Lopez
\x on
SELECT id, mrn, family, given, name, birthdate, gender, phone, phones, email,
       address_line, city, state, postal_code, active, deceased,
       resource->>'resourceType' AS resource_type
  FROM patients WHERE id = 'erXuFYUfucBZaryVksYEcMg3';
\x off

-- single-valued columns: official name else the first (Olivia has only a
-- usual name), phone preferring home then mobile (Linda has only mobile),
-- given names joined, deceased from deceasedDateTime (Elijah),
-- a partial birth date ("1955", Warren) is NULL, never an error
SELECT p.id, name, given, family, phone, phones, birthdate, deceased,
       resource->>'birthDate' AS birth_date_as_sent
  FROM (VALUES ('eh2xYHuzl9nkSFVvV3osUHg3'), ('eIXesllypH3M9tAA5WdJftQ3'),
               ('egqBHVfQlt4Bw3XGXoxVxHg3'), ('e0w0LEDCYtfckT6N.CkJKCw3'),
               ('eAB3mDIBBcyUKviyzrxsnAw3')) AS v(id)
  JOIN patients p ON p.id = v.id
ORDER BY p.id;

-- every medication_statements column: medicationReference.display,
-- codeable concept text, coding display; effectiveDateTime (date only),
-- effectivePeriod with an offset; route text or coding display
\x on
SELECT id, patient_id, status, category, medication, medication_code, dosage, route,
       effective_start, effective_end, date_asserted, resource->>'id' = id AS same_id
  FROM medication_statements WHERE patient_id = 'erXuFYUfucBZaryVksYEcMg3'
 ORDER BY id;
\x off

-- partial dates in timestamptz columns are NULL too (Warren: "2019-03", "2019")
SELECT medication, effective_start, date_asserted,
       resource->>'effectiveDateTime' AS effective_as_sent
  FROM medication_statements WHERE patient_id = 'e0w0LEDCYtfckT6N.CkJKCw3';

-- a table with a subset of the columns in another order, extra columns with a
-- path, a name of its own (resource option), and fixed search parameters
CREATE FOREIGN TABLE linda_meds (
  status text,
  medication text,
  patient_id text,
  taken text OPTIONS (path 'taken'),
  first_coding jsonb OPTIONS (path 'medicationCodeableConcept.coding.first()'),
  codes text[] OPTIONS (path 'medicationCodeableConcept.coding.code'),
  subject_display text OPTIONS (path 'MedicationStatement.subject.display')
) SERVER sandbox OPTIONS (resource 'MedicationStatement',
                          search 'status=active,on-hold,completed,stopped');
\! $EPIC_CTL reset
SELECT * FROM linda_meds WHERE patient_id = 'eIXesllypH3M9tAA5WdJftQ3' ORDER BY status;
\! $EPIC_CTL log

-- extra Patient columns with FHIRPath: where(), %mrn_system, extension by url
CREATE FOREIGN TABLE patient_ids (
  id text,
  epi text OPTIONS (path 'identifier.where(type.text = ''EPI'').value'),
  mrn_by_system text OPTIONS (path 'identifier.where(system = %mrn_system).value'),
  legal_sex text OPTIONS (path 'extension.where(url = ''http://open.epic.com/FHIR/StructureDefinition/extension/legal-sex'').valueCodeableConcept.coding.code'),
  work_phone text OPTIONS (path 'telecom.where(system = ''phone'' and use = ''work'').value'),
  n_names text OPTIONS (path 'name.exists()'),
  usual_given text[] OPTIONS (path 'name.where(use = ''usual'').given')
) SERVER sandbox OPTIONS (resource 'Patient');
SELECT * FROM patient_ids WHERE id = 'erXuFYUfucBZaryVksYEcMg3';

-- only the columns a query uses are computed; whole-row references work
SELECT p FROM patient_ids p WHERE id = 'eq081-VQEgP8drUUqCWzHfw3';

DROP SERVER sandbox CASCADE;
