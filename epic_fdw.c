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
 * Cost model: one HTTPS round trip dominates everything else: a request
 * costs as much as reading a hundred pages, a row (a resource parsed and
 * mapped) ten times a local tuple.  A search with no pushed condition is
 * assumed to return a large population; each pushed condition selects what
 * epic_classify_qual estimates (one resource per _id, a few per patient, a
 * share of the population for the rest).  The scale matters beyond the
 * choice between epic_fdw's own paths: PostgreSQL JIT-compiles plans above
 * jit_above_cost (100000), and a query that reads tens of rows must stay
 * below it.
 */
#define EPIC_REQUEST_COST	100.0
#define EPIC_ROW_COST		0.1
#define EPIC_UNFILTERED_ROWS 1000000.0
#define EPIC_PARAM_ROWS		EPIC_PATIENT_ROWS
#define EPIC_MISSING_PARAM_COST 1.0e25

/* Planner state of one foreign base relation (baserel->fdw_private). */
typedef struct EpicRelInfo
{
	EpicTable  *table;
	int			npushed;		/* pushable baserestrictinfo quals */
	double		anchor_rows;	/* what pushed _id/identifier/patient
								 * conditions select (0: none) */
	double		selectivity;	/* of the other pushed conditions */
	List	   *pushed_names;	/* search parameter names pushed */
	List	   *local_only;		/* quals that cannot be pushed */
	bool		no_match;		/* a condition no row can match: no request */
	bool		inexact;		/* a pushed condition the server matches
								 * more loosely than SQL (e.g. prefix) */
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
	info->selectivity = 1.0;
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

		if (epic_classify_qual(info->table, baserel->relid, ri->clause, p, &rt) > 0 &&
			p[0].role != EPIC_PR_PROBE)
		{
			if (p[0].role == EPIC_PR_NO_MATCH)
				info->no_match = true;
			if (!p[0].exact)
				info->inexact = true;
			info->npushed++;
			info->pushed_names = lappend(info->pushed_names, p[0].name);
			if (p[0].role == EPIC_PR_SEND && p[0].anchor_rows > 0)
				info->anchor_rows = info->anchor_rows > 0 ?
					Min(info->anchor_rows, p[0].anchor_rows) : p[0].anchor_rows;
			else if (p[0].role == EPIC_PR_SEND)
				info->selectivity *= p[0].selectivity;
		}
		else
			info->local_only = lappend(info->local_only, ri);
	}

	/*
	 * The server returns what the pushed conditions select: what _id,
	 * identifier or patient conditions select (else the table's "rows"
	 * option, or a large default), shrunk by each other pushed condition.
	 */
	total = info->table->topts.rows > 0 ? info->table->topts.rows : EPIC_UNFILTERED_ROWS;
	if (info->no_match)
		rows = 1;
	else
		rows = (info->anchor_rows > 0 ? Min(info->anchor_rows, total) : total) *
			info->selectivity;
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
	if (epic_classify_qual(info->table, baserel->relid, rinfo->clause, p, &rt) == 0 ||
		p[0].role != EPIC_PR_SEND)
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
	 * of contention and raises a clear error if it ever runs.  The penalty
	 * is far above PostgreSQL's disable_cost (1e10), which a valid plan of
	 * three or more relations can exceed (a million-row estimate times a
	 * request per row), so that any plan supplying the parameter wins,
	 * whatever the join order and the number of relations.
	 */
	if (!info->no_match &&
		epic_table_missing_required(info->table, info->pushed_names,
									info->table->topts.search) != NULL)
	{
		startup += EPIC_MISSING_PARAM_COST;
		total += EPIC_MISSING_PARAM_COST;
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
 * between, and every condition pushed and exact, so that each row the
 * server sends is a row of the result).
 */
