/*-------------------------------------------------------------------------
 *
 * scan.h
 *		Executor state of epic_fdw's scans: one relation (pages, prefetch,
 *		concurrent first pages, view rows) and joins of two epic_fdw tables.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EPIC_SCAN_H
#define EPIC_SCAN_H

#include "epic_fdw.h"

#include "nodes/execnodes.h"
#include "utils/hsearch.h"

/* Indexes into ForeignScan.fdw_private (a List) of one relation. */
enum EpicScanPrivateIndex
{
	EpicPrivResource,			/* String: resource type */
	EpicPrivFixedSearch,		/* String: table "search" option, or "" */
	EpicPrivParams,				/* List of Lists, see param_to_list() */
	EpicPrivRetrieved,			/* List of Integer attnums to compute */
	EpicPrivMissingRequired,	/* String: required param not supplied, or "" */
	EpicPrivCount,				/* Integer: _count to ask for */
	EpicPrivLimit,				/* Integer: rows the query needs at most, or -1 */
	EpicPrivBulk				/* bulk tables only: List of String group,
								 * String constant _since or "", Integer
								 * fdw_exprs index of a run-time _since or -1,
								 * Integer 1 if strict (>) */
};

/* A search result kept for rescans with the same request (joins). */
typedef struct EpicCachedResult
{
	char	   *key;			/* the requests, newline-separated */
	EpicPage   *page;			/* the result's only page */
	MemoryContext cxt;			/* holds the page */
} EpicCachedResult;

/* Results up to this size in all are kept for repeated join keys. */
#define EPIC_CACHE_BUDGET (16 * 1024 * 1024)

/* A page of a batch, parsed when it arrived, in its own context. */
typedef struct EpicHeldPage
{
	MemoryContext cxt;
	EpicPage   *page;
} EpicHeldPage;

/* One request of a batch: all its pages, fetched in rounds with the others. */
typedef struct EpicBatchItem
{
	List	   *pages;			/* EpicHeldPage * in order */
	struct HTAB *links;			/* next links followed (see check_next_link) */
	char	   *next;			/* the next page to fetch, or NULL */
	Size		bytes;
	int64		resources;
} EpicBatchItem;

/* Executor state. */
typedef struct EpicScanState
{
	EpicTable  *table;
	UserMapping *um;
	EpicConnection *conn;
	char	   *resource;
	char	   *fixed_search;
	List	   *params;			/* EpicSearchParam * */
	List	   *runtime_states; /* ExprState * per fdw_exprs item */
	Oid		   *runtime_types;
	List	   *retrieved;		/* attnums to compute */
	char	   *missing_required;

	/* the rows of the current resource (its view's rows), malloc'd */
	EpicViewRows rows;
	MemoryContextCallback free_cb;
	const void *cur_resource;	/* whose rows those are */

	/* requests of this (re)scan, and paging */
	MemoryContext scan_cxt;		/* lives as long as the scan */
	MemoryContext rescan_cxt;	/* reset at each rescan */
	MemoryContext page_cxt;		/* the current page, or NULL */
	MemoryContext tuple_cxt;
	List	   *requests;		/* relative requests (char *) */
	char	   *cache_key;
	EpicPage   *page;
	char	   *next_url;		/* in page_cxt */
	HTAB	   *seen_ids;		/* ids already returned, when requests > 1 */

	List	   *cache;			/* EpicCachedResult *, in scan_cxt */
	Size		cache_bytes;

	/* the next page, fetched while this one is read */
	int64		resources_fetched;	/* by this request so far */
	EpicFhirAsync *prefetch;	/* in prefetch_cxt */
	MemoryContext prefetch_cxt;

	/* first pages of several requests, fetched concurrently */
	MemoryContext batch_cxt;
	struct EpicBatchItem *batch;	/* requests batch_start..: their pages */
	List	   *held;			/* the current request's pages still to read
								 * (EpicHeldPage *), from its batch */
	char	   *held_next;		/* the next link after them, or NULL */

	/* the fan-out side of a join: values of the key parameter */
	List	   *key_values;		/* encoded values (char *) */

	struct EpicJoinState *join; /* a join: this is the driving side */

	/* a bulk table (bulk_group): its export job, kept across rescans */
	char	   *bulk_group;		/* NULL: a search table */
	char	   *bulk_since;		/* constant _since text, or NULL */
	int			bulk_since_index;	/* fdw_exprs index of a run-time one, or -1 */
	bool		bulk_since_strict;
	struct EpicBulkJob *bulk;	/* in scan_cxt */
	char	   *bulk_request;	/* the job's kick-off request */

	EpicOutcomeSeen seen;
	EpicScanStats stats;

	int			count;			/* _count */
	int			limit;			/* rows needed at most (LIMIT), or -1 */
	int			next_row;		/* of rows */
	int			request_index;	/* the one being read */
	int			pages_this_result;
	struct HTAB *links;			/* hashes of the next links this request
								 * followed (a server's paging loop) */
	int			next_index;		/* of page */
	int			since_poll;		/* resources read since the prefetch was polled */
	int			batch_start;
	int			batch_end;
	int64		batch_seen_pages;	/* requests of batches read so far (this scan) */
	int64		batch_seen_bytes;	/* the bytes of all their pages */
	int64		batch_seen_resources;	/* their resources */
	int64		rescan_resources;	/* resources of this (re)scan's batches */
	int			key_index;		/* the key's runtime slot, or -1 */
	int			searches;		/* searches sent (first pages), for EXPLAIN ANALYZE */
	bool		page_cached;	/* st->page belongs to the cache */
	bool		no_prefetch;	/* never fetch a next page ahead (a join under a LIMIT) */
	bool		started;
	bool		done;
} EpicScanState;

