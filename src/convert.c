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

#include "catalog/pg_type.h"
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
			return epic_jansson_ops.kind(item->node);
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
 * Is the item of a JSON type the column can take?  Dates and dateTimes are
 * JSON strings; booleans are JSON booleans; built-in text columns read FHIR
 * strings and codes (JSON strings).  Columns with a path option are lenient
 * for text (a number or boolean becomes its text, an object its JSON).
 * Raises an error naming both types otherwise.
 */
static void
check_item(const EpicColumn *col, Oid type, const EpicFpItem *item)
{
	EpicJsonKind k = item_kind(item);
	bool		ok;

	/* a built-in column's FHIR element has the built-in type's nature */
	if (col->builtin != NULL && col->builtin->sql_type != TEXTARRAYOID)
		type = col->builtin->sql_type;
	if (type == DATEOID || type == TIMESTAMPTZOID)
		ok = (k == EPIC_JSON_STRING);
	else if (type == BOOLOID)
		ok = (k == EPIC_JSON_TRUE || k == EPIC_JSON_FALSE ||
			  (col->builtin == NULL && k == EPIC_JSON_STRING));
	else if (type == JSONBOID || type == JSONOID)
		ok = true;
	else if (col->builtin != NULL)
		ok = (k == EPIC_JSON_STRING);
	else
		ok = (k != EPIC_JSON_NULL && (k != EPIC_JSON_OBJECT && k != EPIC_JSON_ARRAY ? true :
									  type == TEXTOID || type == VARCHAROID));
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR value is a JSON %s, but column \"%s\" (%s) needs a %s",
						kind_name(k), col->name, format_type_be(type),
						(type == BOOLOID) ? "JSON boolean" :
						(type == DATEOID || type == TIMESTAMPTZOID) ? "FHIR date string" :
						"JSON string")));
}

/* Text of an item: scalars as themselves, objects/arrays as JSON. */
static char *
item_text(const EpicFpItem *item, size_t *len, char *buf)
{
	const char *s = epic_fp_item_text(&epic_jansson_ops, item, buf, 64, len);

	if (s == NULL && item->kind == EPIC_FP_NODE)
	{
		char	   *dump = epic_json_dump(item->node);
		char	   *copy;

		if (dump == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		copy = pstrdup(dump);
		free(dump);
		*len = strlen(copy);
		return copy;
	}
	if (s == NULL)
		return NULL;
	return pnstrdup(s, *len);
}

/* jsonb from a JSON node (whole resource, or an object-typed path). */
Datum
epic_json_to_jsonb(const void *node)
{
	char	   *dump = epic_json_dump(node);
	Datum		d;

	if (dump == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	PG_TRY();
	{
		d = DirectFunctionCall1(jsonb_in, CStringGetDatum(dump));
	}
	PG_FINALLY();
	{
		free(dump);
	}
	PG_END_TRY();
	return d;
}

/* HumanName as display text: its text, else given names and family. */
static char *
human_name_text(const void *name)
{
	const EpicJsonOps *ops = &epic_jansson_ops;
	const void *text = ops->member(name, "text");
	const void *given = ops->member(name, "given");
	const void *family = ops->member(name, "family");
	StringInfoData buf;
	char		nb[64];
	size_t		len;
	const char *s;

	if (text && (s = ops->scalar(text, nb, sizeof(nb), &len)) != NULL && len > 0)
		return pnstrdup(s, len);
	initStringInfo(&buf);
	if (given && ops->kind(given) == EPIC_JSON_ARRAY)
		for (size_t i = 0; i < ops->size(given); i++)
			if ((s = ops->scalar(ops->item(given, i), nb, sizeof(nb), &len)) != NULL)
			{
				if (buf.len)
					appendStringInfoChar(&buf, ' ');
				appendBinaryStringInfo(&buf, s, (int) len);
			}
	if (family && (s = ops->scalar(family, nb, sizeof(nb), &len)) != NULL)
	{
		if (buf.len)
			appendStringInfoChar(&buf, ' ');
		appendBinaryStringInfo(&buf, s, (int) len);
	}
	if (buf.len == 0)
		return NULL;
	return buf.data;
}

static Datum
items_to_datum(EpicColumn *col, EpicFpResult *res, bool *isnull)
{
	Oid			type = col->atttypid;
	char		buf[64];
	size_t		len;
	char	   *s;
	Datum		d;

	*isnull = true;
	switch (col->def->combine)
	{
		case EPIC_COMBINE_FIRST:
		case EPIC_COMBINE_RESOURCE:
			check_item(col, type, &res->items[0]);
			if (type == JSONBOID && res->items[0].kind == EPIC_FP_NODE)
			{
				*isnull = false;
				return epic_json_to_jsonb(res->items[0].node);
			}
			s = item_text(&res->items[0], &len, buf);
			if (s == NULL)
				return (Datum) 0;
			if (type == JSONBOID || type == JSONOID)
			{
				/* a scalar into a JSON column: as a JSON value */
				StringInfoData j;

				initStringInfo(&j);
				if (res->items[0].kind == EPIC_FP_STRING ||
					(res->items[0].kind == EPIC_FP_NODE &&
					 epic_jansson_ops.kind(res->items[0].node) == EPIC_JSON_STRING))
					escape_json(&j, s);
				else
					appendStringInfoString(&j, s);
				d = input_value(type, col->atttypmod, j.data);
				*isnull = false;
				return d;
			}
			if (!text_to_datum(col, type, col->atttypmod, s, len, &d))
				return (Datum) 0;
			*isnull = false;
			return d;

		case EPIC_COMBINE_JOIN_SPACE:
			{
				StringInfoData j;

				initStringInfo(&j);
				for (int i = 0; i < res->count; i++)
				{
					check_item(col, type, &res->items[i]);
					s = item_text(&res->items[i], &len, buf);
					if (s == NULL)
						continue;
					if (j.len)
						appendStringInfoChar(&j, ' ');
					appendBinaryStringInfo(&j, s, (int) len);
				}
				if (!text_to_datum(col, type, col->atttypmod, j.data, j.len, &d))
					return (Datum) 0;
				*isnull = false;
				return d;
			}

		case EPIC_COMBINE_ARRAY:
			{
				Oid			elemtype = get_element_type(type);
				int16		elmlen;
				bool		elmbyval;
				char		elmalign;
				Datum	   *elems;
				bool	   *nulls;
				int			dims[1];
				int			lbs[1] = {1};

				if (!OidIsValid(elemtype))
				{
					/* a non-array column given every item: text of the list */
					elemtype = TEXTOID;
				}
				get_typlenbyvalalign(elemtype, &elmlen, &elmbyval, &elmalign);
				elems = palloc(sizeof(Datum) * res->count);
				nulls = palloc(sizeof(bool) * res->count);
				for (int i = 0; i < res->count; i++)
				{
					check_item(col, elemtype, &res->items[i]);
					s = item_text(&res->items[i], &len, buf);
					nulls[i] = (s == NULL) ||
						!text_to_datum(col, elemtype, -1, s, len, &elems[i]);
				}
				dims[0] = res->count;
				d = PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype,
													   elmlen, elmbyval, elmalign));
				if (!OidIsValid(get_element_type(type)))
					d = input_value(type, col->atttypmod,
									OidOutputFunctionCall(F_ARRAY_OUT, d));
				*isnull = false;
				return d;
			}
	}
	return (Datum) 0;
}