static int
scan_count(PlannerInfo *root, RelOptInfo *baserel, EpicRelInfo *info, ForeignPath *best_path)
{
	int			count = info->table->sopts.page_size;

	if (root->limit_tuples > 0 && root->parse->sortClause == NIL &&
		root->parse->distinctClause == NIL && root->parse->setOperations == NULL &&
		bms_membership(root->all_baserels) == BMS_SINGLETON &&
		info->local_only == NIL && !info->inexact && best_path->path.param_info == NULL &&
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
		info->local_only == NIL && !info->inexact && best_path->path.param_info == NULL)
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
	bool		no_match = false;
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
			if (pp->role == EPIC_PR_SEND)
				names = lappend(names, (char *) pp->name);
			else if (pp->role == EPIC_PR_NO_MATCH)
				no_match = true;
		}
	}
	if (extra != NULL)
	{
		params = lappend(params, extra);
		names = lappend(names, extra->name);
	}
	/* a bulk table's export needs no search parameter */
	missing = (no_match || t->topts.bulk_group) ? NULL :
		epic_table_missing_required(t, names, t->topts.search);
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

/*
 * "FHIR Searches": how many searches (first pages) the scan makes, for a
 * join or a scan of more than one search (OR lists packed under
 * max_url_length, or one value per search).  With ANALYZE the searches
 * sent; without, those known at plan time, and for a join's fan-out an
 * estimate from the planner's row count, assuming keys of 24 bytes (Epic's
 * FHIR ids) and one key per search without or_lists.
 */
static void
explain_searches(EpicScanState *st, ExplainState *es)
{
	List	   *reqs;
	int			n;

	if (es->analyze)
	{
		n = st->searches + (st->join ? st->join->f->searches : 0);
		if (st->join != NULL || n > 1)
			ExplainPropertyInteger("FHIR Searches", NULL, n, es);
		return;
	}
	reqs = st->table->read_by_id ? epic_scan_reads(st) :
		epic_build_queries_packed(st->resource, st->fixed_search, st->params, NULL,
								  st->count, st->table->sopts.or_lists,
								  st->table->sopts.fhir_url,
								  st->table->sopts.max_url_length);
	n = list_length(reqs);
	if (st->join != NULL)
	{
		EpicScanState *f = st->join->f;
		const char *q = linitial(epic_build_queries(f->resource, f->fixed_search, f->params,
													NULL, f->count, true));
		double		room = f->table->sopts.max_url_length -
			(double) strlen(f->table->sopts.fhir_url) - strlen(q);
		double		per = f->table->sopts.or_lists ? Max(1, floor((room + 1) / 25)) : 1;

		ExplainPropertyText("FHIR Searches",
							psprintf("%d, then about %.0f fan-out (estimate)", n,
									 ceil(st->join->est_keys / per)), es);
		return;
	}
	if (n > 1)
		ExplainPropertyInteger("FHIR Searches", NULL, n, es);
}

static void
epicExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	EpicScanState *st = node->fdw_state;
	List	   *requests = st->table->read_by_id ? epic_scan_reads(st) :
		epic_build_queries_packed(st->resource, st->fixed_search, st->params, NULL, st->count,
								  true, st->table->sopts.fhir_url,
								  st->table->sopts.max_url_length);

	EpicScanStats total = st->stats;

	ListCell   *lc;
	bool		no_match = false;

	foreach(lc, st->params)
		if (((EpicSearchParam *) lfirst(lc))->role == EPIC_PR_NO_MATCH)
			no_match = true;
	if (st->bulk_group != NULL)
		ExplainPropertyText("FHIR Request",
							psprintf("GET %s%s", epic_bulk_request(st->bulk_group, st->resource,
																   st->bulk_since),
									 st->bulk_since_index >= 0 ? "&_since=(run-time value)" : ""), es);
	else if (no_match)
		ExplainPropertyText("FHIR Request", "none (a condition matches no row)", es);
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
		if (st->join->mode != EPIC_JOIN_INNER)
		{
			EpicScanState *kept = st->join->preserve_fanout ? f : st;

			ExplainPropertyText("FHIR Join Kind",
								psprintf(st->join->mode == EPIC_JOIN_SEMI ?
										 "semi-join: each row of %s with a match, once" :
										 "anti-join: each row of %s without a match",
										 kept->table->relname), es);
		}
		ExplainPropertyText("FHIR Fan-out Request", psprintf("GET %s", (char *) linitial(freqs)), es);
		ExplainPropertyText("FHIR Fan-out",
							f->table->sopts.or_lists ?
							psprintf("the keys as OR lists in URLs of at most %d bytes, up to %d searches at a time",
									 f->table->sopts.max_url_length,
									 f->table->sopts.max_concurrency) :
							psprintf("one search per key, up to %d at a time",
									 f->table->sopts.max_concurrency), es);
		total.requests += f->stats.requests;
		total.pages += f->stats.pages;
		total.bytes += f->stats.bytes;
		total.token_requests += f->stats.token_requests;
		total.wait_time += f->stats.wait_time;
	}
	explain_searches(st, es);
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
	EpicJoinMode mode;			/* inner, semi- or anti-join */
	bool		preserve_fanout;	/* semi-join: the fan-out side's rows are
									 * the result (else the driving side's) */
	List	   *quals;			/* checked on the rows produced (RestrictInfos) */
	List	   *pair_quals;		/* semi/anti: whether a pair matches */
} EpicJoinInfo;

