/*-------------------------------------------------------------------------
 *
 * scan.c
 *		Execution of epic_fdw's scans (the callbacks in epic_fdw.c are thin):
 *
 *   - one relation: the requests of a (re)scan from its pushed parameters
 *     and run-time values, pages fetched (the next one while the current
 *     one is read, at most one ahead; the first pages of several requests
 *     max_concurrency at a time), a single-page result kept for repeated
 *     join keys, each resource turned into its view's rows, and the columns
 *     of a row converted into the scan slot;
 *   - a join of two epic_fdw tables: the driving side read whole, the
 *     fan-out side searched for all its keys at once, rows grouped by key.
 *
 *-------------------------------------------------------------------------
 */
#include "scan.h"
#include "bulk.h"

#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/formatting.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

static void
free_rows(void *arg)
{
	EpicScanState *st = arg;

	epic_view_rows_free(&st->rows);
}

/* The state of one scanned relation, from its fdw_private list (priv). */
EpicScanState *
epic_scan_begin(ForeignScanState *node, List *priv, Index scanrelid, int eflags)
{
	EState	   *estate = node->ss.ps.state;
	RangeTblEntry *rte = exec_rt_fetch(scanrelid, estate);
	EpicScanState *st = palloc0(sizeof(EpicScanState));
	ListCell   *lc;
	Oid			userid;

	st->table = epic_table_resolve(rte->relid);
	st->resource = strVal(list_nth(priv, EpicPrivResource));
	st->fixed_search = strVal(list_nth(priv, EpicPrivFixedSearch));
	foreach(lc, (List *) list_nth(priv, EpicPrivParams))
		st->params = lappend(st->params, epic_param_from_list(lfirst(lc)));
	st->retrieved = (List *) list_nth(priv, EpicPrivRetrieved);
	st->missing_required = strVal(list_nth(priv, EpicPrivMissingRequired));
	if (st->missing_required[0] == '\0')
		st->missing_required = NULL;
	st->count = intVal(list_nth(priv, EpicPrivCount));
	st->limit = intVal(list_nth(priv, EpicPrivLimit));
	st->key_index = -1;
	st->bulk_since_index = -1;
	if (list_length(priv) > EpicPrivBulk)
	{
		List	   *b = list_nth(priv, EpicPrivBulk);

		st->bulk_group = strVal(linitial(b));
		st->bulk_since = strVal(lsecond(b));
		if (st->bulk_since[0] == '\0')
			st->bulk_since = NULL;
		st->bulk_since_index = intVal(lthird(b));
		st->bulk_since_strict = intVal(lfourth(b)) != 0;
	}
	st->stats.table = st->table->relname;
	st->scan_cxt = CurrentMemoryContext;
	st->seen.cxt = CurrentMemoryContext;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return st;

	userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
	st->um = GetUserMapping(userid, st->table->server->serverid);

	st->free_cb.func = free_rows;
	st->free_cb.arg = st;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &st->free_cb);

	st->rescan_cxt = AllocSetContextCreate(st->scan_cxt, "epic_fdw rescan",
										   ALLOCSET_SMALL_SIZES);
	st->tuple_cxt = AllocSetContextCreate(st->scan_cxt, "epic_fdw tuple",
										  ALLOCSET_DEFAULT_SIZES);
	return st;
}

/*
 * Build the requests of this (re)scan in rescan_cxt; returns false if a
 * runtime value is NULL or cannot be sent, in which case no row can match.
 */
