/*-------------------------------------------------------------------------
 *
 * epic_fdw.c
 *		Foreign-data wrapper callbacks: thin glue between the planner and
 *		executor and the modules under src/.
 *
 * Planning:  GetForeignRelSize resolves the table and classifies quals;
 *            GetForeignPaths adds a plain path and parameterized paths for
 *            join clauses on searchable columns; GetForeignPlan fixes the
 *            request and passes it to the executor through fdw_private.
 * Execution: the first IterateForeignScan builds the URL (runtime values
 *            from fdw_exprs), fetches a page, emits its resources one by
 *            one and follows the next link; ReScan starts over with new
 *            parameter values.  EXPLAIN without ANALYZE does no I/O.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planmain.h"
#include "optimizer/restrictinfo.h"
#include "optimizer/tlist.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "storage/fd.h"
#include "utils/rel.h"

PG_MODULE_MAGIC;

/*
 * Cost model: one HTTPS round trip dominates everything else.  A search with
 * no pushed condition is assumed to return a large population; each pushed
 * condition is assumed to be selective.
 */
#define EPIC_REQUEST_COST	1000.0
#define EPIC_ROW_COST		1.0
#define EPIC_UNFILTERED_ROWS 1000000.0
#define EPIC_CONDITION_SELECTIVITY 0.001
#define EPIC_PARAM_ROWS		10.0

/* Indexes into ForeignScan.fdw_private (a List). */
enum EpicScanPrivateIndex
{
	EpicPrivResource,			/* String: resource type */
	EpicPrivFixedSearch,		/* String: table "search" option, or "" */
	EpicPrivParams,				/* List of Lists, see param_to_list() */
	EpicPrivRetrieved,			/* List of Integer attnums to compute */
	EpicPrivMissingRequired,	/* String: required param not supplied, or "" */
	EpicPrivCount,				/* Integer: _count to ask for */
	EpicPrivLimit				/* Integer: rows the query needs at most, or -1 */
};

/* Planner state of one foreign base relation (baserel->fdw_private). */
typedef struct EpicRelInfo
{
	EpicTable  *table;
	int			npushed;		/* pushable baserestrictinfo quals */
	bool		has_unique;		/* a pushed _id or identifier */
	List	   *pushed_names;	/* search parameter names pushed */
	List	   *local_only;		/* quals that cannot be pushed */
} EpicRelInfo;

/* A search result kept for rescans with the same request (joins). */
typedef struct EpicCachedResult
{
	char	   *key;			/* the requests, newline-separated */
	EpicPage   *page;			/* the result's only page */
	MemoryContext cxt;			/* holds the page */
} EpicCachedResult;

/* Results up to this size in all are kept for repeated join keys. */
#define EPIC_CACHE_BUDGET (16 * 1024 * 1024)

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
	EpicHttpResponse *batch;	/* responses of requests batch_start.. */

	/* the fan-out side of a join: values of the key parameter */
	List	   *key_values;		/* encoded values (char *) */

	struct EpicJoinState *join; /* a join: this is the driving side */

	EpicOutcomeSeen seen;
	EpicScanStats stats;

	int			count;			/* _count */
	int			limit;			/* rows needed at most (LIMIT), or -1 */
	int			next_row;		/* of rows */
	int			request_index;	/* the one being read */
	int			pages_this_result;
	int			next_index;		/* of page */
	int			since_poll;		/* resources read since the prefetch was polled */
	int			batch_start;
	int			batch_end;
	int			key_index;		/* the key's runtime slot, or -1 */
	bool		page_cached;	/* st->page belongs to the cache */
	bool		started;
	bool		done;
} EpicScanState;

/* A row of one side of a join (values at the scan tuple's positions). */
typedef struct EpicJoinRow
{
	Datum	   *values;
	bool	   *nulls;
	char	   *key;			/* the join key as text; NULL: no match */
	struct EpicJoinRow *next;	/* next fan-out row of the same key */
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
	bool	   *tl_fanout;		/* entry k comes from the fan-out side */
	AttrNumber *tl_attno;
	MemoryContext cxt;			/* rows; reset at rescan */
	bool		built;
	EpicJoinRow **drows;
	int			nd;
	int			di;
	HTAB	   *groups;			/* key -> EpicJoinGroup */
	EpicJoinRow *dcur;
	EpicJoinRow *fcur;
} EpicJoinState;

static ForeignScan *join_plan(PlannerInfo *root, RelOptInfo *joinrel, ForeignPath *best_path,
							  List *tlist, Plan *outer_plan);
static EpicScanState *join_begin(ForeignScanState *node, int eflags);
static TupleTableSlot *join_iterate(ForeignScanState *node, EpicScanState *st);

/* ---------------------------------------------------------------------
 * Planning
 * ---------------------------------------------------------------------
 */
