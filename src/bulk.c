/*-------------------------------------------------------------------------
 *
 * bulk.c
 *		FHIR Bulk Data export as a source of resources: the whole job of one
 *		bulk table's scan (table option bulk_group).
 *
 *   kick-off   GET Group/{id}/$export?_type=T[&_since=I] with
 *              Prefer: respond-async; 202 and Content-Location expected
 *   polling    GET the status URL exactly as given, honouring Retry-After
 *              (else exponential backoff with jitter, capped), until 200
 *              with the manifest; bulk_timeout bounds the wait
 *   manifest   transactionTime, requiresAccessToken, output[] of the
 *              table's type, error[] (OperationOutcomes: one WARNING per
 *              distinct issue, or an ERROR with bulk_errors 'error'),
 *              deleted[] (Bundles of DELETE entries: the ids are kept for
 *              epic_fdw_last_export)
 *   files      downloaded max_concurrency at a time through http.c into
 *              unlinked temporary files (curl decodes gzip), then read back
 *              in chunks of whole lines, each chunk one EpicPage of the page
 *              parser: memory stays flat whatever the file size.  A rescan
 *              re-reads the same files; it never starts a new export.
 *   clean-up   the status URL is DELETEd once every file was read, and when
 *              the scan ends early, fails or is cancelled: that last case
 *              runs during transaction abort (a memory context callback),
 *              so it uses epic_http_delete_quiet(), which never raises and
 *              is bounded by EPIC_BULK_DELETE_TIMEOUT_MS.
 *
 * The bearer token goes to a file URL only when the manifest says
 * requiresAccessToken and the URL has the FHIR server's origin; a file on
 * another origin that needs the token is an error (42501), and with
 * requiresAccessToken false files are fetched without credentials.
 *
 * SQLSTATEs: a rejected kick-off or failed job: the HTTP status's (see
 * epic_http_status_errcode); bulk_timeout: HV00M; a token-requiring file on
 * another origin: 42501; an expired file (404/410): HV00R; bulk_errors
 * 'error': HV000; a malformed manifest or file: HV004.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"
#include "bulk.h"

#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "json_page.h"

#define J (&epic_jdoc_ops)

#define EPIC_BULK_DELETE_TIMEOUT_MS 3000
#define EPIC_BULK_CHUNK (1024 * 1024)	/* bytes read from a file at a time */
#define EPIC_BULK_BACKOFF_BASE 1.0
#define EPIC_BULK_BACKOFF_CAP 60.0

typedef struct BulkFile
{
	char	   *url;
	int			fd;				/* unlinked temporary file, or -1 */
	bool		downloaded;
	MemoryContext xcxt;			/* the running download, or NULL */
	EpicFhirAsync *async;		/* NULL: not started in the background */
} BulkFile;

struct EpicBulkJob
{
	MemoryContext cxt;
	EpicConnection *conn;
	UserMapping *um;
	EpicTable  *table;
	EpicScanStats *stats;
	char	   *request;		/* relative kick-off request */
	char	   *status_url;		/* absolute; NULL before the kick-off */
	char	   *ca_file;
	bool		cleaned;		/* DELETE sent (or nothing to clean) */
	bool		requires_token;
	int			nfiles;
	BulkFile   *files;
	int			cur;			/* file being read */
	char	   *buf;			/* read buffer */
	size_t		bufsize;
	size_t		buflen;			/* bytes in buf */
	bool		eof;			/* cur's fd is exhausted */
	int64		resources;
	EpicBulkExport *record;		/* the session's record for this table */
	MemoryContextCallback cb;
};

/* ------------------------------------------------------------------------
 * The session's record of the last export per table (epic_fdw_last_export)
 * ------------------------------------------------------------------------
 */
static HTAB *last_exports = NULL;

