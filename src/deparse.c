/*-------------------------------------------------------------------------
 *
 * deparse.c
 *		Which WHERE conditions can become FHIR search parameters, and the
 *		text of the resulting search request.
 *
 * Pushability is decided in epic_classify_qual(); text is built separately
 * by epic_build_query().  A FHIR search is treated as a superset filter:
 * every condition stays in the plan as a local recheck, so pushing one down
 * only ever reduces what is fetched, never what SQL returns.
 *
 * Every value goes through one escaper, epic_append_escaped(): FHIR's own
 * escaping of \ , $ | followed by percent-encoding.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include "access/transam.h"
#include "catalog/pg_type.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/clauses.h"
#include "optimizer/optimizer.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

/* Percent-encode; keeps RFC 3986 unreserved characters and ":/@," as is. */
void
epic_append_urlencoded(StringInfo buf, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
	{
		unsigned char c = *p;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == ':' || c == '/' ||
			c == '@' || c == ',')
			appendStringInfoChar(buf, (char) c);
		else
		{
			appendStringInfoChar(buf, '%');
			appendStringInfoChar(buf, hex[c >> 4]);
			appendStringInfoChar(buf, hex[c & 15]);
		}
	}
}

/*
 * Append one search value: FHIR escaping (a backslash before \ , $ |, so the
 * server reads them literally rather than as OR list, composite or system
 * separators), then percent-encoding.
 */
void
epic_append_escaped(StringInfo buf, const char *value)
{
	StringInfoData esc;

	initStringInfo(&esc);
	for (const char *p = value; *p; p++)
	{
		if (*p == '\\' || *p == ',' || *p == '$' || *p == '|')
			appendStringInfoChar(&esc, '\\');
		appendStringInfoChar(&esc, *p);
	}
	epic_append_urlencoded(buf, esc.data);
	pfree(esc.data);
}

bool		epic_pushdown = true;
bool		epic_audit_log = false;
bool		epic_audit_log_values = false;

/* Seconds between 2000-01-01 and the FHIR text of a timestamp, UTC. */
static char *
format_timestamp(TimestampTz ts, EpicValueForm form, bool *ok)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (TIMESTAMP_NOT_FINITE(ts))
	{
		*ok = false;
		return NULL;
	}
	/* whole seconds, then the widening (see epic_classify_qual) */
	ts -= ts % USECS_PER_SEC;
	if (ts < 0 && ts % USECS_PER_SEC != 0)
		ts -= USECS_PER_SEC;
	if (form == EPIC_VF_TS_LOWER)
		ts -= 2 * USECS_PER_DAY;
	else if (form == EPIC_VF_TS_UPPER)
		ts += 2 * USECS_PER_DAY;
	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0 ||
		tm.tm_year <= 0 || tm.tm_year > 9999)
	{
		*ok = false;
		return NULL;
	}
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year, tm.tm_mon, tm.tm_mday,
					tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * The day of a timestamp (with time zone: in the session's time zone, as SQL
 * compares a date with it), as YYYY-MM-DD; with ceil, the first day starting
 * at or after it (the next day unless it is a midnight).
 */
static char *
format_day(Timestamp ts, bool with_tz, bool ceil, bool *ok)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz;
	int			jd;

	if (TIMESTAMP_NOT_FINITE(ts) ||
		timestamp2tm(ts, with_tz ? &tz : NULL, &tm, &fsec, NULL, NULL) != 0)
	{
		*ok = false;
		return NULL;
	}
	jd = date2j(tm.tm_year, tm.tm_mon, tm.tm_mday);
	if (ceil && (tm.tm_hour != 0 || tm.tm_min != 0 || tm.tm_sec != 0 || fsec != 0))
		jd++;
	j2date(jd, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
	if (tm.tm_year <= 0 || tm.tm_year > 9999)
	{
		*ok = false;
		return NULL;
	}
	*ok = true;
	return psprintf("%04d-%02d-%02d", tm.tm_year, tm.tm_mon, tm.tm_mday);
}

/*
 * The FHIR text of an SQL value: dates as YYYY-MM-DD and timestamps as
 * YYYY-MM-DDThh:mm:ssZ whatever DateStyle and TimeZone are, booleans as
 * true/false, text as is.  *ok is false for values FHIR cannot express
 * (infinite dates, unsupported types).  Returns palloc'd text.
 */
