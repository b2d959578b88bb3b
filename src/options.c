/*-------------------------------------------------------------------------
 *
 * options.c
 *		The one table of epic_fdw options, the validator, and typed readers
 *		for server, user mapping, table and column options.
 *
 * Every option is declared once below with the catalog it belongs to, its
 * kind (which decides how its value is checked), and whether only a
 * superuser may set it (options naming files on the database server).
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <sys/stat.h>
#include <unistd.h>

#include <limits.h>

#include "access/reloptions.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "auth.h"

typedef enum EpicOptKind
{
	OPT_TEXT,					/* any non-empty text */
	OPT_HTTPS_URL,
	OPT_INT,					/* integer within [min, max] */
	OPT_FHIR_VERSION,
	OPT_ALGORITHM,
	OPT_PEM,					/* inline private key */
	OPT_RESOURCE,				/* FHIR resource type name */
	OPT_SEARCH,					/* name=value&name=value */
	OPT_PATH,					/* FHIRPath subset */
	OPT_BOOL,
	OPT_ROWS,					/* a positive row estimate */
	OPT_SEARCH_PARAM,			/* name[:type] of a column's search parameter */
	OPT_HEADERS,				/* a JSON object of extra request headers */
	OPT_VIEW,					/* a SQL on FHIR ViewDefinition (JSON) */
	OPT_FHIR_ID,				/* a FHIR logical id (bulk_group) */
	OPT_BULK_ERRORS				/* 'warn' or 'error' */
} EpicOptKind;

typedef struct EpicOption
{
	const char *name;
	Oid			context;		/* catalog the option belongs to */
	EpicOptKind kind;
	bool		superuser_only;
	int			min;
	int			max;
} EpicOption;

static const EpicOption epic_options[] = {
	/* SERVER */
	{"fhir_url", ForeignServerRelationId, OPT_HTTPS_URL, false, 0, 0},
	{"token_url", ForeignServerRelationId, OPT_HTTPS_URL, false, 0, 0},
	{"fhir_version", ForeignServerRelationId, OPT_FHIR_VERSION, false, 0, 0},
	{"scope", ForeignServerRelationId, OPT_TEXT, false, 0, 0},
	{"page_size", ForeignServerRelationId, OPT_INT, false, 1, 1000},
	{"connect_timeout", ForeignServerRelationId, OPT_INT, false, 1, 3600},
	{"timeout", ForeignServerRelationId, OPT_INT, false, 1, 86400},
	{"ca_file", ForeignServerRelationId, OPT_TEXT, true, 0, 0},
	{"mrn_system", ForeignServerRelationId, OPT_TEXT, false, 0, 0},
	{"or_lists", ForeignServerRelationId, OPT_BOOL, false, 0, 0},
	{"max_retries", ForeignServerRelationId, OPT_INT, false, 0, 10},
	{"max_response_size", ForeignServerRelationId, OPT_INT, false, 1024, 1073741821},
	{"send_client_id", ForeignServerRelationId, OPT_BOOL, false, 0, 0},
	{"accept", ForeignServerRelationId, OPT_TEXT, false, 0, 0},
	{"headers", ForeignServerRelationId, OPT_HEADERS, false, 0, 0},
	{"view_dir", ForeignServerRelationId, OPT_TEXT, true, 0, 0},
	{"max_concurrency", ForeignServerRelationId, OPT_INT, false, 1, 64},
	{"max_url_length", ForeignServerRelationId, OPT_INT, false, 256, 65536},
	{"batch_memory", ForeignServerRelationId, OPT_INT, false, 65536, 1073741821},
	{"bulk_timeout", ForeignServerRelationId, OPT_INT, false, 1, 604800},
	/* USER MAPPING */
	{"client_id", UserMappingRelationId, OPT_TEXT, false, 0, 0},
	{"private_key", UserMappingRelationId, OPT_PEM, false, 0, 0},
	{"private_key_file", UserMappingRelationId, OPT_TEXT, true, 0, 0},
	{"key_id", UserMappingRelationId, OPT_TEXT, false, 0, 0},
	{"algorithm", UserMappingRelationId, OPT_ALGORITHM, false, 0, 0},
	{"jku", UserMappingRelationId, OPT_HTTPS_URL, false, 0, 0},
	{"headers", UserMappingRelationId, OPT_HEADERS, false, 0, 0},
	/* FOREIGN TABLE */
	{"resource", ForeignTableRelationId, OPT_RESOURCE, false, 0, 0},
	{"search", ForeignTableRelationId, OPT_SEARCH, false, 0, 0},
	{"rows", ForeignTableRelationId, OPT_ROWS, false, 0, 0},
	{"view_definition", ForeignTableRelationId, OPT_VIEW, false, 0, 0},
	{"bulk_group", ForeignTableRelationId, OPT_FHIR_ID, false, 0, 0},
	{"bulk_timeout", ForeignTableRelationId, OPT_INT, false, 1, 604800},
	{"bulk_errors", ForeignTableRelationId, OPT_BULK_ERRORS, false, 0, 0},
	/* COLUMN */
	{"path", AttributeRelationId, OPT_PATH, false, 0, 0},
	{"search_param", AttributeRelationId, OPT_SEARCH_PARAM, false, 0, 0},
	{NULL, InvalidOid, OPT_TEXT, false, 0, 0}
};

