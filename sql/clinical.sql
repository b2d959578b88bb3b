--
-- clinical: the built-in tables of both FHIR versions against the dataset
-- server (Epic-shaped resources, real search semantics, Epic's required
-- parameters)
--
\i sql/include/setup.sql
\i sql/include/dataset.sql
CREATE SERVER dataset_r4 FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'dataset_url_r4', fhir_version 'R4', ca_file :'ca_file',
           mrn_system 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14');
CREATE USER MAPPING FOR CURRENT_USER SERVER dataset_r4
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE SCHEMA r4;
IMPORT FOREIGN SCHEMA fhir FROM SERVER dataset_r4 INTO r4;
\set camila '''erXuFYUfucBZaryVksYEcMg3'''
\set derrick '''eq081-VQEgP8drUUqCWzHfw3'''
\set olivia '''eh2xYHuzl9nkSFVvV3osUHg3'''

-- the tables each version offers, and their columns
SELECT foreign_table_schema AS version, foreign_table_name,
       (SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position)
          FROM information_schema.columns c
         WHERE c.table_schema = t.foreign_table_schema AND c.table_name = t.foreign_table_name) AS columns
  FROM information_schema.foreign_tables t
 WHERE foreign_table_schema IN ('ds', 'r4') ORDER BY 1, 2;

-- medication requests: Epic's R4 medication list (STU3 has the resource too)
SELECT id, status, intent, category, medication, medication_code, dosage, route, authored_on, requester
  FROM r4.medication_requests WHERE patient_id = :camila ORDER BY authored_on, id LIMIT 5;
SELECT status, intent, category, medication, dosage, route, authored_on, requester
  FROM ds.medication_requests WHERE patient_id = :camila ORDER BY authored_on, id LIMIT 5;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT id FROM r4.medication_requests
 WHERE patient_id = :camila AND status = 'active' AND intent = 'order' AND authored_on >= '2020-01-01';
SELECT count(*) FILTER (WHERE status = 'active') AS active, count(*) AS all_statuses
  FROM r4.medication_requests WHERE patient_id = :camila;

-- observations: Epic requires patient, and category (R4: or code); _id alone
-- is enough
SELECT * FROM r4.observations WHERE patient_id = :camila;
SELECT * FROM ds.observations WHERE patient_id = :camila AND code = '718-7';
\! $EPIC_CTL reset
SELECT code, category, display FROM r4.observations
 WHERE patient_id = :olivia AND code = '718-7';
SELECT count(*) = (SELECT count(*) FROM r4.observations
                    WHERE patient_id = :olivia AND category = 'laboratory' AND code = '718-7')
       AS same_as_with_category
  FROM r4.observations WHERE patient_id = :olivia AND code = '718-7';
SELECT o.id = x.id AS found_by_id, o.code
  FROM (SELECT id FROM r4.observations WHERE patient_id = :olivia AND category = 'vital-signs'
         ORDER BY id LIMIT 1) x
  JOIN LATERAL (SELECT id, code FROM r4.observations WHERE id = x.id) o ON true;
\! $EPIC_CTL log | grep -c "Observation?"
SELECT category, code, display, value_quantity, unit, value_string, effective, status
  FROM r4.observations WHERE patient_id = :olivia AND category = 'vital-signs'
 ORDER BY effective, code LIMIT 6;
SELECT category, code, display, value_quantity, unit, value_string, effective, status
  FROM ds.observations WHERE patient_id = :olivia AND category IN ('laboratory', 'social-history')
 ORDER BY category, effective, code LIMIT 6;
\! $EPIC_CTL reset
SELECT count(*) FROM r4.observations
 WHERE patient_id = :olivia AND category = 'laboratory' AND effective >= '2015-01-01';
\! $EPIC_CTL log
-- a fixed category in the table's options satisfies the requirement
CREATE FOREIGN TABLE r4.vitals (id text, patient_id text, code text, value_quantity numeric, unit text)
  SERVER dataset_r4 OPTIONS (resource 'Observation', search 'category=vital-signs');
SELECT count(*) > 0 AS has_vitals,
       count(*) = (SELECT count(*) FROM r4.observations
                    WHERE patient_id = :olivia AND category = 'vital-signs') AS same_count
  FROM r4.vitals WHERE patient_id = :olivia;

-- a required parameter whose run-time value FHIR cannot express (an empty
-- string), with no other alternative given: a clear error before any request
SET plan_cache_mode = force_generic_plan;
PREPARE conds(text) AS SELECT count(*) FROM ds.conditions WHERE patient_id = $1;
\! $EPIC_CTL reset
EXECUTE conds('');
\! $EPIC_CTL count fhir Condition
DEALLOCATE conds;
RESET plan_cache_mode;

-- conditions: clinical status is a code in STU3, a CodeableConcept in R4
SELECT clinical_status, verification_status, category, code, display, onset, abatement, recorded
  FROM r4.conditions WHERE patient_id = :camila ORDER BY onset NULLS LAST, code;
SELECT clinical_status, verification_status, category, code, display, onset, abatement, recorded
  FROM ds.conditions WHERE patient_id = :camila ORDER BY onset NULLS LAST, code;