static EpicBulkExport *
export_record(Oid relid)
{
	bool		found;
	EpicBulkExport *r;

	if (last_exports == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(EpicBulkExport);
		ctl.hcxt = TopMemoryContext;
		last_exports = hash_create("epic_fdw last exports", 16, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	r = hash_search(last_exports, &relid, HASH_ENTER, &found);
	if (found && r->cxt != NULL)
		MemoryContextDelete(r->cxt);
	memset(r, 0, sizeof(*r));
	r->relid = relid;
	r->cxt = AllocSetContextCreate(TopMemoryContext, "epic_fdw last export",
								   ALLOCSET_SMALL_SIZES);
	return r;
}

/* ------------------------------------------------------------------------
 * Clean-up
 * ------------------------------------------------------------------------
 */

/* DELETE the status URL once (never raises: may run during abort). */
static void
send_delete(EpicBulkJob *job)
{
	long		status;

	if (job->cleaned || job->status_url == NULL)
		return;
	job->cleaned = true;
	status = epic_http_delete_quiet(job->status_url, epic_connection_token(job->conn),
									job->ca_file, EPIC_BULK_DELETE_TIMEOUT_MS);
	if (job->stats)
		job->stats->requests++;
	(void) status;
}

/* Memory context callback: the scan ended, failed or was cancelled. */
static void
job_reset_cb(void *arg)
{
	EpicBulkJob *job = arg;

	send_delete(job);
	for (int i = 0; i < job->nfiles; i++)
		if (job->files[i].fd >= 0)
		{
			close(job->files[i].fd);
			job->files[i].fd = -1;
		}
}

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------
 */

/* The request as errors show it: relative to the FHIR base when it is there. */
static const char *
shown(EpicBulkJob *job, const char *url)
{
	const char *base = job->table->sopts.fhir_url;
	size_t		blen = strlen(base);

	return strncmp(url, base, blen) == 0 ? url + blen : url;
}

/* A string member of a jdoc object, palloc'd, or NULL. */
static char *
jstring(const void *obj, const char *name)
{
	const void *v = obj ? J->member(obj, name) : NULL;
	char		tmp[64];
	size_t		len;
	const char *s;

	if (v == NULL || J->kind(v) != EPIC_JSON_STRING)
		return NULL;
	s = J->scalar(v, tmp, sizeof(tmp), &len);
	return s ? pnstrdup(s, len) : NULL;
}

/* An unlinked temporary file in the database's temporary directory. */
static int
temp_file(void)
{
	char		path[MAXPGPATH];
	static int	seq = 0;
	int			fd;

	(void) MakePGDirectory(PG_TEMP_FILES_DIR);
	snprintf(path, sizeof(path), "%s/%s%d.epic_bulk.%d", PG_TEMP_FILES_DIR,
			 PG_TEMP_FILE_PREFIX, MyProcPid, seq++);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_EXCL | PG_BINARY, 0600);
	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create temporary file \"%s\" for a Bulk Data file: %m", path)));
	unlink(path);
	return fd;
}

/*
 * May the token go to url?  Only with the FHIR server's origin; a file that
 * needs it elsewhere is an error.
 */
static void
check_file_url(EpicBulkJob *job, const char *url, const char *what)
{
	if (!epic_url_is_https(url))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("Bulk Data manifest has a %s URL that is not https://", what),
				 errdetail("URL: \"%s\".", url),
				 errcontext("Bulk Data export: GET %s", job->request)));
	if (job->requires_token && !epic_url_same_origin(url, job->table->sopts.fhir_url))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("Bulk Data %s is on another origin but requires the access token", what),
				 errdetail("The manifest says requiresAccessToken, and \"%s\" does not share scheme, host and port "
						   "with fhir_url; epic_fdw sends the access token only to the FHIR server.", url),
				 errcontext("Bulk Data export: GET %s", job->request)));
}

static EpicFhirCall
file_call(EpicBulkJob *job, int fd)
{
	EpicFhirCall call;

	memset(&call, 0, sizeof(call));
	call.accept = "application/fhir+ndjson";
	call.no_token = !job->requires_token;
	if (fd >= 0)
	{
		call.sink = true;
		call.sink_fd = fd;
	}
	return call;
}

/* Raise the error of a failed file download. */
static void
file_failed(EpicBulkJob *job, EpicHttpResponse *resp, const char *url)
{
	if (resp->status == 404 || resp->status == 410)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_TABLE_NOT_FOUND),
				 errmsg("Bulk Data file has expired or is gone: HTTP status %ld", resp->status),
				 errdetail("%s", epic_outcome_text(resp->body.data, resp->body.len) ?
						   epic_outcome_text(resp->body.data, resp->body.len) : "The server no longer has the file."),
				 errhint("Run the query again: it starts a new export."),
				 errcontext("FHIR request: GET %s", shown(job, url))));
	epic_raise_http_error(resp, shown(job, url), "Bulk Data file download");
}

