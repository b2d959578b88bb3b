/*-------------------------------------------------------------------------
 *
 * catalog.c
 *		The built-in tables (SQL on FHIR ViewDefinitions embedded from
 *		views/NAME.json), and resolution of a foreign table (options + columns)
 *		into an EpicTable.
 *
 * A table's rows come from one ViewDefinition: its view_definition option,
 * else the built-in table named by its resource option or its own name,
 * else one made of its columns' path options.  Columns with a path option
 * are added to whichever view applies.  Each column's search parameter
 * (for pushdown) comes from its search_param option, else the view
 * column's epic_fdw/search_param tag, else the path: getResourceKey() and
 * id are _id, subject/patient.getReferenceKey(Patient) are patient.  Only
 * columns evaluated once per resource (outside forEach, repeat and
 * unionAll) are searchable.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

/* What the embedded views say about themselves, read once per backend. */
typedef struct BuiltinInfo
{
	char	   *name;
	char	   *resource;
	bool		stu3;
	bool		r4;
	bool		read_by_id;		/* extension urn:epic_fdw:read-by-id */
	const char *json;
} BuiltinInfo;

static BuiltinInfo *builtins;
static int	nbuiltins;

static void
load_builtins(void)
{
	MemoryContext old;
	int			n = 0;
	BuiltinInfo *info;

	if (builtins != NULL)
		return;
	while (epic_builtin_views[n].file != NULL)
		n++;
	old = MemoryContextSwitchTo(TopMemoryContext);
	/* published only when complete: an error on the way leaves none loaded */
	info = palloc0(sizeof(BuiltinInfo) * Max(1, n));
	for (int i = 0; i < n; i++)
	{
		char		errbuf[256];
		void	   *doc = epic_json_parse(epic_builtin_views[i].json,
										  strlen(epic_builtin_views[i].json),
										  errbuf, sizeof(errbuf));
		const EpicJsonOps *ops = &epic_jansson_ops;
		const void *versions;
		char		buf[64];
		size_t		len;
		const char *str;

		if (doc == NULL)
			elog(ERROR, "built-in view %s does not parse: %s", epic_builtin_views[i].file, errbuf);
		str = ops->scalar(ops->member(doc, "name"), buf, sizeof(buf), &len);
		info[i].name = pnstrdup(str, len);
		str = ops->scalar(ops->member(doc, "resource"), buf, sizeof(buf), &len);
		info[i].resource = pnstrdup(str, len);
		versions = ops->member(doc, "fhirVersion");
		for (size_t k = 0; versions && k < ops->size(versions); k++)
		{
			str = ops->scalar(ops->item(versions, k), buf, sizeof(buf), &len);
			if (str && len >= 2 && strncmp(str, "3.", 2) == 0)
				info[i].stu3 = true;
			if (str && len >= 2 && strncmp(str, "4.", 2) == 0)
				info[i].r4 = true;
		}
		info[i].json = epic_builtin_views[i].json;
		versions = ops->member(doc, "extension");
		for (size_t k = 0; versions && k < ops->size(versions); k++)
		{
			const void *e = ops->item(versions, k);

			str = ops->scalar(ops->member(e, "url"), buf, sizeof(buf), &len);
			if (str && len == strlen(EPIC_READ_BY_ID_URL) &&
				strncmp(str, EPIC_READ_BY_ID_URL, len) == 0)
				info[i].read_by_id = true;
		}
		epic_json_free(doc);
	}
	builtins = info;
	nbuiltins = n;
	MemoryContextSwitchTo(old);
}

static bool
for_version(const BuiltinInfo *b, EpicFhirVersion v)
{
	return v == EPIC_FHIR_STU3 ? b->stu3 : b->r4;
}

const char *
epic_catalog_by_table(const char *table_name, EpicFhirVersion v)
{
	load_builtins();
	for (int i = 0; i < nbuiltins; i++)
		if (for_version(&builtins[i], v) && strcmp(builtins[i].name, table_name) == 0)
			return builtins[i].json;
	return NULL;
}

const char *
epic_catalog_by_resource(const char *resource, EpicFhirVersion v)
{
	load_builtins();
	for (int i = 0; i < nbuiltins; i++)
		if (for_version(&builtins[i], v) && strcmp(builtins[i].resource, resource) == 0)
			return builtins[i].json;
	return NULL;
}

const char *
epic_catalog_nth(int n, EpicFhirVersion v, const char **json)
{
	load_builtins();
	for (int i = 0; i < nbuiltins; i++)
		if (for_version(&builtins[i], v) && n-- == 0)
		{
			*json = builtins[i].json;
			return builtins[i].name;
		}
	return NULL;
}

