/*
 * fuzz_page.c - libFuzzer target for the "JSON page -> rows" path of
 * epic_fdw, outside PostgreSQL.
 *
 * The input is parsed with epic_jdoc_parse (src/json_page.c, the page
 * parser, fuzzed here too) and read as a search Bundle the
 * way src/bundle.c does (entry[].resource; search.mode "outcome"/"include"
 * entries are not rows), or as a single resource.  Every resource is turned
 * into the rows of each table of its type:
 *
 *   - the built-in tables: the ViewDefinitions of views/ (embedded at build
 *     time by embed_views.sh, so they never drift from what the extension
 *     compiles), each compiled twice, with and without a %mrn_system value
 *     (the input's size picks one);
 *   - the test views of test/views/ (forEach, forEachOrNull, constants);
 *   - a resource-only table, built as src/catalog.c builds one for a
 *     resource without a built-in view: epic_view_new plus the "id" and
 *     "resource" columns and path-option columns (first_only, any SQL type).
 *
 * Rows come from epic_view_rows; every cell is evaluated with
 * epic_view_cell and converted the way src/convert.c's epic_convert_cell
 * does, without the Datums: cardinality (collection / first_only), the JSON
 * type checks against the FHIR and SQL types (check_item), the FHIR date
 * and dateTime text rules, JSON text for jsonb columns.  Where the server
 * raises an ERROR the cell is abandoned.
 *
 * Checked invariants (abort = a bug): every embedded view compiles; a view
 * whose selections are all plain and that has no where[] gives exactly one
 * row per resource, every cell set to the resource itself; a row is as wide
 * as the view; a set cell's column fills that slot; evaluating a built-in
 * path never fails; items are of a known kind and scalars have text.
 *
 * Only pure-C project code runs: src/viewdef.c, src/fhirpath.c and
 * src/json_jansson.c; the conversion is a malloc-based mirror of
 * convert.c (which needs the server) and must follow its changes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_jansson.h"
#include "json_page.h"
#include "viewdef.h"

typedef struct FuzzView
{
	const char *file;
	const char *json;
} FuzzView;

#include "fuzz_builtin_views.h"	/* fuzz_builtin_views[]: the files of views/ */
#include "fuzz_test_views.h"	/* fuzz_test_views[]: the files of test/views/ */

/* SQL types of convert.c (the OIDs it compares against) */
typedef enum SqlType
{
	T_TEXT, T_VARCHAR, T_BOOL, T_INT4, T_INT8, T_NUMERIC, T_DATE, T_TIMESTAMPTZ,
	T_TIME, T_JSON, T_JSONB
} SqlType;

typedef struct ColType
{
	SqlType		type;			/* the element type for an array */
	int			is_array;
} ColType;

typedef struct FuzzTable
{
	const char *file;
	EpicView   *view;
	ColType    *types;			/* per view column instance */
	int			all_plain;		/* one row per resource guaranteed */
} FuzzTable;

#define MAX_TABLES 128
static FuzzTable tables[2][MAX_TABLES];	/* [with %mrn_system] */
static int	ntables;

static volatile size_t sink;

static void
consume(const char *s, size_t len)
{
	size_t		h = 0;

	for (size_t i = 0; i < len; i++)
		h = h * 31 + (unsigned char) s[i];
	sink += h;
}