/* A small file (error or deleted list) in memory, as a page of type rtype. */
static EpicPage *
small_file(EpicBulkJob *job, const char *url, const char *what, const char *rtype)
{
	EpicHttpResponse resp;
	EpicFhirCall call = file_call(job, -1);

	check_file_url(job, url, what);
	epic_fhir_call(job->conn, job->um, &job->table->sopts, &call, url, shown(job, url),
				   &resp, job->stats);
	if (resp.status != 200)
		file_failed(job, &resp, url);
	return epic_page_from_ndjson(resp.body.data, resp.body.len, rtype, shown(job, url));
}

/*
 * The resources of the small files (error or deleted lists) that the
 * manifest array arr names, each of type rtype; in the current context.
 */
static List *
small_files(EpicBulkJob *job, const void *arr, const char *what, const char *rtype)
{
	List	   *out = NIL;

	for (size_t i = 0; arr && i < J->size(arr); i++)
	{
		char	   *url = jstring(J->item(arr, i), "url");
		EpicPage   *page;

		if (url == NULL)
			continue;
		page = small_file(job, url, what, rtype);
		for (int r = 0; r < epic_page_count(page); r++)
			out = lappend(out, (void *) epic_page_resource(page, r));
	}
	return out;
}

/* ------------------------------------------------------------------------
 * Kick-off, polling, manifest
 * ------------------------------------------------------------------------
 */

/* Kick the export off; sets job->status_url. */
static void
kick_off(EpicBulkJob *job)
{
	EpicHttpResponse resp;
	EpicFhirCall call;
	char	   *url = psprintf("%s%s", job->table->sopts.fhir_url, job->request);

	memset(&call, 0, sizeof(call));
	call.accept = "application/fhir+json";
	call.prefer = "respond-async";
	epic_fhir_call(job->conn, job->um, &job->table->sopts, &call, url, job->request,
				   &resp, job->stats);
	if (resp.status != 202)
		epic_raise_http_error(&resp, job->request, "Bulk Data export kick-off");
	if (resp.content_location == NULL || !epic_url_is_https(resp.content_location))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("Bulk Data kick-off answered 202 without an https:// Content-Location"),
				 errcontext("Bulk Data export: GET %s", job->request)));
	if (!epic_url_same_origin(resp.content_location, job->table->sopts.fhir_url))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("Bulk Data status URL is on another origin"),
				 errdetail("\"%s\" does not share scheme, host and port with fhir_url; "
						   "epic_fdw sends the access token only to the FHIR server.",
						   resp.content_location),
				 errcontext("Bulk Data export: GET %s", job->request)));
	job->status_url = MemoryContextStrdup(job->cxt, resp.content_location);
}

/* Poll the status URL until the manifest comes; returns its response. */
static void
poll_status(EpicBulkJob *job, EpicHttpResponse *resp)
{
	int			timeout = job->table->topts.bulk_timeout > 0 ?
		job->table->topts.bulk_timeout : job->table->sopts.bulk_timeout;
	TimestampTz deadline = GetCurrentTimestamp() + (TimestampTz) timeout * USECS_PER_SEC;
	EpicFhirCall call;
	const char *display = shown(job, job->status_url);

	memset(&call, 0, sizeof(call));
	call.accept = "application/json";
	for (int attempt = 0;; attempt++)
	{
		double		wait;
		double		left;

		epic_fhir_call(job->conn, job->um, &job->table->sopts, &call, job->status_url,
					   display, resp, job->stats);
		if (resp->status == 200)
			return;
		if (resp->status != 202)
			epic_raise_http_error(resp, display, "Bulk Data export");

		/* the server's X-Progress goes into the epic_fdw.progress NOTICEs */
		elog(DEBUG1, "epic_fdw: Bulk Data export in progress%s%s",
			 resp->x_progress ? ": " : "", resp->x_progress ? resp->x_progress : "");
		if (epic_progress)
		{
			char		text[256];

			snprintf(text, sizeof(text), "Bulk Data export in progress%s%.200s",
					 resp->x_progress ? ": " : "", resp->x_progress ? resp->x_progress : "");
			epic_progress_set_extra(text);
		}

		wait = epic_http_retry_after(resp->retry_after);
		if (wait < 0)
		{
			wait = Min(EPIC_BULK_BACKOFF_CAP, EPIC_BULK_BACKOFF_BASE * pow(2.0, Min(attempt, 10)));
			wait *= 0.5 + 0.5 * pg_prng_double(&pg_global_prng_state);
		}
		left = (double) (deadline - GetCurrentTimestamp()) / USECS_PER_SEC;
		if (left <= 0 || wait > left)
		{
			if (left > 0)
				epic_backoff_sleep(left);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_REPLY),
					 errmsg("Bulk Data export did not complete within bulk_timeout (%d s)", timeout),
					 resp->x_progress ? errdetail("Last progress reported: %s.", resp->x_progress) : 0,
					 errhint("Raise the table or server option \"bulk_timeout\"; the export job was cancelled."),
					 errcontext("Bulk Data export: GET %s", job->request)));
		}
		pfree(resp->body.data);
		epic_backoff_sleep(wait);
	}
}