/* Names of the built-in tables of a version, for hints. */
char *
epic_catalog_table_names(EpicFhirVersion v)
{
	StringInfoData buf;

	load_builtins();
	initStringInfo(&buf);
	for (int i = 0; i < nbuiltins; i++)
		if (for_version(&builtins[i], v))
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", builtins[i].name);
	return buf.data;
}

/*
 * Compile ViewDefinition text: NULL with errbuf (and *errpos) on bad JSON or
 * an invalid view.  %mrn_system is defined for every view.
 */
EpicView *
epic_view_from_text(const char *json, const char *mrn_system, char *errbuf, size_t errlen,
					int *errpos)
{
	static const char *const names[] = {"mrn_system"};
	const char *values[1] = {mrn_system};
	EpicFpEnv	env = {1, names, values, NULL, NULL};
	void	   *doc;
	EpicView   *v;

	*errpos = 0;
	doc = epic_json_parse(json, strlen(json), errbuf, errlen);
	if (doc == NULL)
		return NULL;
	v = epic_view_compile(&epic_jansson_ops, doc, &env, errbuf, errlen, errpos);
	epic_json_free(doc);
	return v;
}

static void
free_view_cb(void *arg)
{
	epic_view_free((EpicView *) arg);
}

/* Register v to be freed with the current memory context. */
static void
own_view(EpicView *v)
{
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));

	cb->func = free_view_cb;
	cb->arg = v;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
}

static char *
column_names(const EpicView *v)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < v->nslots; i++)
	{
		const char *n = v->columns[v->slot_column[i]].name;

		if (n[0] != '#')
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", n);
	}
	return buf.data;
}

/* path without white space equals want? */
static bool
path_is(const char *path, const char *want)
{
	while (*path && *want)
	{
		if (*path == ' ' || *path == '\t' || *path == '\n')
		{
			path++;
			continue;
		}
		if (*path++ != *want++)
			return false;
	}
	while (*path == ' ' || *path == '\t' || *path == '\n')
		path++;
	return *path == '\0' && *want == '\0';
}

/* The search parameter a view column's path implies, if any. */
static void
implied_search_param(EpicColumn *col)
{
	const char *path = col->vcol->path;

	if (path_is(path, "getResourceKey()") || path_is(path, "id"))
	{
		col->search_param = "_id";
		col->search_type = EPIC_SP_SPECIAL_ID;
	}
	else if (path_is(path, "subject.getReferenceKey(Patient)") ||
			 path_is(path, "patient.getReferenceKey(Patient)"))
	{
		col->search_param = "patient";
		col->search_type = EPIC_SP_REFERENCE;
	}
}

/* The SQL type of a built-in column (from its FHIR type and collection). */
static Oid
builtin_sql_type(const EpicView *v, const EpicViewColumn *vc)
{
	Oid			typid;
	int32		typmod;

	parseTypeString(epic_view_column_sql_type(v, vc), &typid, &typmod, false);
	return typid;
}

/* Is alternative (len bytes of a requirement) in names or search? */
static bool
alternative_given(const char *alt, size_t len, List *names, const char *search)
{
	char	   *name = pnstrdup(alt, len);
	bool		found = epic_search_has_param(search, name);
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp((const char *) lfirst(lc), name) == 0)
			found = true;
	pfree(name);
	return found;
}

/*
 * The first requirement of the view (a parameter name, or alternatives
 * "category|code" any of which will do) that names and search do not meet,
 * or NULL.
 */
const char *
epic_table_missing_required(const EpicTable *t, List *names, const char *search)
{
	for (int i = 0; i < t->view->nrequired; i++)
	{
		const char *req = t->view->required[i];
		const char *p = req;
		bool		met = false;

		while (!met)
		{
			const char *bar = strchr(p, '|');

			met = alternative_given(p, bar ? (size_t) (bar - p) : strlen(p), names, search);
			if (bar == NULL)
				break;
			p = bar + 1;
		}
		if (!met)
			return req;
	}
	return NULL;
}

/* Is name one of the alternatives of requirement req? */
static bool
requirement_names(const char *req, const char *name)
{
	size_t		nl = strlen(name);

	for (const char *p = req; p != NULL; p = strchr(p, '|') ? strchr(p, '|') + 1 : NULL)
		if (strncmp(p, name, nl) == 0 && (p[nl] == '\0' || p[nl] == '|'))
			return true;
	return false;
}

/* Does some requirement name it, alone or as an alternative? */
bool
epic_table_param_wanted(const EpicTable *t, const char *name)
{
	for (int i = 0; i < t->view->nrequired; i++)
		if (requirement_names(t->view->required[i], name))
			return true;
	return false;
}