static Var *
plain_var(Node *n)
{
	while (n && IsA(n, RelabelType))
		n = (Node *) ((RelabelType *) n)->arg;
	return (n && IsA(n, Var)) ? (Var *) n : NULL;
}

/*
 * The key of driving side drel and fan-out side frel: a clause
 * frel.column = drel.column among clauses that gives frel a search
 * parameter (e.g. medication_statements.patient_id = patients.id gives
 * patient), both columns text.  False if there is none, or if either side
 * cannot be searched that way (drel on its own, frel with the key).
 */
static bool
join_key(RelOptInfo *drel, RelOptInfo *frel, List *clauses, EpicSearchParam *key,
		 AttrNumber *d_attno, AttrNumber *f_attno)
{
	EpicRelInfo *dinfo = drel->fdw_private;
	EpicRelInfo *finfo = frel->fdw_private;
	ListCell   *lc;
	bool		found = false;

	/* the driving side is searched on its own */
	if (epic_table_missing_required(dinfo->table, dinfo->pushed_names,
									dinfo->table->topts.search) != NULL)
		return false;
	foreach(lc, clauses)
	{
		RestrictInfo *ri = lfirst(lc);
		EpicSearchParam p[EPIC_MAX_PARAMS_PER_QUAL];
		Expr	   *rt;
		Var		   *dv;
		Var		   *fv = NULL;
		OpExpr	   *op;

		if (found || !IsA(ri->clause, OpExpr) ||
			epic_classify_qual(finfo->table, frel->relid, ri->clause, p, &rt) != 1 ||
			rt == NULL || p[0].is_list || p[0].role != EPIC_PR_SEND)
			continue;
		dv = plain_var((Node *) rt);
		if (dv == NULL || dv->varno != (int) drel->relid || dv->varattno <= 0 ||
			dv->varlevelsup != 0 ||
			(exprType((Node *) dv) != TEXTOID && exprType((Node *) dv) != VARCHAROID))
			continue;
		op = (OpExpr *) ri->clause;
		if (list_length(op->args) != 2)
			continue;
		fv = plain_var(linitial(op->args));
		if (fv == NULL || fv->varno != (int) frel->relid)
			fv = plain_var(lsecond(op->args));
		if (fv == NULL || fv->varno != (int) frel->relid || fv->varattno <= 0 ||
			(exprType((Node *) fv) != TEXTOID && exprType((Node *) fv) != VARCHAROID))
			continue;
		*key = p[0];
		*d_attno = dv->varattno;
		*f_attno = fv->varattno;
		found = true;
	}
	/* the fan-out side's required parameters: its own conditions and the key */
	return found &&
		epic_table_missing_required(finfo->table,
									lappend(list_copy(finfo->pushed_names), (char *) key->name),
									finfo->table->topts.search) == NULL;
}