/* One distinct issue of the error files, and how many times it came. */
typedef struct BulkIssue
{
	char	   *key;			/* severity|code|text */
	char	   *text;			/* as the WARNING shows it */
	int			count;
} BulkIssue;

/* The manifest's error files: one WARNING per distinct issue, or an ERROR. */
static int
report_errors(EpicBulkJob *job, const void *errors)
{
	List	   *issues_seen = NIL;	/* BulkIssue * */
	int			total = 0;
	ListCell   *lc;
	List	   *outcomes = small_files(job, errors, "error file", "OperationOutcome");

	foreach(lc, outcomes)
	{
		const void *issues = J->member(lfirst(lc), "issue");

		total++;
		for (size_t k = 0; issues && k < J->size(issues); k++)
		{
			const void *issue = J->item(issues, k);
			char	   *sev = jstring(issue, "severity");
			char	   *code = jstring(issue, "code");
			char	   *diag = jstring(issue, "diagnostics");
			char	   *key;
			BulkIssue  *found = NULL;
			ListCell   *c;

			if (diag == NULL)
				diag = jstring(J->member(issue, "details"), "text");
			key = psprintf("%s|%s|%s", sev ? sev : "", code ? code : "", diag ? diag : "");
			foreach(c, issues_seen)
			{
				BulkIssue  *bi = lfirst(c);

				if (strcmp(bi->key, key) == 0)
					found = bi;
			}
			if (found == NULL)
			{
				found = palloc0(sizeof(BulkIssue));
				found->key = key;
				found->text = psprintf("%s (severity %s, code %s)",
									   diag ? diag : "(issue without text)",
									   sev ? sev : "(none)", code ? code : "(none)");
				issues_seen = lappend(issues_seen, found);
			}
			found->count++;
		}
	}
	if (total > 0 && job->table->topts.bulk_errors_fatal)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("Bulk Data export reported %d resource(s) that could not be exported", total),
				 issues_seen ? errdetail("First issue: %s.",
										 ((BulkIssue *) linitial(issues_seen))->text) : 0,
				 errhint("With the table option bulk_errors 'warn' these become warnings."),
				 errcontext("Bulk Data export: GET %s", job->request)));
	foreach(lc, issues_seen)
	{
		BulkIssue  *bi = lfirst(lc);

		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("Bulk Data export: %s", bi->text),
				 errdetail("%d issue(s) like this in the export's error files.", bi->count)));
	}
	return total;
}

/* The ids of the table's type in the manifest's deleted files. */
static List *
read_deleted(EpicBulkJob *job, const void *deleted)
{
	List	   *ids = NIL;
	size_t		rlen = strlen(job->table->resource);
	List	   *bundles = small_files(job, deleted, "deleted file", "Bundle");
	ListCell   *lc;

	foreach(lc, bundles)
	{
		const void *entries = J->member(lfirst(lc), "entry");

		for (size_t k = 0; entries && k < J->size(entries); k++)
		{
			char	   *ref = jstring(J->member(J->item(entries, k), "request"), "url");
			char	   *slash;

			if (ref == NULL)
				continue;
			/* "Type/id", possibly absolute or with _history */
			slash = strstr(ref, "/_history");
			if (slash)
				*slash = '\0';
			slash = strrchr(ref, '/');
			if (slash == NULL || slash - ref < (long) rlen ||
				strncmp(slash - rlen, job->table->resource, rlen) != 0 ||
				(slash - rlen != ref && slash[-(long) rlen - 1] != '/'))
				continue;
			ids = lappend(ids, pstrdup(slash + 1));
		}
	}
	return ids;
}