/* The SQL type catalog.c gives a view column: epic_view_sql_type's name, parsed. */
static ColType
builtin_col_type(const EpicViewColumn *vc)
{
	static const struct
	{
		const char *name;
		SqlType		type;
	}			names[] =
	{
		{"text", T_TEXT}, {"boolean", T_BOOL}, {"integer", T_INT4}, {"bigint", T_INT8},
		{"numeric", T_NUMERIC}, {"date", T_DATE}, {"timestamp with time zone", T_TIMESTAMPTZ},
		{"time without time zone", T_TIME}, {"jsonb", T_JSONB},
	};
	const char *sql = epic_view_sql_type(vc->type, vc->collection);
	size_t		len;
	ColType		t = {T_TEXT, 0};

	if (sql == NULL)
		abort();
	len = strlen(sql);
	if (len > 2 && strcmp(sql + len - 2, "[]") == 0)
	{
		t.is_array = 1;
		len -= 2;
	}
	if (vc->collection != t.is_array)
		abort();				/* collections map to arrays, others not */
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i].name) == len && memcmp(names[i].name, sql, len) == 0)
		{
			t.type = names[i].type;
			return t;
		}
	fprintf(stderr, "epic_view_sql_type(%s, %d) = \"%s\": not a known SQL type\n",
			vc->type ? vc->type : "NULL", vc->collection, sql);
	abort();
}

static int
view_all_plain(const EpicView *v)
{
	for (int i = 0; i < v->nselects; i++)
		if (v->selects[i].kind != EPIC_VIEW_PLAIN || v->selects[i].nunions > 0)
			return 0;
	return v->nwhere == 0;
}

static void
add_table(int with_mrn, int i, const char *file, EpicView *v, ColType *types)
{
	FuzzTable  *t;

	if (i >= MAX_TABLES)
		abort();
	t = &tables[with_mrn][i];
	t->file = file;
	t->view = v;
	t->types = types;
	t->all_plain = view_all_plain(v);
}

