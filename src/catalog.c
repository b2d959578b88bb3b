/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		Built-in table definitions as data, and resolution of a foreign
 *		table (options + columns) into an EpicTable.
 *
 * Each built-in column names its SQL type, the FHIRPath sources tried in
 * order (the first that yields anything wins), how the items combine into
 * one SQL value, and the FHIR search parameter that can filter on it.
 * Definitions exist per FHIR version because search parameters differ
 * (STU3 searches phones and emails with "telecom", R4 with "phone"/"email").
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#define OFFICIAL_NAME "name.where(use = 'official').first()"
#define PHONES "telecom.where(system = 'phone')"
#define EMAILS "telecom.where(system = 'email')"

/* one source path; with a mode other than "the items themselves" */
#define SRC(p) {.path = (p)}
#define SRCM(p, m) {.path = (p), .mode = (m)}
/* a column: name, SQL type, combine, search parameter and its type, sources */
#define COL(n, t, comb, param, st, ...) \
	{.name = (n), .sql_type = (t), .combine = (comb), .search_param = (param), \
	 .search_type = (st), .sources = {__VA_ARGS__}}

/* Patient columns; the phone/email search parameter differs per version. */
#define PATIENT_COLUMNS(PHONE_PARAM, EMAIL_PARAM) \
	COL("id", TEXTOID, EPIC_COMBINE_FIRST, "_id", EPIC_SP_SPECIAL_ID, SRC("id")), \
	COL("mrn", TEXTOID, EPIC_COMBINE_FIRST, "identifier", EPIC_SP_MRN, \
		SRC("identifier.where(system = %mrn_system).value"), \
		SRC("identifier.where(type.coding.where(code = 'MR').exists()).value"), \
		SRC("identifier.where(type.text = 'MRN').value"), \
		SRC("identifier.where(type.text = 'EPI').value")), \
	COL("family", TEXTOID, EPIC_COMBINE_FIRST, "family", EPIC_SP_STRING, \
		SRC(OFFICIAL_NAME ".family"), SRC("name.first().family")), \
	COL("given", TEXTOID, EPIC_COMBINE_JOIN_SPACE, "given", EPIC_SP_STRING_WORD, \
		SRC(OFFICIAL_NAME ".given"), SRC("name.first().given")), \
	COL("name", TEXTOID, EPIC_COMBINE_FIRST, "name", EPIC_SP_STRING_WORD, \
		SRCM(OFFICIAL_NAME, EPIC_SRC_HUMANNAME), SRCM("name.first()", EPIC_SRC_HUMANNAME)), \
	COL("birthdate", DATEOID, EPIC_COMBINE_FIRST, "birthdate", EPIC_SP_DATE, SRC("birthDate")), \
	COL("gender", TEXTOID, EPIC_COMBINE_FIRST, "gender", EPIC_SP_TOKEN, SRC("gender")), \
	COL("phone", TEXTOID, EPIC_COMBINE_FIRST, PHONE_PARAM, EPIC_SP_TOKEN, \
		SRC(PHONES ".where(use = 'home').value"), \
		SRC(PHONES ".where(use = 'mobile').value"), \
		SRC(PHONES ".value")), \
	COL("phones", TEXTARRAYOID, EPIC_COMBINE_ARRAY, PHONE_PARAM, EPIC_SP_TOKEN, SRC(PHONES ".value")), \
	COL("email", TEXTOID, EPIC_COMBINE_FIRST, EMAIL_PARAM, EPIC_SP_TOKEN, \
		SRC(EMAILS ".where(use = 'home').value"), \
		SRC(EMAILS ".where(use = 'mobile').value"), \
		SRC(EMAILS ".value")), \
	COL("address_line", TEXTOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE, SRC("address.first().line")), \
	COL("city", TEXTOID, EPIC_COMBINE_FIRST, "address-city", EPIC_SP_STRING, \
		SRC("address.first().city")), \
	COL("state", TEXTOID, EPIC_COMBINE_FIRST, "address-state", EPIC_SP_STRING, \
		SRC("address.first().state")), \
	COL("postal_code", TEXTOID, EPIC_COMBINE_FIRST, "address-postalcode", EPIC_SP_STRING, \
		SRC("address.first().postalCode")), \
	COL("active", BOOLOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE, SRC("active")), \
	COL("deceased", BOOLOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE, \
		SRC("deceasedBoolean"), SRCM("deceasedDateTime", EPIC_SRC_PRESENT)), \
	COL("resource", JSONBOID, EPIC_COMBINE_RESOURCE, NULL, EPIC_SP_NONE, SRC(NULL))