/* Read the manifest: files of the table's type, errors, deleted ids. */
static void
read_manifest(EpicBulkJob *job, EpicHttpResponse *resp)
{
	char		errbuf[200];
	EpicJdoc   *doc = epic_jdoc_parse(resp->body.data, resp->body.len, errbuf, sizeof(errbuf));
	const void *root;
	const void *output;
	const void *rat;
	char	   *tt;
	List	   *urls = NIL;
	ListCell   *lc;
	EpicBulkExport *rec;
	MemoryContext old;
	int			i;

	if (doc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("Bulk Data manifest is not valid JSON"),
				 errdetail("%s.", errbuf),
				 errcontext("Bulk Data export: GET %s", job->request)));
	PG_TRY();
	{
		root = epic_jdoc_root(doc);
		tt = jstring(root, "transactionTime");
		output = J->member(root, "output");
		if (J->kind(root) != EPIC_JSON_OBJECT || tt == NULL ||
			output == NULL || J->kind(output) != EPIC_JSON_ARRAY)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("Bulk Data manifest lacks transactionTime or output"),
					 errcontext("Bulk Data export: GET %s", job->request)));
		rat = J->member(root, "requiresAccessToken");
		/* absent or not false: treat as true (the token stays on our origin) */
		job->requires_token = !(rat && J->kind(rat) == EPIC_JSON_FALSE);
		for (size_t k = 0; k < J->size(output); k++)
		{
			const void *o = J->item(output, k);
			char	   *type = jstring(o, "type");
			char	   *url = jstring(o, "url");

			if (url == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("Bulk Data manifest has an output entry without url"),
						 errcontext("Bulk Data export: GET %s", job->request)));
			if (type != NULL && strcmp(type, job->table->resource) == 0)
			{
				check_file_url(job, url, "file");
				urls = lappend(urls, url);
			}
		}
		rec = export_record(job->table->relid);
		job->record = rec;
		rec->transaction_time = DatumGetTimestampTz(DirectFunctionCall3(timestamptz_in,
																		CStringGetDatum(tt),
																		ObjectIdGetDatum(InvalidOid),
																		Int32GetDatum(-1)));
		old = MemoryContextSwitchTo(rec->cxt);
		rec->request = pstrdup(job->request);
		MemoryContextSwitchTo(old);
		rec->files = list_length(urls);
		rec->errors = report_errors(job, J->member(root, "error"));
		{
			List	   *del = read_deleted(job, J->member(root, "deleted"));

			old = MemoryContextSwitchTo(rec->cxt);
			rec->ndeleted = list_length(del);
			rec->deleted = palloc(sizeof(char *) * Max(1, rec->ndeleted));
			i = 0;
			foreach(lc, del)
				rec->deleted[i++] = pstrdup(lfirst(lc));
			MemoryContextSwitchTo(old);
		}
	}
	PG_FINALLY();
	{
		epic_jdoc_free(doc);
	}
	PG_END_TRY();

	old = MemoryContextSwitchTo(job->cxt);
	job->nfiles = list_length(urls);
	job->files = palloc0(sizeof(BulkFile) * Max(1, job->nfiles));
	i = 0;
	foreach(lc, urls)
	{
		job->files[i].url = pstrdup(lfirst(lc));
		job->files[i].fd = -1;
		i++;
	}
	MemoryContextSwitchTo(old);
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------
 */

/* Start the downloads of files cur.. in the background, max_concurrency at a time. */
static void
start_downloads(EpicBulkJob *job)
{
	int			limit = Max(1, job->table->sopts.max_concurrency);
	int			running = 0;

	for (int i = job->cur; i < job->nfiles && running < limit; i++)
	{
		BulkFile   *f = &job->files[i];
		MemoryContext old;
		EpicFhirCall call;

		if (f->downloaded)
			continue;
		if (f->xcxt != NULL)
		{
			running++;
			continue;
		}
		if (f->fd < 0)
			f->fd = temp_file();
		f->xcxt = AllocSetContextCreate(job->cxt, "epic_fdw bulk file", ALLOCSET_SMALL_SIZES);
		old = MemoryContextSwitchTo(f->xcxt);
		call = file_call(job, f->fd);
		f->async = epic_fhir_start_call(job->conn, job->um, &job->table->sopts, &call,
										f->url, shown(job, f->url));
		MemoryContextSwitchTo(old);
		running++;
	}
}