char *
epic_format_value(Datum value, Oid type, EpicValueForm form, bool *ok)
{
	*ok = true;
	switch (type)
	{
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case NAMEOID:
			return TextDatumGetCString(value);
		case DATEOID:
			{
				DateADT		d = DatumGetDateADT(value);
				int			y,
							m,
							dd;

				if (DATE_NOT_FINITE(d))
				{
					*ok = false;
					return NULL;
				}
				if (form == EPIC_VF_TS_LOWER)
					d -= 2;
				else if (form == EPIC_VF_TS_UPPER)
					d += 2;
				j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &dd);
				if (y <= 0 || y > 9999)
				{
					*ok = false;
					return NULL;
				}
				return psprintf("%04d-%02d-%02d", y, m, dd);
			}
		case TIMESTAMPTZOID:
		case TIMESTAMPOID:
			if (form == EPIC_VF_DAY_FLOOR || form == EPIC_VF_DAY_CEIL)
				return format_day(DatumGetTimestamp(value), type == TIMESTAMPTZOID,
								  form == EPIC_VF_DAY_CEIL, ok);

			/*
			 * A timestamp without time zone is read as UTC: SQL compares it
			 * in the session's time zone (at most 15 hours away), which the
			 * two days' widening covers.
			 */
			return format_timestamp(DatumGetTimestampTz(value), form, ok);
		case BOOLOID:
			return pstrdup(DatumGetBool(value) ? "true" : "false");
		default:
			*ok = false;
			return NULL;
	}
}

static Var *
strip_to_var(Node *node, Index relid)
{
	while (node && IsA(node, RelabelType))
		node = (Node *) ((RelabelType *) node)->arg;
	if (node && IsA(node, Var))
	{
		Var		   *v = (Var *) node;

		if (v->varno == (int) relid && v->varlevelsup == 0 && v->varattno > 0)
			return v;
	}
	return NULL;
}

/* Is expr something whose value is fixed for one execution of the scan? */
static bool
is_runtime_value(Node *expr, Index relid)
{
	Bitmapset  *varnos;

	if (contain_volatile_functions(expr) || contain_subplans(expr))
		return false;
	varnos = pull_varnos(NULL, expr);
	if (bms_is_member(relid, varnos))
		return false;
	return true;
}

/* Operators we know, by name; only built-in ones. */
typedef enum EpicOp
{
	OP_NONE,
	OP_EQ,
	OP_LT,
	OP_LE,
	OP_GT,
	OP_GE,
	OP_LIKE,
	OP_ILIKE
} EpicOp;

static EpicOp
builtin_op(Oid opno)
{
	static const struct
	{
		const char *name;
		EpicOp		op;
	}			ops[] = {
		{"=", OP_EQ}, {"<", OP_LT}, {"<=", OP_LE}, {">", OP_GT}, {">=", OP_GE},
		{"~~", OP_LIKE}, {"~~*", OP_ILIKE}
	};
	char	   *name;

	if (opno >= FirstGenbkiObjectId)
		return OP_NONE;
	name = get_opname(opno);
	if (name == NULL)
		return OP_NONE;
	for (size_t i = 0; i < lengthof(ops); i++)
		if (strcmp(ops[i].name, name) == 0)
			return ops[i].op;
	return OP_NONE;
}

static EpicOp
commute(EpicOp op)
{
	switch (op)
	{
		case OP_LT:
			return OP_GT;
		case OP_LE:
			return OP_GE;
		case OP_GT:
			return OP_LT;
		case OP_GE:
			return OP_LE;
		default:
			return op;
	}
}

static bool
is_text_type(Oid t)
{
	return t == TEXTOID || t == VARCHAROID || t == BPCHAROID || t == NAMEOID;
}

static bool
is_datetime_type(Oid t)
{
	return t == DATEOID || t == TIMESTAMPOID || t == TIMESTAMPTZOID;
}

/*
 * The literal prefix of a LIKE pattern of the form 'literal%' (backslash
 * escapes), or NULL if the pattern has another shape.
 */
static char *
like_prefix(const char *pattern)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = pattern; *p; p++)
	{
		if (*p == '\\' && p[1])
			appendStringInfoChar(&buf, *++p);
		else if (*p == '%' || *p == '_')
			break;
		else
			appendStringInfoChar(&buf, *p);
	}
	if (strcmp(p, "%") != 0 || buf.len == 0)
		return NULL;
	return buf.data;
}