static const EpicColumnDef patient_stu3[] = {PATIENT_COLUMNS("telecom", "telecom")};
static const EpicColumnDef patient_r4[] = {PATIENT_COLUMNS("phone", "email")};

static const EpicColumnDef medication_statement[] = {
	COL("id", TEXTOID, EPIC_COMBINE_FIRST, "_id", EPIC_SP_SPECIAL_ID, SRC("id")),
	COL("patient_id", TEXTOID, EPIC_COMBINE_FIRST, "patient", EPIC_SP_REFERENCE,
		SRC("subject.getReferenceKey(Patient)")),
	COL("status", TEXTOID, EPIC_COMBINE_FIRST, "status", EPIC_SP_TOKEN, SRC("status")),
	COL("category", TEXTOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE,
		SRC("category.text"), SRC("category.coding.code")),
	COL("medication", TEXTOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE,
		SRC("medicationCodeableConcept.text"),
		SRC("medicationCodeableConcept.coding.display"),
		SRC("medicationReference.display")),
	COL("medication_code", TEXTOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE,
		SRC("medicationCodeableConcept.coding.code")),
	COL("dosage", TEXTOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE, SRC("dosage.text")),
	COL("route", TEXTOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE,
		SRC("dosage.first().route.text"), SRC("dosage.first().route.coding.display")),
	COL("effective_start", TIMESTAMPTZOID, EPIC_COMBINE_FIRST, "effective", EPIC_SP_DATETIME,
		SRC("effectiveDateTime"), SRC("effectivePeriod.start")),
	COL("effective_end", TIMESTAMPTZOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE, SRC("effectivePeriod.end")),
	COL("date_asserted", TIMESTAMPTZOID, EPIC_COMBINE_FIRST, NULL, EPIC_SP_NONE, SRC("dateAsserted")),
	COL("resource", JSONBOID, EPIC_COMBINE_RESOURCE, NULL, EPIC_SP_NONE, SRC(NULL)),
};

/* Columns every resource type has, for tables of any resource. */
static const EpicColumnDef any_resource[] = {
	COL("id", TEXTOID, EPIC_COMBINE_FIRST, "_id", EPIC_SP_SPECIAL_ID, SRC("id")),
	COL("resource", JSONBOID, EPIC_COMBINE_RESOURCE, NULL, EPIC_SP_NONE, SRC(NULL)),
};

#define NCOLS(a) ((int) lengthof(a))

#define TABLE(n, r, v, req, cols) \
	{.table_name = (n), .resource = (r), .version = (v), .required_param = (req), \
	 .columns = (cols), .ncolumns = NCOLS(cols)}

static const EpicResourceDef builtin_tables[] = {
	TABLE("patients", "Patient", EPIC_FHIR_STU3, NULL, patient_stu3),
	TABLE("patients", "Patient", EPIC_FHIR_R4, NULL, patient_r4),
	TABLE("medication_statements", "MedicationStatement", EPIC_FHIR_STU3, "patient",
		  medication_statement),
	TABLE("medication_statements", "MedicationStatement", EPIC_FHIR_R4, "patient",
		  medication_statement),
};

const EpicResourceDef *
epic_catalog_by_table(const char *table_name, EpicFhirVersion v)
{
	for (int i = 0; i < NCOLS(builtin_tables); i++)
		if (builtin_tables[i].version == v &&
			strcmp(builtin_tables[i].table_name, table_name) == 0)
			return &builtin_tables[i];
	return NULL;
}

const EpicResourceDef *
epic_catalog_by_resource(const char *resource, EpicFhirVersion v)
{
	for (int i = 0; i < NCOLS(builtin_tables); i++)
		if (builtin_tables[i].version == v &&
			strcmp(builtin_tables[i].resource, resource) == 0)
			return &builtin_tables[i];
	return NULL;
}

const EpicColumnDef *
epic_catalog_column(const EpicResourceDef *def, const char *name)
{
	for (int i = 0; i < def->ncolumns; i++)
		if (strcmp(def->columns[i].name, name) == 0)
			return &def->columns[i];
	return NULL;
}

/* The n-th built-in table of a FHIR version (0-based), or NULL past the end. */
const EpicResourceDef *
epic_catalog_nth(int n, EpicFhirVersion v)
{
	for (int i = 0; i < NCOLS(builtin_tables); i++)
		if (builtin_tables[i].version == v && n-- == 0)
			return &builtin_tables[i];
	return NULL;
}

