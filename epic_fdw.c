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
#include "utils/builtins.h"
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

/* Indexes into ForeignScan.fdw_private (a List). */
enum EpicScanPrivateIndex
{
	EpicPrivResource,			/* String: resource type */
	EpicPrivFixedSearch,		/* String: table "search" option, or "" */
	EpicPrivParams,				/* List of Lists: name, value, index, prefix */
	EpicPrivRetrieved,			/* List of Integer attnums to compute */
	EpicPrivMissingRequired		/* String: required param not supplied, or "" */
};

/* Planner state of one foreign base relation (baserel->fdw_private). */
typedef struct EpicRelInfo
{
	EpicTable  *table;
	int			npushed;		/* pushable baserestrictinfo quals */
	bool		has_unique;		/* a pushed _id or identifier */
	List	   *pushed_names;	/* search parameter names pushed */
} EpicRelInfo;

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
	int			page_size;

	/* compiled FHIRPath sources, per column (malloc'd, freed by callback) */
	EpicFpExpr *(*compiled)[EPIC_MAX_SOURCES];
	MemoryContextCallback free_cb;
	EpicFpEnv	env;
	const char *env_names[1];
	const char *env_values[1];

	/* paging */
	MemoryContext page_cxt;
	MemoryContext tuple_cxt;
	EpicPage   *page;
	int			next_index;
	char	   *next_url;		/* in page_cxt */
	char	   *request;		/* relative request of the first page */
	bool		started;
	bool		done;

	EpicOutcomeSeen seen;
	EpicScanStats stats;
} EpicScanState;

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
	List	   *local_only = NIL;

	info->table = epic_table_resolve(foreigntableid);
	baserel->fdw_private = info;

	foreach(lc, baserel->baserestrictinfo)
	{
		RestrictInfo *ri = lfirst(lc);
		EpicSearchParam p;
		Expr	   *rt;

		if (epic_classify_qual(info->table, baserel->relid, ri->clause, &p, &rt))
		{
			info->npushed++;
			info->pushed_names = lappend(info->pushed_names, p.name);
			if (strcmp(p.name, "_id") == 0 || strcmp(p.name, "identifier") == 0)
				info->has_unique = true;
		}
		else
			local_only = lappend(local_only, ri);
	}

	/* the server returns what the pushed conditions select */
	if (info->has_unique)
		rows = 1;
	else
		rows = EPIC_UNFILTERED_ROWS * pow(EPIC_CONDITION_SELECTIVITY, info->npushed);
	rows *= clauselist_selectivity(root, local_only, baserel->relid, JOIN_INNER, NULL);
	baserel->rows = clamp_row_est(rows);
	baserel->tuples = EPIC_UNFILTERED_ROWS;
}

