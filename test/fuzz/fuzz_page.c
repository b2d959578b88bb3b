/*
 * fuzz_page.c - libFuzzer target for the "JSON page -> rows" path of
 * epic_fdw, outside PostgreSQL.
 *
 * The input is parsed with epic_json_parse and read as a search Bundle the
 * way src/bundle.c does (entry[].resource; search.mode "outcome"/"include"
 * entries are not rows).  Every resource (or the document itself when it is
 * a single resource) is turned into rows of the built-in tables: each
 * column's FHIRPath sources (copied from src/catalog.c by extract_catalog.sh,
 * so they never drift) are compiled once and evaluated in order, the first
 * source that yields anything decides, and the items are combined as
 * src/convert.c does (first item / items joined with spaces / every item as
 * an array element / presence / HumanName text / whole resource), including
 * its JSON type checks (check_item) and FHIR date and dateTime text rules;
 * where the server raises an ERROR the column is abandoned.  Only pure-C project code runs:
 * src/fhirpath.c and src/json_jansson.c; the combination logic is a
 * malloc-based mirror of convert.c (which needs the server).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_jansson.h"
#include "catalog_columns.h"

typedef struct FuzzTable
{
	const char *resource;		/* resourceType that selects it; NULL = any */
	const EpicColumnDef *columns;
	int			ncolumns;
	EpicFpExpr *compiled[64][EPIC_MAX_SOURCES];
} FuzzTable;

static FuzzTable tables[] = {
	{"Patient", patient_stu3, FUZZ_NCOLS(patient_stu3), {{0}}},
	{"Patient", patient_r4, FUZZ_NCOLS(patient_r4), {{0}}},
	{"MedicationStatement", medication_statement, FUZZ_NCOLS(medication_statement), {{0}}},
	{NULL, any_resource, FUZZ_NCOLS(any_resource), {{0}}},
};
#define NTABLES ((int) (sizeof(tables) / sizeof(tables[0])))

static volatile size_t sink;

/* Compile every built-in source once; a built-in path that fails to compile is a bug. */
static void
compile_all(void)
{
	static int	done;

	if (done)
		return;
	done = 1;
	for (int t = 0; t < NTABLES; t++)
	{
		if (tables[t].ncolumns > 64)
			abort();
		for (int c = 0; c < tables[t].ncolumns; c++)
			for (int s = 0; s < EPIC_MAX_SOURCES; s++)
			{
				const char *path = tables[t].columns[c].sources[s].path;
				char		errbuf[256];
				int			pos;

				if (path == NULL)
					break;
				tables[t].compiled[c][s] = epic_fp_parse(path, errbuf, sizeof(errbuf), &pos);
				if (tables[t].compiled[c][s] == NULL)
				{
					fprintf(stderr, "built-in path \"%s\" of column %s does not compile: %s at %d\n",
							path, tables[t].columns[c].name, errbuf, pos);
					abort();
				}
			}
	}
}

/* ---- a tiny malloc'd string builder (StringInfo stand-in) ---- */
typedef struct Buf
{
	char	   *data;
	size_t		len,
				cap;
} Buf;