/* Compile every embedded view once (twice: with and without %mrn_system). */
static void
compile_all(void)
{
	static int	done;
	static const char *const names[] = {"mrn_system"};
	static const char *values[2][1] = {{NULL}, {"urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"}};

	if (done)
		return;
	done = 1;
	if (fuzz_builtin_views[0].file == NULL)
	{
		fprintf(stderr, "no built-in views embedded\n");
		abort();
	}
	for (int m = 0; m < 2; m++)
	{
		const EpicFpEnv env = {1, names, values[m], NULL};
		int			n = 0;

		for (int set = 0; set < 2; set++)
		{
			const FuzzView *fv = set == 0 ? fuzz_builtin_views : fuzz_test_views;

			for (int i = 0; fv[i].file != NULL; i++)
			{
				char		errbuf[512];
				int			pos;
				void	   *doc = epic_json_parse(fv[i].json, strlen(fv[i].json), errbuf, sizeof(errbuf));
				EpicView   *v = doc ? epic_view_compile(&epic_jansson_ops, doc, &env,
														errbuf, sizeof(errbuf), &pos) : NULL;
				ColType    *types;

				epic_json_free(doc);
				/* test/views/broken.json is invalid on purpose */
				if (v == NULL && set == 1 && strstr(fv[i].file, "broken") != NULL)
					continue;
				if (v == NULL)
				{
					fprintf(stderr, "%s view %s does not compile: %s\n",
							set == 0 ? "built-in" : "test", fv[i].file, errbuf);
					abort();
				}
				types = calloc((size_t) v->ncolumns + 1, sizeof(ColType));
				if (types == NULL)
					abort();
				for (int c = 0; c < v->ncolumns; c++)
					types[c] = builtin_col_type(&v->columns[c]);
				add_table(m, n++, fv[i].file, v, types);
			}
		}

		/* a resource-only table: catalog.c's id and resource columns, and path options */
		{
			static const struct
			{
				const char *name;
				const char *path;
				const char *type;
				ColType		sql;
				int			collection;
				int			first_only;
			}			cols[] =
			{
				{"id", "id", "id", {T_TEXT, 0}, 0, 0},
				{"resource", "$this", "Resource", {T_JSONB, 0}, 0, 0},
				{"p_text", "text.div", NULL, {T_TEXT, 0}, 0, 1},
				{"p_varchar", "identifier.value", NULL, {T_VARCHAR, 0}, 0, 1},
				{"p_updated", "meta.lastUpdated", NULL, {T_TIMESTAMPTZ, 0}, 0, 1},
				{"p_date", "birthDate | onsetDateTime | effectiveDateTime", NULL, {T_DATE, 0}, 0, 1},
				{"p_bool", "active | deceasedBoolean", NULL, {T_BOOL, 0}, 0, 1},
				{"p_int", "multipleBirthInteger | valueInteger", NULL, {T_INT4, 0}, 0, 1},
				{"p_codes", "code.coding.code", NULL, {T_TEXT, 1}, 1, 1},
				{"p_dates", "meta.lastUpdated | issued | recordedDate", NULL, {T_TIMESTAMPTZ, 1}, 1, 1},
				{"p_json", "code | name", NULL, {T_JSONB, 0}, 0, 1},
				{"p_jsonarr", "identifier", NULL, {T_JSONB, 1}, 1, 1},
				{"p_reference", "subject.getReferenceKey(Patient)", NULL, {T_TEXT, 0}, 0, 1},
			};
			EpicView   *v = epic_view_new("*", &env);
			ColType    *types = calloc(sizeof(cols) / sizeof(cols[0]) + 1, sizeof(ColType));

			if (v == NULL || types == NULL)
				abort();
			for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++)
			{
				char		errbuf[256];
				int			pos;
				int			ci = epic_view_add_column(v, cols[c].name, cols[c].path, cols[c].type,
													  cols[c].collection, cols[c].first_only,
													  errbuf, sizeof(errbuf), &pos);

				if (ci != (int) c)
				{
					fprintf(stderr, "path option \"%s\": %s\n", cols[c].path, errbuf);
					abort();
				}
				types[ci] = cols[c].sql;
			}
			add_table(m, n++, "resource-only", v, types);
		}
		ntables = n;
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
 * text_to_datum: the text handed to the type's input function.  Returns 0
 * (a value or NULL) or -1 where the server raises an ERROR.
 */
static int
text_value(SqlType type, const char *s, size_t len)
{
	char	   *text;
	int			n;

	if (type == T_DATE || type == T_TIMESTAMPTZ)
	{
		if (is_partial_date(s, len))
			return 0;			/* NULL */
		if (!is_full_date(s, len) || (type == T_DATE && len != 10 && s[10] != 'T'))
			return -1;			/* "invalid FHIR date" */
	}
	if (type == T_DATE)
	{
		consume(s, 10);
		return 0;
	}
	if (type == T_TIMESTAMPTZ)
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
			if (item->node == NULL)
				abort();		/* a node item without a node is a bug */
			return epic_jdoc_ops.kind(item->node);
		case EPIC_FP_STRING:
			return EPIC_JSON_STRING;
		case EPIC_FP_NUMBER:
			return EPIC_JSON_NUMBER;
		case EPIC_FP_BOOL:
			return item->boolval ? EPIC_JSON_TRUE : EPIC_JSON_FALSE;
	}
	abort();					/* an item of no known kind is a bug */
}

/* convert.c check_item: 0 if the JSON type fits the column, -1 (ERROR) if not */
static int
check_item(const EpicViewColumn *vc, SqlType type, const EpicFpItem *item)
{
	EpicJsonKind k = item_kind(item);
	EpicJsonKind want = epic_view_type_json_kind(vc->type);

	if (type == T_JSONB || type == T_JSON)
		return (want == EPIC_JSON_NULL || k == want ||
				(want == EPIC_JSON_TRUE && k == EPIC_JSON_FALSE)) ? 0 : -1;
	if (want == EPIC_JSON_TRUE)
		return (k == EPIC_JSON_TRUE || k == EPIC_JSON_FALSE) ? 0 : -1;
	if (want != EPIC_JSON_NULL)
		return k == want ? 0 : -1;
	if (type == T_DATE || type == T_TIMESTAMPTZ)
		return k == EPIC_JSON_STRING ? 0 : -1;
	if (type == T_BOOL)
		return (k == EPIC_JSON_TRUE || k == EPIC_JSON_FALSE || k == EPIC_JSON_STRING) ? 0 : -1;
	return (k != EPIC_JSON_NULL && (k != EPIC_JSON_OBJECT && k != EPIC_JSON_ARRAY ? 1 :
									type == T_TEXT || type == T_VARCHAR)) ? 0 : -1;
}