static void
epicGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	EpicRelInfo *info = palloc0(sizeof(EpicRelInfo));
	ListCell   *lc;
	double		rows;
	double		total;

	info->table = epic_table_resolve(foreigntableid);
	baserel->fdw_private = info;

	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);
		EpicSearchParam p[EPIC_MAX_PARAMS_PER_QUAL];
		Expr	   *rt;

		if (epic_classify_qual(info->table, baserel->relid, ri->clause, p, &rt) > 0)
		{
			info->npushed++;
			info->pushed_names = lappend(info->pushed_names, p[0].name);
			if ((strcmp(p[0].name, "_id") == 0 || strcmp(p[0].name, "identifier") == 0) &&
				p[0].values != NIL)
				info->has_unique = true;
		}
		else
			info->local_only = lappend(info->local_only, ri);
	}

	/*
	 * The server returns what the pushed conditions select: the table's
	 * "rows" option (or a large default) shrunk by each pushed condition.
	 */
	total = info->table->topts.rows > 0 ? info->table->topts.rows : EPIC_UNFILTERED_ROWS;
	if (info->has_unique)
		rows = 1;
	else
		rows = total * pow(EPIC_CONDITION_SELECTIVITY, info->npushed);
	rows *= clauselist_selectivity(root, info->local_only, baserel->relid, JOIN_INNER, NULL);
	baserel->rows = clamp_row_est(rows);
	baserel->tuples = total;
}

/* Callback for generate_implied_equalities_for_column: a searchable column of ours. */
typedef struct EcMatchArg
{
	EpicTable  *table;
	Expr	   *current;
	List	   *already_used;
} EcMatchArg;

static bool
ec_member_matches(PlannerInfo *root, RelOptInfo *rel, EquivalenceClass *ec,
				  EquivalenceMember *em, void *arg)
{
	EcMatchArg *a = arg;
	Expr	   *expr = em->em_expr;
	Var		   *var;
	EpicColumn *col;

	if (a->current != NULL)
		return equal(expr, a->current);
	while (expr && IsA(expr, RelabelType))
		expr = ((RelabelType *) expr)->arg;
	if (expr == NULL || !IsA(expr, Var))
		return false;
	var = (Var *) expr;
	if (var->varno != (int) rel->relid || var->varattno <= 0 || var->varattno > a->table->ncolumns)
		return false;
	col = &a->table->columns[var->varattno - 1];
	if (col->name == NULL || col->search_param == NULL || col->is_array)
		return false;
	if (list_member(a->already_used, em->em_expr))
		return false;
	a->current = em->em_expr;
	return true;
}

static void
add_param_path(PlannerInfo *root, RelOptInfo *baserel, EpicRelInfo *info,
			   RestrictInfo *rinfo, List **seen_outer)
{
	Relids		required_outer;
	ParamPathInfo *ppi;
	EpicSearchParam p[EPIC_MAX_PARAMS_PER_QUAL];
	Expr	   *rt;
	double		rows;
	double		total;
	ForeignPath *path;

	if (!join_clause_is_movable_to(rinfo, baserel))
		return;
	if (epic_classify_qual(info->table, baserel->relid, rinfo->clause, p, &rt) == 0)
		return;
	required_outer = bms_difference(rinfo->clause_relids, baserel->relids);
	if (bms_is_empty(required_outer) || bms_overlap(required_outer, baserel->lateral_referencers))
		return;
	/* one path per outer rel set; get_baserel_parampathinfo collects the clauses */
	{
		ListCell   *lc;

		foreach(lc, *seen_outer)
			if (bms_equal((Relids) lfirst(lc), required_outer))
				return;
	}
	*seen_outer = lappend(*seen_outer, required_outer);

	/*
	 * One request per outer row: a unique key finds one resource, another
	 * search parameter a few (or what the base estimate says, if smaller).
	 */
	ppi = get_baserel_parampathinfo(root, baserel, required_outer);
	total = info->table->topts.rows > 0 ? info->table->topts.rows : EPIC_UNFILTERED_ROWS;
	rows = (strcmp(p[0].name, "_id") == 0 || strcmp(p[0].name, "identifier") == 0) ? 1 :
		Min(EPIC_PARAM_ROWS, total);
	rows = clamp_row_est(rows * clauselist_selectivity(root, info->local_only, baserel->relid,
													   JOIN_INNER, NULL));
	path = create_foreignscan_path(root, baserel, NULL, rows,
								   EPIC_REQUEST_COST,
								   EPIC_REQUEST_COST + rows * EPIC_ROW_COST,
								   NIL, required_outer, NULL, NIL);
	(void) ppi;
	add_path(baserel, (Path *) path);
}

static void
epicGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	EpicRelInfo *info = baserel->fdw_private;
	Cost		startup = EPIC_REQUEST_COST;
	Cost		total;
	List	   *seen_outer = NIL;
	ListCell   *lc;

	total = startup + baserel->rows * EPIC_ROW_COST +
		EPIC_REQUEST_COST * ceil(baserel->rows / Max(1, info->table->sopts.page_size));

	/*
	 * A search the server would reject (a required parameter is missing)
	 * still gets a path, so that every query shape plans; it is costed out
	 * of contention and raises a clear error if it ever runs.
	 */
	if (epic_table_missing_required(info->table, info->pushed_names,
									info->table->topts.search) != NULL)
	{
		startup += disable_cost;
		total += disable_cost;
	}
	add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
													   startup, total, NIL, NULL, NULL, NIL));

	/* parameterized paths from equivalence classes (a.x = b.y) */
	if (baserel->has_eclass_joins)
	{
		EcMatchArg	arg;

		arg.table = info->table;
		arg.already_used = NIL;
		for (;;)
		{
			List	   *clauses;

			arg.current = NULL;
			clauses = generate_implied_equalities_for_column(root, baserel, ec_member_matches,
															 &arg, baserel->lateral_referencers);
			if (arg.current == NULL)
				break;
			foreach(lc, clauses)
				add_param_path(root, baserel, info, lfirst(lc), &seen_outer);
			arg.already_used = lappend(arg.already_used, arg.current);
		}
	}
	/* and from other join clauses (e.g. value = ANY(array column)) */
	foreach(lc, baserel->joininfo)
		add_param_path(root, baserel, info, lfirst(lc), &seen_outer);
}

