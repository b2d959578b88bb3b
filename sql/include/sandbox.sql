-- A server for the sandbox's STU3 endpoint, a user mapping with the RS384
-- test key, and the two built-in tables with every column.
CREATE SERVER sandbox FOREIGN DATA WRAPPER epic_fdw
  OPTIONS (fhir_url :'fhir_url', fhir_version 'STU3', ca_file :'ca_file',
           mrn_system 'urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14');
CREATE USER MAPPING FOR CURRENT_USER SERVER sandbox
  OPTIONS (client_id 'epic-fdw-rs384', private_key_file :'rsa_key', key_id 'rs1');
CREATE FOREIGN TABLE patients (
  id text, mrn text, family text, given text, name text, birthdate date,
  gender text, phone text, phones text[], email text, address_line text,
  city text, state text, postal_code text, active boolean, deceased boolean,
  resource jsonb
) SERVER sandbox;
CREATE FOREIGN TABLE medication_statements (
  id text, patient_id text, status text, category text, medication text,
  medication_code text, dosage text, route text, effective_start timestamptz,
  effective_end timestamptz, date_asserted timestamptz, resource jsonb
) SERVER sandbox;
