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

#include <math.h>

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

		if (p->role == EPIC_PR_NO_MATCH)
		{
			/* a constant no row can match: no request */
			MemoryContextSwitchTo(old);
			return false;
		}
		if (p->runtime_index < 0 || p->runtime_index == st->key_index)
			continue;
		d = ExecEvalExpr(list_nth(st->runtime_states, p->runtime_index), econtext, &isnull);
		switch (epic_encode_datum(p, d, st->runtime_types[p->runtime_index], isnull,
								  &values[p->runtime_index]))
		{
			case EPIC_ENC_OK:
				if (p->role == EPIC_PR_PROBE)
					values[p->runtime_index] = NIL; /* checked, never sent */
				break;
			case EPIC_ENC_NO_MATCH:
				/* = NULL, or IN (NULL, ...) with no other value: no row */
				MemoryContextSwitchTo(old);
				return false;
			case EPIC_ENC_UNSENDABLE:
				/* not sent; the local check still applies */
				values[p->runtime_index] = NIL;
				if (p->role == EPIC_PR_SEND)
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
	if (st->table->read_by_id)
	{
		/* one read per group id (Epic offers Group.Read, not search) */
		st->requests = epic_build_reads(st->resource, st->params, values);
		if (st->requests == NIL)
		{
			MemoryContextSwitchTo(old);
			return false;
		}
	}
	else
		st->requests = epic_build_queries_packed(st->resource, st->fixed_search, st->params, values,
											 st->count, st->table->sopts.or_lists,
											 st->table->sopts.fhir_url,
											 st->table->sopts.max_url_length);
	st->request_index = 0;
	st->rescan_resources = 0;
	st->seen_ids = NULL;
	if (list_length(st->requests) > 1)
	{
		HASHCTL		ctl;

		/*
		 * Several requests may return the same resource: once per scan.
		 * Ids are keyed by two independent 64-bit hashes of their whole
		 * text (FHIR ids have at most 64 characters, but a server may send
		 * longer ones, and a long id must not escape the check).
		 */
		ctl.keysize = sizeof(uint64) * 2;
		ctl.entrysize = sizeof(uint64) * 2;
		ctl.hcxt = st->rescan_cxt;
		st->seen_ids = hash_create("epic_fdw ids", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
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
	if (st->next_url == NULL || st->no_prefetch ||
		(st->limit >= 0 && st->resources_fetched >= st->limit))
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
check_next_link(EpicScanState *st, HTAB **links, MemoryContext cxt, const char *next,
				const char *display)
{
	uint64		h = hash_bytes_extended((const unsigned char *) next, (int) strlen(next), 0);
	bool		found;

	if (*links == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(uint64);
		ctl.entrysize = sizeof(uint64);
		ctl.hcxt = cxt;
		*links = hash_create("epic_fdw next links", 64, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	hash_search(*links, &h, HASH_ENTER, &found);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("FHIR server returned a next link this search already followed"),
				 errdetail("Following \"%s\" again would return the same pages for ever.",
						   relative_url(st, next)),
				 errcontext("FHIR request: GET %s", display)));
}

/*
 * Check resp (a response to display, in the current context) and parse it
 * into a page there (the body is freed); count it and report its outcome
 * issues (the ignored-parameter check on the first page of a request:
 * first).  Its next link, checked (same origin, not followed before by this
 * request: *links, created in links_cxt), is returned in *next_out
 * (palloc'd), or NULL.
 */
static EpicPage *
parse_response(EpicScanState *st, EpicHttpResponse *resp, const char *display, bool first,
			   HTAB **links, MemoryContext links_cxt, char **next_out)
{
	const char *next;
	EpicPage   *page;

	if (resp->status == 404 && st->table->read_by_id)
	{
		char	   *detail = epic_outcome_text(resp->body.data, resp->body.len);

		ereport(ERROR,
				(errcode(epic_http_status_errcode(resp->status)),
				 errmsg("FHIR %s \"%s\" does not exist", st->resource,
						display + strlen(st->resource) + 1),
				 detail ? errdetail("%s", detail) : 0,
				 errhint("Check the value compared with the table's id column: each value is read as GET %s/{id}.",
						 st->resource),
				 errcontext("FHIR request: GET %s", display)));
	}
	if (resp->status != 200)
		epic_raise_http_error(resp, display, st->table->read_by_id ? "FHIR read" : "FHIR search");
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
	if (st->table->read_by_id)
		page = epic_page_parse_read(resp->body.data, resp->body.len, st->resource,
									display + strlen(st->resource) + 1, display);
	else
		page = epic_page_parse(resp->body.data, resp->body.len, st->resource, display);
	pfree(resp->body.data);
	st->stats.pages++;
	st->stats.resources += epic_page_count(page);
	/* the first page of a request: its self link shows the parameters used */
	epic_page_report_outcomes(page, &st->seen, first ? display : NULL);

	*next_out = NULL;
	next = epic_page_next(page);
	if (next != NULL)
	{
		if (!epic_url_same_origin(next, st->table->sopts.fhir_url))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("FHIR server returned a next link to another origin"),
					 errdetail("The next link \"%s\" does not share scheme, host and port with fhir_url; "
							   "epic_fdw sends the access token only to the FHIR server.", next),
					 errcontext("FHIR request: GET %s", display)));
		check_next_link(st, links, links_cxt, next, display);
		*next_out = pstrdup(next);
	}
	return page;
}

/*
 * Make resp (a response in st->page_cxt, the current context) the current
 * page: check it, parse it, note its next link, fetch the next page ahead.
 */
static void
load_page(EpicScanState *st, EpicHttpResponse *resp, const char *display)
{
	Size		bytes = resp->body.len;

	st->page = parse_response(st, resp, display, st->pages_this_result == 0,
							  &st->links, st->rescan_cxt, &st->next_url);
	st->pages_this_result++;
	st->resources_fetched += epic_page_count(st->page);
	maybe_cache_page(st, bytes);
	maybe_prefetch(st);
}

/* Make the first of st->held the current page. */
static void
take_held_page(EpicScanState *st)
{
	EpicHeldPage *h = linitial(st->held);

	release_page(st);
	st->held = list_delete_first(st->held);
	st->page_cxt = h->cxt;
	st->page = h->page;
	st->pages_this_result++;
	st->resources_fetched += epic_page_count(st->page);
	if (st->held == NIL && st->held_next != NULL)
	{
		/* pages the batch did not fetch: followed as usual */
		st->next_url = st->held_next;
		st->held_next = NULL;
		maybe_prefetch(st);
	}
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
 * How many requests the next batch fetches (whole, see fetch_batch): as
 * many as fit in the server's batch_memory at the average size of the
 * batched requests seen so far, all their pages (max_concurrency before any
 * is seen), at least one and at most 32 x max_concurrency; and under a
 * LIMIT no more than the rows still needed call for at the rows per request
 * seen so far (one request before any is seen), so that a LIMIT met by the
 * first search sends no other.
 */
static int
batch_size(EpicScanState *st)
{
	const EpicServerOptions *so = &st->table->sopts;
	double		k;

	if (st->batch_seen_pages == 0)
		k = so->max_concurrency;
	else
		k = floor((double) so->batch_memory /
				  Max(1.0, (double) st->batch_seen_bytes / st->batch_seen_pages));
	k = Min(k, 32.0 * so->max_concurrency);
	if (st->limit >= 0)
	{
		double		need = (double) st->limit - st->rescan_resources;
		double		per = st->batch_seen_pages ?
			(double) st->batch_seen_resources / st->batch_seen_pages : 0;

		k = Min(k, per > 0 ? ceil(Max(need, 1) / per) : 1);
	}
	return (int) Max(1, k);
}

/*
 * Fetch the requests start..end-1 whole, in rounds: their first pages
 * concurrently (max_concurrency at a time), then the next pages of those
 * that have one, concurrently, and so on; each page parsed as it arrives.
 * The batch lives in st->batch_cxt.
 */
static void
fetch_batch(EpicScanState *st, int start, int end)
{
	int			n = end - start;
	char	  **urls;
	char	  **displays;
	int		   *which;
	EpicHttpResponse *resps;
	int			m = n;
	int64		got = 0;
	MemoryContext old;

	if (st->batch_cxt != NULL)
		MemoryContextDelete(st->batch_cxt);
	st->batch = NULL;
	st->batch_cxt = AllocSetContextCreate(st->rescan_cxt, "epic_fdw batch",
										  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->batch_cxt);
	st->batch = palloc0(sizeof(EpicBatchItem) * n);
	urls = palloc(sizeof(char *) * n);
	displays = palloc(sizeof(char *) * n);
	which = palloc(sizeof(int) * n);
	for (int k = 0; k < n; k++)
	{
		displays[k] = list_nth(st->requests, start + k);
		urls[k] = psprintf("%s%s", st->table->sopts.fhir_url, displays[k]);
		which[k] = k;
	}
	while (m > 0)
	{
		int			more = 0;

		resps = palloc0(sizeof(EpicHttpResponse) * m);
		epic_fhir_get_many(st->conn, st->um, &st->table->sopts, m, urls, displays, resps,
						   &st->stats);
		for (int j = 0; j < m; j++)
		{
			EpicBatchItem *it = &st->batch[which[j]];
			EpicHeldPage *h = palloc(sizeof(EpicHeldPage));

			CHECK_FOR_INTERRUPTS();
			h->cxt = AllocSetContextCreate(st->batch_cxt, "epic_fdw page",
										   ALLOCSET_DEFAULT_SIZES);
			it->bytes += resps[j].body.len;
			MemoryContextSwitchTo(h->cxt);
			h->page = parse_response(st, &resps[j], displays[j], it->pages == NIL,
									 &it->links, st->batch_cxt, &it->next);
			MemoryContextSwitchTo(st->batch_cxt);
			it->resources += epic_page_count(h->page);
			got += epic_page_count(h->page);
			it->pages = lappend(it->pages, h);
			if (it->next != NULL)
			{
				/* its next page in the next round */
				urls[more] = it->next;
				displays[more] = pstrdup(relative_url(st, it->next));
				which[more] = which[j];
				more++;
			}
		}
		pfree(resps);
		m = more;
		/* under a LIMIT, no later pages once the batch has the rows needed */
		if (st->limit >= 0 && st->rescan_resources + got >= st->limit)
			break;
	}
	MemoryContextSwitchTo(old);
	st->batch_start = start;
	st->batch_end = end;
}

/*
 * Several requests (an IN list sent one value at a time, or OR lists
 * packed under max_url_length): fetch the next batch_size() of them whole
 * (fetch_batch), and make request st->request_index's first page current,
 * its other pages held.
 */
static bool
batched_first_page(EpicScanState *st, const char *request)
{
	int			n = list_length(st->requests);
	int			i = st->request_index;
	EpicBatchItem *it;

	if (n <= 1 || st->table->sopts.max_concurrency <= 1)
		return false;
	/* the current page may belong to the batch about to be replaced */
	release_page(st);
	if (st->batch == NULL || i < st->batch_start || i >= st->batch_end)
		fetch_batch(st, i, Min(n, i + batch_size(st)));
	it = &st->batch[i - st->batch_start];
	drop_prefetch(st);
	st->held = it->pages;
	st->held_next = it->next;
	st->links = it->links;
	it->pages = NIL;
	it->links = NULL;
	take_held_page(st);
	st->batch_seen_pages++;
	st->batch_seen_bytes += it->bytes;
	st->batch_seen_resources += it->resources;
	st->rescan_resources += it->resources;
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
		st->conn = epic_acquire_connection(st->um, st->table->server);
	st->resources_fetched = 0;
	st->searches++;
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
			else if (st->held != NIL)
				take_held_page(st);
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

			if (id != NULL && len > 0)
			{
				uint64		key[2];

				key[0] = hash_bytes_extended((const unsigned char *) id, (int) len, 0);
				key[1] = hash_bytes_extended((const unsigned char *) id, (int) len,
											 UINT64CONST(0x9e3779b97f4a7c15));
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
	st->held = NIL;
	st->held_next = NULL;
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
	/* its transfers are stopped: the connection may be rebuilt now */
	epic_release_connection(st->conn);
	st->conn = NULL;
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
	js->est_keys = list_length(priv) > 4 ? floatVal(list_nth(priv, 4)) : 1;
	st = epic_scan_begin(node, linitial(priv), js->d_relid, eflags);
	st->join = js;
	js->f = epic_scan_begin(node, lsecond(priv), js->f_relid, eflags);
	js->f->key_index = intVal(list_nth(ids, 4));
	st->no_prefetch = js->f->no_prefetch = intVal(list_nth(ids, 5)) != 0;
	js->mode = (EpicJoinMode) intVal(list_nth(ids, 6));
	js->preserve_fanout = intVal(list_nth(ids, 7)) != 0;
	js->pair_index = intVal(list_nth(ids, 8));
	js->fast_start = intVal(list_nth(ids, 9)) != 0;
	{
		/* what a fan-out URL leaves for keys: its length with "?" for them */
		const char *q = linitial(epic_build_queries(js->f->resource, js->f->fixed_search,
													js->f->params, NULL, js->f->count, true));

		js->room = Max(1.0, (double) js->f->table->sopts.max_url_length -
					   strlen(js->f->table->sopts.fhir_url) - strlen(q) + 1);
	}
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
 * EpicJoinRow in cxt: the scan tuple's columns of that side, and the
 * key column as text.
 */
static EpicJoinRow *
join_side_row(EpicJoinState *js, EpicScanState *side, bool fanout, AttrNumber key_attno,
			  MemoryContext cxt)
{
	const EpicViewCell *cells = &side->rows.cells[(size_t) side->next_row * (size_t) side->rows.width];
	EpicJoinRow *r;
	ConversionContext cc;
	MemoryContext old;
	Datum		kd;
	bool		knull;

	r = MemoryContextAllocZero(cxt, sizeof(EpicJoinRow));
	r->values = MemoryContextAllocZero(cxt, sizeof(Datum) * Max(1, js->ntl));
	r->nulls = MemoryContextAlloc(cxt, sizeof(bool) * Max(1, js->ntl));
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
			MemoryContextSwitchTo(cxt);
			r->values[k] = datumCopy(d, typbyval, typlen);
			MemoryContextSwitchTo(side->tuple_cxt);
		}
	}
	cc.col = &side->table->columns[key_attno - 1];
	kd = epic_convert_cell(side->table, cc.col, side->cur_resource, &cells[cc.col->slot], &knull);
	if (!knull)
		r->key = MemoryContextStrdup(cxt, TextDatumGetCString(kd));
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
 * Can epic_scan_next_row() give st's next row (or say there is none)
 * without a request?
 */
static bool
row_ready(EpicScanState *st)
{
	if (!st->started)
		return false;
	if (st->done)
		return true;
	if (st->cur_resource != NULL && st->next_row < st->rows.nrows)
		return true;
	return st->page != NULL && st->next_index < epic_page_count(st->page);
}

/* A hash table in cxt keyed by strings, entries of entrysize bytes. */
static HTAB *
strings_hash(MemoryContext cxt, const char *name, Size entrysize)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = entrysize;
	ctl.hash = strptr_hash;
	ctl.match = strptr_match;
	ctl.hcxt = cxt;
	return hash_create(name, 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static HTAB *
groups_create(EpicJoinState *js)
{
	return strings_hash(js->cxt, "epic_fdw join keys", sizeof(EpicJoinGroup));
}

/* State of the join, in js->cxt: fan-out rows by key, keys searched. */
static void
join_init(EpicJoinState *js, EpicScanState *st)
{
	js->pair = js->pair_index >= 0 ? list_nth(st->runtime_states, js->pair_index) : NULL;
	js->groups = groups_create(js);
	js->searched = strings_hash(js->cxt, "epic_fdw join keys searched", sizeof(char *));
	js->chunk_cxt = AllocSetContextCreate(js->cxt, "epic_fdw join chunk",
										  ALLOCSET_DEFAULT_SIZES);
	/* the first rows soon (a LIMIT, a cursor), or all of them at full speed */
	js->chunk_searches = js->fast_start ? 1 : Max(1, js->f->table->sopts.max_concurrency);
	js->cap = 0;
	js->built = true;
}

/* Start the fan-out side's search for keys (NIL: without the key parameter). */
static void
fanout_start(EpicJoinState *js, List *keys)
{
	if (js->f->started)
		epic_scan_rescan(js->f);
	js->f->key_values = keys;
	js->streaming = true;
}

/* Add r to the chain of its key in groups (a hash of EpicJoinGroup). */
static void
group_add(HTAB *groups, EpicJoinRow *r)
{
	bool		found;
	EpicJoinGroup *g = hash_search(groups, &r->key, HASH_ENTER, &found);

	if (!found)
		g->rows = g->last = NULL;
	if (g->last)
		g->last->next = r;
	else
		g->rows = r;
	g->last = r;
}

/*
 * The next row of the fan-out search as an EpicJoinRow in js->cxt, kept in
 * js->groups for driving rows of later chunks; NULL at its end.
 */
static EpicJoinRow *
fanout_next(ForeignScanState *node, EpicJoinState *js)
{
	while (epic_scan_next_row(node, js->f))
	{
		EpicJoinRow *r = join_side_row(js, js->f, true, js->f_attno, js->cxt);

		CHECK_FOR_INTERRUPTS();
		if (r->key == NULL)
			continue;
		group_add(js->groups, r);
		return r;
	}
	js->streaming = false;
	return NULL;
}

/* Append r to the array *rows (of *n, room for *cap) in cxt. */
static void
rows_append(EpicJoinRow ***rows, int *n, int *cap, EpicJoinRow *r, MemoryContext cxt)
{
	if (*n == *cap)
	{
		*cap = Max(64, *cap * 2);
		*rows = *rows ? repalloc(*rows, sizeof(EpicJoinRow *) * *cap) :
			MemoryContextAlloc(cxt, sizeof(EpicJoinRow *) * *cap);
	}
	(*rows)[(*n)++] = r;
}

/*
 * The next chunk of the join: driving rows read until their new keys fill
 * js->chunk_searches searches (the keys' bytes against the room a URL
 * leaves with or_lists, else one key a search), or until the next row would
 * need another request of the driving side; then one fan-out search of
 * those keys (packed and concurrent, see build_requests).  When the
 * planner wants the first rows soon (a LIMIT, a cursor), chunks start at one
 * search and double up to max_concurrency, so that stopping early stops the
 * searches too; otherwise every chunk is max_concurrency searches.
 */
static void
join_next_chunk(ForeignScanState *node, EpicScanState *st)
{
	EpicJoinState *js = st->join;
	EpicScanState *f = js->f;
	const EpicServerOptions *so = &f->table->sopts;
	List	   *keys = NIL;
	double		bytes = 0;
	double		longest = 0;
	int			nkeys = 0;
	bool		unsendable = false;
	MemoryContext old;

	MemoryContextReset(js->chunk_cxt);
	js->drows = NULL;
	js->nd = js->di = 0;
	js->cap = 0;
	js->arows = NULL;
	js->na = js->ai = js->acap = 0;
	js->pending = strings_hash(js->chunk_cxt, "epic_fdw join chunk keys", sizeof(EpicJoinGroup));
	js->pcur = NULL;
	for (;;)
	{
		EpicJoinRow *r;
		char	   *kcopy;
		List	   *enc = NIL;
		bool		found = false;

		if ((js->nd > 0 || nkeys > 0) && !row_ready(st))
			break;
		/* another key as long as the longest so far would not fit */
		if (so->or_lists && nkeys > 0 &&
			bytes + longest > js->chunk_searches * Max(1.0, js->room + 1 - longest))
			break;
		if (!epic_scan_next_row(node, st))
		{
			js->d_done = true;
			break;
		}
		CHECK_FOR_INTERRUPTS();
		r = join_side_row(js, st, false, js->d_attno, js->chunk_cxt);
		if (r->key == NULL)
		{
			/* matches nothing: an anti-join keeps it */
			if (js->mode == EPIC_JOIN_ANTI)
				rows_append(&js->drows, &js->nd, &js->cap, r, js->chunk_cxt);
			continue;
		}
		if (!js->all_fetched)
		{
			/* a key of this chunk's search: matched as its rows stream in */
			hash_search(js->pending, &r->key, HASH_FIND, &found);
			if (found)
			{
				group_add(js->pending, r);
				if (js->mode == EPIC_JOIN_ANTI)
					rows_append(&js->arows, &js->na, &js->acap, r, js->chunk_cxt);
				continue;
			}
			hash_search(js->searched, &r->key, HASH_FIND, &found);
		}
		if (js->all_fetched || found)
		{
			/* a key searched before: matched from js->groups */
			rows_append(&js->drows, &js->nd, &js->cap, r, js->chunk_cxt);
			continue;
		}
		group_add(js->pending, r);
		if (js->mode == EPIC_JOIN_ANTI)
			rows_append(&js->arows, &js->na, &js->acap, r, js->chunk_cxt);
		kcopy = MemoryContextStrdup(js->cxt, r->key);
		hash_search(js->searched, &kcopy, HASH_ENTER, NULL);
		old = MemoryContextSwitchTo(js->chunk_cxt);
		if (epic_encode_datum(js->key, CStringGetTextDatum(r->key), TEXTOID, false, &enc) == EPIC_ENC_OK)
		{
			ListCell   *lc;

			foreach(lc, enc)
			{
				bytes += strlen(lfirst(lc)) + 1;
				longest = Max(longest, strlen(lfirst(lc)) + 1);
			}
			keys = list_concat(keys, enc);
		}
		else
			unsendable = true;
		MemoryContextSwitchTo(old);
		nkeys++;
		if (!so->or_lists && nkeys >= js->chunk_searches)
			break;
	}
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
		HASH_SEQ_STATUS hs;
		EpicJoinGroup *g;

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
		/*
		 * Every fan-out row, once: rows of keys searched before come again,
		 * so group them afresh, and match this chunk's driving rows (and
		 * every later chunk's) from the groups.
		 */
		js->groups = groups_create(js);
		js->all_fetched = true;
		fanout_start(js, NIL);
		while (fanout_next(node, js) != NULL)
			;
		hash_seq_init(&hs, js->pending);
		while ((g = hash_seq_search(&hs)) != NULL)
			for (EpicJoinRow *r = g->rows; r != NULL;)
			{
				EpicJoinRow *next = r->next;

				r->next = NULL;
				rows_append(&js->drows, &js->nd, &js->cap, r, js->chunk_cxt);
				r = next;
			}
		js->na = 0;				/* they are all in drows now */
		return;
	}
	if (keys == NIL)
		return;
	CHECK_FOR_INTERRUPTS();
	fanout_start(js, keys);
	js->chunk_searches = Min(js->chunk_searches * 2, Max(1, so->max_concurrency));
}

/* Put the pair (d, f) into the scan slot; f NULL: the fan-out columns NULL. */
static void
pair_store(EpicJoinState *js, TupleTableSlot *slot, EpicJoinRow *d, EpicJoinRow *f)
{
	ExecClearTuple(slot);
	for (int k = 0; k < js->ntl; k++)
	{
		EpicJoinRow *r = js->tl_fanout[k] ? f : d;

		slot->tts_values[k] = r ? r->values[k] : (Datum) 0;
		slot->tts_isnull[k] = r ? r->nulls[k] : true;
	}
	ExecStoreVirtualTuple(slot);
}

/*
 * Is (d, f) a pair to consider and does it match?  It is in the slot
 * afterwards.  Rows of a semi-join's result already produced, and driving
 * rows of an anti-join already matched, need no more pairs.
 */
static bool
pair_matches(ForeignScanState *node, EpicJoinState *js, EpicJoinRow *d, EpicJoinRow *f)
{
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	bool		isnull;
	Datum		v;

	if (js->mode != EPIC_JOIN_INNER && (js->preserve_fanout ? f->matched : d->matched))
		return false;
	pair_store(js, slot, d, f);
	if (js->pair == NULL)
		return true;
	ResetExprContext(econtext);
	econtext->ecxt_scantuple = slot;
	v = ExecEvalExpr(js->pair, econtext, &isnull);
	return !isnull && DatumGetBool(v);
}

/*
 * The join's next row: pairs of driving rows whose keys were searched
 * before with their rows kept in js->groups, then pairs of the rows the
 * chunk's fan-out search streams in with the chunk's driving rows of their
 * key; then the next chunk.  A semi-join produces each kept row at its
 * first matching pair; an anti-join the driving rows no pair matched, once
 * their candidates are all seen.
 */
TupleTableSlot *
epic_join_iterate(ForeignScanState *node, EpicScanState *st)
{
	EpicJoinState *js = st->join;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	if (!js->built)
		join_init(js, st);
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (js->dcur != NULL)
		{
			/* a driving row of a key searched before, and its candidates */
			EpicJoinRow *d = js->dcur;
			EpicJoinRow *f = js->fcur;

			if (f == NULL)
			{
				js->dcur = NULL;
				if (js->mode == EPIC_JOIN_ANTI && !d->matched)
				{
					pair_store(js, slot, d, NULL);
					return slot;
				}
				continue;
			}
			js->fcur = f->next;
			if (!pair_matches(node, js, d, f))
				continue;
			if (js->mode == EPIC_JOIN_INNER)
				return slot;
			if (js->preserve_fanout)
				f->matched = true;
			else
			{
				d->matched = true;
				js->fcur = NULL;
			}
			if (js->mode == EPIC_JOIN_SEMI)
				return slot;
			continue;
		}
		if (js->pcur != NULL)
		{
			/* the fan-out row streamed in, and the next driving row of its key */
			EpicJoinRow *d = js->pcur;

			js->pcur = d->next;
			if (!pair_matches(node, js, d, js->frow))
				continue;
			if (js->mode == EPIC_JOIN_INNER)
				return slot;
			if (js->preserve_fanout)
			{
				js->frow->matched = true;
				js->pcur = NULL;
			}
			else
				d->matched = true;
			if (js->mode == EPIC_JOIN_SEMI)
				return slot;
			continue;
		}
		if (js->di < js->nd)
		{
			EpicJoinGroup *g = NULL;

			js->dcur = js->drows[js->di++];
			if (js->dcur->key != NULL)
				g = hash_search(js->groups, &js->dcur->key, HASH_FIND, NULL);
			js->fcur = g ? g->rows : NULL;
			continue;
		}
		if (js->streaming)
		{
			EpicJoinGroup *g;

			js->frow = fanout_next(node, js);
			if (js->frow == NULL)
				continue;
			g = hash_search(js->pending, &js->frow->key, HASH_FIND, NULL);
			js->pcur = g ? g->rows : NULL;
			continue;
		}
		if (js->ai < js->na)
		{
			/* anti-join: the chunk's searched rows that no pair matched */
			EpicJoinRow *d = js->arows[js->ai++];

			if (!d->matched)
			{
				pair_store(js, slot, d, NULL);
				return slot;
			}
			continue;
		}
		if (js->d_done)
			return ExecClearTuple(slot);
		join_next_chunk(node, st);
	}
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
	st->join->d_done = false;
	st->join->all_fetched = false;
	st->join->chunk_cxt = NULL;	/* was in cxt */
	st->join->groups = NULL;
	st->join->searched = NULL;
	st->join->drows = NULL;
	st->join->nd = st->join->di = 0;
	st->join->dcur = st->join->fcur = NULL;
	st->join->pending = NULL;
	st->join->pcur = st->join->frow = NULL;
	st->join->arows = NULL;
	st->join->na = st->join->ai = st->join->acap = 0;
	st->join->streaming = false;
}

/*
 * The reads of a table read by id as EXPLAIN shows them (run-time values
 * as $n or ?); "Resource/{id}" when no condition gives one.
 */
List *
epic_scan_reads(EpicScanState *st)
{
	List	   *reads = epic_build_reads(st->resource, st->params, NULL);

	return reads != NIL ? reads : list_make1(psprintf("%s/{id}", st->resource));
}
