/*-------------------------------------------------------------------------
 *
 * epic_fdw.c
 *		Foreign-data wrapper callbacks: thin glue between the planner and
 *		executor and the modules under src/.
 *
 * Planning:  GetForeignRelSize resolves the table and classifies quals;
 *            GetForeignPaths adds a plain path and parameterized paths for
 *            join clauses on searchable columns; GetForeignJoinPaths a
 *            join of two epic_fdw tables; GetForeignPlan fixes the requests
 *            and passes them to the executor through fdw_private.
 * Execution: in src/scan.c (requests, pages, prefetch, concurrent first
 *            pages, view rows, joins); the callbacks here only dispatch.
 *            EXPLAIN without ANALYZE does no I/O.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"
#include "bulk.h"
#include "scan.h"

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
#include "optimizer/clauses.h"
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

/* Planner state of one foreign base relation (baserel->fdw_private). */
typedef struct EpicRelInfo
{
	EpicTable  *table;
	int			npushed;		/* pushable baserestrictinfo quals */
	bool		has_unique;		/* a pushed _id or identifier */
	List	   *pushed_names;	/* search parameter names pushed */
	List	   *local_only;		/* quals that cannot be pushed */
} EpicRelInfo;

static ForeignScan *join_plan(PlannerInfo *root, RelOptInfo *joinrel, ForeignPath *best_path,
							  List *tlist, Plan *outer_plan);

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

	if (info->table->topts.bulk_group != NULL)
	{
		/* a bulk table: every condition is checked here (_since aside) */
		if (info->table->sopts.fhir_version != EPIC_FHIR_R4)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("foreign table \"%s\" has option \"bulk_group\", but its server is not FHIR R4",
							info->table->relname),
					 errhint("FHIR Bulk Data export is an R4 API: set the server option fhir_version 'R4'.")));
		info->local_only = baserel->baserestrictinfo;
		total = info->table->topts.rows > 0 ? info->table->topts.rows : EPIC_UNFILTERED_ROWS;
		rows = total * clauselist_selectivity(root, info->local_only, baserel->relid, JOIN_INNER, NULL);
		baserel->rows = clamp_row_est(rows);
		baserel->tuples = total;
		return;
	}

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

	if (info->table->topts.bulk_group != NULL)
	{
		/* an export: one plain path, no searches by join keys */
		add_path(baserel, (Path *) create_foreignscan_path(root, baserel, NULL, baserel->rows,
														   startup * 10, total, NIL, NULL,
														   NULL, NIL));
		return;
	}

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
	/* a bulk table's export needs no search parameter */
	missing = t->topts.bulk_group ? NULL : epic_table_missing_required(t, names, t->topts.search);
	list_sort(params, epic_param_cmp);
	foreach(lc, params)
		param_lists = lappend(param_lists, epic_param_to_list(lfirst(lc)));

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

/*
 * Is clause "last_updated > value" (or >=, or commuted) on relation relid,
 * where last_updated is the column of path meta.lastUpdated, with a value
 * that does not depend on the relation?  Then *value is that
 * expression and *strict says whether it was > (not >=).
 */
static bool
since_qual(EpicTable *t, Index relid, Expr *clause, Expr **value, bool *strict)
{
	OpExpr	   *op = (OpExpr *) clause;
	Node	   *l,
			   *r;
	char	   *opname;
	Var		   *v;
	Node	   *other;
	bool		var_left;

	if (!IsA(clause, OpExpr) || list_length(op->args) != 2)
		return false;
	l = linitial(op->args);
	r = lsecond(op->args);
	if (IsA(l, RelabelType))
		l = (Node *) ((RelabelType *) l)->arg;
	if (IsA(r, RelabelType))
		r = (Node *) ((RelabelType *) r)->arg;
	if (IsA(l, Var) && ((Var *) l)->varno == (int) relid)
	{
		v = (Var *) l;
		other = r;
		var_left = true;
	}
	else if (IsA(r, Var) && ((Var *) r)->varno == (int) relid)
	{
		v = (Var *) r;
		other = l;
		var_left = false;
	}
	else
		return false;
	/* the column must be meta.lastUpdated itself: that is what _since filters */
	if (v->varlevelsup != 0 || v->varattno <= 0 || v->varattno > t->ncolumns ||
		t->columns[v->varattno - 1].name == NULL ||
		strcmp(t->columns[v->varattno - 1].name, "last_updated") != 0 ||
		t->columns[v->varattno - 1].vcol == NULL ||
		!t->columns[v->varattno - 1].vcol->resource_level ||
		t->columns[v->varattno - 1].vcol->path == NULL ||
		strcmp(t->columns[v->varattno - 1].vcol->path, "meta.lastUpdated") != 0 ||
		v->vartype != TIMESTAMPTZOID || exprType(other) != TIMESTAMPTZOID)
		return false;
	if (contain_var_clause(other) || contain_volatile_functions(other) ||
		contain_subplans(other))
		return false;
	opname = get_opname(op->opno);
	if (opname == NULL)
		return false;
	if ((var_left && strcmp(opname, ">") == 0) || (!var_left && strcmp(opname, "<") == 0))
		*strict = true;
	else if ((var_left && strcmp(opname, ">=") == 0) || (!var_left && strcmp(opname, "<=") == 0))
		*strict = false;
	else
		return false;
	*value = (Expr *) other;
	return true;
}