/*
 * Can clause become FHIR search parameters?  Returns how many (0: no; at
 * most EPIC_MAX_PARAMS_PER_QUAL) and fills params[].  *runtime_expr is set
 * to the expression to evaluate at run time (a Param, or an outer relation's
 * Var in a parameterized scan), or NULL for constants, whose encoded values
 * are in params[i].values.
 *
 * Each pushed parameter selects a superset of the rows the clause accepts
 * by the FHIR specification's definition of the parameter, on any
 * conformant server (the clause stays in the plan as a local recheck):
 *   token, reference, _id, MRN:  =, IN (...) / = ANY(array)  (comma OR list)
 *   string:  =, LIKE/ILIKE 'literal%'  (FHIR string search is a
 *            case-insensitive prefix match); for columns that join several
 *            strings (given) only the first word is sent
 *   date (FHIR date elements):  = < <= > >=  ->  eq lt le gt ge
 *   dateTime/Period/instant:  < <= -> lt, > >= -> ge, = -> both, with the
 *            bound moved two days outwards: a server may read a date or an
 *            offset-less dateTime in its own time zone, which SQL (UTC)
 *            cannot know
 *   array column:  value = ANY(column)
 * With the GUC epic_fdw.pushdown off only the resource's required
 * parameter is pushed.
 *
 * Whatever the pushdown setting, a condition that no row can satisfy (a
 * NULL constant, an empty or all-NULL array) is returned as one parameter
 * of role EPIC_PR_NO_MATCH: the scan makes no request.  A condition whose
 * value is a statement parameter but which is not pushed is returned as a
 * EPIC_PR_PROBE parameter (never sent): the scan makes no request when the
 * value turns out NULL or empty.
 */
typedef struct QualShape
{
	Var		   *var;
	Node	   *other;
	EpicOp		op;
	bool		any_of_array;	/* value = ANY(array column) */
	bool		in_list;		/* column = ANY(array value) */
} QualShape;

/* column OP value, value OP column, column = ANY(array), value = ANY(column)? */
static bool
qual_shape(Index relid, Expr *clause, QualShape *q)
{
	memset(q, 0, sizeof(QualShape));
	if (IsA(clause, OpExpr))
	{
		OpExpr	   *opx = (OpExpr *) clause;

		if (list_length(opx->args) != 2)
			return false;
		q->op = builtin_op(opx->opno);
		q->var = strip_to_var(linitial(opx->args), relid);
		q->other = lsecond(opx->args);
		if (q->var == NULL)
		{
			q->var = strip_to_var(lsecond(opx->args), relid);
			q->other = linitial(opx->args);
			if (q->op == OP_LIKE || q->op == OP_ILIKE)
				return false;	/* 'x' LIKE column */
			q->op = commute(q->op);
		}
	}
	else if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *sa = (ScalarArrayOpExpr *) clause;

		if (!sa->useOr || list_length(sa->args) != 2 || builtin_op(sa->opno) != OP_EQ)
			return false;
		q->op = OP_EQ;
		q->var = strip_to_var(linitial(sa->args), relid);
		if (q->var != NULL)
		{
			/* column = ANY(array): an IN list */
			q->other = lsecond(sa->args);
			q->in_list = true;
		}
		else
		{
			/* value = ANY(array column) */
			q->var = strip_to_var(lsecond(sa->args), relid);
			q->other = linitial(sa->args);
			q->any_of_array = true;
		}
	}
	return q->op != OP_NONE && q->var != NULL && q->other != NULL;
}

/* The elements of an array Datum (palloc'd); returns how many. */
static int
array_elements(Datum value, Oid *elemtype, Datum **elems, bool **nulls)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	int			nelems;

	*elemtype = ARR_ELEMTYPE(arr);
	get_typlenbyvalalign(*elemtype, &elmlen, &elmbyval, &elmalign);
	deconstruct_array(arr, *elemtype, elmlen, elmbyval, elmalign, elems, nulls, &nelems);
	return nelems;
}

/*
 * Does a constant select no row: NULL, or (an IN list) an array that is
 * empty or only NULLs?
 */
static bool
const_matches_nothing(Const *c, bool in_list)
{
	Oid			elemtype;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;

	if (c->constisnull)
		return true;
	if (!in_list)
		return false;
	nelems = array_elements(c->constvalue, &elemtype, &elems, &nulls);
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			return false;
	return true;
}