static bool
list_has_name(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return true;
	return false;
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
	if (!IsA(expr, Var))
		return false;
	var = (Var *) expr;
	if (var->varno != (int) rel->relid || var->varattno <= 0 || var->varattno > a->table->ncolumns)
		return false;
	col = &a->table->columns[var->varattno - 1];
	if (col->builtin == NULL || col->builtin->search_param == NULL ||
		col->builtin->combine == EPIC_COMBINE_ARRAY)
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
	EpicSearchParam p;
	Expr	   *rt;
	double		rows;
	ForeignPath *path;

	if (!join_clause_is_movable_to(rinfo, baserel))
		return;
	if (!epic_classify_qual(info->table, baserel->relid, rinfo->clause, &p, &rt))
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

	ppi = get_baserel_parampathinfo(root, baserel, required_outer);
	rows = (strcmp(p.name, "_id") == 0 || strcmp(p.name, "identifier") == 0) ? 1 : EPIC_PARAM_ROWS;
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
	const char *required = info->table->builtin ? info->table->builtin->required_param : NULL;
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
	if (required && !list_has_name(info->pushed_names, required))
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

/* Serialise an EpicSearchParam for fdw_private. */
static List *
param_to_list(EpicSearchParam *p)
{
	return list_make5(makeString(p->name),
					  makeString(p->value ? p->value : ""),
					  makeInteger(p->runtime_index),
					  makeString(p->prefix ? p->prefix : ""),
					  makeBoolean(p->first_word));
}

static EpicSearchParam *
param_from_list(List *l)
{
	EpicSearchParam *p = palloc0(sizeof(EpicSearchParam));
	char	   *v = strVal(lsecond(l));
	char	   *prefix = strVal(lfourth(l));

	p->name = strVal(linitial(l));
	p->value = v[0] ? v : NULL;
	p->runtime_index = intVal(lthird(l));
	p->prefix = prefix[0] ? prefix : NULL;
	p->first_word = boolVal(list_nth(l, 4));
	return p;
}

static ForeignScan *
epicGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				   ForeignPath *best_path, List *tlist, List *scan_clauses,
				   Plan *outer_plan)
{
	EpicRelInfo *info = baserel->fdw_private;
	EpicTable  *t = info->table;
	List	   *params = NIL;
	List	   *fdw_exprs = NIL;
	List	   *param_lists = NIL;
	List	   *retrieved = NIL;
	Bitmapset  *attrs = NULL;
	ListCell   *lc;
	const char *required = t->builtin ? t->builtin->required_param : NULL;
	bool		have_required = (required == NULL);
	int			i;

	foreach(lc, scan_clauses)
	{
		RestrictInfo *ri = lfirst(lc);
		EpicSearchParam p;
		EpicSearchParam *pp;
		Expr	   *rt;

		if (!epic_classify_qual(t, baserel->relid, ri->clause, &p, &rt))
			continue;
		pp = palloc(sizeof(EpicSearchParam));
		*pp = p;
		if (rt != NULL)
		{
			pp->runtime_index = list_length(fdw_exprs);
			fdw_exprs = lappend(fdw_exprs, rt);
		}
		params = lappend(params, pp);
		if (required && strcmp(p.name, required) == 0)
			have_required = true;
	}
	list_sort(params, epic_param_cmp);
	foreach(lc, params)
		param_lists = lappend(param_lists, param_to_list(lfirst(lc)));

	/* columns needed: the target list and every qual (all are rechecked) */
	pull_varattnos((Node *) baserel->reltarget->exprs, baserel->relid, &attrs);
	foreach(lc, scan_clauses)
		pull_varattnos((Node *) ((RestrictInfo *) lfirst(lc))->clause, baserel->relid, &attrs);
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

	/* every condition is checked locally: FHIR matching is a superset */
	scan_clauses = extract_actual_clauses(scan_clauses, false);

	return make_foreignscan(tlist, scan_clauses, baserel->relid, fdw_exprs,
							list_make5(makeString(t->resource),
									   makeString(t->topts.search ? t->topts.search : ""),
									   param_lists,
									   retrieved,
									   makeString(have_required ? "" : (char *) required)),
							NIL, NIL, outer_plan);
}

/* ---------------------------------------------------------------------
 * Execution
 * ---------------------------------------------------------------------
 */
static void
free_compiled(void *arg)
{
	EpicScanState *st = arg;

	if (st->compiled == NULL)
		return;
	for (int i = 0; i < st->table->ncolumns; i++)
		for (int j = 0; j < EPIC_MAX_SOURCES; j++)
			epic_fp_free(st->compiled[i][j]);
	st->compiled = NULL;
}

static void
compile_columns(EpicScanState *st)
{
	ListCell   *lc;

	st->compiled = palloc0(sizeof(*st->compiled) * Max(1, st->table->ncolumns));
	st->free_cb.func = free_compiled;
	st->free_cb.arg = st;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &st->free_cb);

	foreach(lc, st->retrieved)
	{
		int			attnum = lfirst_int(lc);
		EpicColumn *col = &st->table->columns[attnum - 1];

		for (int j = 0; j < EPIC_MAX_SOURCES; j++)
		{
			const char *path = col->def->sources[j].path;
			char		errbuf[256];
			int			pos;

			if (path == NULL)
				break;
			st->compiled[attnum - 1][j] = epic_fp_parse(path, errbuf, sizeof(errbuf), &pos);
			if (st->compiled[attnum - 1][j] == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid FHIRPath for column \"%s\": %s at position %d",
								col->name, errbuf, pos)));
		}
	}
}

