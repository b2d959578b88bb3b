/*-------------------------------------------------------------------------
 *
 * epic_fdw.h
 *		Shared declarations of epic_fdw, grouped by the file that defines them.
 *
 * No libcurl, OpenSSL or jansson type appears here: each foreign library
 * stays behind its own file (http.c, auth.c, json_jansson.c).  JSON values
 * travel between modules as opaque "const void *" nodes read through the
 * EpicJsonOps interface declared in fhirpath.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EPIC_FDW_H
#define EPIC_FDW_H

#include "postgres.h"

#include "fmgr.h"
#include "foreign/foreign.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/timestamp.h"

#include "fhirpath.h"
#include "json_jansson.h"
#include "viewdef.h"

/* ------------------------------------------------------------------------
 * options.c
 * ------------------------------------------------------------------------
 */
typedef enum EpicFhirVersion
{
	EPIC_FHIR_STU3 = 1,
	EPIC_FHIR_R4 = 2
} EpicFhirVersion;

#define EPIC_DEFAULT_PAGE_SIZE		100
#define EPIC_DEFAULT_CONNECT_TIMEOUT 10
#define EPIC_DEFAULT_TIMEOUT		60
#define EPIC_DEFAULT_MAX_RETRIES	3
#define EPIC_DEFAULT_MAX_CONCURRENCY 8
#define EPIC_DEFAULT_MAX_RESPONSE_SIZE (100 * 1024 * 1024)
#define EPIC_DEFAULT_MAX_URL_LENGTH 2048
#define EPIC_DEFAULT_BATCH_MEMORY (64 * 1024 * 1024)

typedef struct EpicServerOptions
{
	char	   *fhir_url;		/* https base URL, always ending in '/' */
	char	   *token_url;		/* NULL: discover via smart-configuration */
	EpicFhirVersion fhir_version;
	char	   *scope;			/* NULL: no scope parameter */
	int			page_size;
	int			connect_timeout;	/* seconds */
	int			timeout;		/* seconds, whole request */
	char	   *ca_file;		/* NULL: system trust store only */
	char	   *mrn_system;		/* NULL: MRN found by identifier type */
	bool		or_lists;		/* send IN lists as comma OR lists */
	int			max_retries;	/* retries of a failed request */
	int			max_response_size;	/* bytes */
	bool		send_client_id; /* send Epic-Client-ID */
	char	   *accept;			/* Accept header of FHIR requests */
	char	   *headers;		/* extra headers, JSON object text, or NULL */
	char	   *view_dir;		/* ViewDefinition files to import, or NULL */
	int			max_concurrency;	/* FHIR requests in flight at once */
	int			max_url_length; /* bytes of a request URL epic_fdw builds */
	int			batch_memory;	/* bytes of first pages held by one batch */
	int			bulk_timeout;	/* seconds a Bulk Data export may take */
} EpicServerOptions;

#define EPIC_DEFAULT_BULK_TIMEOUT 21600

typedef struct EpicUserOptions
{
	char	   *client_id;
	char	   *private_key;	/* inline PEM, or NULL */
	char	   *private_key_file;	/* path, or NULL */
	char	   *key_id;
	char	   *algorithm;		/* "RS384" or "ES384" */
	char	   *jku;
	char	   *headers;		/* secret extra headers, JSON object text */
} EpicUserOptions;

typedef struct EpicTableOptions
{
	char	   *resource;		/* NULL: derive from the table name */
	char	   *search;			/* fixed search parameters, or NULL */
	double		rows;			/* estimated resources in all; 0 = default */
	char	   *view_definition;	/* ViewDefinition JSON, or NULL */
	char	   *bulk_group;		/* Bulk Data export of this Group, or NULL */
	int			bulk_timeout;	/* seconds; 0: the server's */
	bool		bulk_errors_fatal;	/* bulk_errors 'error' */
} EpicTableOptions;