/* Are the first len bytes of a FHIRPath a plain element path ("period.start")? */
static bool
path_is_plain(const char *path, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char) path[i]) && path[i] != '_' && path[i] != '.')
			return false;
	return len > 0;
}

/*
 * Does the server return exactly the rows that column op value accepts (so
 * that _count = LIMIT is enough)?  By the specification: _id always; a
 * reference or a token on a plain element path (one code, not the first
 * of several codings or telecoms); a date element compared with eq.
 * String search is a prefix match, dateTime bounds are widened, and a date
 * range comparison also matches partial dates (NULL in SQL): none of these
 * is exact.
 */
static bool
condition_is_exact(const EpicColumn *col, EpicOp op)
{
	const char *path = col->vcol->path;

	if (op != OP_EQ)
		return false;
	switch (col->search_type)
	{
		case EPIC_SP_SPECIAL_ID:
			return true;
		case EPIC_SP_TOKEN:
			return path_is_plain(path, strlen(path));
		case EPIC_SP_REFERENCE:
			{
				/* subject.getReferenceKey(Patient) */
				const char *key = strstr(path, ".getReferenceKey(");

				return key != NULL && path_is_plain(path, key - path);
			}
		case EPIC_SP_DATE:
			return path_is_plain(path, strlen(path));
		default:
			return false;
	}
}

/*
 * What a pushed parameter is expected to select (for the planner's row
 * estimates): _id and identifier one resource per value, patient a few per
 * value (EPIC_PATIENT_ROWS); other parameters a share of the population:
 * a token on a plain code element (status, gender) a large one, other
 * tokens (a phone, a diagnosis code) and strings (a family name) a small
 * one, date equality a day's share, ranges a third.
 */
static void
estimate(EpicSearchParam *p, const EpicColumn *col, EpicOp op, Node *other, bool in_list)
{
	double		nvalues = 1;

	if (IsA(other, Const) && in_list && !((Const *) other)->constisnull)
	{
		ArrayType  *arr = DatumGetArrayTypeP(((Const *) other)->constvalue);

		nvalues = Max(1, ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)));
	}
	else if (in_list)
		nvalues = 10;			/* a run-time list: a few values */
	p->anchor_rows = 0;
	p->selectivity = 1;
	switch (col->search_type)
	{
		case EPIC_SP_SPECIAL_ID:
		case EPIC_SP_MRN:
			p->anchor_rows = nvalues;
			break;
		case EPIC_SP_REFERENCE:
			p->anchor_rows = nvalues * EPIC_PATIENT_ROWS;
			break;
		case EPIC_SP_TOKEN:
			p->selectivity = path_is_plain(col->vcol->path, strlen(col->vcol->path)) ?
				0.3 * nvalues : 1e-4 * nvalues;
			break;
		case EPIC_SP_STRING:
		case EPIC_SP_STRING_WORD:
			p->selectivity = (op == OP_EQ ? 1e-4 : 1e-3) * nvalues;
			break;
		case EPIC_SP_DATE:
			p->selectivity = op == OP_EQ ? 1e-4 : 0.3;
			break;
		case EPIC_SP_DATETIME:
			p->selectivity = op == OP_EQ ? 1e-2 : 0.3;
			break;
		case EPIC_SP_NONE:
			break;
	}
	p->selectivity = Min(1.0, p->selectivity);
}

static int	classify_push(EpicTable *t, Index relid, QualShape *q,
						  EpicSearchParam *params, Expr **runtime_expr);