static void
buf_append(Buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		size_t		ncap = b->cap ? b->cap : 64;
		char	   *nd;

		while (b->len + n + 1 > ncap)
			ncap *= 2;
		nd = realloc(b->data, ncap);
		if (nd == NULL)
			abort();
		b->data = nd;
		b->cap = ncap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
consume(const char *s, size_t len)
{
	size_t		h = 0;

	for (size_t i = 0; i < len; i++)
		h = h * 31 + (unsigned char) s[i];
	sink += h;
}

/* ---- convert.c mirrors ---- */
static int
all_digits(const char *s, int n)
{
	for (int i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

static int
is_full_date(const char *s, size_t len)
{
	return len >= 10 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) &&
		s[7] == '-' && all_digits(s + 8, 2);
}

static int
has_zone(const char *s, size_t len)
{
	const char *t = memchr(s, 'T', len);

	if (t == NULL)
		return 0;
	for (const char *p = t; p < s + len; p++)
		if (*p == 'Z' || *p == 'z' || *p == '+' || *p == '-')
			return 1;
	return 0;
}

static int
is_partial_date(const char *s, size_t len)
{
	return (len == 4 && all_digits(s, 4)) ||
		(len == 7 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2));
}

/*
 * text_to_datum's text handling: the text handed to the type's input
 * function.  Returns 0 (a value or NULL) or -1 where the server raises an
 * ERROR (the row fails; here the column is abandoned).
 */
static int
text_value(unsigned int type, const char *s, size_t len)
{
	char	   *text;
	int			n;

	if (type == DATEOID || type == TIMESTAMPTZOID)
	{
		if (is_partial_date(s, len))
			return 0;			/* NULL */
		if (!is_full_date(s, len) || (type == DATEOID && len != 10 && s[10] != 'T'))
			return -1;			/* "invalid FHIR date" */
	}
	if (type == DATEOID)
	{
		consume(s, 10);
		return 0;
	}
	if (type == TIMESTAMPTZOID)
	{
		if (len > (1 << 20))
			len = 1 << 20;
		text = malloc(len + 16);
		if (text == NULL)
			abort();
		if (len == 10)
			n = snprintf(text, len + 16, "%.*s 00:00:00+00", 10, s);
		else if (!has_zone(s, len))
			n = snprintf(text, len + 16, "%.*s+00", (int) len, s);
		else
			n = snprintf(text, len + 16, "%.*s", (int) len, s);
		consume(text, (size_t) n);
		free(text);
		return 0;
	}
	consume(s, len);
	return 0;
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
	abort();					/* an item of no known kind is a bug */
}

/* convert.c check_item for a built-in column: 0 if the JSON type fits, -1 (ERROR) if not */
static int
check_item(const EpicColumnDef *def, unsigned int type, const EpicFpItem *item)
{
	EpicJsonKind k = item_kind(item);

	if (def->sql_type != TEXTARRAYOID)
		type = def->sql_type;
	if (type == DATEOID || type == TIMESTAMPTZOID)
		return k == EPIC_JSON_STRING ? 0 : -1;
	if (type == BOOLOID)
		return (k == EPIC_JSON_TRUE || k == EPIC_JSON_FALSE) ? 0 : -1;
	if (type == JSONBOID || type == JSONOID)
		return 0;
	return k == EPIC_JSON_STRING ? 0 : -1;
}

/* item_text: scalars as themselves, objects/arrays as JSON (malloc'd dump in *dump) */
static const char *
item_text(const EpicFpItem *item, size_t *len, char *buf, char **dump)
{
	const char *s = epic_fp_item_text(&epic_jansson_ops, item, buf, 64, len);

	*dump = NULL;
	if (s == NULL && item->kind == EPIC_FP_NODE)
	{
		*dump = epic_json_dump(item->node);
		if (*dump == NULL)
			return NULL;
		*len = strlen(*dump);
		return *dump;
	}
	return s;
}

static char *
human_name_text(const void *name)
{
	const EpicJsonOps *ops = &epic_jansson_ops;
	const void *text = ops->member(name, "text");
	const void *given = ops->member(name, "given");
	const void *family = ops->member(name, "family");
	Buf			b = {0};
	char		nb[64];
	size_t		len;
	const char *s;

	if (text && (s = ops->scalar(text, nb, sizeof(nb), &len)) != NULL && len > 0)
	{
		buf_append(&b, s, len);
		return b.data;
	}
	if (given && ops->kind(given) == EPIC_JSON_ARRAY)
		for (size_t i = 0; i < ops->size(given); i++)
			if ((s = ops->scalar(ops->item(given, i), nb, sizeof(nb), &len)) != NULL)
			{
				if (b.len)
					buf_append(&b, " ", 1);
				buf_append(&b, s, len);
			}
	if (family && (s = ops->scalar(family, nb, sizeof(nb), &len)) != NULL)
	{
		if (b.len)
			buf_append(&b, " ", 1);
		buf_append(&b, s, len);
	}
	if (b.len == 0)
	{
		free(b.data);
		return NULL;
	}
	return b.data;
}

static void
items_value(const EpicColumnDef *def, const EpicFpResult *res)
{
	char		buf[64];
	size_t		len;
	const char *s;
	char	   *dump;

	switch (def->combine)
	{
		case EPIC_COMBINE_FIRST:
		case EPIC_COMBINE_RESOURCE:
			if (check_item(def, def->sql_type, &res->items[0]) != 0)
				return;
			s = item_text(&res->items[0], &len, buf, &dump);
			if (s != NULL)
				(void) text_value(def->sql_type, s, len);
			free(dump);
			break;
		case EPIC_COMBINE_JOIN_SPACE:
			{
				Buf			j = {0};

				for (int i = 0; i < res->count; i++)
				{
					if (check_item(def, def->sql_type, &res->items[i]) != 0)
					{
						free(j.data);
						return;
					}
					s = item_text(&res->items[i], &len, buf, &dump);
					if (s != NULL)
					{
						if (j.len)
							buf_append(&j, " ", 1);
						buf_append(&j, s, len);
					}
					free(dump);
				}
				(void) text_value(def->sql_type, j.data ? j.data : "", j.len);
				free(j.data);
				break;
			}
		case EPIC_COMBINE_ARRAY:
			for (int i = 0; i < res->count; i++)
			{
				if (check_item(def, TEXTOID, &res->items[i]) != 0)
					return;
				s = item_text(&res->items[i], &len, buf, &dump);
				if (s != NULL && text_value(TEXTOID, s, len) != 0)
				{
					free(dump);
					return;
				}
				free(dump);
			}
			break;
	}
}

/* epic_convert_column without the Datum */
static void
convert_column(const FuzzTable *t, int c, const void *resource, const EpicFpEnv *env,
			   EpicFpResult *res)
{
	const EpicColumnDef *def = &t->columns[c];
	char		errbuf[128];

	if (def->combine == EPIC_COMBINE_RESOURCE)
	{
		char	   *dump = epic_json_dump(resource);

		if (dump != NULL)
			consume(dump, strlen(dump));
		free(dump);
		return;
	}
	for (int i = 0; i < EPIC_MAX_SOURCES && t->compiled[c][i] != NULL; i++)
	{
		EpicSourceMode mode = def->sources[i].mode;

		if (epic_fp_eval(t->compiled[c][i], &epic_jansson_ops, resource, env, res,
						 errbuf, sizeof(errbuf)) != 0)
		{
			/* an ERROR in the server; built-in paths are shallow, so never expected */
			fprintf(stderr, "evaluation of \"%s\" failed: %s\n", def->sources[i].path, errbuf);
			abort();
		}
		if (res->count == 0)
			continue;
		if (mode == EPIC_SRC_PRESENT)
			return;
		if (mode == EPIC_SRC_HUMANNAME)
		{
			char	   *s = (res->items[0].kind == EPIC_FP_NODE) ?
				human_name_text(res->items[0].node) : NULL;

			if (s == NULL)
				continue;
			(void) text_value(def->sql_type, s, strlen(s));
			free(s);
			return;
		}
		items_value(def, res);
		return;
	}
}

static void
resource_rows(const void *resource, const EpicFpEnv *env, EpicFpResult *res)
{
	const EpicJsonOps *ops = &epic_jansson_ops;
	const void *rt = ops->member(resource, "resourceType");
	char		nb[64];
	size_t		len = 0;
	const char *rts = rt && ops->kind(rt) == EPIC_JSON_STRING ?
		ops->scalar(rt, nb, sizeof(nb), &len) : NULL;

	for (int t = 0; t < NTABLES; t++)
	{
		if (tables[t].resource != NULL &&
			(rts == NULL || strlen(tables[t].resource) != len ||
			 memcmp(rts, tables[t].resource, len) != 0))
			continue;
		for (int c = 0; c < tables[t].ncolumns; c++)
			convert_column(&tables[t], c, resource, env, res);
	}
}

static const char *
str_member(const void *obj, const char *name, size_t *len)
{
	const EpicJsonOps *ops = &epic_jansson_ops;
	const void *v;
	char		nb[64];

	if (obj == NULL || ops->kind(obj) != EPIC_JSON_OBJECT)
		return NULL;
	v = ops->member(obj, name);
	if (v == NULL || ops->kind(v) != EPIC_JSON_STRING)
		return NULL;
	return ops->scalar(v, nb, sizeof(nb), len);
}

static int
str_is(const char *s, size_t len, const char *lit)
{
	return s != NULL && len == strlen(lit) && memcmp(s, lit, len) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *names[] = {"mrn_system"};
	static const char *with[] = {"urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"};
	static const char *without[] = {NULL};
	const EpicFpEnv env = {1, names, (size & 1) ? with : without, NULL};
	const EpicJsonOps *ops = &epic_jansson_ops;
	char		errbuf[256];
	void	   *doc;
	EpicFpResult res = {0};
	size_t		len;
	const char *rt;

	compile_all();
	doc = epic_json_parse((const char *) data, size, errbuf, sizeof(errbuf));
	if (doc == NULL)
		return 0;
	if (ops->kind(doc) != EPIC_JSON_OBJECT)
	{
		epic_json_free(doc);
		return 0;
	}
	rt = str_member(doc, "resourceType", &len);
	if (str_is(rt, len, "Bundle"))
	{
		const void *entries = ops->member(doc, "entry");
		size_t		n = (entries && ops->kind(entries) == EPIC_JSON_ARRAY) ? ops->size(entries) : 0;

		for (size_t i = 0; i < n; i++)
		{
			const void *entry = ops->item(entries, i);
			const void *r;
			const char *mode;
			size_t		mlen = 0;

			if (entry == NULL || ops->kind(entry) != EPIC_JSON_OBJECT)
				continue;
			r = ops->member(entry, "resource");
			if (r == NULL || ops->kind(r) != EPIC_JSON_OBJECT)
				continue;
			mode = str_member(ops->member(entry, "search"), "mode", &mlen);
			if (str_is(mode, mlen, "outcome") || str_is(mode, mlen, "include"))
				continue;
			resource_rows(r, &env, &res);
		}
	}
	else
		resource_rows(doc, &env, &res);
	epic_fp_result_free(&res);
	epic_json_free(doc);
	return 0;
}