/*
 * A requirement for messages: "\"patient\"", "\"patient\" or \"_id\"",
 * "\"category\", \"code\" or \"_id\"";
 * palloc'd.
 */
char *
epic_requirement_text(const char *req)
{
	StringInfoData buf;
	const char *p = req;

	initStringInfo(&buf);
	for (;;)
	{
		const char *bar = strchr(p, '|');
		size_t		len = bar ? (size_t) (bar - p) : strlen(p);

		appendStringInfo(&buf, "%s\"%.*s\"", p == req ? "" : bar ? ", " : " or ", (int) len, p);
		if (bar == NULL)
			break;
		p = bar + 1;
	}
	return buf.data;
}

/*
 * Resolve a foreign table: its server options, its view, and for each
 * column its view slot and search parameter.  Raises a clear error for a
 * table or column epic_fdw cannot map.  Everything is palloc'd in the
 * current memory context (the view is freed with it).
 */
EpicTable *
epic_table_resolve(Oid relid)
{
	EpicTable  *t = palloc0(sizeof(EpicTable));
	Relation	rel;
	TupleDesc	tupdesc;
	const char *json = NULL;
	char		errbuf[512];
	int			errpos;
	static const char *const env_names[] = {"mrn_system"};
	const char *env_values[1];
	EpicFpEnv	env = {1, env_names, env_values, NULL, NULL};

	t->relid = relid;
	t->relname = get_rel_name(relid);
	t->table = GetForeignTable(relid);
	t->server = GetForeignServer(t->table->serverid);
	epic_get_server_options(t->server, &t->sopts);
	epic_get_table_options(t->table, &t->topts);
	env_values[0] = t->sopts.mrn_system;

	if (t->topts.view_definition != NULL)
		json = t->topts.view_definition;
	else if (t->topts.resource != NULL)
	{
		json = epic_catalog_by_resource(t->topts.resource, t->sopts.fhir_version);
		if (json == NULL)
		{
			t->view = epic_view_new(t->topts.resource, &env);
			if (t->view == NULL)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
			own_view(t->view);
		}
		else
			t->builtin = t->relname;
	}
	else
	{
		json = epic_catalog_by_table(t->relname, t->sopts.fhir_version);
		if (json == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("foreign table \"%s\" has no option \"resource\"", t->relname),
					 errhint("Name the FHIR resource type, e.g. OPTIONS (resource 'Patient'), "
							 "give a ViewDefinition (view_definition), "
							 "or name the table after a built-in table (%s).",
							 epic_catalog_table_names(t->sopts.fhir_version))));
		t->builtin = t->relname;
	}
	if (t->builtin != NULL && t->topts.view_definition == NULL)
		for (int i = 0; i < nbuiltins; i++)
			if (builtins[i].json == json)
				t->read_by_id = builtins[i].read_by_id;
	if (t->view == NULL)
	{
		t->view = epic_view_from_text(json, t->sopts.mrn_system, errbuf, sizeof(errbuf), &errpos);
		if (t->view == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid ViewDefinition for foreign table \"%s\": %s", t->relname, errbuf)));
		own_view(t->view);
	}
	if (t->topts.view_definition != NULL && t->topts.resource != NULL &&
		strcmp(t->topts.resource, t->view->resource) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("foreign table \"%s\" has resource \"%s\" but its ViewDefinition is of %s",
						t->relname, t->topts.resource, t->view->resource)));
	t->resource = pstrdup(t->view->resource);
	/* the server's FHIR version types the paths (a ViewDefinition may name others) */
	epic_view_set_fhir_versions(t->view, (int) t->sopts.fhir_version);

	rel = table_open(relid, AccessShareLock);
	tupdesc = RelationGetDescr(rel);
	t->ncolumns = tupdesc->natts;
	t->columns = palloc0(sizeof(EpicColumn) * Max(1, tupdesc->natts));

	/* columns with a path option join the view first (they may shadow a view column) */
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		EpicColumn *col = &t->columns[i];
		char	   *path;

		col->attnum = att->attnum;
		col->slot = -1;
		if (att->attisdropped)
			continue;
		col->name = pstrdup(NameStr(att->attname));
		col->atttypid = att->atttypid;
		col->atttypmod = att->atttypmod;
		path = epic_get_column_option(relid, att->attnum, "path");
		if (path != NULL)
		{
			char		internal[32];

			snprintf(internal, sizeof(internal), "#%d", (int) att->attnum);
			if (epic_view_add_column(t->view, internal, path, NULL, type_is_array(att->atttypid),
									 true, errbuf, sizeof(errbuf), &errpos) < 0)
			{
				/* the message starts with the internal name: drop it */
				const char *msg = strncmp(errbuf, "column \"#", 9) == 0 && strstr(errbuf, ": ") ?
					strstr(errbuf, ": ") + 2 : errbuf;

				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid FHIRPath for column \"%s\": %s", col->name, msg)));
			}
			col->slot = epic_view_slot(t->view, internal);
		}
	}
	/*
	 * Every member name of every path, checked against the FHIR type table:
	 * a misspelled element (name.givne) is an error here, at first use, not
	 * a column that is silently NULL.
	 */
	if (epic_view_check_members(t->view, errbuf, sizeof(errbuf)) != 0)
	{
		const char *msg = errbuf;

		/* a path option's column is known to the view as "#attnum" */
		if (strncmp(errbuf, "column \"#", 9) == 0 && strstr(errbuf, "\", ") != NULL)
		{
			int			attnum = atoi(errbuf + 9);

			if (attnum >= 1 && attnum <= tupdesc->natts)
				msg = psprintf("column \"%s\"%s", NameStr(TupleDescAttr(tupdesc, attnum - 1)->attname),
							   strstr(errbuf, "\", ") + 1);
		}
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid FHIRPath in foreign table \"%s\": %s", t->relname, msg),
				 errhint("Member names are checked against the FHIR STU3 and R4 definitions of each element's type (see the README's FHIRPath section).")));
	}
	/* slots move as columns are added: look every column up at the end */
	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		EpicColumn *col = &t->columns[i];
		char	   *sp;
		char		internal[32];

		if (att->attisdropped)
			continue;
		snprintf(internal, sizeof(internal), "#%d", (int) att->attnum);
		col->slot = epic_view_slot(t->view, internal);
		sp = epic_get_column_option(relid, att->attnum, "search_param");
		if (col->slot < 0)
		{
			if (sp != NULL && t->builtin != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
						 errmsg("column \"%s\" of foreign table \"%s\" has option \"search_param\" but no \"path\"",
								col->name, t->relname),
						 errhint("Built-in columns have their own search parameter; search_param goes with path.")));
			col->slot = epic_view_slot(t->view, col->name);
		}
		if (col->slot < 0 && t->builtin == NULL && t->topts.view_definition == NULL &&
			(strcmp(col->name, "id") == 0 || strcmp(col->name, "resource") == 0))
		{
			/* tables of any resource: id and resource need no path */
			bool		is_id = (strcmp(col->name, "id") == 0);

			if (epic_view_add_column(t->view, col->name, is_id ? "id" : "$this",
									 is_id ? "id" : "Resource", false, false,
									 errbuf, sizeof(errbuf), &errpos) < 0)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("%s", errbuf)));
			/* earlier slots moved: start over */
			i = -1;
			continue;
		}
		if (col->slot < 0)
		{
			if (t->builtin != NULL || t->topts.view_definition != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
						 errmsg("column \"%s\" of foreign table \"%s\" has no FHIR path",
								col->name, t->relname),
						 t->builtin ?
						 errhint("Built-in columns of %s are: %s; other columns need OPTIONS (path '...').",
								 t->view->name ? t->view->name : t->builtin, column_names(t->view)) :
						 errhint("The ViewDefinition's columns are: %s; other columns need OPTIONS (path '...').",
								 column_names(t->view))));
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_COLUMN_NAME),
					 errmsg("column \"%s\" of foreign table \"%s\" has no FHIR path",
							col->name, t->relname),
					 errhint("Columns named id and resource need no path; give other columns "
							 "OPTIONS (path '...'), e.g. path 'status'.")));
		}
		col->vcol = &t->view->columns[t->view->slot_column[col->slot]];
		col->json_kind = epic_view_type_json_kind(col->vcol->type);
		col->is_array = col->vcol->collection && type_is_array(att->atttypid);
		col->search_param = NULL;
		col->search_type = EPIC_SP_NONE;
		if (sp != NULL)
		{
			char	   *name;

			(void) epic_parse_search_param(sp, &name, &col->search_type);
			col->search_param = name;
		}
		else if (col->vcol->resource_level && col->vcol->search_param != NULL)
		{
			char	   *name;

			if (!epic_parse_search_param(col->vcol->search_param, &name, &col->search_type))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid epic_fdw/search_param tag \"%s\" on column \"%s\"",
								col->vcol->search_param, col->name)));
			col->search_param = name;
		}
		else if (col->vcol->resource_level)
			implied_search_param(col);
		if (!col->vcol->resource_level && sp != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("column \"%s\" of foreign table \"%s\" cannot have a search parameter",
							col->name, t->relname),
					 errdetail("Its value comes from inside a forEach, repeat or unionAll, not from the resource as a whole.")));
		if (t->builtin != NULL && t->topts.view_definition == NULL && col->vcol->name[0] != '#')
		{
			Oid			want = builtin_sql_type(t->view, col->vcol);

			if (att->atttypid != want && att->atttypid != TEXTOID && att->atttypid != JSONOID &&
				att->atttypid != JSONBOID)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("column \"%s\" of foreign table \"%s\" has type %s, but the built-in column is %s",
								col->name, t->relname, format_type_be(att->atttypid),
								format_type_be(want)),
						 errhint("Declare it as %s or text.", format_type_be(want))));
		}
	}
	table_close(rel, AccessShareLock);
	return t;
}