int
epic_classify_qual(EpicTable *t, Index relid, Expr *clause,
				   EpicSearchParam *params, Expr **runtime_expr)
{
	QualShape	q;
	EpicColumn *col;
	int			n;

	memset(params, 0, sizeof(EpicSearchParam) * EPIC_MAX_PARAMS_PER_QUAL);
	params[0].runtime_index = params[1].runtime_index = -1;
	*runtime_expr = NULL;

	if (!qual_shape(relid, clause, &q) || q.var->varattno > t->ncolumns)
		return 0;
	col = &t->columns[q.var->varattno - 1];
	if (col->name == NULL)
		return 0;
	if (IsA(q.other, Const) && const_matches_nothing((Const *) q.other, q.in_list))
	{
		params[0].name = pstrdup(col->search_param ? col->search_param : "");
		params[0].role = EPIC_PR_NO_MATCH;
		return 1;
	}
	n = classify_push(t, relid, &q, params, runtime_expr);
	if (n > 0)
		return n;

	/* a statement parameter not pushed: still no request if it selects nothing */
	memset(params, 0, sizeof(EpicSearchParam) * EPIC_MAX_PARAMS_PER_QUAL);
	params[0].runtime_index = params[1].runtime_index = -1;
	*runtime_expr = NULL;
	if (IsA(q.other, Param) && ((Param *) q.other)->paramkind == PARAM_EXTERN &&
		(!q.in_list || type_is_array(exprType(q.other))))
	{
		params[0].name = pstrdup("");
		params[0].role = EPIC_PR_PROBE;
		params[0].is_list = q.in_list;
		params[0].param_id = ((Param *) q.other)->paramid;
		*runtime_expr = (Expr *) q.other;
		return 1;
	}
	return 0;
}

/* The pushable part of epic_classify_qual: SEND parameters, or 0. */
static int
classify_push(EpicTable *t, Index relid, QualShape *q,
			  EpicSearchParam *params, Expr **runtime_expr)
{
	Var		   *var = q->var;
	Node	   *other = q->other;
	EpicColumn *col;
	EpicOp		op = q->op;
	bool		any_of_array = q->any_of_array;
	bool		in_list = q->in_list;
	Oid			vtype;
	int			n = 1;

	col = &t->columns[var->varattno - 1];
	if (col->name == NULL || col->search_param == NULL || col->search_type == EPIC_SP_NONE)
		return 0;
	if (!epic_pushdown && !epic_table_param_wanted(t, col->search_param))
		return 0;
	if (any_of_array != col->is_array)
		return 0;
	if (col->search_type == EPIC_SP_MRN && t->sopts.mrn_system == NULL)
		return 0;
	if (!is_runtime_value(other, relid))
		return 0;

	/* the value's type: the column's own (an element of it for IN lists) */
	vtype = exprType(other);
	if (in_list)
		vtype = get_element_type(vtype);
	if (any_of_array)
	{
		if (!is_text_type(vtype) || !is_text_type(get_element_type(col->atttypid)))
			return 0;
	}
	else if (is_datetime_type(col->atttypid) &&
			 (col->search_type == EPIC_SP_DATE || col->search_type == EPIC_SP_DATETIME))
	{
		/* a date or timestamp column with any of date, timestamp, timestamptz */
		if (!is_datetime_type(vtype))
			return 0;
	}
	else if (is_text_type(col->atttypid) ? !is_text_type(vtype) : vtype != col->atttypid)
		return 0;
	if (vtype != TEXTOID && vtype != VARCHAROID && vtype != BPCHAROID &&
		vtype != NAMEOID && !is_datetime_type(vtype) && vtype != BOOLOID)
		return 0;

	/* which operators each search type takes */
	switch (col->search_type)
	{
		case EPIC_SP_TOKEN:
		case EPIC_SP_REFERENCE:
		case EPIC_SP_SPECIAL_ID:
		case EPIC_SP_MRN:
			if (op != OP_EQ)
				return 0;
			break;
		case EPIC_SP_STRING:
		case EPIC_SP_STRING_WORD:
			if (op != OP_EQ && op != OP_LIKE && op != OP_ILIKE)
				return 0;
			if ((op == OP_LIKE || op == OP_ILIKE) && (!IsA(other, Const) || in_list))
				return 0;
			break;
		case EPIC_SP_DATE:
		case EPIC_SP_DATETIME:
			if (in_list || op == OP_LIKE || op == OP_ILIKE)
				return 0;
			if (!is_datetime_type(vtype))
				return 0;
			break;
		case EPIC_SP_NONE:
			return 0;
	}

	params[0].name = pstrdup(col->search_param);
	params[0].is_list = in_list;
	params[0].exact = condition_is_exact(col, op);
	estimate(&params[0], col, op, other, in_list);
	if (col->search_type == EPIC_SP_STRING_WORD)
		params[0].form = EPIC_VF_FIRST_WORD;
	if (col->search_type == EPIC_SP_MRN)
	{
		StringInfoData prefix;

		initStringInfo(&prefix);
		epic_append_escaped(&prefix, t->sopts.mrn_system);
		appendStringInfoString(&prefix, "%7C");
		params[0].prefix = prefix.data;
	}
	if (col->search_type == EPIC_SP_DATE)
	{
		static const char *const prefixes[] = {NULL, NULL, "lt", "le", "gt", "ge"};

		params[0].comparator = (char *) prefixes[op];

		/*
		 * A date D against a timestamp T (D is midnight of its day): D > T
		 * and D <= T compare D with T's day, D >= T and D < T with the
		 * first day starting at or after T (the next day unless T is a
		 * midnight); D = T needs T's day.
		 */
		if (vtype != DATEOID)
		{
			params[0].form = (op == OP_GE || op == OP_LT) ? EPIC_VF_DAY_CEIL : EPIC_VF_DAY_FLOOR;
			params[0].exact = false;
		}
	}
	else if (col->search_type == EPIC_SP_DATETIME)
	{
		if (op == OP_LT || op == OP_LE || op == OP_EQ)
		{
			params[0].comparator = "lt";
			params[0].form = EPIC_VF_TS_UPPER;
		}
		if (op == OP_EQ)
		{
			params[1] = params[0];
			params[1].name = pstrdup(params[0].name);
			n = 2;
		}
		if (op == OP_GT || op == OP_GE || op == OP_EQ)
		{
			params[n - 1].comparator = "ge";
			params[n - 1].form = EPIC_VF_TS_LOWER;
		}
	}

	if (IsA(other, Const))
	{
		Const	   *c = (Const *) other;

		for (int i = 0; i < n; i++)
		{
			if (op == OP_LIKE || op == OP_ILIKE)
			{
				char	   *prefix;

				if (c->constisnull)
					return 0;
				prefix = like_prefix(TextDatumGetCString(c->constvalue));
				if (prefix == NULL)
					return 0;
				params[i].values = list_make1(epic_encode_value(&params[i], prefix));
				if (linitial(params[i].values) == NULL)
					return 0;
			}
			else if (epic_encode_datum(&params[i], c->constvalue, c->consttype, c->constisnull,
										 &params[i].values) != EPIC_ENC_OK)
				return 0;		/* FHIR cannot express it: left to the local check */
		}
		return n;
	}
	if (IsA(other, Param) && ((Param *) other)->paramkind == PARAM_EXTERN)
		params[0].param_id = params[1].param_id = ((Param *) other)->paramid;
	*runtime_expr = (Expr *) other;
	return n;
}

