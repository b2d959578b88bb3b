/*-------------------------------------------------------------------------
 *
 * import.c
 *		IMPORT FOREIGN SCHEMA: "fhir" gives the built-in tables of the
 *		server's FHIR version, "views" a table for every ViewDefinition file
 *		in the server's view_dir.  Both return CREATE FOREIGN TABLE
 *		statements made by epic_view_ddl.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include "foreign/fdwapi.h"
#include "nodes/parsenodes.h"
#include "storage/fd.h"
#include "utils/builtins.h"

/* Does name end with suffix? */
static bool
ends_with(const char *name, const char *suffix)
{
	size_t		n = strlen(name),
				k = strlen(suffix);

	return n >= k && strcmp(name + n - k, suffix) == 0;
}

static int
cmp_names(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/*
 * IMPORT FOREIGN SCHEMA views: a table for every *.json ViewDefinition in
 * the server's view_dir, named by the view's "name" (else the file name).
 */
static List *
import_view_dir(ImportForeignSchemaStmt *stmt, ForeignServer *server, const char *dir,
				EpicFhirVersion fhir_version)
{
	DIR		   *d;
	struct dirent *de;
	List	   *files = NIL;
	List	   *commands = NIL;
	ListCell   *lc;

	d = AllocateDir(dir);
	if (d == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open view_dir \"%s\": %m", dir)));
	while ((de = ReadDir(d, dir)) != NULL)
		if (de->d_name[0] != '.' && ends_with(de->d_name, ".json"))
			files = lappend(files, pstrdup(de->d_name));
	FreeDir(d);
	list_sort(files, cmp_names);

	foreach(lc, files)
	{
		char	   *file = lfirst(lc);
		char	   *path = psprintf("%s/%s", dir, file);
		StringInfoData text;
		FILE	   *f = AllocateFile(path, "r");
		char		chunk[8192];
		size_t		n;
		char		errbuf[512];
		int			errpos;
		EpicView   *v;
		char	   *name;

		if (f == NULL)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read ViewDefinition file \"%s\": %m", path)));
		initStringInfo(&text);
		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		{
			if (text.len + n > 16 * 1024 * 1024)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("ViewDefinition file \"%s\" is larger than 16 MB", path)));
			appendBinaryStringInfo(&text, chunk, (int) n);
		}
		FreeFile(f);
		if (strlen(text.data) != (size_t) text.len)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("ViewDefinition file \"%s\" contains a NUL byte", path)));
		/* the table name first: LIMIT TO and EXCEPT skip files unread */
		{
			void	   *doc = epic_json_parse(text.data, text.len, errbuf, sizeof(errbuf));
			const void *nm = doc ? epic_jansson_ops.member(doc, "name") : NULL;
			char		nbuf[64];
			size_t		nlen = 0;
			const char *ns = (nm && epic_jansson_ops.kind(nm) == EPIC_JSON_STRING) ?
				epic_jansson_ops.scalar(nm, nbuf, sizeof(nbuf), &nlen) : NULL;

			name = ns ? pnstrdup(ns, nlen) : pnstrdup(file, strlen(file) - 5);
			if (doc)
				epic_json_free(doc);
		}
		if (!IsImportableForeignTable(name, stmt))
			continue;
		v = epic_view_from_text(text.data, NULL, errbuf, sizeof(errbuf), &errpos);
		if (v != NULL)
			epic_view_set_fhir_versions(v, (int) fhir_version);
		if (v == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid ViewDefinition in file \"%s\": %s", file, errbuf),
					 errdetail("The file is in view_dir \"%s\".", dir),
					 errhint("Fix or remove the file, or leave it out with LIMIT TO or EXCEPT.")));
		{
			/* the option holds the file's JSON, compacted */
			void	   *doc = epic_json_parse(text.data, text.len, errbuf, sizeof(errbuf));
			char	   *compact = doc ? epic_json_dump(doc) : NULL;
			char	   *copy;

			if (doc)
				epic_json_free(doc);
			if (compact == NULL)
			{
				epic_view_free(v);
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
			}
			copy = pstrdup(compact);
			free(compact);
			commands = lappend(commands, epic_view_ddl_free(v, copy, name, server->servername));
		}
	}
	return commands;
}

/*
 * IMPORT FOREIGN SCHEMA fhir: a CREATE FOREIGN TABLE statement for each
 * built-in table of the server's FHIR version, with all its columns;
 * IMPORT FOREIGN SCHEMA views: the ViewDefinition files of view_dir.
 */
List *
epic_import_foreign_schema(ImportForeignSchemaStmt *stmt, Oid serverOid)
{
	ForeignServer *server = GetForeignServer(serverOid);
	EpicServerOptions sopts;
	List	   *commands = NIL;

	epic_get_server_options(server, &sopts);
	if (strcmp(stmt->remote_schema, "views") == 0)
	{
		if (sopts.view_dir == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("server \"%s\" has no option \"view_dir\"", server->servername),
					 errhint("A superuser can set view_dir to a directory of ViewDefinition (*.json) files.")));
		return import_view_dir(stmt, server, sopts.view_dir, sopts.fhir_version);
	}
	if (strcmp(stmt->remote_schema, "fhir") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_SCHEMA_NOT_FOUND),
				 errmsg("epic_fdw has no foreign schema \"%s\"", stmt->remote_schema),
				 errhint("IMPORT FOREIGN SCHEMA fhir imports the built-in tables (%s); "
						 "IMPORT FOREIGN SCHEMA views imports the ViewDefinitions in the server's view_dir.",
						 epic_catalog_table_names(sopts.fhir_version))));

	for (int i = 0;; i++)
	{
		const char *json;
		const char *name = epic_catalog_nth(i, sopts.fhir_version, &json);
		char		errbuf[512];
		int			errpos;
		EpicView   *v;

		if (name == NULL)
			break;
		if (!IsImportableForeignTable(name, stmt))
			continue;
		v = epic_view_from_text(json, NULL, errbuf, sizeof(errbuf), &errpos);
		if (v == NULL)
			elog(ERROR, "built-in view %s is invalid: %s", name, errbuf);
		epic_view_set_fhir_versions(v, (int) sopts.fhir_version);
		commands = lappend(commands, epic_view_ddl_free(v, NULL, name, server->servername));
	}
	return commands;
}
