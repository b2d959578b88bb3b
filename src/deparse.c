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

/*
 * The FHIR text of an SQL value: dates as YYYY-MM-DD whatever DateStyle is,
 * booleans as true/false, text as is.  *ok is false for values FHIR cannot
 * express (infinite dates, unsupported types).  Returns palloc'd text.
 */
char *
epic_format_value(Datum value, Oid type, bool *ok)
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
				j2date(d + POSTGRES_EPOCH_JDATE, &y, &m, &dd);
				if (y <= 0 || y > 9999)
				{
					*ok = false;
					return NULL;
				}
				return psprintf("%04d-%02d-%02d", y, m, dd);
			}
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

static bool
is_builtin_eq(Oid opno)
{
	char	   *name;

	if (opno >= FirstGenbkiObjectId)
		return false;
	name = get_opname(opno);
	return name != NULL && strcmp(name, "=") == 0;
}

/*
 * Can clause be sent as a FHIR search parameter?  If so fill *param and
 * return true; *runtime_expr is set to the expression to evaluate at run
 * time (a Param, or an outer relation's Var in a parameterized scan), or
 * NULL when the value is a constant already encoded in param->value.
 *
 * Pushed: column = value, and value = ANY(array column), for columns whose
 * definition names a search parameter.
 */
bool
epic_classify_qual(EpicTable *t, Index relid, Expr *clause,
				   EpicSearchParam *param, Expr **runtime_expr)
{
	Var		   *var = NULL;
	Node	   *other = NULL;
	EpicColumn *col;
	bool		any_of_array = false;

	memset(param, 0, sizeof(*param));
	param->runtime_index = -1;
	*runtime_expr = NULL;

	if (IsA(clause, OpExpr))
	{
		OpExpr	   *op = (OpExpr *) clause;

		if (list_length(op->args) != 2 || !is_builtin_eq(op->opno))
			return false;
		var = strip_to_var(linitial(op->args), relid);
		other = lsecond(op->args);
		if (var == NULL)
		{
			var = strip_to_var(lsecond(op->args), relid);
			other = linitial(op->args);
		}
	}
	else if (IsA(clause, ScalarArrayOpExpr))
	{
		ScalarArrayOpExpr *sa = (ScalarArrayOpExpr *) clause;

		/* value = ANY(array_column) */
		if (!sa->useOr || list_length(sa->args) != 2 || !is_builtin_eq(sa->opno))
			return false;
		var = strip_to_var(lsecond(sa->args), relid);
		other = linitial(sa->args);
		any_of_array = true;
	}
	if (var == NULL || other == NULL || var->varattno > t->ncolumns)
		return false;

	col = &t->columns[var->varattno - 1];
	if (col->name == NULL || col->builtin == NULL || col->builtin->search_param == NULL)
		return false;
	if (any_of_array != (col->builtin->combine == EPIC_COMBINE_ARRAY))
		return false;
	if (col->builtin->search_type == EPIC_SP_MRN && t->sopts.mrn_system == NULL)
		return false;
	if (!is_runtime_value(other, relid))
		return false;
	{
		Oid			vtype = exprType(other);

		/* the value must be formattable: text-like, date or boolean */
		if (vtype != TEXTOID && vtype != VARCHAROID && vtype != BPCHAROID &&
			vtype != DATEOID && vtype != BOOLOID && vtype != NAMEOID)
			return false;
	}

	param->name = pstrdup(col->builtin->search_param);
	param->first_word = (col->builtin->search_type == EPIC_SP_STRING_WORD);
	if (col->builtin->search_type == EPIC_SP_MRN)
	{
		StringInfoData prefix;

		initStringInfo(&prefix);
		epic_append_escaped(&prefix, t->sopts.mrn_system);
		appendStringInfoString(&prefix, "%7C");
		param->prefix = prefix.data;
	}

	if (IsA(other, Const))
	{
		Const	   *c = (Const *) other;
		bool		ok;
		char	   *text;

		if (c->constisnull)
			return false;		/* never true; the local recheck says so */
		text = epic_format_value(c->constvalue, c->consttype, &ok);
		if (!ok)
			return false;
		param->value = epic_encode_value(param, text);
		return param->value != NULL;
	}
	*runtime_expr = (Expr *) other;
	return true;
}

/*
 * The encoded search value for text: the parameter's prefix (if any), then
 * the FHIR-escaped, percent-encoded value.  For first_word parameters only
 * the value's first word is sent: the column joins several FHIR strings
 * (given names), and FHIR matches each string on its own, so the first word
 * is what still selects a superset.  Returns NULL when nothing useful can be
 * sent (empty value), in which case the condition is left to the local check.
 */
char *
epic_encode_value(const EpicSearchParam *param, const char *text)
{
	StringInfoData buf;
	char	   *word = NULL;

	if (param->first_word)
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
	if (param->prefix)
		appendStringInfoString(&buf, param->prefix);
	epic_append_escaped(&buf, text);
	if (word)
		pfree(word);
	return buf.data;
}

/* list_sort comparator: by name, then plan-time value, then runtime index */
int
epic_param_cmp(const ListCell *a, const ListCell *b)
{
	const EpicSearchParam *pa = lfirst(a);
	const EpicSearchParam *pb = lfirst(b);
	int			c = strcmp(pa->name, pb->name);

	if (c != 0)
		return c;
	if (pa->value && pb->value)
		return strcmp(pa->value, pb->value);
	if (pa->value)
		return -1;
	if (pb->value)
		return 1;
	return pa->runtime_index - pb->runtime_index;
}

/*
 * The relative request "Resource?fixed&p1=v1&...&_count=N".  Order: the
 * table's fixed "search" option as written, then pushed parameters sorted by
 * name (then value), then _count.  runtime_values[i] is the encoded value of
 * runtime parameter i; when runtime_values is NULL (EXPLAIN) runtime
 * parameters show as $1, $2, ... in fdw_exprs order.
 */
char *
epic_build_query(const char *resource, const char *fixed_search,
				 List *params, char **runtime_values, int count)
{
	StringInfoData buf;
	ListCell   *lc;
	char		sep = '?';

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
		const char *value = p->value;
		bool		dup = false;

		if (value == NULL && runtime_values)
			value = runtime_values[p->runtime_index];

		/*
		 * The same condition can reach a scan twice (a constant and a join
		 * value that the planner knows are equal): send it once.
		 */
		if (value != NULL)
		{
			for (ListCell *lc2 = list_head(params); lc2 != lc; lc2 = lnext(params, lc2))
			{
				EpicSearchParam *q = lfirst(lc2);
				const char *qv = q->value;

				if (qv == NULL && runtime_values)
					qv = runtime_values[q->runtime_index];
				if (qv && strcmp(q->name, p->name) == 0 && strcmp(qv, value) == 0)
					dup = true;
			}
		}
		if (dup)
			continue;

		appendStringInfoChar(&buf, sep);
		sep = '&';
		appendStringInfoString(&buf, p->name);
		appendStringInfoChar(&buf, '=');
		if (value)
			appendStringInfoString(&buf, value);
		else
		{
			if (p->prefix)
				appendStringInfoString(&buf, p->prefix);
			appendStringInfo(&buf, "$%d", p->runtime_index + 1);
		}
	}
	if (count > 0)
		appendStringInfo(&buf, "%c_count=%d", sep, count);
	return buf.data;
}