extern void epic_get_server_options(ForeignServer *server, EpicServerOptions *opts);
extern void epic_get_user_options(UserMapping *um, EpicUserOptions *opts);
extern void epic_get_table_options(ForeignTable *table, EpicTableOptions *opts);
extern char *epic_get_column_option(Oid relid, AttrNumber attnum, const char *name);
extern const char *epic_fhir_version_name(EpicFhirVersion v);

/* ------------------------------------------------------------------------
 * catalog.c: built-in table definitions, as data
 * ------------------------------------------------------------------------
 */

/* Search parameter types (FHIR R4 §3.1.1.4) that pushdown knows about. */
typedef enum EpicSearchType
{
	EPIC_SP_NONE = 0,
	EPIC_SP_TOKEN,
	EPIC_SP_STRING,
	EPIC_SP_STRING_WORD,		/* string; only the value's first word is sent
								 * (the column joins several FHIR strings) */
	EPIC_SP_DATE,				/* a FHIR date element: day ranges, exact */
	EPIC_SP_DATETIME,			/* dateTime/Period/instant: bounds widened */
	EPIC_SP_REFERENCE,
	EPIC_SP_SPECIAL_ID,			/* _id */
	EPIC_SP_MRN					/* identifier=<mrn_system>|value */
} EpicSearchType;

extern bool epic_parse_search_param(const char *value, char **name, EpicSearchType *type);
extern bool epic_headers_valid(const char *json, char *errbuf, size_t errlen);
extern EpicView *epic_view_from_text(const char *json, const char *mrn_system,
									 char *errbuf, size_t errlen, int *errpos);

/* A built-in table's ViewDefinition (views/NAME.json, embedded at build time). */
typedef struct EpicBuiltinView
{
	const char *file;
	const char *json;
} EpicBuiltinView;

extern const EpicBuiltinView epic_builtin_views[];	/* ends with {NULL, NULL} */

/* The built-in table named name (or of that resource type) for a version. */
extern const char *epic_catalog_by_table(const char *table_name, EpicFhirVersion v);
extern const char *epic_catalog_by_resource(const char *resource, EpicFhirVersion v);
/* The n-th built-in table of a version (0-based): its name, NULL past the end. */
extern const char *epic_catalog_nth(int n, EpicFhirVersion v, const char **json);
extern char *epic_catalog_table_names(EpicFhirVersion v);

/*
 * EpicTable: everything known about one foreign table, resolved from its
 * options, its columns and its ViewDefinition (the view_definition option,
 * a built-in table's, or one made of the columns' path options).  Built by
 * epic_table_resolve() in catalog.c for the planner and again for the
 * executor.
 */
typedef struct EpicColumn
{
	AttrNumber	attnum;
	char	   *name;			/* NULL for a dropped column */
	Oid			atttypid;
	int32		atttypmod;
	int			slot;			/* the view's output slot */
	const EpicViewColumn *vcol; /* the view column (first instance) */
	EpicJsonKind json_kind;		/* epic_view_type_json_kind of vcol's type */
	const char *search_param;	/* NULL: not searchable */
	EpicSearchType search_type;
	bool		is_array;		/* a collection in an array column */
} EpicColumn;

/*
 * A built-in view with this extension is read, not searched: each value of
 * its required _id parameter is one GET Resource/{id} (Epic offers Group.Read
 * only).
 */
#define EPIC_READ_BY_ID_URL "urn:epic_fdw:read-by-id"

typedef struct EpicTable
{
	Oid			relid;
	char	   *relname;
	ForeignTable *table;
	ForeignServer *server;
	EpicServerOptions sopts;
	EpicTableOptions topts;
	char	   *resource;
	const char *builtin;		/* built-in table name, or NULL */
	bool		read_by_id;		/* rows come from reads GET Resource/{_id}, not searches */
	EpicView   *view;			/* malloc'd; freed with the memory context */
	int			ncolumns;		/* = relation's natts */
	EpicColumn *columns;		/* indexed by attnum - 1; dropped ones have name NULL */
} EpicTable;