static const char *
context_name(Oid context)
{
	switch (context)
	{
		case ForeignServerRelationId:
			return "server";
		case UserMappingRelationId:
			return "user mapping";
		case ForeignTableRelationId:
			return "foreign table";
		case AttributeRelationId:
			return "column";
		default:
			return "foreign-data wrapper";
	}
}

/* The valid option names of one catalog, comma-separated, for a hint. */
static char *
valid_names(Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const EpicOption *o = epic_options; o->name; o++)
		if (o->context == context)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", o->name);
	return buf.data;
}

bool
epic_url_is_https(const char *url)
{
	return pg_strncasecmp(url, "https://", 8) == 0 && url[8] != '\0' && url[8] != '/';
}

static int
parse_int_option(const EpicOption *o, const char *value)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(value, &end, 10);
	if (errno != 0 || end == value || *end != '\0' || v < o->min || v > o->max)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", o->name, value),
				 errhint("Use an integer between %d and %d.", o->min, o->max)));
	return (int) v;
}

static bool
valid_resource_name(const char *s)
{
	if (!(s[0] >= 'A' && s[0] <= 'Z'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
			return false;
	return true;
}

/*
 * A search option is name=value pairs joined by '&'.  Names are FHIR search
 * parameter names (with modifiers); values are sent as written, so they must
 * not contain characters that would break the query string.
 */
static void
check_search_option(const char *value)
{
	char	   *copy = pstrdup(value);
	char	   *save = NULL;

	for (char *part = strtok_r(copy, "&", &save); part; part = strtok_r(NULL, "&", &save))
	{
		char	   *eq = strchr(part, '=');

		if (eq == NULL || eq == part)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"search\": \"%s\" is not name=value", part),
					 errhint("Write search parameters as in a FHIR query string, e.g. 'status=active,completed&category=outpatient'.")));
		for (char *p = part; p < eq; p++)
			if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '-' || *p == ':' || *p == '.'))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid search parameter name in option \"search\": \"%.*s\"",
								(int) (eq - part), part)));
		if (strncmp(part, "_count=", 7) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"search\" cannot set _count"),
					 errhint("Use the server option \"page_size\".")));
		for (char *p = eq + 1; *p; p++)
			if ((unsigned char) *p <= ' ' || *p == '#' || *p == '"')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid character in option \"search\" value"),
						 errhint("Percent-encode spaces and other special characters.")));
	}
	pfree(copy);
}