/* Serialise an EpicSearchParam for fdw_private (copyObject-able nodes). */
static List *
param_to_list(EpicSearchParam *p)
{
	List	   *values = NIL;
	ListCell   *lc;

	foreach(lc, p->values)
		values = lappend(values, makeString(lfirst(lc)));
	return list_make5(makeString(p->name), values,
					  list_make3(makeInteger(p->runtime_index), makeInteger(p->param_id),
								 makeInteger(p->form)),
					  makeBoolean(p->is_list),
					  list_make2(makeString(p->comparator ? p->comparator : ""),
								 makeString(p->prefix ? p->prefix : "")));
}

static EpicSearchParam *
param_from_list(List *l)
{
	EpicSearchParam *p = palloc0(sizeof(EpicSearchParam));
	List	   *ints = lthird(l);
	List	   *strs = list_nth(l, 4);
	ListCell   *lc;

	p->name = strVal(linitial(l));
	foreach(lc, (List *) lsecond(l))
		p->values = lappend(p->values, strVal(lfirst(lc)));
	p->runtime_index = intVal(linitial(ints));
	p->param_id = intVal(lsecond(ints));
	p->form = (EpicValueForm) intVal(lthird(ints));
	p->is_list = boolVal(lfourth(l));
	p->comparator = strVal(linitial(strs))[0] ? strVal(linitial(strs)) : NULL;
	p->prefix = strVal(lsecond(strs))[0] ? strVal(lsecond(strs)) : NULL;
	return p;
}

/*
 * The _count to ask for: page_size, or LIMIT n when the scan alone answers
 * the query's LIMIT (one relation, no ORDER BY, grouping or other operation
 * between, and every condition pushed, so that each row the server sends
 * is a row of the result).
 */
static int
scan_count(PlannerInfo *root, RelOptInfo *baserel, EpicRelInfo *info, ForeignPath *best_path)
{
	int			count = info->table->sopts.page_size;

	if (root->limit_tuples > 0 && root->parse->sortClause == NIL &&
		root->parse->distinctClause == NIL && root->parse->setOperations == NULL &&
		bms_membership(root->all_baserels) == BMS_SINGLETON &&
		info->local_only == NIL && best_path->path.param_info == NULL &&
		root->limit_tuples < count)
		count = Max(1, (int) ceil(root->limit_tuples));
	return count;
}

/*
 * The rows a query needs at most when a LIMIT applies to this scan alone
 * (as scan_count requires), else -1: no page is prefetched past it.
 */
static int
scan_limit(PlannerInfo *root, RelOptInfo *baserel, EpicRelInfo *info, ForeignPath *best_path)
{
	if (root->limit_tuples > 0 && root->limit_tuples < INT_MAX / 2 &&
		root->parse->sortClause == NIL &&
		root->parse->distinctClause == NIL && root->parse->setOperations == NULL &&
		bms_membership(root->all_baserels) == BMS_SINGLETON &&
		info->local_only == NIL && best_path->path.param_info == NULL)
		return (int) ceil(root->limit_tuples);
	return -1;
}

/*
 * The fdw_private list of one scanned relation (see EpicPrivIndex): its
 * pushed conditions among rinfos (runtime values appended to *fdw_exprs),
 * and the columns to compute.
 */