/*
 * Required search parameters: a view's requirement is a name, or alternatives
 * ("category|code") any of which will do.  epic_table_missing_required gives
 * the first requirement names and search do not meet, or NULL;
 * epic_table_param_wanted whether any requirement names it;
 * epic_requirement_text a requirement for messages ("category" or "code").
 */
extern const char *epic_table_missing_required(const EpicTable *t, List *names,
											   const char *search);
extern bool epic_table_param_wanted(const EpicTable *t, const char *name);
extern char *epic_requirement_text(const char *req);
extern char *epic_view_ddl(const EpicView *v, const char *json, const char *table_name,
						   const char *server_name);
extern char *epic_view_ddl_free(EpicView *v, const char *json, const char *table_name,
								const char *server_name);
extern EpicTable *epic_table_resolve(Oid relid);
extern char *epic_view_comments(const EpicView *v, const char *table_name);
extern List *epic_table_comments(Oid relid);
extern bool epic_is_own_table(Oid relid);

/* ------------------------------------------------------------------------
 * import.c: IMPORT FOREIGN SCHEMA fhir / views
 * ------------------------------------------------------------------------
 */
struct ImportForeignSchemaStmt;
extern List *epic_import_foreign_schema(struct ImportForeignSchemaStmt *stmt, Oid serverOid);

/* ------------------------------------------------------------------------
 * deparse.c: pushdown of WHERE conditions into FHIR search parameters
 * ------------------------------------------------------------------------
 */

/* How an SQL value becomes the text of a search value. */
typedef enum EpicValueForm
{
	EPIC_VF_PLAIN = 0,			/* as is */
	EPIC_VF_FIRST_WORD,			/* only its first word */
	EPIC_VF_TS_LOWER,			/* a timestamp, moved two days earlier */
	EPIC_VF_TS_UPPER,			/* a timestamp, moved two days later */
	EPIC_VF_DAY_FLOOR,			/* a timestamp's day (for a date column) */
	EPIC_VF_DAY_CEIL			/* the first day starting at or after it */
} EpicValueForm;

/* What a classified condition does to a scan's requests. */
typedef enum EpicParamRole
{
	EPIC_PR_SEND = 0,			/* a search parameter sent to the server */
	EPIC_PR_NO_MATCH,			/* a constant no row can match (NULL, an empty
								 * or all-NULL array): no request at all */
	EPIC_PR_PROBE				/* not sent (pushdown off, or not searchable):
								 * its run-time value is only checked for
								 * NULL / empty, which means no request */
} EpicParamRole;

/*
 * One search parameter of a request.  Its values are known at plan time
 * (constants: "values" holds them, encoded) or at run time (runtime_index
 * names the fdw_exprs item; is_list when that item is an array).  Several
 * values mean an OR list (FHIR's comma).
 */
typedef struct EpicSearchParam
{
	char	   *name;			/* e.g. "birthdate" */
	List	   *values;			/* encoded values (char *), NIL if runtime */
	int			runtime_index;	/* index into fdw_exprs, or -1 */
	int			param_id;		/* $n of a statement parameter, else 0 */
	bool		is_list;		/* the runtime value is an array */
	char	   *comparator;		/* FHIR prefix such as "ge", or NULL */
	char	   *prefix;			/* encoded text before each value
								 * ("system%7C" for an MRN), or NULL */
	EpicValueForm form;
	EpicParamRole role;
	bool		exact;			/* the server returns exactly the rows the
								 * condition accepts (plan time only) */
	double		anchor_rows;	/* plan time: resources the parameter alone
								 * selects (_id, identifier: one per value;
								 * patient: a few per value), or 0 */
	double		selectivity;	/* plan time: else the share of all
								 * resources it selects */
} EpicSearchParam;

#define EPIC_MAX_PARAMS_PER_QUAL 2

/* Resources of one type a search by one patient is expected to return. */
#define EPIC_PATIENT_ROWS 10.0

extern bool epic_pushdown;		/* GUC epic_fdw.pushdown */
extern bool epic_audit_log;		/* GUC epic_fdw.audit_log */
extern bool epic_audit_log_values;	/* GUC epic_fdw.audit_log_values */

