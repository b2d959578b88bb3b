/*-------------------------------------------------------------------------
 *
 * convert.c
 *		Column values: evaluate a column's FHIRPath sources on a resource and
 *		turn the items into a Datum of the column's SQL type.
 *
 * FHIR dates and dateTimes:
 *   - a dateTime without an offset is read as UTC; a date read into a
 *     timestamptz column is midnight UTC;
 *   - partial dates ("1987", "1987-09") are NULL in date and timestamptz
 *     columns (FHIR gives no day, and inventing one would make SQL
 *     comparisons disagree with the server's date search); declare the
 *     column as text to see the value as sent, or read it from "resource".
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include "json_page.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"

/* Call the type's input function on text (the column's typmod applies). */
static Datum
input_value(Oid type, int32 typmod, const char *text)
{
	Oid			infunc;
	Oid			ioparam;

	getTypeInputInfo(type, &infunc, &ioparam);
	return OidInputFunctionCall(infunc, (char *) text, ioparam, typmod);
}

static bool
all_digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Is s (len) a complete FHIR date YYYY-MM-DD at its start? */
static bool
is_full_date(const char *s, size_t len)
{
	return len >= 10 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) &&
		s[7] == '-' && all_digits(s + 8, 2);
}

/* Does the time part after 'T' carry a zone (Z or +hh:mm / -hh:mm)? */
static bool
has_zone(const char *s, size_t len)
{
	const char *t = memchr(s, 'T', len);

	if (t == NULL)
		return false;
	for (const char *p = t; p < s + len; p++)
		if (*p == 'Z' || *p == 'z' || *p == '+' || *p == '-')
			return true;
	return false;
}

/* Is s (len) a FHIR partial date, "YYYY" or "YYYY-MM"? */
static bool
is_partial_date(const char *s, size_t len)
{
	return (len == 4 && all_digits(s, 4)) ||
		(len == 7 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2));
}

/*
 * Convert one item's text to the SQL type.  Returns false (NULL value) for
 * partial dates in date/timestamptz columns; any other text that is not a
 * FHIR date/dateTime is an error there.
 */
static bool
text_to_datum(const EpicColumn *col, Oid type, int32 typmod, const char *s, size_t len,
			  Datum *out)
{
	char	   *text;

	if (type == DATEOID || type == TIMESTAMPTZOID)
	{
		if (is_partial_date(s, len))
			return false;
		if (!is_full_date(s, len) || (type == DATEOID && len != 10 && s[10] != 'T'))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_DATETIME_FORMAT),
					 errmsg("invalid FHIR date \"%.*s\"", (int) Min(len, 40), s),
					 errhint("FHIR dates are YYYY, YYYY-MM, YYYY-MM-DD or a dateTime.")));
	}
	if (type == DATEOID)
		text = pnstrdup(s, 10);
	else if (type == TIMESTAMPTZOID)
	{
		if (len == 10)
			text = psprintf("%.*s 00:00:00+00", 10, s);
		else if (!has_zone(s, len))
			text = psprintf("%.*s+00", (int) len, s);
		else
			text = pnstrdup(s, len);
	}
	else
		text = pnstrdup(s, len);
	*out = input_value(type, typmod, text);
	pfree(text);
	return true;
}

/* The JSON kind of an item (derived strings count as strings). */
static EpicJsonKind
item_kind(const EpicFpItem *item)
{
	switch (item->kind)
	{
		case EPIC_FP_NODE:
			return epic_page_ops->kind(item->node);
		case EPIC_FP_STRING:
			return EPIC_JSON_STRING;
		case EPIC_FP_NUMBER:
			return EPIC_JSON_NUMBER;
		case EPIC_FP_BOOL:
			return item->boolval ? EPIC_JSON_TRUE : EPIC_JSON_FALSE;
	}
	return EPIC_JSON_NULL;
}

static const char *
kind_name(EpicJsonKind k)
{
	static const char *const names[] = {"null", "object", "array", "string", "number",
	"boolean", "boolean"};

	return names[k];
}