static List *
side_private(EpicTable *t, Index relid, List *rinfos, Bitmapset *attrs, List **fdw_exprs,
			 int count, int limit, EpicSearchParam *extra)
{
	List	   *params = NIL;
	List	   *param_lists = NIL;
	List	   *retrieved = NIL;
	List	   *names = NIL;
	ListCell   *lc;
	const char *missing;
	int			i;

	foreach(lc, rinfos)
	{
		RestrictInfo *ri = lfirst(lc);
		EpicSearchParam p[EPIC_MAX_PARAMS_PER_QUAL];
		Expr	   *rt;
		int			n = epic_classify_qual(t, relid, ri->clause, p, &rt);

		for (i = 0; i < n; i++)
		{
			EpicSearchParam *pp = palloc(sizeof(EpicSearchParam));

			*pp = p[i];
			if (rt != NULL)
			{
				/* each parameter encodes the value its own way: a slot each */
				pp->runtime_index = list_length(*fdw_exprs);
				*fdw_exprs = lappend(*fdw_exprs, rt);
			}
			params = lappend(params, pp);
			names = lappend(names, (char *) pp->name);
		}
	}
	if (extra != NULL)
	{
		params = lappend(params, extra);
		names = lappend(names, extra->name);
	}
	missing = epic_table_missing_required(t, names, t->topts.search);
	list_sort(params, epic_param_cmp);
	foreach(lc, params)
		param_lists = lappend(param_lists, param_to_list(lfirst(lc)));

	if (bms_is_member(0 - FirstLowInvalidHeapAttributeNumber, attrs))
	{
		for (i = 1; i <= t->ncolumns; i++)
			if (t->columns[i - 1].name != NULL)
				retrieved = lappend_int(retrieved, i);
	}
	else
		for (i = 1; i <= t->ncolumns; i++)
			if (t->columns[i - 1].name != NULL &&
				bms_is_member(i - FirstLowInvalidHeapAttributeNumber, attrs))
				retrieved = lappend_int(retrieved, i);

	return list_concat(list_make5(makeString(t->resource),
								  makeString(t->topts.search ? t->topts.search : ""),
								  param_lists,
								  retrieved,
								  makeString(missing ? pstrdup(missing) : "")),
					   list_make2(makeInteger(count), makeInteger(limit)));
}

static ForeignScan *
epicGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				   ForeignPath *best_path, List *tlist, List *scan_clauses,
				   Plan *outer_plan)
{
	EpicRelInfo *info;
	List	   *fdw_exprs = NIL;
	List	   *priv;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;

	if (IS_JOIN_REL(baserel))
		return join_plan(root, baserel, best_path, tlist, outer_plan);
	info = baserel->fdw_private;

	/* columns needed: the target list and every qual (all are rechecked) */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, scan_clauses)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause, baserel->relid, &attrs);
	priv = side_private(info->table, baserel->relid, scan_clauses, attrs, &fdw_exprs,
						scan_count(root, baserel, info, best_path),
						scan_limit(root, baserel, info, best_path), NULL);

	/* every condition is checked locally: FHIR matching is a superset */
	scan_clauses = extract_actual_clauses(scan_clauses, false);

	return make_foreignscan(tlist, scan_clauses, baserel->relid, fdw_exprs, priv,
							NIL, NIL, outer_plan);
}

/* ---------------------------------------------------------------------
 * Execution
 * ---------------------------------------------------------------------
 */
static void
free_rows(void *arg)
{
	EpicScanState *st = arg;

	epic_view_rows_free(&st->rows);
}

/* The state of one scanned relation, from its fdw_private list (priv). */
static EpicScanState *
begin_side(ForeignScanState *node, List *priv, Index scanrelid, int eflags)
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
		st->params = lappend(st->params, param_from_list(lfirst(lc)));
	st->retrieved = (List *) list_nth(priv, EpicPrivRetrieved);
	st->missing_required = strVal(list_nth(priv, EpicPrivMissingRequired));
	if (st->missing_required[0] == '\0')
		st->missing_required = NULL;
	st->count = intVal(list_nth(priv, EpicPrivCount));
	st->limit = intVal(list_nth(priv, EpicPrivLimit));
	st->key_index = -1;
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

static void
epicBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EpicScanState *st;
	List	   *runtime_states = NIL;
	Oid		   *runtime_types;
	ListCell   *lc;
	int			i;

	if (fsplan->scan.scanrelid == 0)
		st = join_begin(node, eflags);
	else
		st = begin_side(node, fsplan->fdw_private, fsplan->scan.scanrelid, eflags);
	node->fdw_state = st;
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	runtime_types = palloc0(sizeof(Oid) * Max(1, list_length(fsplan->fdw_exprs)));
	i = 0;
	foreach(lc, fsplan->fdw_exprs)
	{
		Expr	   *e = lfirst(lc);

		runtime_states = lappend(runtime_states, ExecInitExpr(e, (PlanState *) node));
		runtime_types[i++] = exprType((Node *) e);
	}
	st->runtime_states = runtime_states;
	st->runtime_types = runtime_types;
	if (st->join != NULL)
	{
		st->join->f->runtime_states = runtime_states;
		st->join->f->runtime_types = runtime_types;
	}
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
				if (st->missing_required == NULL &&
					epic_table_param_required(st->table, p->name) &&
					!epic_search_has_param(st->fixed_search, p->name))
					ereport(ERROR,
							(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
							 errmsg("a search of %s requires the search parameter \"%s\", "
									"but this value cannot be sent", st->resource, p->name)));
				break;
		}
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

/*
 * Start fetching st->next_url in the background, unless a LIMIT is already
 * met by the resources fetched: at most one page ahead.
 */