extern int	epic_classify_qual(EpicTable *t, Index relid, Expr *clause,
							   EpicSearchParam *params, Expr **runtime_expr);
extern void epic_append_escaped(StringInfo buf, const char *value);
extern void epic_append_urlencoded(StringInfo buf, const char *value);
extern char *epic_format_value(Datum value, Oid type, EpicValueForm form, bool *ok);
extern char *epic_encode_value(const EpicSearchParam *param, const char *text);
typedef enum EpicEncodeResult
{
	EPIC_ENC_OK = 0,			/* values to send */
	EPIC_ENC_NO_MATCH,			/* NULL, or a list of NULLs: no row can match */
	EPIC_ENC_UNSENDABLE			/* FHIR cannot express it: leave it local */
} EpicEncodeResult;

extern EpicEncodeResult epic_encode_datum(const EpicSearchParam *param, Datum value, Oid type,
										  bool isnull, List **out);
extern List *epic_build_queries(const char *resource, const char *fixed_search,
								List *params, List **runtime_values, int count,
								bool or_lists);
extern int	epic_param_cmp(const ListCell *a, const ListCell *b);
extern List *epic_build_queries_packed(const char *resource, const char *fixed_search,
									   List *params, List **runtime_values, int count,
									   bool or_lists, const char *base, int max_url);
extern List *epic_build_reads(const char *resource, List *params, List **runtime_values);
extern bool epic_search_has_param(const char *search, const char *name);
extern char *epic_redact_query(const char *request);
extern List *epic_param_to_list(EpicSearchParam *p);
extern EpicSearchParam *epic_param_from_list(List *l);

/* ------------------------------------------------------------------------
 * http.c: the only file that includes curl.h
 * ------------------------------------------------------------------------
 */
typedef struct EpicHttpClient EpicHttpClient;	/* opaque; malloc'd */

typedef struct EpicHttpResponse
{
	long		status;
	StringInfoData body;
	char	   *content_type;	/* palloc'd, or NULL */
	char	   *www_authenticate;	/* palloc'd, or NULL */
	char	   *retry_after;	/* palloc'd, or NULL */
	char	   *content_location;	/* palloc'd, or NULL (Bulk Data status URL) */
	char	   *x_progress;		/* palloc'd, or NULL (Bulk Data progress) */
	int64		sink_bytes;		/* bytes written to the request's sink file */
	double		elapsed;		/* seconds */
	int			xfer_error;		/* EpicTransportError, 0 = none */
	int			curl_code;
	char		xfer_detail[256];
	int			attempts;		/* requests made for this response */
} EpicHttpResponse;

typedef enum EpicTransportError
{
	EPIC_XFER_OK = 0,
	EPIC_XFER_TIMEOUT,
	EPIC_XFER_DNS,
	EPIC_XFER_CONNECT,
	EPIC_XFER_TLS,
	EPIC_XFER_RESET,
	EPIC_XFER_OTHER
} EpicTransportError;

typedef struct EpicHttpRequest
{
	const char *method;			/* "GET" or "POST" */
	const char *url;			/* absolute URL */
	const char *display;		/* what errors may show (never secrets) */
	const char *what;			/* "token request" etc.; NULL: "FHIR request" */
	const char *bearer;			/* access token, or NULL */
	const char *form_body;		/* x-www-form-urlencoded body for POST */
	const char *accept;			/* Accept header */
	const char *client_id;		/* sent as Epic-Client-ID when set */
	const char *extra_headers[2];	/* JSON objects of extra headers, or NULL */
	const char *prefer;			/* Prefer header (Bulk Data: respond-async), or NULL */
	bool		sink;			/* a 2xx body goes to sink_fd, not resp->body */
	int			sink_fd;		/* truncated when the body starts */
	const EpicServerOptions *sopts;
} EpicHttpRequest;