/*
 * The value of col for one resource.  compiled[i] is the compiled source i
 * of the column's definition.  Items are tried source by source; the first
 * source that yields anything decides the value.
 */
Datum
epic_convert_column(EpicColumn *col, const void *resource, EpicFpExpr **compiled,
					const EpicFpEnv *env, bool *isnull)
{
	static EpicFpResult res;	/* reused; items point into the document */
	char		errbuf[128];

	*isnull = true;
	if (col->def->combine == EPIC_COMBINE_RESOURCE)
	{
		*isnull = false;
		if (col->atttypid == JSONBOID)
			return epic_json_to_jsonb(resource);
		else
		{
			char	   *dump = epic_json_dump(resource);
			Datum		d;

			if (dump == NULL)
				ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
			d = input_value(col->atttypid, col->atttypmod, dump);
			free(dump);
			return d;
		}
	}

	for (int i = 0; i < EPIC_MAX_SOURCES && compiled[i] != NULL; i++)
	{
		EpicSourceMode mode = col->def->sources[i].mode;

		if (epic_fp_eval(compiled[i], &epic_jansson_ops, resource, env, &res,
						 errbuf, sizeof(errbuf)) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("could not evaluate path \"%s\": %s",
							col->def->sources[i].path, errbuf)));
		if (res.count == 0)
			continue;
		if (mode == EPIC_SRC_PRESENT)
		{
			*isnull = false;
			return input_value(col->atttypid, col->atttypmod, "true");
		}
		if (mode == EPIC_SRC_HUMANNAME)
		{
			char	   *s = (res.items[0].kind == EPIC_FP_NODE) ?
				human_name_text(res.items[0].node) : NULL;
			Datum		d;

			if (s == NULL)
				continue;
			if (!text_to_datum(col, col->atttypid, col->atttypmod, s, strlen(s), &d))
				return (Datum) 0;
			*isnull = false;
			return d;
		}
		return items_to_datum(col, &res, isnull);
	}
	return (Datum) 0;
}