static void
check_path_option(const char *value)
{
	char		errbuf[256];
	int			pos;
	EpicFpExpr *e = epic_fp_parse(value, errbuf, sizeof(errbuf), &pos);

	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid FHIRPath in option \"path\": %s at position %d", errbuf, pos),
				 errdetail("path: %s", value)));
	{
		/* a column's path may use %mrn_system (and %resource) only */
		static const char *const names[] = {"mrn_system"};
		static const char *const values[] = {""};
		const EpicFpEnv env = {1, names, values, NULL, NULL};
		const char *undefined = epic_fp_undefined_constant(e, &env);

		if (undefined != NULL)
		{
			char	   *name = pstrdup(undefined);

			epic_fp_free(e);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid FHIRPath in option \"path\": constant %%%s is not defined", name),
					 errhint("A column's path may use %%mrn_system and %%resource; constants of "
							 "a ViewDefinition belong in its \"constant\" list.")));
		}
	}
	epic_fp_free(e);
}

/*
 * A file option (superuser-only, so telling whether the file exists reveals
 * nothing to anyone else): an absolute path to a regular file that the
 * database server can read, checked at CREATE/ALTER time instead of at the
 * first query.
 */
static void
check_server_file(DefElem *def)
{
	const char *path;
	struct stat st;

	if (def == NULL)
		return;
	path = defGetString(def);
	if (!is_absolute_path(path))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" must be an absolute path", def->defname),
				 errdetail("Got \"%s\".", path),
				 errhint("The path is read by the database server, whose working directory is the data directory.")));
	if (stat(path, &st) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not access file \"%s\" named by option \"%s\": %m", path, def->defname),
				 errhint("The file must exist on the database server and be readable by its operating system user.")));
	if (!S_ISREG(st.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" must name a regular file: \"%s\"", def->defname, path)));
	if (access(path, R_OK) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read file \"%s\" named by option \"%s\": %m", path, def->defname),
				 errhint("The file must be readable by the database server's operating system user.")));
}