extern EpicHttpClient *epic_http_client_create(void);
extern void epic_http_client_counts(EpicHttpClient *client, int *sockets, int64 *requests);
#ifdef EPIC_FAULT_INJECTION
extern void epic_http_define_fault_gucs(void);
#endif
extern void epic_http_client_destroy(EpicHttpClient *client);
typedef struct EpicHttpXfer EpicHttpXfer;	/* one transfer; palloc'd */

extern bool epic_http_try(EpicHttpClient *client, const EpicHttpRequest *req,
						  EpicHttpResponse *resp);
extern EpicHttpXfer *epic_http_start(EpicHttpClient *client, const EpicHttpRequest *req,
									 EpicHttpResponse *resp);
extern bool epic_http_done(const EpicHttpXfer *x);
extern void epic_http_poll(EpicHttpClient *client);
extern void epic_http_wait(EpicHttpClient *client, EpicHttpXfer **xfers, int n, bool any);
extern void epic_http_sleep(EpicHttpClient *client, double secs);
extern bool epic_http_finish(EpicHttpXfer *x);
extern void epic_http_abort(EpicHttpXfer *x);
extern void epic_http_perform(EpicHttpClient *client, const EpicHttpRequest *req,
							  EpicHttpResponse *resp);
extern void epic_http_raise_transport_error(const EpicHttpRequest *req,
											const EpicHttpResponse *resp);
extern double epic_http_retry_after(const char *value);
extern int	epic_http_status_errcode(long status);
extern bool epic_url_same_origin(const char *a, const char *b);
extern long epic_http_delete_quiet(const char *url, const char *bearer, const char *ca_file,
								   long timeout_ms);
extern bool epic_url_is_https(const char *url);

/* ------------------------------------------------------------------------
 * connection.c: per-backend cache of HTTP clients and tokens
 * ------------------------------------------------------------------------
 */
typedef struct EpicScanStats
{
	int64		requests;
	int64		pages;
	int64		bytes;
	int64		token_requests;
	int64		resources;		/* resources read from pages */
	double		wait_time;		/* seconds spent in HTTP transfers */
	const char *table;			/* for the audit log: foreign table name */
} EpicScanStats;

typedef struct EpicConnection EpicConnection;

/* One cached connection, for epic_fdw_get_connections() */
typedef struct EpicConnectionInfo
{
	Oid			serverid;
	Oid			umid;
	bool		valid;			/* no pending invalidation */
	bool		in_use;			/* an open scan uses it */
	time_t		token_expires_at;	/* 0: no token */
	int			connections;	/* open TCP connections */
	int64		requests;		/* HTTP requests made */
} EpicConnectionInfo;

extern int	epic_connection_list(EpicConnectionInfo **out);
extern bool epic_connection_disconnect(Oid serverid);

extern EpicConnection *epic_get_connection(UserMapping *um, ForeignServer *server);
extern EpicConnection *epic_acquire_connection(UserMapping *um, ForeignServer *server);
extern void epic_release_connection(EpicConnection *conn);
extern EpicHttpClient *epic_connection_http(EpicConnection *conn);
extern const char *epic_connection_token_url(EpicConnection *conn, const EpicServerOptions *sopts,
											 EpicScanStats *stats);
extern void epic_connection_new_token(EpicConnection *conn, UserMapping *um,
									  const EpicServerOptions *sopts, EpicScanStats *stats);
extern char *epic_read_private_key(const EpicUserOptions *uopts);
extern void epic_fhir_get(EpicConnection *conn, UserMapping *um,
						  const EpicServerOptions *sopts,
						  const char *url, const char *display,
						  EpicHttpResponse *resp, EpicScanStats *stats);

typedef struct EpicFhirAsync EpicFhirAsync;

/*
 * How a FHIR request differs from a search page GET (Bulk Data): NULL
 * means a plain GET everywhere this is taken.
 */
typedef struct EpicFhirCall
{
	const char *accept;			/* NULL: the server option "accept" */
	const char *prefer;			/* Prefer header, or NULL */
	bool		no_token;		/* send no bearer token (pre-signed URL) */
	bool		sink;			/* a 2xx body goes to sink_fd */
	int			sink_fd;
} EpicFhirCall;

