/*-------------------------------------------------------------------------
 *
 * functions.c
 *		SQL-callable helpers: the JWK Set to publish for a user mapping's key
 *		(epic_fdw_public_jwks) and a step-by-step connection check
 *		(epic_fdw_check).
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <time.h>

#include "access/htup_details.h"
#include "catalog/pg_user_mapping.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "auth.h"

/* A JWK (malloc'd JSON text from auth.c) appended to buf; errors raised. */
static void
append_jwk(StringInfo buf, bool first, const char *pem, const char *kid, const char *what)
{
	char		errbuf[256];
	char	   *jwk = epic_jwk_from_pem(pem, kid, errbuf, sizeof(errbuf));

	if (jwk == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not make a JWK of %s: %s", what, errbuf)));
	if (!first)
		appendStringInfoChar(buf, ',');
	appendStringInfoString(buf, jwk);
	free(jwk);
}

/*
 * The named server, after checking that the current user has USAGE on it
 * (as for using a foreign table of it): these functions read the user's
 * mapping and may contact the server.
 */
static ForeignServer *
server_for_use(const char *servername)
{
	ForeignServer *server = GetForeignServerByName(servername, false);
	AclResult	aclresult = pg_foreign_server_aclcheck(server->serverid, GetUserId(), ACL_USAGE);

	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);
	return server;
}

PG_FUNCTION_INFO_V1(epic_fdw_public_jwks);

/*
 * epic_fdw_public_jwks(server name, additional_public_keys text[]) -> jsonb
 *
 * The JWK Set to host at the jku URL registered with the authorization
 * server: the public half of the current user's mapping key (kid = the
 * mapping's key_id, or the RFC 7638 thumbprint), then any extra PEM public
 * keys (for rotation: publish old and new, switch the mapping, drop the
 * old).  Only public material ever leaves this function.
 */
Datum
epic_fdw_public_jwks(PG_FUNCTION_ARGS)
{
	ForeignServer *server;
	UserMapping *um;
	EpicUserOptions uopts;
	StringInfoData buf;
	char	   *pem;

	/* not STRICT (a NULL array means no extra keys); a NULL server: NULL */
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	server = server_for_use(NameStr(*PG_GETARG_NAME(0)));
	um = GetUserMapping(GetUserId(), server->serverid);
	epic_get_user_options(um, &uopts);
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"keys\":[");

	pem = epic_read_private_key(&uopts);
	PG_TRY();
	{
		append_jwk(&buf, true, pem, uopts.key_id, "the user mapping's key");
	}
	PG_FINALLY();
	{
		explicit_bzero(pem, strlen(pem));
		pfree(pem);
	}
	PG_END_TRY();

	if (!PG_ARGISNULL(1))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(1);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		for (int i = 0; i < n; i++)
		{
			char	   *key;

			if (nulls[i])
				continue;
			key = TextDatumGetCString(elems[i]);
			if (strstr(key, "PRIVATE KEY") != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("additional_public_keys element %d is a private key", i + 1),
						 errhint("Pass public keys only, e.g. from openssl pkey -pubout.")));
			append_jwk(&buf, false, key, NULL, psprintf("additional public key %d", i + 1));
		}
	}
	appendStringInfoString(&buf, "]}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
}

/* ---------------------------------------------------------------------
 * epic_fdw_check
 * ---------------------------------------------------------------------
 */
typedef struct CheckRow
{
	const char *step;
	char	   *request;
	int			status;			/* HTTP status, 0 if none */
	double		ms;
	bool		ok;
	char	   *detail;
	char	   *hint;
} CheckRow;

static void
put_row(Tuplestorestate *ts, TupleDesc td, const CheckRow *r)
{
	Datum		values[7];
	bool		nulls[7] = {false};

	values[0] = CStringGetTextDatum(r->step);
	values[1] = r->request ? CStringGetTextDatum(r->request) : (Datum) 0;
	nulls[1] = (r->request == NULL);
	values[2] = Int32GetDatum(r->status);
	nulls[2] = (r->status == 0);
	values[3] = Float8GetDatum(r->ms);
	values[4] = BoolGetDatum(r->ok);
	values[5] = r->detail ? CStringGetTextDatum(r->detail) : (Datum) 0;
	nulls[5] = (r->detail == NULL);
	values[6] = r->hint ? CStringGetTextDatum(r->hint) : (Datum) 0;
	nulls[6] = (r->hint == NULL);
	tuplestore_putvalues(ts, td, values, nulls);
}

static double
ms_since(struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000.0 + (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * Run step() in a subtransaction; an error becomes the row's detail (its
 * message and detail, which never contain secrets) instead of aborting.
 */
typedef void (*CheckStep) (void *arg, CheckRow *row);

static bool
run_step(CheckStep step, void *arg, CheckRow *row)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		step(arg, row);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		/* a cancel or statement_timeout ends the check, it is no result */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		row->ok = false;
		row->detail = edata->detail ? psprintf("%s: %s", edata->message, edata->detail)
			: pstrdup(edata->message);
		if (edata->hint)
			row->hint = pstrdup(edata->hint);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	row->ms = ms_since(&t0);
	return row->ok;
}