/* Check one option's value; returns the option's entry. */
static const EpicOption *
check_option(DefElem *def, Oid context)
{
	const EpicOption *opt = NULL;
	char	   *value;

	for (const EpicOption *o = epic_options; o->name; o++)
		if (o->context == context && strcmp(o->name, def->defname) == 0)
			opt = o;

	if (opt == NULL)
	{
		char	   *names = valid_names(context);

		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("invalid option \"%s\" for %s", def->defname, context_name(context)),
				 names[0] ? errhint("Valid options in this context are: %s.", names)
				 : errhint("There are no valid options in this context.")));
	}

	if (opt->superuser_only && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superuser can set option \"%s\"", opt->name),
				 errdetail("The option names a file on the database server.")));

	value = defGetString(def);
	if (value[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"%s\" must not be empty", opt->name)));

	/*
	 * Values that reach a request line or header (accept, client_id as
	 * Epic-Client-ID, URLs) or the JWT header (key_id, jku) must not carry
	 * CR/LF or other control characters: libcurl would send them as extra
	 * header lines.  Plain text options get the same rule.
	 */
	if (opt->kind == OPT_TEXT || opt->kind == OPT_HTTPS_URL)
		for (const unsigned char *c = (const unsigned char *) value; *c; c++)
			if (*c < 0x20 || *c == 0x7f)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"%s\" must not contain control characters", opt->name),
						 errdetail("Character 0x%02x at byte %d.", *c,
								   (int) ((const char *) c - value) + 1)));

	switch (opt->kind)
	{
		case OPT_TEXT:
		case OPT_PEM:			/* checked with the algorithm, below */
			break;
		case OPT_HTTPS_URL:
			if (!epic_url_is_https(value))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"%s\" must be an https:// URL", opt->name),
						 errdetail("Got \"%s\".", value),
						 errhint("epic_fdw sends credentials and patient data only over TLS.")));
			if (strchr(value, '#') || strchr(value, ' '))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"%s\" is not a valid URL: \"%s\"", opt->name, value)));
			if (strcmp(opt->name, "fhir_url") == 0 && strchr(value, '?'))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"fhir_url\" must not contain a query string"),
						 errhint("Put fixed search parameters in the foreign table option \"search\".")));
			break;
		case OPT_INT:
			(void) parse_int_option(opt, value);
			break;
		case OPT_FHIR_VERSION:
			if (pg_strcasecmp(value, "STU3") != 0 && pg_strcasecmp(value, "R4") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"fhir_version\": \"%s\"", value),
						 errhint("Valid values are \"STU3\" and \"R4\".")));
			break;
		case OPT_ALGORITHM:
			{
				EpicJwtAlg	alg;

				if (epic_jwt_alg_parse(value, &alg) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"algorithm\": \"%s\"", value),
							 errhint("Valid values are \"RS384\" and \"ES384\".")));
				break;
			}
		case OPT_RESOURCE:
			if (!valid_resource_name(value))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"resource\": \"%s\"", value),
						 errhint("Use a FHIR resource type name such as \"Patient\" or \"MedicationStatement\".")));
			break;
		case OPT_SEARCH:
			check_search_option(value);
			break;
		case OPT_PATH:
			check_path_option(value);
			break;
		case OPT_BOOL:
			{
				bool		b;

				if (!parse_bool(value, &b))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": \"%s\"", opt->name, value),
							 errhint("Use true or false.")));
				break;
			}
		case OPT_ROWS:
			{
				char	   *end;
				double		d = strtod(value, &end);

				if (end == value || *end != '\0' || !(d > 0) || d > 1e15)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"rows\": \"%s\"", value),
							 errhint("Give the estimated number of resources, a positive number.")));
				break;
			}
		case OPT_HEADERS:
			{
				char		errbuf[200];

				/* never echo the value: user mapping headers are secrets */
				if (!epic_headers_valid(value, errbuf, sizeof(errbuf)))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"headers\": %s", errbuf),
							 errhint("Give a JSON object of header names and string values, "
									 "e.g. '{\"X-Request-Source\": \"reporting\"}'.")));
				break;
			}
		case OPT_VIEW:
			{
				char		errbuf[512];
				int			pos;
				EpicView   *v = epic_view_from_text(value, NULL, errbuf, sizeof(errbuf), &pos);

				if (v == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid ViewDefinition in option \"view_definition\": %s", errbuf),
							 errhint("See SQL on FHIR v2: resource, select[] with column[] of name and path, "
									 "forEach, forEachOrNull, repeat, unionAll, where[], constant[].")));
				epic_view_free(v);
				break;
			}
		case OPT_FHIR_ID:
			{
				/* FHIR R4 id: [A-Za-z0-9\-\.]{1,64} */
				size_t		len = strlen(value);

				if (len > 64 || strspn(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.") != len)
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"%s\": \"%s\"", opt->name, value),
							 errhint("Give the Group's FHIR id: letters, digits, '-' and '.', at most 64.")));
				break;
			}
		case OPT_BULK_ERRORS:
			if (strcmp(value, "warn") != 0 && strcmp(value, "error") != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"bulk_errors\": \"%s\"", value),
						 errhint("Valid values are \"warn\" and \"error\".")));
			break;
		case OPT_SEARCH_PARAM:
			{
				EpicSearchType st;

				if (!epic_parse_search_param(value, NULL, &st))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
							 errmsg("invalid value for option \"search_param\": \"%s\"", value),
							 errhint("Write a FHIR search parameter name, optionally with its type: "
									 "name, name:token, name:string, name:words, name:date, name:datetime, "
									 "name:reference or identifier:mrn.")));
				break;
			}
	}
	return opt;
}

static DefElem *
find_option(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, name) == 0)
			return def;
	}
	return NULL;
}

PG_FUNCTION_INFO_V1(epic_fdw_validator);

/*
 * Validate the complete option list of a server, user mapping, foreign
 * table or column (PostgreSQL passes the resulting list for ALTER too, so
 * required options and combinations can be checked here).
 */