/* item_text: scalars as themselves, objects/arrays as their JSON text (*dump stays NULL) */
static const char *
item_text(const EpicFpItem *item, size_t *len, char *buf, char **dump)
{
	const char *s = epic_fp_item_text(&epic_jdoc_ops, item, buf, 64, len);

	*dump = NULL;
	if (s == NULL && item->kind != EPIC_FP_NODE)
		abort();				/* a computed scalar always has a text */
	if (s == NULL)
	{
		const char *raw;

		/* the server's text of the object or array */
		epic_jdoc_raw(item->node, &raw, len);
		if (*len == 0 || (raw[0] != '{' && raw[0] != '['))
			abort();
		return raw;
	}
	return s;
}

/* item_to_datum: -1 where the server raises an ERROR */
static int
item_value(const EpicViewColumn *vc, SqlType type, const EpicFpItem *item)
{
	char		buf[64];
	size_t		len = 0;
	const char *s;
	char	   *dump;
	int			rc = 0;

	if (check_item(vc, type, item) != 0)
		return -1;
	if (type == T_JSONB && item->kind == EPIC_FP_NODE)
	{
		const char *raw;

		/* jsonb_in reads the server's text of the value */
		epic_jdoc_raw(item->node, &raw, &len);
		if (len == 0)
			abort();
		consume(raw, len);
		return 0;
	}
	s = item_text(item, &len, buf, &dump);
	if (s == NULL)
		return 0;				/* NULL */
	if (type == T_JSONB || type == T_JSON)
	{
		/* a scalar as a JSON value: strings escaped (escape_json) */
		Buf			j = {0};

		if (item_kind(item) == EPIC_JSON_STRING)
		{
			buf_append(&j, "\"", 1);
			for (size_t i = 0; i < len; i++)
			{
				unsigned char ch = (unsigned char) s[i];
				char		esc[8];

				if (ch == '"' || ch == '\\')
				{
					esc[0] = '\\';
					esc[1] = (char) ch;
					buf_append(&j, esc, 2);
				}
				else if (ch < 0x20)
				{
					snprintf(esc, sizeof(esc), "\\u%04x", ch);
					buf_append(&j, esc, 6);
				}
				else
					buf_append(&j, (const char *) &s[i], 1);
			}
			buf_append(&j, "\"", 1);
		}
		else
			buf_append(&j, s, len);
		consume(j.data, j.len);
		free(j.data);
	}
	else
		rc = text_value(type, s, len);
	free(dump);
	return rc;
}

/* items_to_array: every item as an element (or, for a jsonb column, a JSON array) */
static int
items_array(const EpicViewColumn *vc, ColType ct, const EpicFpResult *res)
{
	SqlType		elem = ct.is_array ? ct.type : T_TEXT;

	if (!ct.is_array && (ct.type == T_JSONB || ct.type == T_JSON))
		elem = T_JSONB;
	for (int i = 0; i < res->count; i++)
		if (item_value(vc, elem, &res->items[i]) != 0)
			return -1;
	return 0;
}

/* epic_convert_cell without the Datum: 0, or -1 where the server raises an ERROR */
static int
convert_cell(const FuzzTable *t, const void *resource, const EpicViewCell *cell,
			 EpicFpResult *res)
{
	const EpicViewColumn *vc;
	ColType		ct;
	char		errbuf[256];

	if (epic_view_cell_null(t->view, cell))
		return 0;				/* NULL */
	vc = &t->view->columns[cell->column];
	ct = t->types[cell->column];
	if (epic_view_cell(t->view, &epic_jdoc_ops, resource, cell, res,
					   errbuf, sizeof(errbuf)) != 0)
	{
		/* an ERROR in the server; these paths are shallow, so never expected */
		fprintf(stderr, "%s: evaluation of \"%s\" failed: %s\n", t->file, vc->path, errbuf);
		abort();
	}
	if (vc->collection || ct.is_array)
	{
		if (res->count == 0 && (!vc->collection || vc->first_only))
			return 0;			/* NULL */
		return items_array(vc, ct, res);
	}
	if (res->count == 0)
		return 0;
	if (res->count > 1 && !vc->first_only)
		return -1;				/* not a collection: cardinality error */
	return item_value(vc, ct.type, &res->items[0]);
}