/* Wait for file i to be downloaded (retried as any FHIR request). */
static void
finish_download(EpicBulkJob *job, int i)
{
	BulkFile   *f = &job->files[i];
	EpicHttpResponse resp;
	MemoryContext old;

	if (f->downloaded)
		return;
	if (f->xcxt == NULL)
	{
		if (f->fd < 0)
			f->fd = temp_file();
		f->xcxt = AllocSetContextCreate(job->cxt, "epic_fdw bulk file", ALLOCSET_SMALL_SIZES);
	}
	old = MemoryContextSwitchTo(f->xcxt);
	if (f->async != NULL)
		epic_fhir_finish(job->conn, job->um, &job->table->sopts, f->async, f->url,
						 shown(job, f->url), &resp, job->stats);
	else
	{
		EpicFhirCall call = file_call(job, f->fd);

		epic_fhir_call(job->conn, job->um, &job->table->sopts, &call, f->url,
					   shown(job, f->url), &resp, job->stats);
	}
	if (resp.status != 200)
		file_failed(job, &resp, f->url);
	job->stats->bytes += resp.sink_bytes;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(f->xcxt);
	f->xcxt = NULL;
	f->async = NULL;
	f->downloaded = true;
}

/* Make file job->cur the one read from its start. */
static void
open_current(EpicBulkJob *job)
{
	BulkFile   *f = &job->files[job->cur];

	finish_download(job, job->cur);
	if (lseek(f->fd, 0, SEEK_SET) < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not seek in a Bulk Data temporary file: %m")));
	job->buflen = 0;
	job->eof = false;
	start_downloads(job);
}

/* ------------------------------------------------------------------------
 * Interface
 * ------------------------------------------------------------------------
 */

/*
 * Run the export of request (relative: Group/ID/$export?_type=...) for
 * table t up to its manifest.  The job lives in a new child context of the
 * current memory context; deleting that context (the scan's end, an error,
 * a cancel) DELETEs the job and closes its files.
 */
EpicBulkJob *
epic_bulk_begin(EpicConnection *conn, UserMapping *um, EpicTable *t, const char *request,
				EpicScanStats *stats)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "epic_fdw bulk job",
											  ALLOCSET_DEFAULT_SIZES);
	EpicBulkJob *job = MemoryContextAllocZero(cxt, sizeof(EpicBulkJob));
	EpicHttpResponse resp;
	MemoryContext old;

	job->cxt = cxt;
	job->conn = conn;
	job->um = um;
	job->table = t;
	job->stats = stats;
	job->request = MemoryContextStrdup(cxt, request);
	job->ca_file = t->sopts.ca_file ? MemoryContextStrdup(cxt, t->sopts.ca_file) : NULL;
	job->cur = 0;
	job->cb.func = job_reset_cb;
	job->cb.arg = job;
	MemoryContextRegisterResetCallback(cxt, &job->cb);

	old = MemoryContextSwitchTo(cxt);
	kick_off(job);
	poll_status(job, &resp);
	read_manifest(job, &resp);
	pfree(resp.body.data);
	job->bufsize = EPIC_BULK_CHUNK;
	job->buf = palloc(job->bufsize);
	MemoryContextSwitchTo(old);
	if (job->nfiles > 0)
		open_current(job);
	else
		send_delete(job);
	return job;
}

/*
 * The next chunk of resources (a page in the current memory context), or
 * NULL when every file was read (the job is then DELETEd).
 */