Datum
epic_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			context = PG_GETARG_OID(1);
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst(lc);
		ListCell   *lc2;

		check_option(def, context);
		foreach(lc2, options)
		{
			DefElem    *other = lfirst(lc2);

			if (other != def && strcmp(other->defname, def->defname) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_SYNTAX_ERROR),
						 errmsg("option \"%s\" given more than once", def->defname)));
		}
	}

	if (context == ForeignServerRelationId)
	{
		if (find_option(options, "fhir_url") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("option \"fhir_url\" is required for an epic_fdw server"),
					 errhint("For example: OPTIONS (fhir_url 'https://fhir.example.org/api/FHIR/R4/').")));
	}
	else if (context == UserMappingRelationId)
	{
		DefElem    *key = find_option(options, "private_key");
		DefElem    *keyfile = find_option(options, "private_key_file");
		DefElem    *algdef = find_option(options, "algorithm");

		if (find_option(options, "client_id") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("option \"client_id\" is required for an epic_fdw user mapping")));
		if (key != NULL && keyfile != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("options \"private_key\" and \"private_key_file\" cannot both be set")));
		if (key == NULL && keyfile == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("an epic_fdw user mapping needs \"private_key_file\" or \"private_key\""),
					 errhint("A superuser can set private_key_file to a PEM file readable by the database server; "
							 "private_key takes the PEM text itself.")));
		if (key != NULL)
		{
			EpicJwtAlg	alg = EPIC_ALG_RS384;
			char		errbuf[256];

			if (algdef != NULL)
				(void) epic_jwt_alg_parse(defGetString(algdef), &alg);
			if (epic_key_check(alg, defGetString(key), errbuf, sizeof(errbuf)) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid value for option \"private_key\": %s", errbuf),
						 errhint("Give an unencrypted PEM private key: RSA (2048 bits or more) for RS384, "
								 "EC P-384 for ES384.")));
		}
	}
	else if (context != ForeignTableRelationId && context != AttributeRelationId &&
			 options != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
				 errmsg("the epic_fdw foreign-data wrapper takes no options"),
				 errhint("Set options on the server, user mapping, foreign table or column.")));

	/* last, once the options make sense together: the files they name */
	if (context == ForeignServerRelationId)
		check_server_file(find_option(options, "ca_file"));
	else if (context == UserMappingRelationId)
		check_server_file(find_option(options, "private_key_file"));

	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Typed readers
 * ---------------------------------------------------------------------
 */
static const EpicOption *
lookup(const char *name, Oid context)
{
	for (const EpicOption *o = epic_options; o->name; o++)
		if (o->context == context && strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

const char *
epic_fhir_version_name(EpicFhirVersion v)
{
	return v == EPIC_FHIR_STU3 ? "STU3" : "R4";
}

/*
 * Fill opts from the server's options, with defaults.  Strings point into the
 * server's option list (current memory context).
 */
void
epic_get_server_options(ForeignServer *server, EpicServerOptions *opts)
{
	ListCell   *lc;

	memset(opts, 0, sizeof(*opts));
	opts->fhir_version = EPIC_FHIR_R4;
	opts->page_size = EPIC_DEFAULT_PAGE_SIZE;
	opts->connect_timeout = EPIC_DEFAULT_CONNECT_TIMEOUT;
	opts->timeout = EPIC_DEFAULT_TIMEOUT;
	opts->or_lists = true;
	opts->max_retries = EPIC_DEFAULT_MAX_RETRIES;
	opts->max_concurrency = EPIC_DEFAULT_MAX_CONCURRENCY;
	opts->bulk_timeout = EPIC_DEFAULT_BULK_TIMEOUT;
	opts->max_response_size = EPIC_DEFAULT_MAX_RESPONSE_SIZE;
	opts->max_url_length = EPIC_DEFAULT_MAX_URL_LENGTH;
	opts->batch_memory = EPIC_DEFAULT_BATCH_MEMORY;
	opts->accept = "application/fhir+json";

	foreach(lc, server->options)
	{
		DefElem    *def = lfirst(lc);
		char	   *v = defGetString(def);

		if (strcmp(def->defname, "fhir_url") == 0)
		{
			size_t		len = strlen(v);

			opts->fhir_url = (len > 0 && v[len - 1] == '/') ? pstrdup(v) : psprintf("%s/", v);
		}
		else if (strcmp(def->defname, "token_url") == 0)
			opts->token_url = v;
		else if (strcmp(def->defname, "fhir_version") == 0)
			opts->fhir_version = pg_strcasecmp(v, "STU3") == 0 ? EPIC_FHIR_STU3 : EPIC_FHIR_R4;
		else if (strcmp(def->defname, "scope") == 0)
			opts->scope = v;
		else if (strcmp(def->defname, "page_size") == 0)
			opts->page_size = parse_int_option(lookup("page_size", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "connect_timeout") == 0)
			opts->connect_timeout = parse_int_option(lookup("connect_timeout", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "timeout") == 0)
			opts->timeout = parse_int_option(lookup("timeout", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "ca_file") == 0)
			opts->ca_file = v;
		else if (strcmp(def->defname, "mrn_system") == 0)
			opts->mrn_system = v;
		else if (strcmp(def->defname, "or_lists") == 0)
			(void) parse_bool(v, &opts->or_lists);
		else if (strcmp(def->defname, "max_retries") == 0)
			opts->max_retries = parse_int_option(lookup("max_retries", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "send_client_id") == 0)
			(void) parse_bool(v, &opts->send_client_id);
		else if (strcmp(def->defname, "accept") == 0)
			opts->accept = v;
		else if (strcmp(def->defname, "headers") == 0)
			opts->headers = v;
		else if (strcmp(def->defname, "view_dir") == 0)
			opts->view_dir = v;
		else if (strcmp(def->defname, "max_concurrency") == 0)
			opts->max_concurrency = parse_int_option(lookup("max_concurrency", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "bulk_timeout") == 0)
			opts->bulk_timeout = parse_int_option(lookup("bulk_timeout", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "max_response_size") == 0)
			opts->max_response_size = parse_int_option(lookup("max_response_size", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "max_url_length") == 0)
			opts->max_url_length = parse_int_option(lookup("max_url_length", ForeignServerRelationId), v);
		else if (strcmp(def->defname, "batch_memory") == 0)
			opts->batch_memory = parse_int_option(lookup("batch_memory", ForeignServerRelationId), v);
	}
	if (opts->fhir_url == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" has no option \"fhir_url\"", server->servername)));
}