/* What a join of two epic_fdw tables produces. */
typedef enum EpicJoinMode
{
	EPIC_JOIN_INNER,
	EPIC_JOIN_SEMI,				/* each kept row once, if some pair matches */
	EPIC_JOIN_ANTI				/* each kept row for which no pair matches */
} EpicJoinMode;

/* A row of one side of a join (values at the scan tuple's positions). */
typedef struct EpicJoinRow
{
	Datum	   *values;
	bool	   *nulls;
	char	   *key;			/* the join key as text; NULL: no match */
	struct EpicJoinRow *next;	/* next fan-out row of the same key */
	bool		matched;		/* semi/anti: a pair with it matched */
} EpicJoinRow;

typedef struct EpicJoinGroup
{
	char	   *key;			/* hash key (the entry's first field) */
	EpicJoinRow *rows;
	EpicJoinRow *last;
} EpicJoinGroup;

/* Executor state of a join of two epic_fdw tables (see join_build). */
typedef struct EpicJoinState
{
	EpicScanState *f;			/* the fan-out side; the driving side owns this */
	Index		d_relid;
	Index		f_relid;
	AttrNumber	d_attno;		/* driving column giving the key */
	AttrNumber	f_attno;		/* fan-out column matched with it */
	EpicSearchParam *key;		/* the fan-out side's key parameter */
	int			ntl;			/* scan tuple: fdw_scan_tlist entries */
	double		est_keys;		/* the planner's estimate of driving rows */
	bool	   *tl_fanout;		/* entry k comes from the fan-out side */
	AttrNumber *tl_attno;
	MemoryContext cxt;			/* rows; reset at rescan */
	bool		built;
	bool		d_done;			/* the driving side has no row left */
	bool		all_fetched;	/* fan-out searched without the key: all rows */
	double		room;			/* bytes a fan-out URL leaves for keys */
	int			chunk_searches; /* searches' worth of keys in the next chunk */
	MemoryContext chunk_cxt;	/* the chunk's driving rows; in cxt */
	EpicJoinRow **drows;		/* the chunk's driving rows */
	int			nd;
	int			di;
	int			cap;
	HTAB	   *groups;			/* key -> EpicJoinGroup */
	HTAB	   *searched;		/* keys searched so far (char *) */
	EpicJoinMode mode;
	bool		preserve_fanout;	/* semi: the fan-out rows are the result */
	int			pair_index;		/* fdw_exprs item: does a pair match, or -1 */
	bool		fast_start;		/* the planner wants the first rows soon */
	ExprState  *pair;			/* its state (NULL: every pair matches) */
	EpicJoinRow **arows;		/* anti: the chunk's rows of keys it searches */
	int			na;
	int			ai;
	int			acap;
	HTAB	   *pending;		/* key -> this chunk's driving rows of keys it
								 * searches (EpicJoinGroup, in chunk_cxt) */
	bool		streaming;		/* the fan-out search of this chunk is read */
	EpicJoinRow *frow;			/* its current row */
	EpicJoinRow *pcur;			/* next driving row to pair with frow */
	EpicJoinRow *dcur;
	EpicJoinRow *fcur;
} EpicJoinState;

extern EpicScanState *epic_scan_begin(ForeignScanState *node, List *priv, Index scanrelid,
									  int eflags);
extern bool epic_scan_next_row(ForeignScanState *node, EpicScanState *st);
extern void epic_scan_store_row(EpicScanState *st, TupleTableSlot *slot);
extern void epic_scan_rescan(EpicScanState *st);
extern void epic_scan_end(EpicScanState *st);
extern List *epic_scan_reads(EpicScanState *st);

extern EpicScanState *epic_join_begin(ForeignScanState *node, int eflags);
extern TupleTableSlot *epic_join_iterate(ForeignScanState *node, EpicScanState *st);
extern void epic_join_rescan(EpicScanState *st);

#endif							/* EPIC_SCAN_H */