static void
epicBeginForeignScan(ForeignScanState *node, int eflags)
{
	ForeignScan *fsplan = (ForeignScan *) node->ss.ps.plan;
	EState	   *estate = node->ss.ps.state;
	EpicScanState *st = palloc0(sizeof(EpicScanState));
	List	   *priv = fsplan->fdw_private;
	ListCell   *lc;
	Oid			userid;
	int			i;

	node->fdw_state = st;
	st->table = epic_table_resolve(RelationGetRelid(node->ss.ss_currentRelation));
	st->resource = strVal(list_nth(priv, EpicPrivResource));
	st->fixed_search = strVal(list_nth(priv, EpicPrivFixedSearch));
	foreach(lc, (List *) list_nth(priv, EpicPrivParams))
		st->params = lappend(st->params, param_from_list(lfirst(lc)));
	st->retrieved = (List *) list_nth(priv, EpicPrivRetrieved);
	st->missing_required = strVal(list_nth(priv, EpicPrivMissingRequired));
	if (st->missing_required[0] == '\0')
		st->missing_required = NULL;
	st->page_size = st->table->sopts.page_size;
	st->seen.cxt = CurrentMemoryContext;

	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;

	{
		RangeTblEntry *rte = exec_rt_fetch(fsplan->scan.scanrelid, estate);

		userid = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
	}
	st->um = GetUserMapping(userid, st->table->server->serverid);

	st->runtime_types = palloc0(sizeof(Oid) * Max(1, list_length(fsplan->fdw_exprs)));
	i = 0;
	foreach(lc, fsplan->fdw_exprs)
	{
		Expr	   *e = lfirst(lc);

		st->runtime_states = lappend(st->runtime_states, ExecInitExpr(e, (PlanState *) node));
		st->runtime_types[i++] = exprType((Node *) e);
	}

	st->env_names[0] = "mrn_system";
	st->env_values[0] = st->table->sopts.mrn_system;
	st->env.count = 1;
	st->env.names = st->env_names;
	st->env.values = st->env_values;
	compile_columns(st);

	st->page_cxt = AllocSetContextCreate(estate->es_query_cxt, "epic_fdw page",
										 ALLOCSET_DEFAULT_SIZES);
	st->tuple_cxt = AllocSetContextCreate(estate->es_query_cxt, "epic_fdw tuple",
										  ALLOCSET_DEFAULT_SIZES);
}

/*
 * Build the first request of this (re)scan; returns false if a runtime
 * value is NULL or not expressible, in which case no row can match.
 */
static bool
build_first_request(ForeignScanState *node, EpicScanState *st)
{
	int			n = list_length(st->runtime_states);
	char	  **values = palloc0(sizeof(char *) * Max(1, n));
	ExprContext *econtext = node->ss.ps.ps_ExprContext;
	ListCell   *lc;
	int			i = 0;
	MemoryContext old;

	foreach(lc, st->runtime_states)
	{
		ExprState  *es = lfirst(lc);
		bool		isnull;
		Datum		d = ExecEvalExpr(es, econtext, &isnull);
		bool		ok;
		char	   *text;
		ListCell   *lc2;

		if (isnull)
			return false;
		text = epic_format_value(d, st->runtime_types[i], &ok);
		if (!ok)
			return false;
		foreach(lc2, st->params)
		{
			EpicSearchParam *p = lfirst(lc2);

			if (p->runtime_index == i)
				values[i] = epic_encode_value(p, text);
		}
		if (values[i] == NULL)
			return false;
		i++;
	}
	old = MemoryContextSwitchTo(GetMemoryChunkContext(st));
	st->request = epic_build_query(st->resource, st->fixed_search, st->params, values,
								   st->page_size);
	MemoryContextSwitchTo(old);
	return true;
}

/* Fetch the page at url (absolute) into st->page. */
static void
fetch_page(EpicScanState *st, const char *url, const char *display)
{
	EpicHttpResponse resp;
	MemoryContext old;
	const char *next;

	MemoryContextReset(st->page_cxt);
	st->page = NULL;
	st->next_url = NULL;
	st->next_index = 0;

	old = MemoryContextSwitchTo(st->page_cxt);
	epic_fhir_get(st->conn, st->um, &st->table->sopts, url, display, &resp, &st->stats);
	if (resp.status != 200)
		epic_raise_http_error(&resp, display, "FHIR search");
	st->page = epic_page_parse(resp.body.data, resp.body.len, st->resource, display);
	pfree(resp.body.data);
	st->stats.pages++;
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
	MemoryContextSwitchTo(old);
}