static void
maybe_prefetch(EpicScanState *st)
{
	MemoryContext old;
	const char *base = st->table->sopts.fhir_url;
	size_t		blen = strlen(base);
	const char *display;

	drop_prefetch(st);
	if (st->next_url == NULL || (st->limit >= 0 && st->resources_fetched >= st->limit))
		return;
	display = strncmp(st->next_url, base, blen) == 0 ? st->next_url + blen : st->next_url;
	st->prefetch_cxt = AllocSetContextCreate(st->rescan_cxt, "epic_fdw page",
											 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(st->prefetch_cxt);
	st->prefetch = epic_fhir_start(st->conn, st->um, &st->table->sopts, st->next_url, display);
	MemoryContextSwitchTo(old);
	if (st->prefetch == NULL)
		drop_prefetch(st);
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
		int			end = Min(n, i + 16 * st->table->sopts.max_concurrency);
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

/* What errcontext shows while a column value is converted. */
typedef struct ConversionContext
{
	EpicScanState *st;
	const void *resource;
	EpicColumn *col;
} ConversionContext;

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
static bool
next_row(ForeignScanState *node, EpicScanState *st)
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
					 errmsg("a search of %s requires the search parameter \"%s\"",
							st->resource, st->missing_required),
					 errdetail("No condition of the query supplies it, so the FHIR server would reject the search."),
					 strcmp(st->missing_required, "patient") == 0 ?
					 errhint("Add a condition such as WHERE patient_id = '...', or join to patients ON patient_id = patients.id.") :
					 errhint("Add a condition on the column searched by \"%s\", or give the table OPTIONS (search '%s=...').",
							 st->missing_required, st->missing_required)));
		if (!build_requests(node, st))
		{
			st->done = true;
			return false;
		}
		start_request(st);
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
			if (st->next_url != NULL)
			{
				char	   *url = pstrdup(st->next_url);
				const char *base = st->table->sopts.fhir_url;
				size_t		blen = strlen(base);

				/* show next links relative to the base, as the first request is */
				char	   *display = pstrdup(strncmp(url, base, blen) == 0 ? url + blen : url);

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
			ConversionContext cc = {st, resource, NULL};
			ErrorContextCallback errcb;

			errcb.callback = conversion_error_callback;
			errcb.arg = &cc;
			errcb.previous = error_context_stack;
			error_context_stack = &errcb;
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

static TupleTableSlot *
epicIterateForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	ListCell   *lc;
	MemoryContext old;

	if (st->join != NULL)
		return join_iterate(node, st);
	ExecClearTuple(slot);
	if (!next_row(node, st))
		return slot;

	MemoryContextReset(st->tuple_cxt);
	old = MemoryContextSwitchTo(st->tuple_cxt);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	{
		ConversionContext cc;
		ErrorContextCallback errcb;
		const EpicViewCell *row = &st->rows.cells[(size_t) st->next_row * (size_t) st->rows.width];

		st->next_row++;
		/* errors name the column and the resource (as oracle_fdw does) */
		cc.st = st;
		cc.resource = st->cur_resource;
		cc.col = NULL;
		errcb.callback = conversion_error_callback;
		errcb.arg = &cc;
		errcb.previous = error_context_stack;
		error_context_stack = &errcb;
		foreach(lc, st->retrieved)
		{
			int			attnum = lfirst_int(lc);

			cc.col = &st->table->columns[attnum - 1];
			slot->tts_values[attnum - 1] =
				epic_convert_cell(st->table, cc.col, st->cur_resource, &row[cc.col->slot],
								  &slot->tts_isnull[attnum - 1]);
		}
		error_context_stack = errcb.previous;
	}
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
	return slot;
}

static void
rescan_side(EpicScanState *st)
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
	st->started = false;
	st->done = false;
}

static void
epicReScanForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;

	rescan_side(st);
	if (st->join != NULL)
	{
		rescan_side(st->join->f);
		MemoryContextReset(st->join->cxt);
		st->join->built = false;
		st->join->groups = NULL;
		st->join->drows = NULL;
		st->join->nd = st->join->di = 0;
		st->join->dcur = st->join->fcur = NULL;
	}
}

static void
end_side(EpicScanState *st)
{
	if (st == NULL || st->rescan_cxt == NULL)
		return;
	epic_fhir_abandon(st->prefetch, &st->stats);
	st->prefetch = NULL;
	release_page(st);
	MemoryContextDelete(st->rescan_cxt);
	st->rescan_cxt = NULL;
	epic_view_rows_free(&st->rows);
}

static void
epicEndForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;

	if (st == NULL)
		return;
	if (st->join != NULL)
		end_side(st->join->f);
	end_side(st);
}

static void
epicExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	EpicScanState *st = node->fdw_state;
	List	   *requests = epic_build_queries(st->resource, st->fixed_search, st->params,
											  NULL, st->count, true);

	EpicScanStats total = st->stats;

	ExplainPropertyText("FHIR Request", psprintf("GET %s", (char *) linitial(requests)), es);
	if (st->missing_required)
		ExplainPropertyText("FHIR Missing Parameter", st->missing_required, es);
	if (st->join != NULL)
	{
		EpicScanState *f = st->join->f;
		List	   *freqs = epic_build_queries(f->resource, f->fixed_search, f->params,
											   NULL, f->count, true);

		ExplainPropertyText("FHIR Join",
							psprintf("%s.%s supplies %s.%s",
									 st->table->relname,
									 st->table->columns[st->join->d_attno - 1].name,
									 f->table->relname,
									 f->table->columns[st->join->f_attno - 1].name), es);
		ExplainPropertyText("FHIR Fan-out Request", psprintf("GET %s", (char *) linitial(freqs)), es);
		ExplainPropertyText("FHIR Fan-out",
							f->table->sopts.or_lists ?
							"one search, the keys as an OR list" :
							psprintf("one search per key, up to %d at a time",
									 f->table->sopts.max_concurrency), es);
		total.requests += f->stats.requests;
		total.pages += f->stats.pages;
		total.bytes += f->stats.bytes;
		total.token_requests += f->stats.token_requests;
		total.wait_time += f->stats.wait_time;
	}
	if (es->analyze)
	{
		ExplainPropertyInteger("FHIR Requests", NULL, total.requests, es);
		ExplainPropertyInteger("FHIR Pages", NULL, total.pages, es);
		ExplainPropertyInteger("FHIR Bytes", NULL, total.bytes, es);
		ExplainPropertyInteger("Token Requests", NULL, total.token_requests, es);
		if (es->timing)
			ExplainPropertyFloat("HTTP Wait Time", "ms", total.wait_time * 1000.0, 3, es);
	}
}