static void
table_rows(const FuzzTable *t, const void *resource, EpicViewRows *rows, EpicFpResult *res)
{
	char		errbuf[256];

	if (epic_view_rows(t->view, &epic_jdoc_ops, resource, rows, errbuf, sizeof(errbuf)) != 0)
	{
		if (t->all_plain)
		{
			fprintf(stderr, "%s: epic_view_rows failed on a view without forEach/where: %s\n",
					t->file, errbuf);
			abort();
		}
		return;					/* an ERROR in the server (e.g. a non-element forEach) */
	}
	if (rows->width != t->view->nslots || (t->all_plain && rows->nrows != 1))
	{
		fprintf(stderr, "%s: %d rows of width %d (view: %d slots)\n", t->file,
				rows->nrows, rows->width, t->view->nslots);
		abort();
	}
	for (int r = 0; r < rows->nrows; r++)
		for (int s = 0; s < rows->width; s++)
		{
			const EpicViewCell *cell = &rows->cells[r * rows->width + s];

			if (cell->column >= t->view->ncolumns ||
				(cell->column >= 0 && t->view->columns[cell->column].slot != s) ||
				(t->all_plain && (cell->column < 0 || cell->node != resource)))
			{
				fprintf(stderr, "%s: bad cell %d of row %d (column %d)\n", t->file, s, r,
						cell->column);
				abort();
			}
			(void) convert_cell(t, resource, cell, res);
		}
}

static void
resource_rows(const void *resource, int with_mrn, EpicViewRows *rows, EpicFpResult *res)
{
	const EpicJsonOps *ops = &epic_jdoc_ops;
	const void *rt = ops->member(resource, "resourceType");
	char		nb[64];
	size_t		len = 0;
	const char *rts = rt && ops->kind(rt) == EPIC_JSON_STRING ?
		ops->scalar(rt, nb, sizeof(nb), &len) : NULL;

	for (int i = 0; i < ntables; i++)
	{
		const FuzzTable *t = &tables[with_mrn][i];

		if (strcmp(t->view->resource, "*") != 0 &&
			(rts == NULL || strlen(t->view->resource) != len ||
			 memcmp(rts, t->view->resource, len) != 0))
			continue;
		table_rows(t, resource, rows, res);
	}
}

static const char *
str_member(const void *obj, const char *name, size_t *len)
{
	const EpicJsonOps *ops = &epic_jdoc_ops;
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
	const EpicJsonOps *ops = &epic_jdoc_ops;
	int			with_mrn = (int) (size & 1);
	char		errbuf[256];
	EpicJdoc   *jdoc;
	const void *doc;
	EpicFpResult res = {0};
	EpicViewRows rows = {0};
	size_t		len;
	const char *rt;

	compile_all();
	jdoc = epic_jdoc_parse((const char *) data, size, errbuf, sizeof(errbuf));
	if (jdoc == NULL)
	{
		if (strstr(errbuf, " at byte ") == NULL)
			abort();			/* every parse error says where */
		return 0;
	}
	doc = epic_jdoc_root(jdoc);
	if (ops->kind(doc) != EPIC_JSON_OBJECT)
	{
		epic_jdoc_free(jdoc);
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
			resource_rows(r, with_mrn, &rows, &res);
		}
	}
	else
		resource_rows(doc, with_mrn, &rows, &res);
	epic_view_rows_free(&rows);
	epic_fp_result_free(&res);
	epic_jdoc_free(jdoc);
	return 0;
}