EXPLAIN (VERBOSE, COSTS OFF)
SELECT code FROM r4.conditions WHERE patient_id = :camila AND clinical_status = 'active'
   AND category = 'problem-list-item';
SELECT v.clinical_status = c.clinical_status AS same_status, count(*)
  FROM r4.conditions v JOIN (SELECT id, resource #>> '{clinicalStatus,coding,0,code}' AS clinical_status
                               FROM r4.conditions WHERE patient_id = :derrick) c USING (id)
 WHERE v.patient_id = :derrick GROUP BY 1;

-- FHIRPath types follow the server's fhir_version: the same paths over the
-- same patient's conditions (clinicalStatus: a code in STU3, a
-- CodeableConcept in R4)
DO $$
DECLARE v record;
BEGIN
  FOR v IN SELECT * FROM (VALUES ('ds', 'dataset'), ('r4', 'dataset_r4')) AS t (sch, srv) LOOP
    EXECUTE format($q$CREATE FOREIGN TABLE %I.condition_types (
      patient_id text OPTIONS (path 'subject.getReferenceKey(Patient)', search_param 'patient:reference'),
      status_is_code boolean OPTIONS (path 'clinicalStatus is code'),
      status_as_concept boolean OPTIONS (path '(clinicalStatus as CodeableConcept).exists()'),
      status_code text OPTIONS (path 'clinicalStatus.ofType(code) | clinicalStatus.ofType(CodeableConcept).coding.code'))
      SERVER %I OPTIONS (resource 'Condition')$q$, v.sch, v.srv);
  END LOOP;
END $$;
SELECT 'STU3' AS version, status_is_code, status_as_concept, status_code, count(*)
  FROM ds.condition_types WHERE patient_id = :camila GROUP BY 1, 2, 3, 4
UNION ALL
SELECT 'R4', status_is_code, status_as_concept, status_code, count(*)
  FROM r4.condition_types WHERE patient_id = :camila GROUP BY 1, 2, 3, 4 ORDER BY 1, 4;
-- is/as of several items: the error FHIRPath specifies, not a silent NULL
CREATE FOREIGN TABLE r4.given_as (id text, given text OPTIONS (path 'name.given as string'),
  first_given text OPTIONS (path 'name.given.first() as string'))
  SERVER dataset_r4 OPTIONS (resource 'Patient');
SELECT first_given FROM r4.given_as WHERE id = :camila;
SELECT given FROM r4.given_as WHERE id = :camila;

-- allergies and intolerances
SELECT clinical_status, verification_status, type, category, criticality, code, display, reactions, onset, recorded
  FROM r4.allergy_intolerances WHERE patient_id = :camila ORDER BY display;
SELECT clinical_status, verification_status, type, category, criticality, display, reactions
  FROM ds.allergy_intolerances WHERE patient_id = :camila ORDER BY display;

-- encounters, immunizations, procedures
SELECT status, class_code, class_display, type, reason, period_start, period_end
  FROM r4.encounters WHERE patient_id = :camila ORDER BY period_start;
SELECT status, class_code, class_display, type, reason, period_start, period_end
  FROM ds.encounters WHERE patient_id = :camila ORDER BY period_start;
SELECT status, vaccine_code, vaccine, date, lot_number
  FROM r4.immunizations WHERE patient_id = :camila ORDER BY date, vaccine_code;
SELECT status, vaccine_code, vaccine, date, lot_number
  FROM ds.immunizations WHERE patient_id = :camila ORDER BY date, vaccine_code;
SELECT status, code, display, performed, performed_end
  FROM r4.procedures WHERE patient_id = :camila ORDER BY performed NULLS LAST, code;
SELECT status, code, display, performed, performed_end
  FROM ds.procedures WHERE patient_id = :camila ORDER BY performed NULLS LAST, code;

-- a clinical report: each table joined to patients, one search per table
\! $EPIC_CTL reset
SELECT p.family, p.birthdate,
       (SELECT count(*) FROM r4.conditions c WHERE c.patient_id = p.id) AS conditions,
       (SELECT count(*) FROM r4.allergy_intolerances a WHERE a.patient_id = p.id) AS allergies,
       (SELECT count(*) FROM r4.encounters e WHERE e.patient_id = p.id) AS encounters,
       (SELECT count(*) FROM r4.immunizations i WHERE i.patient_id = p.id) AS immunizations,
       (SELECT count(*) FROM r4.procedures x WHERE x.patient_id = p.id) AS procedures,
       (SELECT count(*) FROM r4.medication_requests m WHERE m.patient_id = p.id) AS medications
  FROM r4.patients p WHERE p.id IN (:camila, :derrick) ORDER BY p.family;
\! $EPIC_CTL count fhir

-- every table needs its patient
SELECT pg_temp.sqlstate_of('SELECT * FROM r4.' || t) AS sqlstate, t
  FROM unnest(ARRAY['medication_requests', 'observations', 'conditions', 'allergy_intolerances',
                    'encounters', 'immunizations', 'procedures']) t;

DROP SCHEMA r4 CASCADE;
DROP SERVER dataset_r4 CASCADE;
DROP SCHEMA ds CASCADE;
DROP SERVER dataset CASCADE;