static bool
build_requests(ForeignScanState *node, EpicScanState *st)
{
	int			n = list_length(st->runtime_states);
	List	  **values;
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	ListCell   *lc;
	const char *unsent = NULL;
	MemoryContext old = MemoryContextSwitchTo(st->rescan_cxt);

	values = palloc0(sizeof(List *) * Max(Max(1, n), st->key_index + 1));
	if (st->key_index >= 0)
		values[st->key_index] = st->key_values;
	foreach(lc, st->params)
	{
		EpicSearchParam *p = lfirst(lc);
		bool		isnull;
		Datum		d;

		if (p->runtime_index < 0 || p->runtime_index == st->key_index)
			continue;
		d = ExecEvalExpr(list_nth(st->runtime_states, p->runtime_index), econtext, &isnull);
		switch (epic_encode_datum(p, d, st->runtime_types[p->runtime_index], isnull,
								  &values[p->runtime_index]))
		{
			case EPIC_ENC_OK:
				break;
			case EPIC_ENC_NO_MATCH:
				/* = NULL, or IN (NULL, ...) with no other value: no row */
				MemoryContextSwitchTo(old);
				return false;
			case EPIC_ENC_UNSENDABLE:
				/* not sent; the local check still applies */
				values[p->runtime_index] = NIL;
				unsent = p->name;
				break;
		}
	}
	if (unsent != NULL && st->missing_required == NULL)
	{
		/* without the values that cannot be sent, is every requirement met? */
		List	   *sent = NIL;
		const char *missing;

		foreach(lc, st->params)
		{
			EpicSearchParam *p = lfirst(lc);

			if (p->runtime_index < 0 || p->runtime_index == st->key_index ||
				values[p->runtime_index] != NIL)
				sent = lappend(sent, (char *) p->name);
		}
		missing = epic_table_missing_required(st->table, sent, st->fixed_search);
		if (missing != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
					 errmsg("a search of %s requires the search parameter %s, "
							"but the value of \"%s\" cannot be sent",
							st->resource, epic_requirement_text(missing), unsent),
					 errhint("Compare the column with a value FHIR search can express, or add a condition on another of the parameters.")));
	}
	st->requests = epic_build_queries(st->resource, st->fixed_search, st->params, values,
									  st->count, st->table->sopts.or_lists);
	st->request_index = 0;
	st->seen_ids = NULL;
	if (list_length(st->requests) > 1)
	{
		HASHCTL		ctl;

		/* several requests may return the same resource: once per scan */
		ctl.keysize = 65;		/* FHIR ids are at most 64 characters */
		ctl.entrysize = 65;
		ctl.hcxt = st->rescan_cxt;
		st->seen_ids = hash_create("epic_fdw ids", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	st->cache_key = NULL;
	{
		StringInfoData key;

		initStringInfo(&key);
		foreach(lc, st->requests)
			appendStringInfo(&key, "%s\n", (char *) lfirst(lc));
		st->cache_key = key.data;
	}
	MemoryContextSwitchTo(old);
	return true;
}

/* Let go of the current page: delete it, unless the cache keeps it. */
static void
release_page(EpicScanState *st)
{
	if (st->page_cxt != NULL && !st->page_cached)
		MemoryContextDelete(st->page_cxt);
	st->page_cxt = NULL;
	st->page = NULL;
	st->page_cached = false;
	st->next_url = NULL;
	st->next_index = 0;
	st->cur_resource = NULL;
}

/*
 * Keep the current page for rescans with the same request: only a result
 * that is one request of one page, within the cache's budget.
 */
static void
maybe_cache_page(EpicScanState *st, Size bytes)
{
	EpicCachedResult *e;

	if (st->page_cached || st->page == NULL || st->next_url != NULL ||
		list_length(st->requests) != 1 || st->pages_this_result != 1 ||
		st->cache_bytes + bytes > EPIC_CACHE_BUDGET)
		return;
	e = MemoryContextAlloc(st->scan_cxt, sizeof(EpicCachedResult));
	e->key = MemoryContextStrdup(st->scan_cxt, st->cache_key);
	e->page = st->page;
	e->cxt = st->page_cxt;
	MemoryContextSetParent(e->cxt, st->scan_cxt);
	{
		MemoryContext old = MemoryContextSwitchTo(st->scan_cxt);

		st->cache = lappend(st->cache, e);
		MemoryContextSwitchTo(old);
	}
	st->cache_bytes += bytes;
	st->page_cached = true;
}

/* Stop the prefetch, if any, and free what it fetched. */
static void
drop_prefetch(EpicScanState *st)
{
	epic_fhir_abandon(st->prefetch, &st->stats);
	st->prefetch = NULL;
	if (st->prefetch_cxt != NULL)
		MemoryContextDelete(st->prefetch_cxt);	/* stops the transfer */
	st->prefetch_cxt = NULL;
}

/* url as the audit log and EXPLAIN show it: relative to the FHIR base */
static const char *
relative_url(EpicScanState *st, const char *url)
{
	const char *base = st->table->sopts.fhir_url;
	size_t		blen = strlen(base);

	return strncmp(url, base, blen) == 0 ? url + blen : url;
}

/*
 * Start fetching st->next_url in the background, unless a LIMIT is already
 * met by the resources fetched: at most one page ahead.
 */
static void
maybe_prefetch(EpicScanState *st)
{
	MemoryContext old;
	const char *display;

	drop_prefetch(st);
	if (st->next_url == NULL || (st->limit >= 0 && st->resources_fetched >= st->limit))
		return;
	display = relative_url(st, st->next_url);
	st->prefetch_cxt = AllocSetContextCreate(st->rescan_cxt, "epic_fdw page",
											 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->prefetch_cxt);
	st->prefetch = epic_fhir_start(st->conn, st->um, &st->table->sopts, st->next_url, display);
	MemoryContextSwitchTo(old);
	if (st->prefetch == NULL)
		drop_prefetch(st);
}

/*
 * A next link this request already followed would return the same pages
 * again, for ever: a server's paging loop is an error, not endless rows.
 * The links are remembered by a 64-bit hash of their text.
 */
static void
check_next_link(EpicScanState *st, const char *next, const char *display)
{
	uint64		h = hash_bytes_extended((const unsigned char *) next, (int) strlen(next), 0);
	bool		found;

	if (st->links == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(uint64);
		ctl.hcxt = st->rescan_cxt;
		st->links = hash_create("epic_fdw next links", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	hash_search(st->links, &h, HASH_ENTER, &found);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("FHIR server returned a next link this search already followed"),
				 errdetail("Following \"%s\" again would return the same pages for ever.",
						   relative_url(st, next)),
				 errcontext("FHIR request: GET %s", display)));
}

/*
 * Make resp (a response in st->page_cxt, the current context) the current
 * page: check it, parse it, note its next link.
 */
static void
load_page(EpicScanState *st, EpicHttpResponse *resp, const char *display)
{
	const char *next;
	Size		bytes;

	if (resp->status != 200)
		epic_raise_http_error(resp, display, "FHIR search");
	bytes = resp->body.len;
	if (resp->content_type != NULL)
	{
		char	   *ct = asc_tolower(resp->content_type, strlen(resp->content_type));

		if (strstr(ct, "json") == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("FHIR server returned %s instead of FHIR JSON", resp->content_type),
					 errhint("Check the server option \"fhir_url\": it must be the FHIR base URL."),
					 errcontext("FHIR request: GET %s", display)));
	}
	st->page = epic_page_parse(resp->body.data, resp->body.len, st->resource, display);
	pfree(resp->body.data);
	st->stats.pages++;
	st->pages_this_result++;
	st->resources_fetched += epic_page_count(st->page);
	epic_page_report_outcomes(st->page, &st->seen);

	next = epic_page_next(st->page);
	if (next != NULL)
	{
		if (!epic_url_same_origin(next, st->table->sopts.fhir_url))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("FHIR server returned a next link to another origin"),
					 errdetail("The next link \"%s\" does not share scheme, host and port with fhir_url; "
							   "epic_fdw sends the access token only to the FHIR server.", next),
					 errcontext("FHIR request: GET %s", display)));
		check_next_link(st, next, display);
		st->next_url = pstrdup(next);
	}
	maybe_cache_page(st, bytes);
	maybe_prefetch(st);
}