/*
 * Is the item of a JSON type the column can take?  A view column with a
 * FHIR primitive type needs that type's JSON form (strings for string,
 * code, date, ...; booleans; numbers).  date and timestamptz columns need
 * strings, boolean columns booleans (or, untyped, the strings "true" and
 * "false"); an untyped column is lenient for text (a number or boolean
 * becomes its text, an object its JSON).  Raises an error naming both
 * types otherwise.
 */
static void
check_item(const EpicColumn *col, Oid type, const EpicFpItem *item)
{
	EpicJsonKind k = item_kind(item);
	EpicJsonKind want = col->json_kind;
	bool		ok;

	if (type == JSONBOID || type == JSONOID)
		ok = (want == EPIC_JSON_NULL || k == want ||
			  (want == EPIC_JSON_TRUE && k == EPIC_JSON_FALSE));
	else if (want == EPIC_JSON_TRUE)
		ok = (k == EPIC_JSON_TRUE || k == EPIC_JSON_FALSE);
	else if (want != EPIC_JSON_NULL)
		ok = (k == want);
	else if (type == DATEOID || type == TIMESTAMPTZOID)
		ok = (k == EPIC_JSON_STRING);
	else if (type == BOOLOID)
		ok = (k == EPIC_JSON_TRUE || k == EPIC_JSON_FALSE || k == EPIC_JSON_STRING);
	else
		ok = (k != EPIC_JSON_NULL && (k != EPIC_JSON_OBJECT && k != EPIC_JSON_ARRAY ? true :
									  type == TEXTOID || type == VARCHAROID));
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR value is a JSON %s, but column \"%s\" (%s) needs a %s",
						kind_name(k), col->name, format_type_be(type),
						(want == EPIC_JSON_TRUE || type == BOOLOID) ? "JSON boolean" :
						(want == EPIC_JSON_NUMBER) ? "JSON number" :
						(type == DATEOID || type == TIMESTAMPTZOID) ? "FHIR date string" :
						"JSON string")));
}

/* Text of an item: scalars as themselves, objects/arrays as the server's JSON. */
static char *
item_text(const EpicFpItem *item, size_t *len, char *buf)
{
	const char *s = epic_fp_item_text(epic_page_ops, item, buf, 64, len);

	if (s == NULL && item->kind == EPIC_FP_NODE)
	{
		const char *raw;

		epic_jdoc_raw(item->node, &raw, len);
		return pnstrdup(raw, *len);
	}
	if (s == NULL)
		return NULL;
	return pnstrdup(s, *len);
}

/* jsonb's order of object keys: shorter first, then bytewise; a stable sort. */
static int
pair_cmp(const void *a, const void *b)
{
	const JsonbPair *pa = a;
	const JsonbPair *pb = b;
	int			la = pa->key.val.string.len;
	int			lb = pb->key.val.string.len;
	int			c;

	if (la != lb)
		return la < lb ? -1 : 1;
	c = memcmp(pa->key.val.string.val, pb->key.val.string.val, la);
	if (c != 0)
		return c;
	/* equal names: the later member first, so that it is the one kept */
	return pa->order > pb->order ? -1 : 1;
}

/*
 * A page node as a JsonbValue tree whose strings point into the parsed
 * document (no copies); numbers go through numeric_in, as in jsonb_in.
 * Objects get jsonb's key order, and of duplicate names the last member
 * wins, as jsonb_in does.
 */