/*
 * The encoded search value for text: the comparator and prefix (if any),
 * then the FHIR-escaped, percent-encoded value.  For FIRST_WORD parameters
 * only the value's first word is sent: the column joins several FHIR strings
 * (given names), and FHIR matches each string on its own, so the first word
 * is what still selects a superset.  Returns NULL when nothing useful can be
 * sent (empty value), in which case the condition is left to the local check.
 */
char *
epic_encode_value(const EpicSearchParam *param, const char *text)
{
	StringInfoData buf;
	char	   *word = NULL;

	if (param->form == EPIC_VF_FIRST_WORD)
	{
		size_t		n = strcspn(text, " \t\r\n");

		if (n == 0)
			return NULL;
		word = pnstrdup(text, n);
		text = word;
	}
	if (text[0] == '\0')
		return NULL;
	initStringInfo(&buf);
	if (param->comparator)
		appendStringInfoString(&buf, param->comparator);
	if (param->prefix)
		appendStringInfoString(&buf, param->prefix);
	epic_append_escaped(&buf, text);
	if (word)
		pfree(word);
	return buf.data;
}

/*
 * Encoded values of an SQL value for param: one for a scalar, one per
 * non-NULL element for an array (an IN list), in *out.  NO_MATCH when no
 * row can match (NULL, or only NULL elements); UNSENDABLE when FHIR cannot
 * express a value (an empty string, an infinite date, a value starting with
 * a space for a first-word parameter), in which case the condition must be
 * left to the local check rather than sent.
 */