/*
 * A join of two epic_fdw tables of one server and user, run as one scan:
 * the driving side searched by its own conditions, the fan-out side by the
 * key a join clause gives it (see join_key).  Inner joins, and (PostgreSQL
 * 15 hands this callback JOIN_SEMI, JOIN_ANTI and the unique-ified inner
 * forms of a semi-join, all for the same semi-join relation) EXISTS,
 * NOT EXISTS and IN (subquery): a semi-join is driven from either side, an
 * anti-join from the side whose rows it keeps.
 */
static void
epicGetForeignJoinPaths(PlannerInfo *root, RelOptInfo *joinrel, RelOptInfo *outerrel,
						RelOptInfo *innerrel, JoinType jointype, JoinPathExtraData *extra)
{
	EpicRelInfo *oinfo;
	EpicRelInfo *iinfo;
	EpicJoinInfo *ji;
	ListCell   *lc;
	List	   *vars;
	EpicSearchParam key;
	AttrNumber	d_attno = 0,
				f_attno = 0;
	RelOptInfo *drel = NULL;
	RelOptInfo *frel = NULL;
	RelOptInfo *lrel = outerrel;	/* semi/anti: the side whose rows it keeps */
	EpicJoinMode mode;
	double		requests;
	Cost		startup,
				total;
	Path	   *dpath;
	const EpicServerOptions *sopts;

	if (joinrel->fdw_private != NULL || !epic_pushdown)
		return;
	switch (extra->sjinfo->jointype)
	{
		case JOIN_INNER:
			if (jointype != JOIN_INNER)
				return;
			mode = EPIC_JOIN_INNER;
			break;
		case JOIN_SEMI:
			mode = EPIC_JOIN_SEMI;
			break;
		case JOIN_ANTI:
			if (jointype != JOIN_ANTI)
				return;
			mode = EPIC_JOIN_ANTI;
			break;
		default:
			return;
	}
	if (outerrel->reloptkind != RELOPT_BASEREL || innerrel->reloptkind != RELOPT_BASEREL)
		return;
	if (root->parse->rowMarks != NIL || !bms_is_empty(joinrel->lateral_relids))
		return;
	oinfo = outerrel->fdw_private;
	iinfo = innerrel->fdw_private;
	if (oinfo == NULL || iinfo == NULL ||
		oinfo->table->topts.bulk_group != NULL || iinfo->table->topts.bulk_group != NULL ||
		oinfo->table->server->serverid != iinfo->table->server->serverid ||
		outerrel->userid != innerrel->userid)
		return;
	/* the scan tuple holds plain columns only */
	vars = pull_var_clause((Node *) joinrel->reltarget->exprs, PVC_INCLUDE_PLACEHOLDERS);
	foreach(lc, vars)
	{
		Var		   *v = lfirst(lc);

		if (!IsA(v, Var) || v->varattno <= 0)
			return;
	}

	if (mode != EPIC_JOIN_INNER &&
		bms_is_subset(outerrel->relids, extra->sjinfo->syn_righthand))
		lrel = innerrel;		/* JOIN_UNIQUE_OUTER: the subquery's side is outer */
	if (mode == EPIC_JOIN_INNER)
	{
		if (join_key(outerrel, innerrel, extra->restrictlist, &key, &d_attno, &f_attno))
			drel = outerrel;
	}
	else
	{
		RelOptInfo *rrel = (lrel == outerrel) ? innerrel : outerrel;

		/* driven from the kept side; a semi-join also from the other */
		if (join_key(lrel, rrel, extra->restrictlist, &key, &d_attno, &f_attno))
			drel = lrel;
		else if (mode == EPIC_JOIN_SEMI &&
				 join_key(rrel, lrel, extra->restrictlist, &key, &d_attno, &f_attno))
			drel = rrel;
	}
	if (drel == NULL)
		return;
	frel = (drel == outerrel) ? innerrel : outerrel;

	ji = palloc0(sizeof(EpicJoinInfo));
	ji->drel = drel;
	ji->frel = frel;
	ji->key = key;
	ji->d_attno = d_attno;
	ji->f_attno = f_attno;
	ji->mode = mode;
	if (mode == EPIC_JOIN_INNER)
		ji->quals = list_concat(list_concat(list_copy(extra->restrictlist),
											outerrel->baserestrictinfo),
								innerrel->baserestrictinfo);
	else
	{
		/*
		 * Rows kept are checked by their own side's conditions; a pair
		 * matches by the join clauses and the other side's conditions.
		 */
		RelOptInfo *other = (lrel == outerrel) ? innerrel : outerrel;

		ji->preserve_fanout = (frel == lrel);
		ji->quals = list_copy(lrel->baserestrictinfo);
		ji->pair_quals = list_concat(list_copy(extra->restrictlist), other->baserestrictinfo);
	}

	/*
	 * Cost: the driving side's search, then its keys' searches, as many at
	 * once as max_concurrency allows (one OR list with or_lists), reading
	 * the rows a parameterized search per key would (add_param_path).
	 */
	sopts = &((EpicRelInfo *) frel->fdw_private)->table->sopts;
	dpath = drel->cheapest_total_path;
	requests = sopts->or_lists ? 1 : Max(1, drel->rows);
	startup = dpath->startup_cost + EPIC_REQUEST_COST;
	total = dpath->total_cost +
		ceil(requests / Max(1, sopts->max_concurrency)) * EPIC_REQUEST_COST +
		Max(1, drel->rows) * Min(EPIC_PARAM_ROWS, frel->rows) * (EPIC_ROW_COST + cpu_tuple_cost);

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

/*
 * Does a LIMIT stop reading the join's rows (no sort or grouping needs them
 * all)?  Then neither side fetches pages ahead.
 */
static bool
join_limited(PlannerInfo *root)
{
	return root->limit_tuples > 0 && root->parse->sortClause == NIL &&
		root->parse->groupClause == NIL && !root->parse->hasAggs &&
		root->parse->distinctClause == NIL && root->parse->setOperations == NULL;
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
	List	   *pair = extract_actual_clauses(ji->pair_quals, false);
	List	   *scan_tlist;
	List	   *dpriv;
	List	   *fpriv;
	int			pair_index = -1;

	scan_tlist = add_to_flat_tlist(NIL, pull_var_clause((Node *) joinrel->reltarget->exprs,
														PVC_RECURSE_PLACEHOLDERS));
	scan_tlist = add_to_flat_tlist(scan_tlist, pull_var_clause((Node *) quals,
															   PVC_RECURSE_PLACEHOLDERS));
	scan_tlist = add_to_flat_tlist(scan_tlist, pull_var_clause((Node *) pair,
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
	if (pair != NIL)
	{
		/* whether a pair matches (semi/anti): evaluated by the scan itself */
		pair_index = list_length(fdw_exprs);
		fdw_exprs = lappend(fdw_exprs, make_ands_explicit(pair));
	}

	return make_foreignscan(tlist, quals, 0, fdw_exprs,
							list_make5(dpriv, fpriv,
									   list_concat(list_make5(makeInteger(ji->drel->relid),
															  makeInteger(ji->frel->relid),
															  makeInteger(ji->d_attno),
															  makeInteger(ji->f_attno),
															  makeInteger(key->runtime_index)),
												   list_make5(makeInteger(join_limited(root)),
															  makeInteger(ji->mode),
															  makeInteger(ji->preserve_fanout),
															  makeInteger(pair_index),
															  makeInteger(root->tuple_fraction > 0))),
									   epic_param_to_list(key),
									   makeFloat(psprintf("%.0f", Max(1, ji->drel->rows)))),
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

/* Is relid a foreign table whose wrapper is epic_fdw's handler? */
bool
epic_is_own_table(Oid relid)
{
	FdwRoutine *routine;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		return false;
	routine = GetFdwRoutineByRelId(relid);
	return routine->GetForeignRelSize == epicGetForeignRelSize;
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
	epic_progress_define_gucs();
#ifdef EPIC_FAULT_INJECTION
	epic_http_define_fault_gucs();
#endif
	MarkGUCPrefixReserved("epic_fdw");
}