/*
 * Fetch the page at url (absolute) into st->page: the prefetched response
 * when it is that page, else a request now.
 */
static void
fetch_page(EpicScanState *st, const char *url, const char *display)
{
	EpicHttpResponse resp;
	MemoryContext old;
	EpicFhirAsync *a = st->prefetch;

	release_page(st);
	if (a != NULL)
	{
		/* the prefetch's context becomes the page's */
		st->page_cxt = st->prefetch_cxt;
		st->prefetch_cxt = NULL;
		st->prefetch = NULL;
	}
	else
		st->page_cxt = AllocSetContextCreate(st->rescan_cxt, "epic_fdw page",
											 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->page_cxt);
	epic_fhir_finish(st->conn, st->um, &st->table->sopts, a, url, display, &resp, &st->stats);
	load_page(st, &resp, display);
	MemoryContextSwitchTo(old);
}

/*
 * Several requests (an IN list sent one value at a time): fetch the first
 * pages of the next few concurrently, max_concurrency at a time.
 */
static bool
batched_first_page(EpicScanState *st, const char *request)
{
	int			n = list_length(st->requests);
	int			i = st->request_index;
	MemoryContext old;

	if (n <= 1 || st->table->sopts.max_concurrency <= 1)
		return false;
	if (st->batch == NULL || i < st->batch_start || i >= st->batch_end)
	{
		int			end = Min(n, i + 32 * st->table->sopts.max_concurrency);
		char	  **urls = palloc(sizeof(char *) * (end - i));
		char	  **displays = palloc(sizeof(char *) * (end - i));

		if (st->batch_cxt != NULL)
			MemoryContextDelete(st->batch_cxt);
		st->batch = NULL;
		st->batch_cxt = AllocSetContextCreate(st->rescan_cxt, "epic_fdw batch",
											  ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(st->batch_cxt);
		for (int k = i; k < end; k++)
		{
			displays[k - i] = list_nth(st->requests, k);
			urls[k - i] = psprintf("%s%s", st->table->sopts.fhir_url, displays[k - i]);
		}
		st->batch = palloc0(sizeof(EpicHttpResponse) * (end - i));
		epic_fhir_get_many(st->conn, st->um, &st->table->sopts, end - i, urls, displays,
						   st->batch, &st->stats);
		MemoryContextSwitchTo(old);
		st->batch_start = i;
		st->batch_end = end;
	}
	release_page(st);
	drop_prefetch(st);
	st->page_cxt = AllocSetContextCreate(st->rescan_cxt, "epic_fdw page",
										 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->page_cxt);
	load_page(st, &st->batch[i - st->batch_start], request);
	MemoryContextSwitchTo(old);
	return true;
}

/* Start request number st->request_index (or replay it from the cache). */
static void
start_request(EpicScanState *st)
{
	const char *request = list_nth(st->requests, st->request_index);
	ListCell   *lc;
	char	   *url;

	st->pages_this_result = 0;
	if (st->links != NULL)
		hash_destroy(st->links);
	st->links = NULL;
	if (list_length(st->requests) == 1)
		foreach(lc, st->cache)
		{
			EpicCachedResult *e = lfirst(lc);

			if (strcmp(e->key, st->cache_key) == 0)
			{
				release_page(st);
				st->page = e->page;
				st->page_cxt = e->cxt;
				st->page_cached = true;
				return;
			}
		}
	if (st->conn == NULL)
		st->conn = epic_get_connection(st->um, st->table->server);
	st->resources_fetched = 0;
	if (batched_first_page(st, request))
		return;
	drop_prefetch(st);
	url = psprintf("%s%s", st->table->sopts.fhir_url, request);
	fetch_page(st, url, request);
	pfree(url);
}

/*
 * Start (or, on a rescan of the same request, rewind) the export of a bulk
 * table; false when a run-time _since value is NULL (no row can match).
 */
static bool
start_bulk(ForeignScanState *node, EpicScanState *st)
{
	const char *since = st->bulk_since;
	char	   *request;
	MemoryContext old;

	if (st->bulk_since_index >= 0)
	{
		bool		isnull;
		Datum		d = ExecEvalExpr(list_nth(st->runtime_states, st->bulk_since_index),
									 node->ss.ps.ps_ExprContext, &isnull);

		if (isnull)
			return false;
		since = epic_bulk_since_text(DatumGetTimestampTz(d), st->bulk_since_strict);
	}
	request = epic_bulk_request(st->bulk_group, st->resource, since);
	if (st->bulk != NULL && strcmp(request, st->bulk_request) == 0)
	{
		/* a rescan reads the same manifest's files again */
		epic_bulk_rewind(st->bulk);
		return true;
	}
	if (st->bulk != NULL)
		epic_bulk_end(st->bulk);
	st->bulk = NULL;
	if (st->conn == NULL)
		st->conn = epic_get_connection(st->um, st->table->server);
	old = MemoryContextSwitchTo(st->scan_cxt);
	st->bulk_request = pstrdup(request);
	st->bulk = epic_bulk_begin(st->conn, st->um, st->table, request, &st->stats);
	MemoryContextSwitchTo(old);
	return true;
}

/* Make the next chunk of a bulk table's files the current page; false at the end. */
static bool
next_bulk_page(EpicScanState *st)
{
	MemoryContext old;

	release_page(st);
	st->page_cxt = AllocSetContextCreate(st->rescan_cxt, "epic_fdw page",
										 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->page_cxt);
	st->page = epic_bulk_next_page(st->bulk);
	MemoryContextSwitchTo(old);
	if (st->page == NULL)
	{
		release_page(st);
		return false;
	}
	return true;
}

/* What errcontext shows while a column value is converted. */
typedef struct ConversionContext
{
	EpicScanState *st;
	const void *resource;
	EpicColumn *col;			/* the column being converted, or NULL */
	ErrorContextCallback errcb;
} ConversionContext;

static void conversion_error_callback(void *arg);

/* Errors from here on name the table and resource (and cc->col when set). */
static void
push_conversion(ConversionContext *cc, EpicScanState *st, const void *resource)
{
	cc->st = st;
	cc->resource = resource;
	cc->col = NULL;
	cc->errcb.callback = conversion_error_callback;
	cc->errcb.arg = cc;
	cc->errcb.previous = error_context_stack;
	error_context_stack = &cc->errcb;
}

static void
pop_conversion(ConversionContext *cc)
{
	error_context_stack = cc->errcb.previous;
}

static void
conversion_error_callback(void *arg)
{
	ConversionContext *cc = arg;
	const void *idnode = epic_page_ops->member(cc->resource, "id");
	char		buf[64];
	size_t		len = 0;
	const char *id = idnode ? epic_page_ops->scalar(idnode, buf, sizeof(buf), &len) : NULL;

	if (cc->col == NULL)
	{
		errcontext("foreign table \"%s\", FHIR resource %s/%.*s",
				   cc->st->table->relname, cc->st->resource,
				   id ? (int) Min(len, 64) : 9, id ? id : "(no id)");
		return;
	}
	errcontext("column \"%s\" of foreign table \"%s\", FHIR resource %s/%.*s",
			   cc->col->name, cc->st->table->relname, cc->st->resource,
			   id ? (int) Min(len, 64) : 9, id ? id : "(no id)");
}

/*
 * Advance st to its next row (the view row st->next_row of
 * st->cur_resource); false at the end.
 */
bool
epic_scan_next_row(ForeignScanState *node, EpicScanState *st)
{
	const void *resource;

	if (st->done)
		return false;

	if (!st->started)
	{
		st->started = true;
		if (st->missing_required)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
					 errmsg("a search of %s requires the search parameter %s",
							st->resource, epic_requirement_text(st->missing_required)),
					 errdetail("No condition of the query supplies it, so the FHIR server would reject the search."),
					 strncmp(st->missing_required, "patient", 7) == 0 &&
					 (st->missing_required[7] == '\0' || st->missing_required[7] == '|') ?
					 errhint("Add a condition such as WHERE patient_id = '...', or join to patients ON patient_id = patients.id.") :
					 errhint("Add a condition on the column searched by \"%.*s\", or give the table OPTIONS (search '%.*s=...').",
							 (int) strcspn(st->missing_required, "|"), st->missing_required,
							 (int) strcspn(st->missing_required, "|"), st->missing_required)));
		if (st->bulk_group != NULL)
		{
			if (!start_bulk(node, st) || !next_bulk_page(st))
			{
				st->done = true;
				return false;
			}
		}
		else
		{
			if (!build_requests(node, st))
			{
				st->done = true;
				return false;
			}
			start_request(st);
		}
	}

	for (;;)
	{
		char		errbuf[512];

		/* the current resource's next row */
		if (st->cur_resource != NULL && st->next_row < st->rows.nrows)
			break;
		st->cur_resource = NULL;

		/* advance to a page with a resource left */
		while (st->next_index >= epic_page_count(st->page))
		{
			if (st->bulk != NULL)
			{
				CHECK_FOR_INTERRUPTS();
				if (!next_bulk_page(st))
				{
					st->done = true;
					return false;
				}
			}
			else if (st->next_url != NULL)
			{
				char	   *url = pstrdup(st->next_url);

				/* show next links relative to the base, as the first request is */
				char	   *display = pstrdup(relative_url(st, url));

				CHECK_FOR_INTERRUPTS();
				fetch_page(st, url, display);
				pfree(url);
				pfree(display);
			}
			else if (st->request_index + 1 < list_length(st->requests))
			{
				st->request_index++;
				start_request(st);
			}
			else
			{
				release_page(st);
				st->done = true;
				return false;
			}
		}

		resource = epic_page_resource(st->page, st->next_index++);
		if (st->prefetch != NULL && ++st->since_poll >= 16)
		{
			/* keep the next page coming while this one is read */
			st->since_poll = 0;
			epic_fhir_poll(st->conn);
		}
		if (st->seen_ids != NULL)
		{
			/* with several requests, a resource may come back more than once */
			const void *idnode = epic_page_ops->member(resource, "id");
			char		buf[64];
			size_t		len = 0;
			const char *id = idnode ? epic_page_ops->scalar(idnode, buf, sizeof(buf), &len) : NULL;
			bool		found = false;

			if (id != NULL && len > 0 && len <= 64)
			{
				char		key[65];

				memcpy(key, id, len);
				key[len] = '\0';
				hash_search(st->seen_ids, key, HASH_ENTER, &found);
			}
			if (found)
				continue;
		}

		/* the resource's rows: where[] filters, forEach and friends */
		if (epic_view_rows(st->table->view, epic_page_ops, resource, &st->rows,
						   errbuf, sizeof(errbuf)) != 0)
		{
			ConversionContext cc;

			push_conversion(&cc, st, resource);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("could not evaluate the ViewDefinition of foreign table \"%s\": %s",
							st->table->relname, errbuf)));
		}
		st->cur_resource = resource;
		st->next_row = 0;
	}

	return true;
}