EpicEncodeResult
epic_encode_datum(const EpicSearchParam *param, Datum value, Oid type, bool isnull, List **out)
{
	*out = NIL;
	if (isnull)
		return EPIC_ENC_NO_MATCH;
	if (param->is_list)
	{
		Oid			elemtype;
		Datum	   *elems;
		bool	   *nulls;
		int			nelems = array_elements(value, &elemtype, &elems, &nulls);
		List	   *strs = NIL;

		for (int i = 0; i < nelems; i++)
		{
			bool		ok;
			char	   *text;
			char	   *enc;
			bool		dup = false;
			ListCell   *lc;

			if (nulls[i])
				continue;
			text = epic_format_value(elems[i], elemtype, param->form, &ok);
			if (!ok)
				return EPIC_ENC_UNSENDABLE;
			enc = epic_encode_value(param, text);
			if (enc == NULL)
				return EPIC_ENC_UNSENDABLE;
			foreach(lc, strs)
				if (strcmp((char *) lfirst(lc), enc) == 0)
					dup = true;
			if (!dup)
				strs = lappend(strs, enc);
		}
		*out = strs;
		return strs == NIL ? EPIC_ENC_NO_MATCH : EPIC_ENC_OK;
	}
	else
	{
		bool		ok;
		char	   *text = epic_format_value(value, type, param->form, &ok);
		char	   *enc;

		if (!ok)
			return EPIC_ENC_UNSENDABLE;
		enc = epic_encode_value(param, text);
		if (enc == NULL)
			return EPIC_ENC_UNSENDABLE;
		*out = list_make1(enc);
		return EPIC_ENC_OK;
	}
}

/* Does a table's fixed "search" option (name=value&...) set parameter name? */
bool
epic_search_has_param(const char *search, const char *name)
{
	size_t		n = strlen(name);

	for (const char *p = search; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
	{
		/* the name, possibly with a :modifier, then '=' */
		if (strncmp(p, name, n) == 0 && (p[n] == '=' || p[n] == ':'))
			return true;
	}
	return false;
}

/*
 * A relative request with every search value replaced by "*" (except
 * _count), for the audit log: which parameters were searched, not what.
 */
char *
epic_redact_query(const char *request)
{
	StringInfoData buf;
	const char *q = strchr(request, '?');

	initStringInfo(&buf);
	if (q == NULL)
	{
		appendStringInfoString(&buf, request);
		return buf.data;
	}
	appendBinaryStringInfo(&buf, request, (int) (q - request + 1));
	for (const char *p = q + 1; *p;)
	{
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', end - p);

		if (eq == NULL || strncmp(p, "_count=", 7) == 0)
			appendBinaryStringInfo(&buf, p, (int) (end - p));
		else
		{
			appendBinaryStringInfo(&buf, p, (int) (eq - p + 1));
			appendStringInfoChar(&buf, '*');
		}
		if (amp == NULL)
			break;
		appendStringInfoChar(&buf, '&');
		p = amp + 1;
	}
	return buf.data;
}

/* list_sort comparator: by name, then first plan-time value, then runtime index */
int
epic_param_cmp(const ListCell *a, const ListCell *b)
{
	const EpicSearchParam *pa = lfirst(a);
	const EpicSearchParam *pb = lfirst(b);
	int			c = strcmp(pa->name, pb->name);

	if (c != 0)
		return c;
	if (pa->values && pb->values)
		return strcmp(linitial(pa->values), linitial(pb->values));
	if (pa->values)
		return -1;
	if (pb->values)
		return 1;
	return pa->runtime_index - pb->runtime_index;
}

/* The value list of p for this execution (runtime_values may be NULL: EXPLAIN). */
static List *
param_values(const EpicSearchParam *p, List **runtime_values)
{
	if (p->values != NIL)
		return p->values;
	if (runtime_values != NULL)
		return runtime_values[p->runtime_index];
	return NIL;
}

static char *
join_values(List *values)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, values)
	{
		if (buf.len)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, (char *) lfirst(lc));
	}
	return buf.data;
}

/*
 * Append "name=value" for each parameter; choice[i] selects one value of
 * parameter i when OR lists are split (-1: all values, comma-joined).
 */