/*
 * The CREATE FOREIGN TABLE statement for a view: one column per output
 * slot, typed by its ansi/type tag or by its FHIR type (see
 * epic_view_sql_type).  With json the table carries the ViewDefinition in
 * its view_definition option; without, it is a built-in table found by its
 * resource.
 */
char *
epic_view_ddl(const EpicView *v, const char *json, const char *table_name,
			  const char *server_name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "CREATE FOREIGN TABLE %s (", quote_identifier(table_name));
	for (int i = 0; i < v->nslots; i++)
	{
		const EpicViewColumn *c = &v->columns[v->slot_column[i]];
		const char *type = c->ansi_type ? c->ansi_type : epic_view_column_sql_type(v, c);

		if (c->ansi_type != NULL)
		{
			/* only a type name PostgreSQL reads as one type */
			Oid			typid;
			int32		typmod;

			parseTypeString(type, &typid, &typmod, false);
			type = format_type_with_typemod(typid, typmod);
		}
		appendStringInfo(&buf, "%s\n  %s %s", i ? "," : "", quote_identifier(c->name), type);
	}
	appendStringInfo(&buf, "\n) SERVER %s OPTIONS (", quote_identifier(server_name));
	if (json != NULL)
		appendStringInfo(&buf, "view_definition %s)", quote_literal_cstr(json));
	else
		appendStringInfo(&buf, "resource %s)", quote_literal_cstr(v->resource));
	return buf.data;
}