static TupleTableSlot *
epicIterateForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;
	TupleTableSlot *slot = node->ss.ss_ScanTupleSlot;
	const void *resource;
	ListCell   *lc;
	MemoryContext old;

	ExecClearTuple(slot);
	if (st->done)
		return slot;

	if (!st->started)
	{
		st->started = true;
		if (st->missing_required)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_UNABLE_TO_CREATE_EXECUTION),
					 errmsg("a search of %s requires the search parameter \"%s\"",
							st->resource, st->missing_required),
					 errdetail("No condition of the query supplies it, so the FHIR server would reject the search."),
					 errhint("Add a condition such as WHERE patient_id = '...', or join to patients ON patient_id = patients.id.")));
		if (!build_first_request(node, st))
		{
			st->done = true;
			return slot;
		}
		if (st->conn == NULL)
			st->conn = epic_get_connection(st->um, st->table->server);
		{
			char	   *url = psprintf("%s%s", st->table->sopts.fhir_url, st->request);

			fetch_page(st, url, st->request);
			pfree(url);
		}
	}

	/* advance to a page with a resource left */
	while (st->page == NULL || st->next_index >= epic_page_count(st->page))
	{
		char	   *url;
		char	   *display;

		if (st->next_url == NULL)
		{
			MemoryContextReset(st->page_cxt);
			st->page = NULL;
			st->done = true;
			return slot;
		}
		CHECK_FOR_INTERRUPTS();
		url = pstrdup(st->next_url);
		/* show next links relative to the base, as the first request is */
		display = pstrdup(strncmp(url, st->table->sopts.fhir_url,
								  strlen(st->table->sopts.fhir_url)) == 0 ?
						  url + strlen(st->table->sopts.fhir_url) : url);
		fetch_page(st, url, display);
		pfree(url);
		pfree(display);
	}

	resource = epic_page_resource(st->page, st->next_index++);
	MemoryContextReset(st->tuple_cxt);
	old = MemoryContextSwitchTo(st->tuple_cxt);
	memset(slot->tts_isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
	foreach(lc, st->retrieved)
	{
		int			attnum = lfirst_int(lc);
		EpicColumn *col = &st->table->columns[attnum - 1];

		slot->tts_values[attnum - 1] =
			epic_convert_column(col, resource, st->compiled[attnum - 1], &st->env,
								&slot->tts_isnull[attnum - 1]);
	}
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
	return slot;
}

static void
epicReScanForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;

	MemoryContextReset(st->page_cxt);
	st->page = NULL;
	st->next_url = NULL;
	st->next_index = 0;
	st->started = false;
	st->done = false;
}

static void
epicEndForeignScan(ForeignScanState *node)
{
	EpicScanState *st = node->fdw_state;

	if (st == NULL)
		return;
	if (st->page_cxt)
		MemoryContextReset(st->page_cxt);
	free_compiled(st);
}

static void
epicExplainForeignScan(ForeignScanState *node, ExplainState *es)
{
	EpicScanState *st = node->fdw_state;
	char	   *request = epic_build_query(st->resource, st->fixed_search, st->params,
										   NULL, st->page_size);

	ExplainPropertyText("FHIR Request", psprintf("GET %s", request), es);
	if (st->missing_required)
		ExplainPropertyText("FHIR Missing Parameter", st->missing_required, es);
	if (es->analyze)
	{
		ExplainPropertyInteger("FHIR Requests", NULL, st->stats.requests, es);
		ExplainPropertyInteger("FHIR Pages", NULL, st->stats.pages, es);
		ExplainPropertyInteger("FHIR Bytes", NULL, st->stats.bytes, es);
		ExplainPropertyInteger("Token Requests", NULL, st->stats.token_requests, es);
		if (es->timing)
			ExplainPropertyFloat("HTTP Wait Time", "ms", st->stats.wait_time * 1000.0, 3, es);
	}
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
	PG_RETURN_POINTER(routine);
}

void
_PG_init(void)
{
	MarkGUCPrefixReserved("epic_fdw");
}