void
epic_scan_rescan(EpicScanState *st)
{
	release_page(st);
	st->cur_resource = NULL;
	epic_fhir_abandon(st->prefetch, &st->stats);
	st->prefetch = NULL;
	st->prefetch_cxt = NULL;
	st->batch = NULL;
	st->batch_cxt = NULL;
	MemoryContextReset(st->rescan_cxt);
	st->requests = NIL;
	st->seen_ids = NULL;
	st->links = NULL;
	st->started = false;
	st->done = false;
}

void
epic_scan_end(EpicScanState *st)
{
	if (st == NULL || st->rescan_cxt == NULL)
		return;
	epic_fhir_abandon(st->prefetch, &st->stats);
	st->prefetch = NULL;
	release_page(st);
	if (st->bulk != NULL)
		epic_bulk_end(st->bulk);	/* DELETEs the job if it is still there */
	st->bulk = NULL;
	MemoryContextDelete(st->rescan_cxt);
	st->rescan_cxt = NULL;
	epic_view_rows_free(&st->rows);
}

EpicScanState *
epic_join_begin(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	List	   *priv = fsplan->fdw_private;
	List	   *ids = lthird(priv);
	EpicJoinState *js = palloc0(sizeof(EpicJoinState));
	EpicScanState *st;
	ListCell   *lc;
	int			k = 0;
	Index		rtoffset;

	js->d_relid = intVal(list_nth(ids, 0));
	js->f_relid = intVal(list_nth(ids, 1));

	/*
	 * The planner's numbers of the two tables: when the join sits in a
	 * subquery that was not pulled up, setrefs.c moved the range table (and
	 * fs_relids and the scan tlist's Vars with it) by an offset that the
	 * numbers kept in fdw_private did not get, as in postgres_fdw.
	 */
	rtoffset = (Index) bms_next_member(fsplan->fs_relids, -1) - Min(js->d_relid, js->f_relid);
	js->d_relid += rtoffset;
	js->f_relid += rtoffset;
	js->d_attno = intVal(list_nth(ids, 2));
	js->f_attno = intVal(list_nth(ids, 3));
	js->key = epic_param_from_list(lfourth(priv));
	st = epic_scan_begin(node, linitial(priv), js->d_relid, eflags);
	st->join = js;
	js->f = epic_scan_begin(node, lsecond(priv), js->f_relid, eflags);
	js->f->key_index = intVal(list_nth(ids, 4));
	js->ntl = list_length(fsplan->fdw_scan_tlist);
	js->tl_fanout = palloc0(sizeof(bool) * Max(1, js->ntl));
	js->tl_attno = palloc0(sizeof(AttrNumber) * Max(1, js->ntl));
	foreach(lc, fsplan->fdw_scan_tlist)
	{
		Var		   *v = (Var *) ((TargetEntry *) lfirst(lc))->expr;

		js->tl_fanout[k] = (v->varno == (int) js->f_relid);
		js->tl_attno[k] = v->varattno;
		k++;
	}
	js->cxt = AllocSetContextCreate(CurrentMemoryContext, "epic_fdw join",
									ALLOCSET_DEFAULT_SIZES);
	return st;
}