/*
 * The bulk element of a bulk table's fdw_private (EpicPrivBulk): the group,
 * and the _since condition if a qual gives one: its constant text, or the
 * fdw_exprs index of its run-time value, and whether it is strict.
 */
static List *
bulk_private(EpicTable *t, Index relid, List *rinfos, List **fdw_exprs)
{
	ListCell   *lc;
	char	   *since = "";
	int			index = -1;
	bool		strict = true;

	foreach(lc, rinfos)
	{
		RestrictInfo *ri = lfirst(lc);
		Expr	   *value;
		bool		s;

		if (!since_qual(t, relid, ri->clause, &value, &s))
			continue;
		if (IsA(value, Const))
		{
			if (((Const *) value)->constisnull)
				continue;
			since = epic_bulk_since_text(DatumGetTimestampTz(((Const *) value)->constvalue), s);
			if (since == NULL)
			{
				since = "";
				continue;
			}
		}
		else
		{
			index = list_length(*fdw_exprs);
			*fdw_exprs = lappend(*fdw_exprs, value);
		}
		strict = s;
		break;
	}
	return list_make4(makeString(t->topts.bulk_group), makeString(since),
					  makeInteger(index), makeInteger(strict ? 1 : 0));
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
	priv = side_private(info->table, baserel->relid,
						info->table->topts.bulk_group ? NIL : scan_clauses, attrs, &fdw_exprs,
						scan_count(root, baserel, info, best_path),
						scan_limit(root, baserel, info, best_path), NULL);
	if (info->table->topts.bulk_group)
		priv = lappend(priv, bulk_private(info->table, baserel->relid, scan_clauses, &fdw_exprs));

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
epicBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EpicScanState *st;
	List	   *runtime_states = NIL;
	Oid		   *runtime_types;
	ListCell   *lc;
	int			i;

	if (fsplan->scan.scanrelid == 0)
		st = epic_join_begin(node, eflags);
	else
		st = epic_scan_begin(node, fsplan->fdw_private, fsplan->scan.scanrelid, eflags);
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

static TupleTableSlot *
epicIterateForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;

	if (st->join != NULL)
		return epic_join_iterate(node, st);
	ExecClearTuple(slot);
	if (epic_scan_next_row(node, st))
		epic_scan_store_row(st, slot);
	return slot;
}

static void
epicReScanForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;

	epic_scan_rescan(st);
	if (st->join != NULL)
		epic_join_rescan(st);
}

static void
epicEndForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;

	if (st == NULL)
		return;
	if (st->join != NULL)
		epic_scan_end(st->join->f);
	epic_scan_end(st);
}

static void
epicExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	EpicScanState *st = node->fdw_state;
	List	   *requests = epic_build_queries(st->resource, st->fixed_search, st->params,
											  NULL, st->count, true);

	EpicScanStats total = st->stats;

	if (st->bulk_group != NULL)
		ExplainPropertyText("FHIR Request",
							psprintf("GET %s%s", epic_bulk_request(st->bulk_group, st->resource,
																   st->bulk_since),
									 st->bulk_since_index >= 0 ? "&_since=(run-time value)" : ""), es);
	else
		ExplainPropertyText("FHIR Request", psprintf("GET %s", (char *) linitial(requests)), es);
	if (st->missing_required)
	{
		/* alternatives "category|code" as "category or code" */
		StringInfoData buf;

		initStringInfo(&buf);
		for (const char *p = st->missing_required; *p; p++)
		{
			if (*p == '|')
				appendStringInfoString(&buf, " or ");
			else
				appendStringInfoChar(&buf, *p);
		}
		ExplainPropertyText("FHIR Missing Parameter", buf.data, es);
	}
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
		dinfo->table->topts.bulk_group != NULL || finfo->table->topts.bulk_group != NULL ||
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
									   epic_param_to_list(key)),
							scan_tlist, NIL, outer_plan);
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
	routine->ImportForeignSchema = epic_import_foreign_schema;
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