static void
node_to_jbv(const void *node, JsonbValue *out)
{
	const EpicJsonOps *J = epic_page_ops;
	char		buf[64];
	size_t		len = 0;
	const char *s;

	check_stack_depth();
	switch (J->kind(node))
	{
		case EPIC_JSON_STRING:
			s = J->scalar(node, buf, sizeof(buf), &len);
			out->type = jbvString;
			out->val.string.val = (char *) s;
			out->val.string.len = (int) len;
			break;
		case EPIC_JSON_NUMBER:
			s = J->scalar(node, buf, sizeof(buf), &len);
			out->type = jbvNumeric;
			out->val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																   CStringGetDatum(pnstrdup(s, len)),
																   ObjectIdGetDatum(InvalidOid),
																   Int32GetDatum(-1)));
			break;
		case EPIC_JSON_TRUE:
		case EPIC_JSON_FALSE:
			out->type = jbvBool;
			out->val.boolean = J->kind(node) == EPIC_JSON_TRUE;
			break;
		case EPIC_JSON_ARRAY:
			{
				size_t		n = J->size(node);

				out->type = jbvArray;
				out->val.array.rawScalar = false;
				out->val.array.nElems = (int) n;
				out->val.array.elems = palloc(sizeof(JsonbValue) * Max(n, 1));
				for (size_t i = 0; i < n; i++)
					node_to_jbv(J->item(node, i), &out->val.array.elems[i]);
				break;
			}
		case EPIC_JSON_OBJECT:
			{
				JsonbPair  *pairs = NULL;
				int			n = 0,
							cap = 8,
							kept;
				const char *name;
				size_t		namelen;
				const void *value;

				pairs = palloc(sizeof(JsonbPair) * cap);
				while (J->member_at(node, (size_t) n, &name, &namelen, &value))
				{
					if (n == cap)
					{
						cap *= 2;
						pairs = repalloc(pairs, sizeof(JsonbPair) * cap);
					}
					pairs[n].key.type = jbvString;
					pairs[n].key.val.string.val = (char *) name;
					pairs[n].key.val.string.len = (int) namelen;
					pairs[n].order = n;
					node_to_jbv(value, &pairs[n].value);
					n++;
				}
				if (n > 16)
					qsort(pairs, n, sizeof(JsonbPair), pair_cmp);
				else
					for (int i = 1; i < n; i++)
					{
						/* insertion sort: FHIR objects are small */
						JsonbPair	p = pairs[i];
						int			j = i;

						for (; j > 0 && pair_cmp(&pairs[j - 1], &p) > 0; j--)
							pairs[j] = pairs[j - 1];
						pairs[j] = p;
					}
				kept = n > 0 ? 1 : 0;
				for (int i = 1; i < n; i++)
				{
					JsonbPair  *prev = &pairs[kept - 1];

					if (pairs[i].key.val.string.len == prev->key.val.string.len &&
						memcmp(pairs[i].key.val.string.val, prev->key.val.string.val,
							   prev->key.val.string.len) == 0)
						continue;
					pairs[kept++] = pairs[i];
				}
				out->type = jbvObject;
				out->val.object.nPairs = kept;
				out->val.object.pairs = pairs;
				break;
			}
		default:
			out->type = jbvNull;
			break;
	}
}

/*
 * jsonb from a node of a page (a resource, or an object-typed path): built
 * from the parsed document directly (the hot path of bulk tables, whose
 * resource column is most of the work), not by reparsing its text with
 * jsonb_in.  A scalar node, or a document read through other ops, goes
 * through jsonb_in.
 */
Datum
epic_json_to_jsonb(const void *node)
{
	const char *raw;
	size_t		len;
	char	   *text;
	Datum		d;
	EpicJsonKind kind = epic_page_ops->kind(node);

	if ((kind == EPIC_JSON_OBJECT || kind == EPIC_JSON_ARRAY) && epic_page_ops->member_at != NULL)
	{
		JsonbValue	v;

		node_to_jbv(node, &v);
		return JsonbPGetDatum(JsonbValueToJsonb(&v));
	}
	epic_jdoc_raw(node, &raw, &len);
	text = pnstrdup(raw, len);
	d = DirectFunctionCall1(jsonb_in, CStringGetDatum(text));
	pfree(text);
	return d;
}