typedef struct CheckState
{
	ForeignServer *server;
	UserMapping *um;
	EpicServerOptions sopts;
	EpicConnection *conn;
} CheckState;

static void
step_discovery(void *arg, CheckRow *row)
{
	CheckState *cs = arg;
	EpicScanStats stats;
	const char *url;

	memset(&stats, 0, sizeof(stats));
	url = epic_connection_token_url(cs->conn, &cs->sopts, &stats);
	row->ok = true;
	/* discovered earlier in this session: no request was made now */
	row->detail = stats.requests == 0 ?
		psprintf("token endpoint: %s (cached: discovered earlier in this session, no request made)", url) :
		psprintf("token endpoint: %s", url);
}

static void
step_token(void *arg, CheckRow *row)
{
	CheckState *cs = arg;
	EpicScanStats stats;

	memset(&stats, 0, sizeof(stats));
	epic_connection_new_token(cs->conn, cs->um, &cs->sopts, &stats);
	row->ok = true;
	row->status = 200;
	row->detail = pstrdup("access token received (not shown)");
}

static void
step_metadata(void *arg, CheckRow *row)
{
	CheckState *cs = arg;
	EpicHttpRequest req;
	EpicHttpResponse resp;
	char	   *url = psprintf("%smetadata", cs->sopts.fhir_url);
	void	   *root;
	const void *v;
	char		buf[64];
	size_t		len = 0;
	const char *version = NULL;
	const char *expect = epic_fhir_version_name(cs->sopts.fhir_version);
	bool		match;

	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.display = "metadata";
	req.accept = cs->sopts.accept;
	req.sopts = &cs->sopts;
	epic_http_perform(epic_connection_http(cs->conn), &req, &resp);
	row->status = (int) resp.status;
	if (resp.status != 200)
		epic_raise_http_error(&resp, "metadata", "reading the CapabilityStatement");
	root = epic_json_parse(resp.body.data, resp.body.len, NULL, 0);
	/* the document is malloc'd by jansson: freed on every path */
	PG_TRY();
	{
		v = root ? epic_jansson_ops.member(root, "fhirVersion") : NULL;
		if (v)
			version = epic_jansson_ops.scalar(v, buf, sizeof(buf), &len);
		if (version == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("the CapabilityStatement has no fhirVersion")));
		match = (strcmp(expect, "STU3") == 0) ? (len >= 2 && strncmp(version, "3.", 2) == 0)
			: (len >= 2 && strncmp(version, "4.", 2) == 0);
		row->ok = match;
		row->detail = psprintf("fhirVersion %.*s %s fhir_version %s", (int) len, version,
							   match ? "matches" : "does not match", expect);
		if (!match)
			row->hint = psprintf("Set the server option fhir_version to '%s'.",
								 strncmp(version, "3.", 2) == 0 ? "STU3" : "R4");
	}
	PG_FINALLY();
	{
		if (root)
			epic_json_free(root);
	}
	PG_END_TRY();
}

PG_FUNCTION_INFO_V1(epic_fdw_check);

/*
 * epic_fdw_check(server name) -> SETOF (step, request, status, duration_ms,
 * ok, detail, hint)
 *
 * For the current user's mapping: discover the token endpoint (unless
 * token_url is set), get a token, read metadata and compare its fhirVersion
 * with the fhir_version option.  Stops at the first failing step.
 */