/* ---------------------------------------------------------------------
 * Joins of two epic_fdw tables: one search of the driving side, then the
 * fan-out side's searches for all its keys at once (max_concurrency in
 * flight, or one OR list), instead of a nested loop's one search per row
 * ---------------------------------------------------------------------
 */

/* Planner state of such a join (joinrel->fdw_private). */
typedef struct EpicJoinInfo
{
	RelOptInfo *drel;			/* driving side: searched once */
	RelOptInfo *frel;			/* fan-out side: searched per key */
	EpicSearchParam key;		/* the fan-out side's key parameter */
	AttrNumber	d_attno;
	AttrNumber	f_attno;
	List	   *quals;			/* every clause (RestrictInfos), rechecked */
} EpicJoinInfo;

static Var *
plain_var(Node *n)
{
	while (n && IsA(n, RelabelType))
		n = (Node *) ((RelabelType *) n)->arg;
	return (n && IsA(n, Var)) ? (Var *) n : NULL;
}

/*
 * An inner join of two epic_fdw tables of one server and user: the outer
 * side must be searchable by its own conditions, and a join clause
 * inner.column = outer.column must give the inner side a search parameter
 * (e.g. medication_statements.patient_id = patients.id gives patient).
 */
static void
epicGetForeignJoinPaths(PlannerInfo *root, RelOptInfo *joinrel, RelOptInfo *outerrel,
						RelOptInfo *innerrel, JoinType jointype, JoinPathExtraData *extra)
{
	EpicRelInfo *dinfo;
	EpicRelInfo *finfo;
	EpicJoinInfo *ji;
	ListCell   *lc;
	List	   *vars;
	List	   *names;
	bool		found = false;
	EpicSearchParam key;
	AttrNumber	d_attno = 0,
				f_attno = 0;
	double		requests;
	Cost		startup,
				total;
	Path	   *dpath;
	const EpicServerOptions *sopts;

	if (joinrel->fdw_private != NULL || jointype != JOIN_INNER || !epic_pushdown)
		return;
	if (outerrel->reloptkind != RELOPT_BASEREL || innerrel->reloptkind != RELOPT_BASEREL)
		return;
	if (root->parse->rowMarks != NIL || !bms_is_empty(joinrel->lateral_relids))
		return;
	dinfo = outerrel->fdw_private;
	finfo = innerrel->fdw_private;
	if (dinfo == NULL || finfo == NULL ||
		dinfo->table->server->serverid != finfo->table->server->serverid ||
		outerrel->userid != innerrel->userid)
		return;
	/* the driving side is searched on its own */
	if (epic_table_missing_required(dinfo->table, dinfo->pushed_names,
									dinfo->table->topts.search) != NULL)
		return;
	/* the scan tuple holds plain columns only */
	vars = pull_var_clause((Node *) joinrel->reltarget->exprs, PVC_INCLUDE_PLACEHOLDERS);
	foreach(lc, vars)
	{
		Var		   *v = lfirst(lc);

		if (!IsA(v, Var) || v->varattno <= 0)
			return;
	}

	/* the key: inner.column = outer.column, a search parameter of inner */
	foreach(lc, extra->restrictlist)
	{
		RestrictInfo *ri = lfirst(lc);
		EpicSearchParam p[EPIC_MAX_PARAMS_PER_QUAL];
		Expr	   *rt;
		Var		   *dv;
		Var		   *fv = NULL;
		OpExpr	   *op;

		if (found || !IsA(ri->clause, OpExpr) ||
			epic_classify_qual(finfo->table, innerrel->relid, ri->clause, p, &rt) != 1 ||
			rt == NULL || p[0].is_list)
			continue;
		dv = plain_var((Node *) rt);
		if (dv == NULL || dv->varno != (int) outerrel->relid || dv->varattno <= 0 ||
			dv->varlevelsup != 0 ||
			(exprType((Node *) dv) != TEXTOID && exprType((Node *) dv) != VARCHAROID))
			continue;
		op = (OpExpr *) ri->clause;
		if (list_length(op->args) != 2)
			continue;
		fv = plain_var(linitial(op->args));
		if (fv == NULL || fv->varno != (int) innerrel->relid)
			fv = plain_var(lsecond(op->args));
		if (fv == NULL || fv->varno != (int) innerrel->relid || fv->varattno <= 0 ||
			(exprType((Node *) fv) != TEXTOID && exprType((Node *) fv) != VARCHAROID))
			continue;
		key = p[0];
		d_attno = dv->varattno;
		f_attno = fv->varattno;
		found = true;
	}
	if (!found)
		return;
	/* the fan-out side's required parameters: its own conditions and the key */
	names = lappend(list_copy(finfo->pushed_names), key.name);
	if (epic_table_missing_required(finfo->table, names, finfo->table->topts.search) != NULL)
		return;

	ji = palloc0(sizeof(EpicJoinInfo));
	ji->drel = outerrel;
	ji->frel = innerrel;
	ji->key = key;
	ji->d_attno = d_attno;
	ji->f_attno = f_attno;
	ji->quals = list_concat(list_concat(list_copy(extra->restrictlist),
										outerrel->baserestrictinfo),
							innerrel->baserestrictinfo);

	/*
	 * Cost: the driving side's search, then its keys' searches, as many at
	 * once as max_concurrency allows (one OR list with or_lists), reading
	 * the rows a parameterized search per key would (add_param_path).
	 */
	sopts = &finfo->table->sopts;
	dpath = outerrel->cheapest_total_path;
	requests = sopts->or_lists ? 1 : Max(1, outerrel->rows);
	startup = dpath->startup_cost + EPIC_REQUEST_COST;
	total = dpath->total_cost +
		ceil(requests / Max(1, sopts->max_concurrency)) * EPIC_REQUEST_COST +
		Max(1, outerrel->rows) * Min(EPIC_PARAM_ROWS, innerrel->rows) * EPIC_ROW_COST +
		joinrel->rows * cpu_tuple_cost;

	/*
	 * This join never makes more requests than a nested loop over a
	 * parameterized scan (one per distinct key, or fewer as an OR list) and
	 * makes them together; estimates of how many patients a search finds
	 * are rough, so win the ties that a one-row estimate produces.
	 */
	startup *= 0.95;
	total *= 0.95;
	joinrel->fdw_private = ji;
	add_path(joinrel, (Path *) create_foreign_join_path(root, joinrel, NULL, joinrel->rows,
														startup, total, NIL,
														joinrel->lateral_relids, NULL, NIL));
}