/*
 * The current row of side (epic_scan_next_row() said there is one) as an
 * EpicJoinRow in js->cxt: the scan tuple's columns of that side, and the
 * key column as text.
 */
static EpicJoinRow *
join_side_row(EpicJoinState *js, EpicScanState *side, bool fanout, AttrNumber key_attno)
{
	const EpicViewCell *cells = &side->rows.cells[(size_t) side->next_row * (size_t) side->rows.width];
	EpicJoinRow *r;
	ConversionContext cc;
	MemoryContext old;
	Datum		kd;
	bool		knull;

	r = MemoryContextAllocZero(js->cxt, sizeof(EpicJoinRow));
	r->values = MemoryContextAllocZero(js->cxt, sizeof(Datum) * Max(1, js->ntl));
	r->nulls = MemoryContextAlloc(js->cxt, sizeof(bool) * Max(1, js->ntl));
	memset(r->nulls, true, sizeof(bool) * Max(1, js->ntl));
	side->next_row++;

	push_conversion(&cc, side, side->cur_resource);
	MemoryContextReset(side->tuple_cxt);
	old = MemoryContextSwitchTo(side->tuple_cxt);
	for (int k = 0; k < js->ntl; k++)
	{
		EpicColumn *col;
		Datum		d;
		int16		typlen;
		bool		typbyval;

		if (js->tl_fanout[k] != fanout)
			continue;
		col = &side->table->columns[js->tl_attno[k] - 1];
		cc.col = col;
		d = epic_convert_cell(side->table, col, side->cur_resource, &cells[col->slot],
							  &r->nulls[k]);
		if (!r->nulls[k])
		{
			get_typlenbyval(col->atttypid, &typlen, &typbyval);
			MemoryContextSwitchTo(js->cxt);
			r->values[k] = datumCopy(d, typbyval, typlen);
			MemoryContextSwitchTo(side->tuple_cxt);
		}
	}
	cc.col = &side->table->columns[key_attno - 1];
	kd = epic_convert_cell(side->table, cc.col, side->cur_resource, &cells[cc.col->slot], &knull);
	if (!knull)
		r->key = MemoryContextStrdup(js->cxt, TextDatumGetCString(kd));
	MemoryContextSwitchTo(old);
	pop_conversion(&cc);
	return r;
}