static char *
build_one(const char *resource, const char *fixed_search, List *params,
		  List **runtime_values, int count, const int *choice)
{
	StringInfoData buf;
	ListCell   *lc;
	char		sep = '?';
	List	   *sent = NIL;
	int			i = 0;

	initStringInfo(&buf);
	appendStringInfoString(&buf, resource);
	if (fixed_search && fixed_search[0])
	{
		appendStringInfoChar(&buf, sep);
		appendStringInfoString(&buf, fixed_search);
		sep = '&';
	}
	foreach(lc, params)
	{
		EpicSearchParam *p = lfirst(lc);
		List	   *values = param_values(p, runtime_values);
		char	   *text;
		char	   *pair;

		if (p->role != EPIC_PR_SEND)
		{
			i++;
			continue;			/* never sent */
		}
		if (values == NIL && runtime_values != NULL)
		{
			i++;
			continue;			/* a run-time value FHIR cannot express: local only */
		}
		if (values == NIL)
		{
			/* EXPLAIN: a placeholder for a value known only at run time */
			text = psprintf("%s%s%s", p->comparator ? p->comparator : "",
							p->prefix ? p->prefix : "",
							p->param_id > 0 ? psprintf("$%d", p->param_id) : "?");
		}
		else if (choice && choice[i] >= 0)
			text = list_nth(values, choice[i]);
		else
			text = join_values(values);
		i++;

		/*
		 * The same condition can reach a scan twice (a constant and a join
		 * value that the planner knows are equal): send it once.
		 */
		pair = psprintf("%s=%s", p->name, text);
		if (list_member(sent, makeString(pair)))
			continue;
		sent = lappend(sent, makeString(pair));

		appendStringInfoChar(&buf, sep);
		sep = '&';
		appendStringInfoString(&buf, pair);
	}
	if (count > 0)
		appendStringInfo(&buf, "%c_count=%d", sep, count);
	return buf.data;
}

/*
 * The relative requests "Resource?fixed&p1=v1&...&_count=N" for one scan.
 * Order: the table's fixed "search" option as written, then pushed
 * parameters sorted by name (then value), then _count.  Several values of a
 * parameter are one comma-separated OR list, or, when or_lists is false,
 * one request per combination of values.  runtime_values[i] is the list of
 * encoded values of fdw_exprs item i; when runtime_values is NULL (EXPLAIN)
 * run-time values show as $n (a statement parameter) or ? (a join value).
 * Returns a List of palloc'd strings.
 */
List *
epic_build_queries(const char *resource, const char *fixed_search,
				   List *params, List **runtime_values, int count, bool or_lists)
{
	int			n = list_length(params);
	int		   *choice;
	int		   *sizes;
	List	   *out = NIL;
	ListCell   *lc;
	int			i = 0;
	bool		split = false;

	if (or_lists || runtime_values == NULL)
		return list_make1(build_one(resource, fixed_search, params, runtime_values, count, NULL));

	choice = palloc0(sizeof(int) * Max(n, 1));
	sizes = palloc0(sizeof(int) * Max(n, 1));
	foreach(lc, params)
	{
		sizes[i] = list_length(param_values(lfirst(lc), runtime_values));
		if (sizes[i] > 1)
			split = true;
		i++;
	}
	if (!split)
		return list_make1(build_one(resource, fixed_search, params, runtime_values, count, NULL));

	/* every combination, like an odometer */
	for (;;)
	{
		out = lappend(out, build_one(resource, fixed_search, params, runtime_values, count, choice));
		for (i = n - 1; i >= 0; i--)
		{
			if (sizes[i] > 1 && ++choice[i] < sizes[i])
				break;
			choice[i] = 0;
		}
		if (i < 0)
			break;
	}
	return out;
}

/* Serialise an EpicSearchParam for fdw_private (copyObject-able nodes). */
List *
epic_param_to_list(EpicSearchParam *p)
{
	List	   *values = NIL;
	ListCell   *lc;

	foreach(lc, p->values)
		values = lappend(values, makeString(lfirst(lc)));
	return list_make5(makeString(p->name), values,
					  list_make4(makeInteger(p->runtime_index), makeInteger(p->param_id),
								 makeInteger(p->form), makeInteger(p->role)),
					  makeBoolean(p->is_list),
					  list_make2(makeString(p->comparator ? p->comparator : ""),
								 makeString(p->prefix ? p->prefix : "")));
}

EpicSearchParam *
epic_param_from_list(List *l)
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
	p->role = (EpicParamRole) intVal(lfourth(ints));
	p->is_list = boolVal(lfourth(l));
	p->comparator = strVal(linitial(strs))[0] ? strVal(linitial(strs)) : NULL;
	p->prefix = strVal(lsecond(strs))[0] ? strVal(lsecond(strs)) : NULL;
	return p;
}