static Bitmapset *
side_attrs(List *scan_tlist, Index relid, AttrNumber key_attno)
{
	Bitmapset  *attrs = bms_make_singleton(key_attno - FirstLowInvalidHeapAttributeNumber);
	ListCell   *lc;

	foreach(lc, scan_tlist)
	{
		Var		   *v = (Var *) ((TargetEntry *) lfirst(lc))->expr;

		if (v->varno == (int) relid)
			attrs = bms_add_member(attrs, v->varattno - FirstLowInvalidHeapAttributeNumber);
	}
	return attrs;
}

static ForeignScan *
join_plan(PlannerInfo *root, RelOptInfo *joinrel, ForeignPath *best_path, List *tlist,
		  Plan *outer_plan)
{
	EpicJoinInfo *ji = joinrel->fdw_private;
	EpicRelInfo *dinfo = ji->drel->fdw_private;
	EpicRelInfo *finfo = ji->frel->fdw_private;
	EpicSearchParam *key = palloc(sizeof(EpicSearchParam));
	List	   *fdw_exprs = NIL;
	List	   *quals = extract_actual_clauses(ji->quals, false);
	List	   *scan_tlist;
	List	   *dpriv;
	List	   *fpriv;

	scan_tlist = add_to_flat_tlist(NIL, pull_var_clause((Node *) joinrel->reltarget->exprs,
														PVC_RECURSE_PLACEHOLDERS));
	scan_tlist = add_to_flat_tlist(scan_tlist, pull_var_clause((Node *) quals,
															   PVC_RECURSE_PLACEHOLDERS));
	dpriv = side_private(dinfo->table, ji->drel->relid, ji->drel->baserestrictinfo,
						 side_attrs(scan_tlist, ji->drel->relid, ji->d_attno), &fdw_exprs,
						 dinfo->table->sopts.page_size, -1, NULL);
	/* the key's values come from the driving side: a slot of its own */
	*key = ji->key;
	key->runtime_index = list_length(fdw_exprs);
	key->param_id = 0;
	fdw_exprs = lappend(fdw_exprs, makeNullConst(TEXTOID, -1, InvalidOid));
	fpriv = side_private(finfo->table, ji->frel->relid, ji->frel->baserestrictinfo,
						 side_attrs(scan_tlist, ji->frel->relid, ji->f_attno), &fdw_exprs,
						 finfo->table->sopts.page_size, -1, key);

	return make_foreignscan(tlist, quals, 0, fdw_exprs,
							list_make4(dpriv, fpriv,
									   list_make5(makeInteger(ji->drel->relid),
												  makeInteger(ji->frel->relid),
												  makeInteger(ji->d_attno),
												  makeInteger(ji->f_attno),
												  makeInteger(key->runtime_index)),
									   param_to_list(key)),
							scan_tlist, NIL, outer_plan);
}