EpicPage *
epic_bulk_next_page(EpicBulkJob *job)
{
	Size		limit = Min((Size) job->table->sopts.max_response_size, MaxAllocSize - 1);

	for (;;)
	{
		size_t		end;
		EpicPage   *page;
		const char *display;

		if (job->cur >= job->nfiles)
		{
			send_delete(job);
			return NULL;
		}
		display = shown(job, job->files[job->cur].url);
		CHECK_FOR_INTERRUPTS();
		epic_fhir_poll(job->conn);	/* keep the other downloads going */

		/* fill the buffer after what is left of the last chunk */
		while (!job->eof && job->buflen < job->bufsize)
		{
			ssize_t		n = read(job->files[job->cur].fd, job->buf + job->buflen,
								 job->bufsize - job->buflen);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				ereport(ERROR,
						(errcode_for_file_access(),
						 errmsg("could not read a Bulk Data temporary file: %m")));
			if (n == 0)
				job->eof = true;
			job->buflen += n;
		}
		if (job->buflen == 0 && job->eof)
		{
			/* this file is done: the next one */
			job->cur++;
			if (job->cur < job->nfiles)
				open_current(job);
			continue;
		}
		/* whole lines only: up to the last '\n' (or all of it at the end) */
		end = job->buflen;
		if (!job->eof)
		{
			while (end > 0 && job->buf[end - 1] != '\n')
				end--;
			if (end == 0)
			{
				/* one line longer than the buffer: grow it, within limits */
				if (job->bufsize >= limit)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("Bulk Data file has a line longer than max_response_size (%zu bytes)",
									(size_t) limit),
							 errcontext("FHIR request: GET %s", display)));
				job->bufsize = Min(job->bufsize * 2, limit);
				job->buf = repalloc(job->buf, job->bufsize);
				continue;
			}
		}
		page = epic_page_from_ndjson(job->buf, end, job->table->resource, display);
		memmove(job->buf, job->buf + end, job->buflen - end);
		job->buflen -= end;
		if (epic_page_count(page) == 0)
			continue;
		job->resources += epic_page_count(page);
		if (job->record)
			job->record->resources = job->resources;
		job->stats->pages++;
		job->stats->resources += epic_page_count(page);
		if (epic_progress)
		{
			char		text[128];

			snprintf(text, sizeof(text), "Bulk Data files: reading %d of %d, " INT64_FORMAT " resources",
					 job->cur + 1, job->nfiles, job->resources);
			epic_progress_set_extra(text);
			epic_progress_request(job->stats);
		}
		return page;
	}
}

/* Read the same files again from the first (a rescan). */
void
epic_bulk_rewind(EpicBulkJob *job)
{
	job->cur = 0;
	job->resources = 0;
	if (job->nfiles > 0)
		open_current(job);
}

/* End the job: DELETE it if not done yet, close and free everything. */
void
epic_bulk_end(EpicBulkJob *job)
{
	MemoryContextDelete(job->cxt);
}

/* The files of the table's type in the manifest. */
int
epic_bulk_files(EpicBulkJob *job)
{
	return job->nfiles;
}

/*
 * The kick-off request of a bulk table (relative, palloc'd):
 * Group/{group}/$export?_type={resource}[&_since={since}].
 */
char *
epic_bulk_request(const char *group, const char *resource, const char *since)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "Group/");
	epic_append_urlencoded(&buf, group);
	appendStringInfoString(&buf, "/$export?_type=");
	epic_append_urlencoded(&buf, resource);
	if (since != NULL)
	{
		appendStringInfoString(&buf, "&_since=");
		epic_append_urlencoded(&buf, since);
	}
	return buf.data;
}

/*
 * The _since value for WHERE last_updated > ts (strict) or >= ts: FHIR's
 * _since means "changed after", so >= sends an earlier instant (one
 * millisecond before; the local recheck keeps the rows exact).
 */
char *
epic_bulk_since_text(TimestampTz ts, bool strict)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;

	if (!strict)
		ts -= 1000;
	if (TIMESTAMP_NOT_FINITE(ts) || timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
		return NULL;
	(void) tz;
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

PG_FUNCTION_INFO_V1(epic_fdw_last_export);

/*
 * epic_fdw_last_export(regclass): the last export this session ran for that
 * table (transaction_time, request, files, resources, errors, deleted), or
 * NULL if none.
 */
Datum
epic_fdw_last_export(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	EpicBulkExport *r = last_exports ? hash_search(last_exports, &relid, HASH_FIND, NULL) : NULL;
	TupleDesc	tupdesc;
	Datum		values[6];
	bool		nulls[6] = {0};
	Datum	   *ids;

	if (r == NULL)
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "epic_fdw_last_export must return a composite type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = TimestampTzGetDatum(r->transaction_time);
	values[1] = CStringGetTextDatum(r->request ? r->request : "");
	values[2] = Int32GetDatum(r->files);
	values[3] = Int64GetDatum(r->resources);
	values[4] = Int32GetDatum(r->errors);
	ids = palloc(sizeof(Datum) * Max(1, r->ndeleted));
	for (int i = 0; i < r->ndeleted; i++)
		ids[i] = CStringGetTextDatum(r->deleted[i]);
	values[5] = PointerGetDatum(construct_array(ids, r->ndeleted, TEXTOID, -1, false, TYPALIGN_INT));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