/* Hash tables keyed by a pointer to a string of any length. */
static uint32
strptr_hash(const void *key, Size keysize)
{
	const char *s = *(const char *const *) key;

	return hash_bytes((const unsigned char *) s, (int) strlen(s));
}

static int
strptr_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/*
 * Read the driving side whole, then search the fan-out side for every
 * distinct key at once, grouping its rows by key.
 */
static void
join_build(ForeignScanState *node, EpicScanState *st)
{
	EpicJoinState *js = st->join;
	EpicScanState *f = js->f;
	HASHCTL		ctl;
	HTAB	   *seen;
	List	   *keys = NIL;
	bool		unsendable = false;
	int			cap = 64;
	MemoryContext old;

	js->built = true;
	old = MemoryContextSwitchTo(js->cxt);
	js->drows = palloc(sizeof(EpicJoinRow *) * cap);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(EpicJoinGroup);
	ctl.hash = strptr_hash;
	ctl.match = strptr_match;
	ctl.hcxt = js->cxt;
	js->groups = hash_create("epic_fdw join keys", 256, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	seen = hash_create("epic_fdw join key values", 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	MemoryContextSwitchTo(old);

	while (epic_scan_next_row(node, st))
	{
		EpicJoinRow *r = join_side_row(js, st, false, js->d_attno);
		List	   *enc = NIL;
		bool		found;

		CHECK_FOR_INTERRUPTS();

		if (r->key == NULL)
			continue;
		if (js->nd == cap)
		{
			cap *= 2;
			js->drows = repalloc(js->drows, sizeof(EpicJoinRow *) * cap);
		}
		js->drows[js->nd++] = r;
		hash_search(seen, &r->key, HASH_ENTER, &found);
		if (found)
			continue;
		old = MemoryContextSwitchTo(js->cxt);
		if (epic_encode_datum(js->key, CStringGetTextDatum(r->key), TEXTOID, false, &enc) == EPIC_ENC_OK)
			keys = list_concat(keys, enc);
		else
			unsendable = true;
		MemoryContextSwitchTo(old);
	}
	if (js->nd == 0)
		return;
	if (unsendable)
	{
		/*
		 * A key FHIR cannot express: search without the key parameter (a
		 * superset, matched by key here), as a nested loop would; unless the
		 * server requires the parameter.
		 */
		List	   *names = NIL;
		ListCell   *lc;
		const char *missing;

		foreach(lc, f->params)
		{
			EpicSearchParam *p = lfirst(lc);

			if (strcmp(p->name, js->key->name) != 0)
				names = lappend(names, (char *) p->name);
		}
		missing = epic_table_missing_required(f->table, names, f->fixed_search);
		if (missing != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
					 errmsg("a search of %s requires the search parameter %s, "
							"but the value of \"%s\" cannot be sent",
							f->resource, epic_requirement_text(missing), js->key->name),
					 errhint("Join on values FHIR search can express, or add a condition on another of the parameters.")));
		keys = NIL;
	}
	else if (keys == NIL)
		return;

	CHECK_FOR_INTERRUPTS();
	f->key_values = keys;
	while (epic_scan_next_row(node, f))
	{
		EpicJoinRow *r = join_side_row(js, f, true, js->f_attno);
		EpicJoinGroup *g;
		bool		found;

		CHECK_FOR_INTERRUPTS();

		if (r->key == NULL)
			continue;
		g = hash_search(js->groups, &r->key, HASH_ENTER, &found);
		if (!found)
			g->rows = g->last = NULL;
		if (g->last)
			g->last->next = r;
		else
			g->rows = r;
		g->last = r;
	}
}

TupleTableSlot *
epic_join_iterate(ForeignScanState *node, EpicScanState *st)
{
	EpicJoinState *js = st->join;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	if (!js->built)
		join_build(node, st);
	while (js->fcur == NULL)
	{
		EpicJoinGroup *g;

		CHECK_FOR_INTERRUPTS();
		if (js->di >= js->nd)
			return slot;
		js->dcur = js->drows[js->di++];
		g = js->groups ? hash_search(js->groups, &js->dcur->key, HASH_FIND, NULL) : NULL;
		js->fcur = g ? g->rows : NULL;
	}
	for (int k = 0; k < js->ntl; k++)
	{
		EpicJoinRow *r = js->tl_fanout[k] ? js->fcur : js->dcur;

		slot->tts_values[k] = r->values[k];
		slot->tts_isnull[k] = r->nulls[k];
	}
	js->fcur = js->fcur->next;
	ExecStoreVirtualTuple(slot);
	return slot;
}

/* Convert the current row of st into slot (its retrieved columns). */
void
epic_scan_store_row(EpicScanState *st, TupleTableSlot *slot)
{
	ListCell   *lc;
	MemoryContext old;

	MemoryContextReset(st->tuple_cxt);
	old = MemoryContextSwitchTo(st->tuple_cxt);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	{
		ConversionContext cc;
		const EpicViewCell *row = &st->rows.cells[(size_t) st->next_row * (size_t) st->rows.width];

		st->next_row++;
		/* errors name the column and the resource (as oracle_fdw does) */
		push_conversion(&cc, st, st->cur_resource);
		foreach(lc, st->retrieved)
		{
			int			attnum = lfirst_int(lc);

			cc.col = &st->table->columns[attnum - 1];
			slot->tts_values[attnum - 1] =
				epic_convert_cell(st->table, cc.col, st->cur_resource, &row[cc.col->slot],
								  &slot->tts_isnull[attnum - 1]);
		}
		pop_conversion(&cc);
	}
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
}

/* Rescan a join: both sides and the rows kept (st is the driving side). */
void
epic_join_rescan(EpicScanState *st)
{
	epic_scan_rescan(st->join->f);
	MemoryContextReset(st->join->cxt);
	st->join->built = false;
	st->join->groups = NULL;
	st->join->drows = NULL;
	st->join->nd = st->join->di = 0;
	st->join->dcur = st->join->fcur = NULL;
}