static EpicScanState *
join_begin(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	List	   *priv = fsplan->fdw_private;
	List	   *ids = lthird(priv);
	EpicJoinState *js = palloc0(sizeof(EpicJoinState));
	EpicScanState *st;
	ListCell   *lc;
	int			k = 0;

	js->d_relid = intVal(list_nth(ids, 0));
	js->f_relid = intVal(list_nth(ids, 1));
	js->d_attno = intVal(list_nth(ids, 2));
	js->f_attno = intVal(list_nth(ids, 3));
	js->key = param_from_list(lfourth(priv));
	st = begin_side(node, linitial(priv), js->d_relid, eflags);
	st->join = js;
	js->f = begin_side(node, lsecond(priv), js->f_relid, eflags);
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
 * The current row of side (next_row() said there is one) as an
 * EpicJoinRow in js->cxt: the scan tuple's columns of that side, and the
 * key column as text.
 */
static EpicJoinRow *
join_side_row(EpicJoinState *js, EpicScanState *side, bool fanout, AttrNumber key_attno)
{
	const EpicViewCell *cells = &side->rows.cells[(size_t) side->next_row * (size_t) side->rows.width];
	EpicJoinRow *r;
	ConversionContext cc;
	ErrorContextCallback errcb;
	MemoryContext old;
	Datum		kd;
	bool		knull;

	r = MemoryContextAllocZero(js->cxt, sizeof(EpicJoinRow));
	r->values = MemoryContextAllocZero(js->cxt, sizeof(Datum) * Max(1, js->ntl));
	r->nulls = MemoryContextAlloc(js->cxt, sizeof(bool) * Max(1, js->ntl));
	memset(r->nulls, true, sizeof(bool) * Max(1, js->ntl));
	side->next_row++;

	cc.st = side;
	cc.resource = side->cur_resource;
	cc.col = NULL;
	errcb.callback = conversion_error_callback;
	errcb.arg = &cc;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
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
	error_context_stack = errcb.previous;
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

	while (next_row(node, st))
	{
		EpicJoinRow *r = join_side_row(js, st, false, js->d_attno);
		List	   *enc = NIL;
		bool		found;

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
		if (epic_table_param_required(f->table, js->key->name) &&
			!epic_search_has_param(f->fixed_search, js->key->name))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
					 errmsg("a search of %s requires the search parameter \"%s\", "
							"but this value cannot be sent", f->resource, js->key->name)));
		keys = NIL;
	}
	else if (keys == NIL)
		return;

	CHECK_FOR_INTERRUPTS();
	f->key_values = keys;
	while (next_row(node, f))
	{
		EpicJoinRow *r = join_side_row(js, f, true, js->f_attno);
		EpicJoinGroup *g;
		bool		found;

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

static TupleTableSlot *
join_iterate(ForeignScanState *node, EpicScanState *st)
{
	EpicJoinState *js = st->join;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	ExecClearTuple(slot);
	if (!js->built)
		join_build(node, st);
	while (js->fcur == NULL)
	{
		EpicJoinGroup *g;

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

/* ---------------------------------------------------------------------
 * IMPORT FOREIGN SCHEMA
 * ---------------------------------------------------------------------
 */

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
import_view_dir(ImportForeignSchemaStmt *stmt, ForeignServer *server, const char *dir)
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
static List *
epicImportForeignSchema(ImportForeignSchemaStmt *stmt, Oid serverOid)
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
		return import_view_dir(stmt, server, sopts.view_dir);
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
		commands = lappend(commands, epic_view_ddl_free(v, NULL, name, server->servername));
	}
	return commands;
}

/* ---------------------------------------------------------------------
 * Handler and module init
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(epic_fdw_handler);

Datum
epic_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = epicGetForeignRelSize;
	routine->GetForeignPaths = epicGetForeignPaths;
	routine->GetForeignPlan = epicGetForeignPlan;
	routine->BeginForeignScan = epicBeginForeignScan;
	routine->IterateForeignScan = epicIterateForeignScan;
	routine->ReScanForeignScan = epicReScanForeignScan;
	routine->EndForeignScan = epicEndForeignScan;
	routine->ExplainForeignScan = epicExplainForeignScan;
	routine->ImportForeignSchema = epicImportForeignSchema;
	routine->GetForeignJoinPaths = epicGetForeignJoinPaths;
	PG_RETURN_POINTER(routine);
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("epic_fdw.pushdown",
							 "Sends WHERE conditions to the FHIR server as search parameters.",
							 "When off, searches carry only the parameters a resource requires "
							 "(every condition is still checked locally), for comparisons.",
							 &epic_pushdown, true, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("epic_fdw.audit_log",
							 "Logs every FHIR request: user, foreign table, search parameter names, status, bytes, duration.",
							 "Search values are redacted unless epic_fdw.audit_log_values is on. "
							 "Only superusers can change it, so audited users cannot turn it off.",
							 &epic_audit_log, false, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("epic_fdw.audit_log_values",
							 "Includes search values (which may be PHI) in epic_fdw.audit_log lines.",
							 NULL, &epic_audit_log_values, false, PGC_SUSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("epic_fdw");
}