/* Names of the built-in tables, for hints. */
const char *
epic_catalog_table_names(void)
{
	return "patients, medication_statements";
}

static char *
column_names(const EpicResourceDef *def)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < def->ncolumns; i++)
		appendStringInfo(&buf, "%s%s", i ? ", " : "", def->columns[i].name);
	return buf.data;
}

/*
 * Resolve a foreign table: its server options, its resource type (from the
 * "resource" option or the table name), and for each column where its value
 * comes from.  Raises a clear error for a table or column epic_fdw cannot
 * map.  Everything is palloc'd in the current memory context.
 */
EpicTable *
epic_table_resolve(Oid relid)
{
	EpicTable  *t = palloc0(sizeof(EpicTable));
	Relation	rel;
	TupleDesc	tupdesc;

	t->relid = relid;
	t->relname = get_rel_name(relid);
	t->table = GetForeignTable(relid);
	t->server = GetForeignServer(t->table->serverid);
	epic_get_server_options(t->server, &t->sopts);
	epic_get_table_options(t->table, &t->topts);

	if (t->topts.resource != NULL)
	{
		t->resource = t->topts.resource;
		t->builtin = epic_catalog_by_resource(t->resource, t->sopts.fhir_version);
	}
	else
	{
		t->builtin = epic_catalog_by_table(t->relname, t->sopts.fhir_version);
		if (t->builtin == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("foreign table \"%s\" has no option \"resource\"", t->relname),
					 errhint("Name the FHIR resource type, e.g. OPTIONS (resource 'Patient'), "
							 "or name the table after a built-in table (%s).",
							 epic_catalog_table_names())));
		t->resource = pstrdup(t->builtin->resource);
	}

	rel = table_open(relid, AccessShareLock);
	tupdesc = RelationGetDescr(rel);
	t->ncolumns = tupdesc->natts;
	t->columns = palloc0(sizeof(EpicColumn) * Max(1, tupdesc->natts));
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		EpicColumn *col = &t->columns[i];

		col->attnum = att->attnum;
		if (att->attisdropped)
			continue;
		col->name = pstrdup(NameStr(att->attname));
		col->atttypid = att->atttypid;
		col->atttypmod = att->atttypmod;
		col->path = epic_get_column_option(relid, att->attnum, "path");
		if (col->path != NULL)
		{
			char	   *sp = epic_get_column_option(relid, att->attnum, "search_param");

			col->user_def.name = col->name;
			col->user_def.sql_type = att->atttypid;
			col->user_def.sources[0].path = col->path;
			col->user_def.combine = type_is_array(att->atttypid) ?
				EPIC_COMBINE_ARRAY : EPIC_COMBINE_FIRST;
			if (sp != NULL)
			{
				char	   *name;

				(void) epic_parse_search_param(sp, &name, &col->user_def.search_type);
				col->user_def.search_param = name;
			}
			col->def = &col->user_def;
			continue;
		}
		if (epic_get_column_option(relid, att->attnum, "search_param") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("column \"%s\" of foreign table \"%s\" has option \"search_param\" but no \"path\"",
							col->name, t->relname),
					 errhint("Built-in columns have their own search parameter; search_param goes with path.")));
		if (t->builtin != NULL)
			col->builtin = epic_catalog_column(t->builtin, col->name);
		for (int j = 0; col->builtin == NULL && j < NCOLS(any_resource); j++)
			if (strcmp(any_resource[j].name, col->name) == 0)
				col->builtin = &any_resource[j];
		if (col->builtin == NULL)
		{
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
					 errmsg("column \"%s\" of foreign table \"%s\" has no FHIR path",
							col->name, t->relname),
					 t->builtin ?
					 errhint("Built-in columns of %s are: %s; other columns need OPTIONS (path '...').",
							 t->builtin->table_name, column_names(t->builtin)) :
					 errhint("Columns named id and resource need no path; give other columns "
							 "OPTIONS (path '...'), e.g. path 'status'.")));
		}
		col->def = col->builtin;
		if (att->atttypid != col->builtin->sql_type &&
			att->atttypid != TEXTOID && att->atttypid != JSONOID &&
			!(col->builtin->combine == EPIC_COMBINE_RESOURCE && att->atttypid == JSONBOID))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("column \"%s\" of foreign table \"%s\" has type %s, but the built-in column is %s",
							col->name, t->relname, format_type_be(att->atttypid),
							format_type_be(col->builtin->sql_type)),
					 errhint("Declare it as %s or text.", format_type_be(col->builtin->sql_type))));
	}
	table_close(rel, AccessShareLock);
	return t;
}