/* One item as a Datum of type (typmod): NULL for partial dates. */
static Datum
item_to_datum(const EpicColumn *col, Oid type, int32 typmod, const EpicFpItem *item,
			  bool *isnull)
{
	char		buf[64];
	size_t		len;
	char	   *s;
	Datum		d;

	*isnull = true;
	check_item(col, type, item);
	if (type == JSONBOID && item->kind == EPIC_FP_NODE)
	{
		*isnull = false;
		return epic_json_to_jsonb(item->node);
	}
	s = item_text(item, &len, buf);
	if (s == NULL)
		return (Datum) 0;
	if (type == JSONBOID || type == JSONOID)
	{
		/* a scalar into a JSON column: as a JSON value */
		StringInfoData j;

		initStringInfo(&j);
		if (item_kind(item) == EPIC_JSON_STRING)
			escape_json(&j, s);
		else
			appendStringInfoString(&j, s);
		*isnull = false;
		return input_value(type, typmod, j.data);
	}
	if (!text_to_datum(col, type, typmod, s, len, &d))
		return (Datum) 0;
	*isnull = false;
	return d;
}

/* Every item as an SQL array (or, for a non-array column, its text / JSON). */
static Datum
items_to_array(const EpicColumn *col, EpicFpResult *res)
{
	Oid			type = col->atttypid;
	Oid			elemtype = get_element_type(type);
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;
	Datum	   *elems;
	bool	   *nulls;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		d;

	if (type == JSONBOID || type == JSONOID)
	{
		/* a JSON array of the items */
		StringInfoData j;

		initStringInfo(&j);
		appendStringInfoChar(&j, '[');
		for (int i = 0; i < res->count; i++)
		{
			bool		isnull;
			Datum		v = item_to_datum(col, JSONBOID, -1, &res->items[i], &isnull);

			if (i > 0)
				appendStringInfoChar(&j, ',');
			appendStringInfoString(&j, isnull ? "null" :
								   DatumGetCString(DirectFunctionCall1(jsonb_out, v)));
		}
		appendStringInfoChar(&j, ']');
		return input_value(type, col->atttypmod, j.data);
	}
	if (!OidIsValid(elemtype))
		elemtype = TEXTOID;		/* a non-array column: text of the list */
	get_typlenbyvalalign(elemtype, &elmlen, &elmbyval, &elmalign);
	elems = palloc(sizeof(Datum) * Max(1, res->count));
	nulls = palloc(sizeof(bool) * Max(1, res->count));
	for (int i = 0; i < res->count; i++)
		elems[i] = item_to_datum(col, elemtype, -1, &res->items[i], &nulls[i]);
	dims[0] = res->count;
	d = PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype,
										   elmlen, elmbyval, elmalign));
	if (!OidIsValid(get_element_type(type)))
		d = input_value(type, col->atttypmod, OidOutputFunctionCall(F_ARRAY_OUT, d));
	return d;
}

/*
 * The value of col in one row of t's view: the column filling cell,
 * evaluated on its node.  A collection column (or an array-typed column)
 * takes every item; another takes the only item, or the first when it came
 * from a path option; more than one item is an error, as SQL on FHIR
 * requires.
 */
Datum
epic_convert_cell(const EpicTable *t, const EpicColumn *col, const void *resource,
				  const EpicViewCell *cell, bool *isnull)
{
	static EpicFpResult res;	/* reused; items point into the document */
	char		errbuf[256];
	const EpicViewColumn *vc;

	*isnull = true;
	if (epic_view_cell_null(t->view, cell))
		return (Datum) 0;
	vc = &t->view->columns[cell->column];
	if (epic_view_cell(t->view, epic_page_ops, resource, cell, &res,
					   errbuf, sizeof(errbuf)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not evaluate path \"%s\": %s", vc->path, errbuf)));
	if (vc->collection || type_is_array(col->atttypid))
	{
		/* a view's collection is an empty array; a path option's, NULL */
		if (res.count == 0 && (!vc->collection || vc->first_only))
			return (Datum) 0;
		*isnull = false;
		return items_to_array(col, &res);
	}
	if (res.count == 0)
		return (Datum) 0;
	if (res.count > 1 && !vc->first_only)
		ereport(ERROR,
				(errcode(ERRCODE_CARDINALITY_VIOLATION),
				 errmsg("path \"%s\" of column \"%s\" gives %d values, but the column is not a collection",
						vc->path, col->name, res.count),
				 errhint("Mark the column \"collection\": true (an array), or make the path give one value, "
						 "e.g. with first().")));
	return item_to_datum(col, col->atttypid, col->atttypmod, &res.items[0], isnull);
}