Datum
epic_fdw_check(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *servername = NameStr(*PG_GETARG_NAME(0));
	CheckState cs;
	CheckRow	row;

	InitMaterializedSRF(fcinfo, 0);
	cs.server = server_for_use(servername);
	cs.um = GetUserMapping(GetUserId(), cs.server->serverid);
	epic_get_server_options(cs.server, &cs.sopts);
	cs.conn = epic_get_connection(cs.um, cs.server);

	memset(&row, 0, sizeof(row));
	row.step = "discovery";
	if (cs.sopts.token_url)
	{
		row.ok = true;
		row.detail = psprintf("token_url is set: %s", cs.sopts.token_url);
		put_row(rsinfo->setResult, rsinfo->setDesc, &row);
	}
	else
	{
		row.request = psprintf("GET %s.well-known/smart-configuration", cs.sopts.fhir_url);
		run_step(step_discovery, &cs, &row);
		put_row(rsinfo->setResult, rsinfo->setDesc, &row);
		if (!row.ok)
			PG_RETURN_NULL();
	}

	memset(&row, 0, sizeof(row));
	row.step = "token";
	row.request = pstrdup("POST token endpoint (client_credentials, signed client assertion)");
	run_step(step_token, &cs, &row);
	put_row(rsinfo->setResult, rsinfo->setDesc, &row);
	if (!row.ok)
		PG_RETURN_NULL();

	memset(&row, 0, sizeof(row));
	row.step = "metadata";
	row.request = psprintf("GET %smetadata", cs.sopts.fhir_url);
	run_step(step_metadata, &cs, &row);
	put_row(rsinfo->setResult, rsinfo->setDesc, &row);
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(epic_fdw_view_ddl);

/*
 * epic_fdw_view_ddl(view_definition jsonb, table_name text, server_name text)
 * returns the CREATE FOREIGN TABLE statement for a ViewDefinition (table
 * name defaults to the view's "name").  The view is compiled first, so an
 * invalid one is reported here, with the position of a FHIRPath error.
 */
Datum
epic_fdw_view_ddl(PG_FUNCTION_ARGS)
{
	char	   *json;
	char	   *table_name;
	char	   *server_name;
	char		errbuf[512];
	int			errpos;
	EpicView   *v;
	char	   *ddl = NULL;
	char	   *volatile comments = NULL;

	/* as if STRICT in these two (table_name NULL means the view's name) */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	json = DatumGetCString(DirectFunctionCall1(jsonb_out, PG_GETARG_DATUM(0)));
	server_name = text_to_cstring(PG_GETARG_TEXT_PP(2));
	v = epic_view_from_text(json, NULL, errbuf, sizeof(errbuf), &errpos);
	if (v == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid ViewDefinition: %s", errbuf)));
	table_name = NULL;
	if (!PG_ARGISNULL(1))
		table_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	else if (v->name != NULL)
		table_name = pstrdup(v->name);
	else
	{
		epic_view_free(v);
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the ViewDefinition has no \"name\": give table_name")));
	}
	PG_TRY();
	{
		/* and a comment per column: its FHIRPath and search parameter */
		comments = epic_view_comments(v, table_name);
	}
	PG_CATCH();
	{
		epic_view_free(v);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ddl = epic_view_ddl_free(v, json, table_name, server_name);
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("%s;\n%s", ddl, comments)));
}

PG_FUNCTION_INFO_V1(epic_fdw_column_comments);

/*
 * epic_fdw_column_comments(regclass) -> SETOF text: COMMENT ON COLUMN
 * statements for an epic_fdw foreign table (each column's FHIRPath and
 * search parameter).  The extension's event trigger runs them after IMPORT
 * FOREIGN SCHEMA, which can only create tables.
 */
Datum
epic_fdw_column_comments(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_GETARG_OID(0);
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	if (!epic_is_own_table(relid))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table of epic_fdw", get_rel_name(relid) ? get_rel_name(relid) : "?")));
	foreach(lc, epic_table_comments(relid))
	{
		Datum		value = CStringGetTextDatum((char *) lfirst(lc));
		bool		isnull = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(epic_fdw_get_connections);

/*
 * epic_fdw_get_connections() -> SETOF (server_name, user_name, valid,
 * token_expires_at, connections, requests): this backend's cached
 * connections, as postgres_fdw_get_connections() lists its own.  A server or
 * mapping dropped since is shown with NULL names.
 */
Datum
epic_fdw_get_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	EpicConnectionInfo *infos;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	n = epic_connection_list(&infos);
	for (int i = 0; i < n; i++)
	{
		EpicConnectionInfo *info = &infos[i];
		ForeignServer *server = GetForeignServerExtended(info->serverid, FSV_MISSING_OK);
		HeapTuple	tp = SearchSysCache1(USERMAPPINGOID, ObjectIdGetDatum(info->umid));
		Datum		values[6];
		bool		nulls[6] = {false};

		values[0] = server ? CStringGetTextDatum(server->servername) : (Datum) 0;
		nulls[0] = (server == NULL);
		if (HeapTupleIsValid(tp))
		{
			Oid			umuser = ((Form_pg_user_mapping) GETSTRUCT(tp))->umuser;

			values[1] = CStringGetTextDatum(OidIsValid(umuser) ?
											GetUserNameFromId(umuser, false) : "public");
			ReleaseSysCache(tp);
		}
		else
			nulls[1] = true;
		values[2] = BoolGetDatum(info->valid);
		if (info->token_expires_at != 0)
			values[3] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) info->token_expires_at));
		else
			nulls[3] = true;
		values[4] = Int32GetDatum(info->connections);
		values[5] = Int64GetDatum(info->requests);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_NULL();
}

PG_FUNCTION_INFO_V1(epic_fdw_disconnect);

/*
 * epic_fdw_disconnect(server name) -> boolean: close this backend's cached
 * connections to the server (TCP connections and tokens); true if any was
 * closed.  One in use by an open scan is kept, with a WARNING.
 */
Datum
epic_fdw_disconnect(PG_FUNCTION_ARGS)
{
	ForeignServer *server = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);

	PG_RETURN_BOOL(epic_connection_disconnect(server->serverid));
}

PG_FUNCTION_INFO_V1(epic_fdw_disconnect_all);

/* epic_fdw_disconnect_all() -> boolean: as epic_fdw_disconnect, every server. */
Datum
epic_fdw_disconnect_all(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(epic_connection_disconnect(InvalidOid));
}