void
epic_get_user_options(UserMapping *um, EpicUserOptions *opts)
{
	ListCell   *lc;

	memset(opts, 0, sizeof(*opts));
	opts->algorithm = "RS384";
	foreach(lc, um->options)
	{
		DefElem    *def = lfirst(lc);
		char	   *v = defGetString(def);

		if (strcmp(def->defname, "client_id") == 0)
			opts->client_id = v;
		else if (strcmp(def->defname, "private_key") == 0)
			opts->private_key = v;
		else if (strcmp(def->defname, "private_key_file") == 0)
			opts->private_key_file = v;
		else if (strcmp(def->defname, "key_id") == 0)
			opts->key_id = v;
		else if (strcmp(def->defname, "algorithm") == 0)
			opts->algorithm = v;
		else if (strcmp(def->defname, "jku") == 0)
			opts->jku = v;
		else if (strcmp(def->defname, "headers") == 0)
			opts->headers = v;
	}
	if (opts->client_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("user mapping has no option \"client_id\"")));
	if (opts->private_key == NULL && opts->private_key_file == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("user mapping has neither \"private_key_file\" nor \"private_key\"")));
}

void
epic_get_table_options(ForeignTable *table, EpicTableOptions *opts)
{
	ListCell   *lc;

	memset(opts, 0, sizeof(*opts));
	foreach(lc, table->options)
	{
		DefElem    *def = lfirst(lc);

		if (strcmp(def->defname, "resource") == 0)
			opts->resource = defGetString(def);
		else if (strcmp(def->defname, "search") == 0)
			opts->search = defGetString(def);
		else if (strcmp(def->defname, "rows") == 0)
			opts->rows = strtod(defGetString(def), NULL);
		else if (strcmp(def->defname, "view_definition") == 0)
			opts->view_definition = defGetString(def);
		else if (strcmp(def->defname, "bulk_group") == 0)
			opts->bulk_group = defGetString(def);
		else if (strcmp(def->defname, "bulk_timeout") == 0)
			opts->bulk_timeout = parse_int_option(lookup("bulk_timeout", ForeignTableRelationId), defGetString(def));
		else if (strcmp(def->defname, "bulk_errors") == 0)
			opts->bulk_errors_fatal = strcmp(defGetString(def), "error") == 0;
	}
}