/*
 * The comment of a column for BI tools and \d+: its FHIRPath, its search
 * parameter (or that it is not searchable), and the view's description.
 */
static char *
column_comment(const EpicViewColumn *c)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "FHIRPath: %s", c->path ? c->path : "(none)");
	if (c->search_param)
		appendStringInfo(&buf, "; search parameter: %s", c->search_param);
	else
		appendStringInfoString(&buf, "; not searchable (filtered locally)");
	if (c->description)
		appendStringInfo(&buf, ". %s", c->description);
	return buf.data;
}

/*
 * COMMENT ON COLUMN statements (each ending with ";\n") for a table made
 * from view v: see column_comment.
 */
char *
epic_view_comments(const EpicView *v, const char *table_name)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < v->nslots; i++)
	{
		const EpicViewColumn *c = &v->columns[v->slot_column[i]];

		appendStringInfo(&buf, "COMMENT ON COLUMN %s.%s IS %s;\n", quote_identifier(table_name),
						 quote_identifier(c->name), quote_literal_cstr(column_comment(c)));
	}
	return buf.data;
}

/*
 * The same statements for an existing foreign table (qualified name), from
 * its resolved columns; a List of strings.
 */
List *
epic_table_comments(Oid relid)
{
	EpicTable  *t = epic_table_resolve(relid);
	char	   *qname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid));
	List	   *out = NIL;

	for (int i = 0; i < t->ncolumns; i++)
	{
		EpicColumn *col = &t->columns[i];

		if (col->name == NULL || col->vcol == NULL)
			continue;
		out = lappend(out, psprintf("COMMENT ON COLUMN %s.%s IS %s", qname,
									quote_identifier(col->name),
									quote_literal_cstr(column_comment(col->vcol))));
	}
	return out;
}

/* epic_view_ddl, then epic_view_free(v) (also when it raises an error). */
char *
epic_view_ddl_free(EpicView *v, const char *json, const char *table_name,
				   const char *server_name)
{
	char	   *volatile ddl = NULL;

	PG_TRY();
	{
		ddl = epic_view_ddl(v, json, table_name, server_name);
	}
	PG_CATCH();
	{
		epic_view_free(v);
		PG_RE_THROW();
	}
	PG_END_TRY();
	epic_view_free(v);
	return ddl;
}