extern void epic_fhir_call(EpicConnection *conn, UserMapping *um,
						   const EpicServerOptions *sopts, const EpicFhirCall *call,
						   const char *url, const char *display,
						   EpicHttpResponse *resp, EpicScanStats *stats);
extern EpicFhirAsync *epic_fhir_start_call(EpicConnection *conn, UserMapping *um,
										   const EpicServerOptions *sopts,
										   const EpicFhirCall *call,
										   const char *url, const char *display);
extern const char *epic_connection_token(EpicConnection *conn);
extern void epic_backoff_sleep(double secs);

extern EpicFhirAsync *epic_fhir_start(EpicConnection *conn, UserMapping *um,
									  const EpicServerOptions *sopts,
									  const char *url, const char *display);
extern void epic_fhir_poll(EpicConnection *conn);
extern void epic_fhir_abandon(EpicFhirAsync *a, EpicScanStats *stats);
extern void epic_fhir_finish(EpicConnection *conn, UserMapping *um,
							 const EpicServerOptions *sopts, EpicFhirAsync *a,
							 const char *url, const char *display,
							 EpicHttpResponse *resp, EpicScanStats *stats);
extern void epic_fhir_get_many(EpicConnection *conn, UserMapping *um,
							   const EpicServerOptions *sopts, int n, char **urls,
							   char **displays, EpicHttpResponse *resps,
							   EpicScanStats *stats);

/* ------------------------------------------------------------------------
 * bundle.c: search Bundles and OperationOutcomes
 * ------------------------------------------------------------------------
 */
typedef struct EpicPage EpicPage;	/* opaque: a parsed Bundle page */

/* How page nodes (resources and everything in them) are read. */
extern const EpicJsonOps *const epic_page_ops;

typedef struct EpicOutcomeSeen
{
	struct HTAB *keys;			/* issues already reported in this scan */
	MemoryContext cxt;			/* where keys live (as long as the scan) */
	bool		ignored_warned; /* "ignored search parameter" said */
} EpicOutcomeSeen;

extern EpicPage *epic_page_parse(const char *body, size_t len, const char *resource,
								 const char *display);
extern EpicPage *epic_page_parse_read(const char *body, size_t len, const char *resource,
									  const char *id, const char *display);
extern int	epic_page_count(EpicPage *page);
extern const void *epic_page_resource(EpicPage *page, int i);
extern const char *epic_page_next(EpicPage *page);
extern void epic_page_report_outcomes(EpicPage *page, EpicOutcomeSeen *seen,
									  const char *request);
extern void epic_page_free(EpicPage *page);
extern void epic_raise_http_error(const EpicHttpResponse *resp, const char *display,
								  const char *what);
extern char *epic_outcome_text(const char *body, size_t len);
extern EpicPage *epic_page_from_ndjson(const char *text, size_t len, const char *resource,
									   const char *display);

/* ------------------------------------------------------------------------
 * convert.c: JSON items to Datums
 * ------------------------------------------------------------------------
 */
extern Datum epic_convert_cell(const EpicTable *t, const EpicColumn *col,
							   const void *resource, const EpicViewCell *cell,
							   bool *isnull);
extern Datum epic_json_to_jsonb(const void *node);

/* ------------------------------------------------------------------------
 * epic_fdw.c
 * ------------------------------------------------------------------------
 */
extern void _PG_init(void);

/* ------------------------------------------------------------------------
 * progress.c: progress NOTICEs of long scans
 * ------------------------------------------------------------------------
 */
extern bool epic_progress;
extern int	epic_progress_interval;
extern void epic_progress_define_gucs(void);
extern void epic_progress_request(const EpicScanStats *stats);
extern void epic_progress_waiting(int inflight);
extern void epic_progress_set_extra(const char *text);
extern void epic_progress_reset(void);

#endif							/* EPIC_FDW_H */