/*
 * Is json a valid "headers" option: a JSON object whose members are header
 * names (RFC 9110 tokens) with string values free of control characters,
 * and not a header epic_fdw sets itself?  The message never quotes values.
 */
bool
epic_headers_valid(const char *json, char *errbuf, size_t errlen)
{
	static const char *const reserved[] = {
		"authorization", "host", "content-length", "content-type", "transfer-encoding",
		"connection", "accept", "epic-client-id", "expect", NULL
	};
	char		jerr[128];
	void	   *root = epic_json_parse(json, strlen(json), jerr, sizeof(jerr));
	const EpicJsonOps *ops = &epic_jansson_ops;
	bool		ok = true;

	if (root == NULL || ops->kind(root) != EPIC_JSON_OBJECT)
	{
		snprintf(errbuf, errlen, "not a JSON object");
		if (root)
			epic_json_free(root);
		return false;
	}
	{
		char	   *names = epic_json_object_keys(root);

		for (char *name = names; ok && name && *name; name += strlen(name) + 1)
		{
			const void *v = ops->member(root, name);
			char		buf[64];
			size_t		len;
			const char *val;

			for (const char *p = name; *p; p++)
				if (!(isalnum((unsigned char) *p) || strchr("!#$%&'*+-.^_`|~", *p)))
				{
					snprintf(errbuf, errlen, "\"%.60s\" is not a header name", name);
					ok = false;
					break;
				}
			for (const char *const *r = reserved; ok && *r; r++)
				if (pg_strcasecmp(name, *r) == 0)
				{
					snprintf(errbuf, errlen, "header \"%s\" is set by epic_fdw itself", name);
					ok = false;
				}
			if (ok && (v == NULL || ops->kind(v) != EPIC_JSON_STRING))
			{
				snprintf(errbuf, errlen, "the value of header \"%.60s\" is not a string", name);
				ok = false;
			}
			if (ok)
			{
				val = ops->scalar(v, buf, sizeof(buf), &len);
				for (size_t i = 0; i < len; i++)
					if ((unsigned char) val[i] < 0x20 || val[i] == 0x7f)
					{
						snprintf(errbuf, errlen, "the value of header \"%.60s\" has a control character", name);
						ok = false;
						break;
					}
			}
		}
		free(names);
	}
	epic_json_free(root);
	return ok;
}

/*
 * Parse a column's search_param option "name[:type]" (type token by
 * default).  Returns false if it is malformed.  *name (if not NULL) gets a
 * palloc'd copy of the name.
 */
bool
epic_parse_search_param(const char *value, char **name, EpicSearchType *type)
{
	static const struct
	{
		const char *word;
		EpicSearchType type;
	}			types[] = {
		{"token", EPIC_SP_TOKEN}, {"string", EPIC_SP_STRING}, {"date", EPIC_SP_DATE},
		{"datetime", EPIC_SP_DATETIME}, {"reference", EPIC_SP_REFERENCE},
		{"words", EPIC_SP_STRING_WORD}, {"mrn", EPIC_SP_MRN}
	};
	const char *colon = strchr(value, ':');
	size_t		len = colon ? (size_t) (colon - value) : strlen(value);

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char) value[i]) || value[i] == '_' || value[i] == '-' || value[i] == '.'))
			return false;
	*type = EPIC_SP_TOKEN;
	if (colon)
	{
		bool		found = false;

		for (size_t i = 0; i < lengthof(types); i++)
			if (strcmp(colon + 1, types[i].word) == 0)
			{
				*type = types[i].type;
				found = true;
			}
		if (!found)
			return false;
	}
	if (strcmp(value, "_id") == 0)
		*type = EPIC_SP_SPECIAL_ID;
	if (name)
		*name = pnstrdup(value, len);
	return true;
}

/* A column option (palloc'd), or NULL. */
char *
epic_get_column_option(Oid relid, AttrNumber attnum, const char *name)
{
	List	   *options = GetForeignColumnOptions(relid, attnum);
	DefElem    *def = find_option(options, name);

	return def ? defGetString(def) : NULL;
}
