/*-------------------------------------------------------------------------
 *
 * viewdef.c
 *		SQL on FHIR v2 ViewDefinitions (see viewdef.h).
 *
 *-------------------------------------------------------------------------
 */
#include "viewdef.h"
#include "fhir_types.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIEW_MAX_DEPTH 32		/* nesting of select / unionAll */
#define VIEW_MAX_REPEAT_DEPTH 64
#define VIEW_MAX_ROWS 1000000	/* rows of one resource */
#define VIEW_MAX_CELLS 10000000	/* rows x columns of one resource */
#define Max1(x) ((x) > 0 ? (x) : 1)

#define REQUIRED_PARAM_URL "urn:epic_fdw:required-search-param"
#define SEARCH_PARAM_TAG "epic_fdw/search_param"

/* ---------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------
 */
typedef struct Compiler
{
	const EpicJsonOps *ops;
	EpicView   *view;
	char	   *errbuf;
	size_t		errlen;
	int		   *errpos;
	bool		failed;
} Compiler;

static void fail(Compiler *c, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
fail(Compiler *c, const char *fmt,...)
{
	va_list		ap;

	if (c->failed)
		return;
	c->failed = true;
	va_start(ap, fmt);
	vsnprintf(c->errbuf, c->errlen, fmt, ap);
	va_end(ap);
}

static char *
xstrndup(const char *s, size_t len)
{
	char	   *r = malloc(len + 1);

	if (r != NULL)
	{
		memcpy(r, s, len);
		r[len] = '\0';
	}
	return r;
}

static char *
xstrdup(const char *s)
{
	return s ? xstrndup(s, strlen(s)) : NULL;
}

/* Append v to a malloc'd int array; false when out of memory. */
static bool
int_push(int **arr, int *n, int v)
{
	int		   *a = realloc(*arr, sizeof(int) * (size_t) (*n + 1));

	if (a == NULL)
		return false;
	a[(*n)++] = v;
	*arr = a;
	return true;
}

/*
 * The string member `name` of obj: NULL when absent; sets *bad when present
 * but not a string.  The result is malloc'd.
 */
static char *
get_string(Compiler *c, const void *obj, const char *name, bool *bad)
{
	const void *m = c->ops->member(obj, name);
	char		buf[64];
	size_t		len;
	const char *s;

	*bad = false;
	if (m == NULL || c->ops->kind(m) == EPIC_JSON_NULL)
		return NULL;
	if (c->ops->kind(m) != EPIC_JSON_STRING)
	{
		*bad = true;
		return NULL;
	}
	s = c->ops->scalar(m, buf, sizeof(buf), &len);
	if (s == NULL || memchr(s, '\0', len) != NULL)
	{
		*bad = true;
		return NULL;
	}
	return xstrndup(s, len);
}

/* A string member that must be there (unless optional) and be a string. */
static char *
need_string(Compiler *c, const void *obj, const char *name, const char *what, bool optional)
{
	bool		bad;
	char	   *s = get_string(c, obj, name, &bad);

	if (bad)
		fail(c, "%s: \"%s\" must be a string", what, name);
	else if (s == NULL && !optional)
		fail(c, "%s has no \"%s\"", what, name);
	return s;
}

/* An array member: NULL when absent; fails when present but not an array. */
static const void *
get_array(Compiler *c, const void *obj, const char *name, const char *what)
{
	const void *m = c->ops->member(obj, name);

	if (m == NULL || c->ops->kind(m) == EPIC_JSON_NULL)
		return NULL;
	if (c->ops->kind(m) != EPIC_JSON_ARRAY)
	{
		fail(c, "%s: \"%s\" must be an array", what, name);
		return NULL;
	}
	return m;
}

/* SQL on FHIR column names: a letter, then letters, digits and _. */
/* "name" or "name|name|...": search parameter names (letters, digits, _ - .) */
static bool
valid_requirement(const char *s)
{
	bool		empty = true;

	for (; s != NULL && *s; s++)
	{
		if (*s == '|')
		{
			if (empty)
				return false;
			empty = true;
		}
		else if (isalnum((unsigned char) *s) || *s == '_' || *s == '-' || *s == '.')
			empty = false;
		else
			return false;
	}
	return s != NULL && !empty;
}

static bool
valid_name(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
			  (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* Parse a path; reports "<what>: <message>" with the position. */
static EpicFpExpr *
compile_path(Compiler *c, const char *path, const char *what)
{
	char		msg[256];
	int			pos = 0;
	EpicFpExpr *e;
	const char *undefined;

	if (c->failed)
		return NULL;
	e = epic_fp_parse(path, msg, sizeof(msg), &pos);
	if (e == NULL)
	{
		fail(c, "%s: %s at position %d of \"%s\"", what, msg, pos, path);
		if (c->errpos)
			*c->errpos = pos;
		return NULL;
	}
	undefined = epic_fp_undefined_constant(e, &c->view->env);
	if (undefined != NULL)
	{
		fail(c, "%s: constant %%%s is not defined", what, undefined);
		epic_fp_free(e);
		return NULL;
	}
	return e;
}

/* ---------------------------------------------------------------------
 * Building a view
 * ---------------------------------------------------------------------
 */
static int
new_select(Compiler *c, EpicViewSelectKind kind, int parent)
{
	EpicView   *v = c->view;
	EpicViewSelect *s = realloc(v->selects, sizeof(EpicViewSelect) * (size_t) (v->nselects + 1));

	if (s == NULL)
	{
		fail(c, "out of memory");
		return -1;
	}
	v->selects = s;
	memset(&s[v->nselects], 0, sizeof(EpicViewSelect));
	s[v->nselects].kind = kind;
	s[v->nselects].parent = parent;
	return v->nselects++;
}

static int
new_column(Compiler *c, int sel)
{
	EpicView   *v = c->view;
	EpicViewColumn *a = realloc(v->columns, sizeof(EpicViewColumn) * (size_t) (v->ncolumns + 1));

	if (a == NULL)
	{
		fail(c, "out of memory");
		return -1;
	}
	v->columns = a;
	memset(&a[v->ncolumns], 0, sizeof(EpicViewColumn));
	a[v->ncolumns].select = sel;
	a[v->ncolumns].slot = -1;
	if (!int_push(&v->selects[sel].cols, &v->selects[sel].ncols, v->ncolumns))
	{
		fail(c, "out of memory");
		return -1;
	}
	return v->ncolumns++;
}

/* column[] entry */
static void
compile_column(Compiler *c, int sel, const void *obj)
{
	const EpicJsonOps *ops = c->ops;
	EpicViewColumn *col;
	const void *m;
	const void *tags;
	char		what[128];
	int			ci;

	if (ops->kind(obj) != EPIC_JSON_OBJECT)
	{
		fail(c, "a column must be an object");
		return;
	}
	ci = new_column(c, sel);
	if (ci < 0)
		return;
	col = &c->view->columns[ci];
	col->name = need_string(c, obj, "name", "a column", false);
	if (c->failed)
		return;
	if (!valid_name(col->name))
	{
		fail(c, "column name \"%s\" is not a letter followed by letters, digits and underscores",
			 col->name);
		return;
	}
	snprintf(what, sizeof(what), "column \"%s\"", col->name);
	col->path = need_string(c, obj, "path", what, false);
	col->type = need_string(c, obj, "type", what, true);
	col->description = need_string(c, obj, "description", what, true);
	if (c->failed)
		return;
	m = ops->member(obj, "collection");
	if (m != NULL && ops->kind(m) != EPIC_JSON_NULL)
	{
		if (ops->kind(m) != EPIC_JSON_TRUE && ops->kind(m) != EPIC_JSON_FALSE)
		{
			fail(c, "%s: \"collection\" must be a boolean", what);
			return;
		}
		col->collection = (ops->kind(m) == EPIC_JSON_TRUE);
	}
	tags = get_array(c, obj, "tag", what);
	for (size_t i = 0; tags && !c->failed && i < ops->size(tags); i++)
	{
		const void *t = ops->item(tags, i);
		char	   *tn,
				   *tv;

		if (ops->kind(t) != EPIC_JSON_OBJECT)
		{
			fail(c, "%s: a tag must be an object", what);
			return;
		}
		tn = need_string(c, t, "name", "a tag", false);
		tv = need_string(c, t, "value", "a tag", false);
		if (!c->failed && strcmp(tn, SEARCH_PARAM_TAG) == 0 && col->search_param == NULL)
		{
			col->search_param = tv;
			tv = NULL;
		}
		else if (!c->failed && strcmp(tn, "ansi/type") == 0 && col->ansi_type == NULL)
		{
			col->ansi_type = tv;
			tv = NULL;
		}
		free(tn);
		free(tv);
	}
	col->expr = compile_path(c, col->path, what);
	col->uses_row_index = col->expr && epic_fp_uses_constant(col->expr, "rowIndex");
}

static int	compile_select(Compiler *c, const void *obj, int parent, int depth);

/* A list of selections (select[] or unionAll[]) under parent. */
static void
compile_select_list(Compiler *c, const void *arr, int parent, int depth, bool unions)
{
	const EpicJsonOps *ops = c->ops;

	for (size_t i = 0; !c->failed && i < ops->size(arr); i++)
	{
		int			child = compile_select(c, ops->item(arr, i), parent, depth + 1);
		EpicViewSelect *p;

		if (child < 0)
			return;
		p = &c->view->selects[parent];
		if (!(unions ? int_push(&p->unions, &p->nunions, child) :
			  int_push(&p->children, &p->nchildren, child)))
			fail(c, "out of memory");
	}
}

static int
compile_select(Compiler *c, const void *obj, int parent, int depth)
{
	const EpicJsonOps *ops = c->ops;
	const void *arr;
	const void *fe = ops->member(obj, "forEach");
	const void *fon = ops->member(obj, "forEachOrNull");
	const void *rep;
	int			s;

	if (depth > VIEW_MAX_DEPTH)
	{
		fail(c, "selections are nested more than %d deep", VIEW_MAX_DEPTH);
		return -1;
	}
	if (ops->kind(obj) != EPIC_JSON_OBJECT)
	{
		fail(c, "a select must be an object");
		return -1;
	}
	if (fe != NULL && fon != NULL)
	{
		fail(c, "a select cannot have both forEach and forEachOrNull");
		return -1;
	}
	rep = get_array(c, obj, "repeat", "a select");
	if (c->failed)
		return -1;
	if (rep != NULL && (fe != NULL || fon != NULL))
	{
		fail(c, "a select cannot have both repeat and forEach");
		return -1;
	}
	s = new_select(c, fe ? EPIC_VIEW_FOREACH : fon ? EPIC_VIEW_FOREACH_OR_NULL :
				   rep ? EPIC_VIEW_REPEAT : EPIC_VIEW_PLAIN, parent);
	if (s < 0)
		return -1;
	if (fe != NULL || fon != NULL)
	{
		const char *key = fe ? "forEach" : "forEachOrNull";
		char	   *path = need_string(c, obj, key, "a select", false);

		c->view->selects[s].iter_path = path;
		if (!c->failed)
			c->view->selects[s].iter = compile_path(c, path, key);
	}
	if (rep != NULL)
	{
		size_t		n = ops->size(rep);
		EpicViewSelect *sel = &c->view->selects[s];

		if (n == 0)
		{
			fail(c, "repeat needs at least one path");
			return -1;
		}
		sel->repeat = calloc(n, sizeof(EpicFpExpr *));
		if (sel->repeat == NULL)
		{
			fail(c, "out of memory");
			return -1;
		}
		sel->nrepeat = (int) n;
		for (size_t i = 0; i < n && !c->failed; i++)
		{
			const void *p = ops->item(rep, i);
			char		buf[64];
			size_t		len;
			const char *txt;
			char	   *path;

			if (ops->kind(p) != EPIC_JSON_STRING ||
				(txt = ops->scalar(p, buf, sizeof(buf), &len)) == NULL)
			{
				fail(c, "repeat: each path must be a string");
				return -1;
			}
			path = xstrndup(txt, len);
			if (path == NULL)
			{
				fail(c, "out of memory");
				return -1;
			}
			c->view->selects[s].repeat[i] = compile_path(c, path, "repeat");
			free(path);
		}
	}
	if (c->failed)
		return -1;
	arr = get_array(c, obj, "column", "a select");
	for (size_t i = 0; arr && !c->failed && i < ops->size(arr); i++)
		compile_column(c, s, ops->item(arr, i));
	arr = get_array(c, obj, "select", "a select");
	if (arr && !c->failed)
		compile_select_list(c, arr, s, depth, false);
	arr = get_array(c, obj, "unionAll", "a select");
	if (arr && !c->failed)
	{
		if (ops->size(arr) == 0)
			fail(c, "unionAll needs at least one selection");
		else
			compile_select_list(c, arr, s, depth, true);
	}
	return c->failed ? -1 : s;
}

/*
 * Give every column of selection s (and below) its slot; unionAll branches
 * after the first reuse the first branch's slots and must name the same
 * columns in the same order.
 */
static void
assign_slots(Compiler *c, int s, int *next, bool resource_level)
{
	EpicView   *v = c->view;
	EpicViewSelect *sel = &v->selects[s];

	if (c->failed)
		return;
	resource_level = resource_level && sel->kind == EPIC_VIEW_PLAIN;
	sel->first_slot = *next;
	for (int i = 0; i < sel->ncols; i++)
	{
		v->columns[sel->cols[i]].slot = (*next)++;
		v->columns[sel->cols[i]].resource_level = resource_level;
	}
	for (int i = 0; i < sel->nchildren; i++)
		assign_slots(c, sel->children[i], next, resource_level);
	if (sel->nunions > 0)
	{
		int			start = *next;

		assign_slots(c, sel->unions[0], next, false);
		for (int b = 1; b < sel->nunions && !c->failed; b++)
		{
			int			n = start;

			assign_slots(c, sel->unions[b], &n, false);
			if (n != *next)
			{
				fail(c, "unionAll branches must have the same columns (branch %d has %d, the first has %d)",
					 b + 1, n - start, *next - start);
				return;
			}
		}
	}
	sel = &v->selects[s];
	sel->nslots = *next - sel->first_slot;
}

/* Fill slot_column and check that column names (per slot) are unique. */
static void
finish_slots(Compiler *c)
{
	EpicView   *v = c->view;
	int			next = 0;

	assign_slots(c, 0, &next, true);
	if (c->failed)
		return;
	free(v->slot_column);
	v->nslots = next;
	v->slot_column = malloc(sizeof(int) * (size_t) (next + 1));
	if (v->slot_column == NULL)
	{
		fail(c, "out of memory");
		return;
	}
	for (int i = 0; i < next; i++)
		v->slot_column[i] = -1;
	for (int i = 0; i < v->ncolumns; i++)
	{
		EpicViewColumn *col = &v->columns[i];
		int			first = v->slot_column[col->slot];

		if (first < 0)
			v->slot_column[col->slot] = i;
		else if (strcmp(v->columns[first].name, col->name) != 0)
		{
			fail(c, "unionAll branches must name the same columns in the same order: \"%s\" and \"%s\"",
				 v->columns[first].name, col->name);
			return;
		}
	}
	for (int i = 0; i < next; i++)
		for (int j = 0; j < i; j++)
			if (strcmp(v->columns[v->slot_column[i]].name,
					   v->columns[v->slot_column[j]].name) == 0)
			{
				fail(c, "column name \"%s\" appears more than once",
					 v->columns[v->slot_column[i]].name);
				return;
			}
}

/* Constants: the view's own, then extra_env's. */
static const char *const value_types[] = {
	"String", "Code", "Id", "Uri", "Url", "Canonical", "Oid", "Uuid", "Markdown",
	"Base64Binary", "Date", "DateTime", "Instant", "Time",
	"Boolean", "Integer", "Integer64", "UnsignedInt", "PositiveInt", "Decimal"
};

/* the FHIR types of value_types[] */
static const char *const value_type_names[] = {
	"string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown",
	"base64Binary", "date", "dateTime", "instant", "time",
	"boolean", "integer", "integer64", "unsignedInt", "positiveInt", "decimal"
};

static void
compile_constants(Compiler *c, const void *doc, const EpicFpEnv *extra)
{
	const EpicJsonOps *ops = c->ops;
	EpicView   *v = c->view;
	const void *arr = doc ? get_array(c, doc, "constant", "the ViewDefinition") : NULL;
	int			n = (arr ? (int) ops->size(arr) : 0) + (extra ? extra->count : 0);

	v->const_names = calloc((size_t) n + 1, sizeof(char *));
	v->const_values = calloc((size_t) n + 1, sizeof(char *));
	v->const_kinds = calloc((size_t) n + 1, sizeof(EpicFpItemKind));
	v->const_types = calloc((size_t) n + 1, sizeof(char *));
	if (!v->const_names || !v->const_values || !v->const_kinds || !v->const_types)
	{
		fail(c, "out of memory");
		return;
	}
	for (int i = 0; arr && !c->failed && i < (int) ops->size(arr); i++)
	{
		const void *k = ops->item(arr, i);
		char	   *name;
		bool		found = false;

		if (ops->kind(k) != EPIC_JSON_OBJECT)
		{
			fail(c, "a constant must be an object");
			return;
		}
		name = need_string(c, k, "name", "a constant", false);
		if (c->failed)
			return;
		v->const_names[v->nconst] = name;
		for (size_t t = 0; t < sizeof(value_types) / sizeof(value_types[0]) && !found; t++)
		{
			char		key[32];
			const void *val;
			char		buf[64];
			size_t		len;
			const char *txt;
			EpicJsonKind vk;

			snprintf(key, sizeof(key), "value%s", value_types[t]);
			val = ops->member(k, key);
			if (val == NULL)
				continue;
			found = true;
			v->const_types[v->nconst] = value_type_names[t];
			vk = ops->kind(val);
			if (t >= 14 && t < 15)
			{
				if (vk != EPIC_JSON_TRUE && vk != EPIC_JSON_FALSE)
					break;
				v->const_kinds[v->nconst] = EPIC_FP_BOOL;
			}
			else if (t >= 15)
			{
				if (vk != EPIC_JSON_NUMBER)
					break;
				v->const_kinds[v->nconst] = EPIC_FP_NUMBER;
			}
			else if (vk != EPIC_JSON_STRING)
				break;
			else
				v->const_kinds[v->nconst] = EPIC_FP_STRING;
			txt = ops->scalar(val, buf, sizeof(buf), &len);
			if (txt == NULL)
				break;
			v->const_values[v->nconst] = xstrndup(txt, len);
		}
		if (!found || v->const_values[v->nconst] == NULL)
		{
			fail(c, "constant \"%s\" needs one value[x] of a primitive type (valueString, valueInteger, valueBoolean, ...)",
				 name);
			v->nconst++;
			return;
		}
		v->nconst++;
	}
	for (int i = 0; extra && !c->failed && i < extra->count; i++)
	{
		v->const_names[v->nconst] = xstrdup(extra->names[i]);
		v->const_values[v->nconst] = xstrdup(extra->values[i]);
		v->const_kinds[v->nconst] = extra->kinds ? extra->kinds[i] : EPIC_FP_STRING;
		v->const_types[v->nconst] = extra->types ? extra->types[i] : NULL;
		v->nconst++;
	}
	v->env.count = v->nconst;
	v->env.names = (const char *const *) v->const_names;
	v->env.values = (const char *const *) v->const_values;
	v->env.kinds = v->const_kinds;
	v->env.types = v->const_types;
}

static EpicView *
alloc_view(Compiler *c, const char *resource)
{
	EpicView   *v = calloc(1, sizeof(EpicView));

	c->view = v;
	if (v == NULL)
	{
		fail(c, "out of memory");
		return NULL;
	}
	v->resource = xstrdup(resource);
	if (new_select(c, EPIC_VIEW_PLAIN, -1) != 0)
		return v;
	return v;
}

/*
 * The FHIR versions a ViewDefinition's fhirVersion codes name: 3.0.x is
 * STU3, 4.0.x R4; R4B (4.3) and R5 read as R4, the closest the type table
 * has.  Either (3) when it names none of them.
 */
static int
view_fhir_versions(const EpicJsonOps *ops, const void *doc)
{
	const void *arr = ops->member(doc, "fhirVersion");
	int			v = 0;

	for (size_t i = 0; arr && ops->kind(arr) == EPIC_JSON_ARRAY && i < ops->size(arr); i++)
	{
		char		buf[64];
		size_t		len;
		const void *e = ops->item(arr, i);
		const char *t = ops->kind(e) == EPIC_JSON_STRING ?
			ops->scalar(e, buf, sizeof(buf), &len) : NULL;

		if (t == NULL || len < 2 || t[1] != '.')
			continue;
		if (t[0] == '3')
			v |= EPIC_FHIR_STU3;
		else if (t[0] >= '4' && t[0] <= '9')
			v |= EPIC_FHIR_R4;
	}
	return v ? v : EPIC_FHIR_ANY;
}

EpicView *
epic_view_compile(const EpicJsonOps *ops, const void *doc, const EpicFpEnv *extra_env,
				  char *errbuf, size_t errlen, int *errpos)
{
	Compiler	c;
	char	   *resource;
	const void *arr;

	memset(&c, 0, sizeof(c));
	c.ops = ops;
	c.errbuf = errbuf;
	c.errlen = errlen;
	c.errpos = errpos;
	if (errpos)
		*errpos = 0;
	if (doc == NULL || ops->kind(doc) != EPIC_JSON_OBJECT)
	{
		snprintf(errbuf, errlen, "a ViewDefinition must be a JSON object");
		return NULL;
	}
	resource = need_string(&c, doc, "resource", "the ViewDefinition", false);
	if (c.failed)
		return NULL;
	if (resource[0] == '\0')
	{
		free(resource);
		snprintf(errbuf, errlen, "the ViewDefinition's \"resource\" is empty");
		return NULL;
	}
	alloc_view(&c, resource);
	free(resource);
	if (c.failed)
	{
		epic_view_free(c.view);
		return NULL;
	}
	c.view->name = need_string(&c, doc, "name", "the ViewDefinition", true);
	compile_constants(&c, doc, extra_env);

	arr = get_array(&c, doc, "extension", "the ViewDefinition");
	for (size_t i = 0; arr && !c.failed && i < ops->size(arr); i++)
	{
		const void *e = ops->item(arr, i);
		char	   *url;

		if (ops->kind(e) != EPIC_JSON_OBJECT)
			continue;
		url = need_string(&c, e, "url", "an extension", true);
		if (url != NULL && strcmp(url, REQUIRED_PARAM_URL) == 0)
		{
			char	   *val = need_string(&c, e, "valueString", "an extension", false);
			char	  **r;

			/* one name, or alternatives any of which will do: "category|code" */
			if (!c.failed && !valid_requirement(val))
				fail(&c, "%s: \"%s\" is not a search parameter name, or names separated by \"|\"",
					 REQUIRED_PARAM_URL, val);
			r = c.failed ? NULL :
				realloc(c.view->required, sizeof(char *) * (size_t) (c.view->nrequired + 1));

			if (r != NULL)
			{
				r[c.view->nrequired++] = val;
				c.view->required = r;
			}
			else
				free(val);
		}
		free(url);
	}

	arr = get_array(&c, doc, "where", "the ViewDefinition");
	if (arr && !c.failed)
	{
		size_t		n = ops->size(arr);

		c.view->where = calloc(n + 1, sizeof(EpicFpExpr *));
		c.view->where_path = calloc(n + 1, sizeof(char *));
		if (!c.view->where || !c.view->where_path)
			fail(&c, "out of memory");
		for (size_t i = 0; i < n && !c.failed; i++)
		{
			const void *w = ops->item(arr, i);

			if (ops->kind(w) != EPIC_JSON_OBJECT)
			{
				fail(&c, "a where entry must be an object with a \"path\"");
				break;
			}
			c.view->where_path[i] = need_string(&c, w, "path", "a where entry", false);
			c.view->nwhere = (int) i + 1;
			if (!c.failed)
				c.view->where[i] = compile_path(&c, c.view->where_path[i], "where");
		}
	}

	arr = get_array(&c, doc, "select", "the ViewDefinition");
	if (!c.failed && (arr == NULL || ops->size(arr) == 0))
		fail(&c, "the ViewDefinition has no \"select\"");
	if (!c.failed)
		compile_select_list(&c, arr, 0, 0, false);
	if (!c.failed)
		finish_slots(&c);
	if (!c.failed && c.view->nslots == 0)
		fail(&c, "the ViewDefinition has no columns");
	if (c.failed)
	{
		epic_view_free(c.view);
		return NULL;
	}
	epic_view_set_fhir_versions(c.view, view_fhir_versions(ops, doc));
	return c.view;
}

EpicView *
epic_view_new(const char *resource, const EpicFpEnv *extra_env)
{
	Compiler	c;
	char		errbuf[64];

	memset(&c, 0, sizeof(c));
	c.errbuf = errbuf;
	c.errlen = sizeof(errbuf);
	alloc_view(&c, resource);
	if (!c.failed)
		compile_constants(&c, NULL, extra_env);
	if (c.failed)
	{
		epic_view_free(c.view);
		return NULL;
	}
	epic_view_set_fhir_versions(c.view, EPIC_FHIR_ANY);
	return c.view;
}

int
epic_view_add_column(EpicView *view, const char *name, const char *path, const char *type,
					 bool collection, bool first_only, char *errbuf, size_t errlen, int *errpos)
{
	Compiler	c;
	int			ci;
	char		what[128];

	memset(&c, 0, sizeof(c));
	c.view = view;
	c.errbuf = errbuf;
	c.errlen = errlen;
	c.errpos = errpos;
	if (errpos)
		*errpos = 0;
	ci = new_column(&c, 0);
	if (ci < 0)
		return -1;
	view->columns[ci].name = xstrdup(name);
	view->columns[ci].path = xstrdup(path);
	view->columns[ci].type = xstrdup(type);
	view->columns[ci].collection = collection;
	view->columns[ci].first_only = first_only;
	snprintf(what, sizeof(what), "column \"%s\"", name);
	view->columns[ci].expr = compile_path(&c, path, what);
	view->columns[ci].uses_row_index =
		view->columns[ci].expr && epic_fp_uses_constant(view->columns[ci].expr, "rowIndex");
	if (!c.failed)
		finish_slots(&c);
	if (c.failed)
	{
		/* take the column out again: the view stays as it was */
		EpicViewColumn *col = &view->columns[ci];

		free(col->name);
		free(col->path);
		epic_fp_free(col->expr);
		free(col->type);
		view->ncolumns--;
		view->selects[0].ncols--;
		c.failed = false;		/* errbuf keeps the message */
		finish_slots(&c);
		return -1;
	}
	return ci;
}

void
epic_view_free(EpicView *v)
{
	if (v == NULL)
		return;
	free(v->name);
	free(v->resource);
	for (int i = 0; i < v->nwhere; i++)
	{
		epic_fp_free(v->where ? v->where[i] : NULL);
		free(v->where_path[i]);
	}
	free(v->where);
	free(v->where_path);
	for (int i = 0; i < v->nconst; i++)
	{
		free(v->const_names[i]);
		free(v->const_values[i]);
	}
	free(v->const_names);
	free(v->const_values);
	free(v->const_kinds);
	free(v->const_types);
	for (int i = 0; i < v->nrequired; i++)
		free(v->required[i]);
	free(v->required);
	for (int i = 0; i < v->nselects; i++)
	{
		EpicViewSelect *s = &v->selects[i];

		free(s->iter_path);
		epic_fp_free(s->iter);
		for (int j = 0; j < s->nrepeat; j++)
			epic_fp_free(s->repeat[j]);
		free(s->repeat);
		free(s->cols);
		free(s->children);
		free(s->unions);
	}
	free(v->selects);
	for (int i = 0; i < v->ncolumns; i++)
	{
		EpicViewColumn *col = &v->columns[i];

		free(col->name);
		free(col->path);
		epic_fp_free(col->expr);
		free(col->type);
		free(col->search_param);
		free(col->ansi_type);
		free(col->description);
	}
	free(v->columns);
	free(v->slot_column);
	free(v);
}

int
epic_view_slot(const EpicView *view, const char *name)
{
	for (int i = 0; i < view->nslots; i++)
		if (strcmp(view->columns[view->slot_column[i]].name, name) == 0)
			return i;
	return -1;
}

/* ---------------------------------------------------------------------
 * Rows
 * ---------------------------------------------------------------------
 */
typedef struct RowSet
{
	int			n;
	int			cap;			/* rows */
	EpicViewCell *cells;
} RowSet;

typedef struct Gen
{
	const EpicView *view;
	const EpicJsonOps *ops;
	const void *resource;
	int			width;
	char	   *errbuf;
	size_t		errlen;
	bool		failed;
} Gen;

static void
gen_fail(Gen *g, const char *fmt, const char *arg)
{
	if (!g->failed)
		snprintf(g->errbuf, g->errlen, fmt, arg);
	g->failed = true;
}

/* Room for one more row; returns it (all cells unset) or NULL. */
static EpicViewCell *
rowset_add(Gen *g, RowSet *rs)
{
	EpicViewCell *row;

	if (g->failed)
		return NULL;
	if (rs->n >= VIEW_MAX_ROWS || (long) (rs->n + 1) * Max1(g->width) > VIEW_MAX_CELLS)
	{
		gen_fail(g, "a resource gives more than %s rows or cells", "1000000 rows or 10000000");
		return NULL;
	}
	if (rs->n == rs->cap)
	{
		int			cap = rs->cap ? rs->cap * 2 : 4;
		EpicViewCell *c = realloc(rs->cells, sizeof(EpicViewCell) * (size_t) cap *
								  (size_t) Max1(g->width));

		if (c == NULL)
		{
			gen_fail(g, "out of memory%s", "");
			return NULL;
		}
		rs->cells = c;
		rs->cap = cap;
	}
	row = &rs->cells[(size_t) rs->n * (size_t) Max1(g->width)];
	for (int i = 0; i < g->width; i++)
	{
		row[i].column = -1;
		row[i].node = NULL;
		row[i].index = 0;
	}
	rs->n++;
	return row;
}

/* a := a x b (each row of a overlaid with each row of b's set cells) */
static void
rowset_cross(Gen *g, RowSet *a, RowSet *b)
{
	RowSet		out = {0};

	for (int i = 0; i < a->n && !g->failed; i++)
		for (int j = 0; j < b->n && !g->failed; j++)
		{
			EpicViewCell *r = rowset_add(g, &out);
			const EpicViewCell *ra = &a->cells[(size_t) i * (size_t) g->width];
			const EpicViewCell *rb = &b->cells[(size_t) j * (size_t) g->width];

			if (r == NULL)
				break;
			for (int k = 0; k < g->width; k++)
				r[k] = (rb[k].column >= 0) ? rb[k] : ra[k];
		}
	free(a->cells);
	*a = out;
}

static void
rowset_append(Gen *g, RowSet *a, const RowSet *b)
{
	for (int j = 0; j < b->n && !g->failed; j++)
	{
		EpicViewCell *r = rowset_add(g, a);

		if (r != NULL)
			memcpy(r, &b->cells[(size_t) j * (size_t) g->width],
				   sizeof(EpicViewCell) * (size_t) g->width);
	}
}

/* Append the items of expr on node to *nodes; they must be elements. */
static void
eval_nodes(Gen *g, const EpicFpExpr *expr, const char *what, const void *node,
		   const char *node_type, int index, const void ***nodes, int *n)
{
	EpicFpResult res = {0};

	if (epic_fp_eval_full(expr, g->ops, g->resource, node, node_type, &g->view->env, index,
						  g->view->fhir_versions, &res, g->errbuf, g->errlen) != 0)
	{
		g->failed = true;
		epic_fp_result_free(&res);
		return;
	}
	for (int i = 0; i < res.count && !g->failed; i++)
	{
		const void **a;

		if (res.items[i].kind != EPIC_FP_NODE)
		{
			gen_fail(g, "%s yields a computed value, not an element of the resource", what);
			break;
		}
		a = realloc(*nodes, sizeof(void *) * (size_t) (*n + 1));
		if (a == NULL)
		{
			gen_fail(g, "out of memory%s", "");
			break;
		}
		a[(*n)++] = res.items[i].node;
		*nodes = a;
	}
	epic_fp_result_free(&res);
}

/* repeat: the items of every path, applied again to each item, depth first */
static void
repeat_nodes(Gen *g, const EpicViewSelect *s, const void *node, int index, int depth,
			 const void ***nodes, int *n)
{
	if (depth > VIEW_MAX_REPEAT_DEPTH)
	{
		gen_fail(g, "repeat goes deeper than %s levels", "64");
		return;
	}
	for (int p = 0; p < s->nrepeat && !g->failed; p++)
	{
		const void **level = NULL;
		int			nlevel = 0;

		/* the items of the first level are typed by the selection above */
		eval_nodes(g, s->repeat[p], "repeat", node,
				   depth == 0 && s->parent >= 0 ? g->view->selects[s->parent].item_type : NULL,
				   index, &level, &nlevel);
		for (int i = 0; i < nlevel && !g->failed; i++)
		{
			const void **a;

			if (*n >= VIEW_MAX_ROWS)
			{
				gen_fail(g, "repeat gives more than %s items", "1000000");
				break;
			}
			a = realloc(*nodes, sizeof(void *) * (size_t) (*n + 1));

			if (a == NULL)
			{
				gen_fail(g, "out of memory%s", "");
				break;
			}
			a[(*n)++] = level[i];
			*nodes = a;
			repeat_nodes(g, s, level[i], index, depth + 1, nodes, n);
		}
		free(level);
	}
}

/*
 * The rows of selection si on node.  index is node's %rowIndex: its position
 * in the collection the nearest forEach, forEachOrNull or repeat above made
 * (0 at the resource, and for the row of NULLs of a forEachOrNull without
 * items).  A selection that iterates numbers its own items from 0; one that
 * does not (a plain select, a unionAll branch) keeps index.
 */
static void
gen_select(Gen *g, int si, const void *node, bool isnull, int index, RowSet *out)
{
	const EpicViewSelect *s = &g->view->selects[si];
	const void **ctx = NULL;
	int			nctx = 0;
	const void *single[1] = {NULL};

	if (g->failed)
		return;
	if (isnull || s->kind == EPIC_VIEW_PLAIN)
	{
		single[0] = isnull ? NULL : node;
		nctx = 1;
	}
	else if (s->kind == EPIC_VIEW_REPEAT)
		repeat_nodes(g, s, node, index, 0, &ctx, &nctx);
	else
	{
		eval_nodes(g, s->iter, s->kind == EPIC_VIEW_FOREACH ? "forEach" : "forEachOrNull",
				   node, s->parent >= 0 ? g->view->selects[s->parent].item_type : NULL,
				   index, &ctx, &nctx);
		if (nctx == 0 && s->kind == EPIC_VIEW_FOREACH_OR_NULL)
		{
			single[0] = NULL;
			nctx = 1;
		}
	}

	for (int c = 0; c < nctx && !g->failed; c++)
	{
		const void *cn = ctx ? ctx[c] : single[0];
		bool		cnull = (cn == NULL);
		int			cindex = ctx ? c : (s->kind == EPIC_VIEW_PLAIN ? index : 0);
		RowSet		rows = {0};
		EpicViewCell *r = rowset_add(g, &rows);

		if (r == NULL)
			break;
		for (int i = 0; i < s->ncols; i++)
		{
			const EpicViewColumn *col = &g->view->columns[s->cols[i]];

			r[col->slot].column = s->cols[i];
			r[col->slot].node = cn;
			r[col->slot].index = cindex;
		}
		for (int i = 0; i < s->nchildren && !g->failed; i++)
		{
			RowSet		child = {0};

			gen_select(g, s->children[i], cn, cnull, cindex, &child);
			rowset_cross(g, &rows, &child);
			free(child.cells);
		}
		if (s->nunions > 0 && !g->failed)
		{
			RowSet		u = {0};

			for (int b = 0; b < s->nunions && !g->failed; b++)
			{
				RowSet		branch = {0};

				/* a NULL context gives the first branch's one row of NULLs */
				if (cnull && b > 0)
					break;
				gen_select(g, s->unions[b], cn, cnull, cindex, &branch);
				rowset_append(g, &u, &branch);
				free(branch.cells);
			}
			rowset_cross(g, &rows, &u);
			free(u.cells);
		}
		rowset_append(g, out, &rows);
		free(rows.cells);
	}
	free(ctx);
}

/* Is a where[] result true?  -1 when it is not a boolean. */
static int
where_value(const EpicJsonOps *ops, const EpicFpResult *r)
{
	if (r->count == 0)
		return 0;
	if (r->count == 1)
	{
		const EpicFpItem *it = &r->items[0];

		if (it->kind == EPIC_FP_BOOL)
			return it->boolval ? 1 : 0;
		if (it->kind == EPIC_FP_NODE)
		{
			EpicJsonKind k = ops->kind(it->node);

			if (k == EPIC_JSON_TRUE)
				return 1;
			if (k == EPIC_JSON_FALSE)
				return 0;
		}
	}
	return -1;
}

int
epic_view_rows(const EpicView *view, const EpicJsonOps *ops, const void *resource,
			   EpicViewRows *rows, char *errbuf, size_t errlen)
{
	Gen			g;
	RowSet		rs = {0};
	EpicFpResult res = {0};

	rows->nrows = 0;
	rows->width = view->nslots;
	for (int i = 0; i < view->nwhere; i++)
	{
		int			b;

		if (epic_fp_eval_full(view->where[i], ops, resource, resource, NULL, &view->env, 0,
							  view->fhir_versions, &res, errbuf, errlen) != 0)
		{
			epic_fp_result_free(&res);
			return -1;
		}
		b = where_value(ops, &res);
		if (b < 0)
		{
			snprintf(errbuf, errlen, "where path \"%s\" gives %d value%s that %s not a boolean",
					 view->where_path[i], res.count, res.count == 1 ? "" : "s",
					 res.count == 1 ? "is" : "are");
			epic_fp_result_free(&res);
			return -1;
		}
		if (b == 0)
		{
			epic_fp_result_free(&res);
			return 0;
		}
	}
	epic_fp_result_free(&res);

	memset(&g, 0, sizeof(g));
	g.view = view;
	g.ops = ops;
	g.resource = resource;
	g.width = view->nslots;
	g.errbuf = errbuf;
	g.errlen = errlen;
	gen_select(&g, 0, resource, false, 0, &rs);
	if (!g.failed && rs.n > 0)
	{
		size_t		need = (size_t) rs.n * (size_t) Max1(g.width);

		if ((size_t) rows->capacity < need)
		{
			EpicViewCell *c = realloc(rows->cells, sizeof(EpicViewCell) * need);

			if (c == NULL)
				gen_fail(&g, "out of memory%s", "");
			else
			{
				rows->cells = c;
				rows->capacity = (int) need;
			}
		}
		if (!g.failed)
		{
			memcpy(rows->cells, rs.cells, sizeof(EpicViewCell) * need);
			rows->nrows = rs.n;
		}
	}
	free(rs.cells);
	return g.failed ? -1 : 0;
}

void
epic_view_rows_free(EpicViewRows *rows)
{
	free(rows->cells);
	memset(rows, 0, sizeof(*rows));
}

bool
epic_view_cell_null(const EpicView *view, const EpicViewCell *cell)
{
	return cell->column < 0 ||
		(cell->node == NULL && !view->columns[cell->column].uses_row_index);
}

int
epic_view_cell(const EpicView *view, const EpicJsonOps *ops, const void *resource,
			   const EpicViewCell *cell, EpicFpResult *res, char *errbuf, size_t errlen)
{
	if (epic_view_cell_null(view, cell))
	{
		res->count = 0;
		return 0;
	}
	/* a NULL node (forEachOrNull without items) is an empty focus */
	return epic_fp_eval_full(view->columns[cell->column].expr, ops, resource, cell->node,
							 view->selects[view->columns[cell->column].select].item_type,
							 &view->env, cell->index, view->fhir_versions, res, errbuf, errlen);
}

/* ---------------------------------------------------------------------
 * Types
 * ---------------------------------------------------------------------
 */
static const struct
{
	const char *fhir;
	const char *sql;
}			type_map[] =
{
	{"boolean", "boolean"},
	{"integer", "integer"},
	{"positiveInt", "integer"},
	{"unsignedInt", "integer"},
	{"integer64", "bigint"},
	{"decimal", "numeric"},
	{"date", "date"},
	{"dateTime", "timestamp with time zone"},
	{"instant", "timestamp with time zone"},
	{"time", "time without time zone"},
	{"string", "text"},
	{"code", "text"},
	{"id", "text"},
	{"uri", "text"},
	{"url", "text"},
	{"canonical", "text"},
	{"oid", "text"},
	{"uuid", "text"},
	{"markdown", "text"},
	{"base64Binary", "text"},
	{"xhtml", "text"},
};

EpicJsonKind
epic_view_type_json_kind(const char *type)
{
	static const char *const numbers[] = {"integer", "positiveInt", "unsignedInt",
	"integer64", "decimal"};
	static const char *const strings[] = {"string", "code", "id", "uri", "url", "canonical",
		"oid", "uuid", "markdown", "base64Binary", "xhtml", "date", "dateTime", "instant",
	"time"};

	if (type == NULL)
		return EPIC_JSON_NULL;
	if (strcmp(type, "boolean") == 0)
		return EPIC_JSON_TRUE;
	for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++)
		if (strcmp(type, numbers[i]) == 0)
			return EPIC_JSON_NUMBER;
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if (strcmp(type, strings[i]) == 0)
			return EPIC_JSON_STRING;
	return EPIC_JSON_NULL;
}

const char *
epic_view_sql_type(const char *fhir_type, bool collection)
{
	const char *sql = "jsonb";	/* complex types: the element as JSON */

	if (fhir_type == NULL)
		sql = "text";
	else
		for (size_t i = 0; i < sizeof(type_map) / sizeof(type_map[0]); i++)
			if (strcmp(type_map[i].fhir, fhir_type) == 0)
				sql = type_map[i].sql;
	if (!collection)
		return sql;
	if (strcmp(sql, "text") == 0)
		return "text[]";
	if (strcmp(sql, "boolean") == 0)
		return "boolean[]";
	if (strcmp(sql, "integer") == 0)
		return "integer[]";
	if (strcmp(sql, "bigint") == 0)
		return "bigint[]";
	if (strcmp(sql, "numeric") == 0)
		return "numeric[]";
	if (strcmp(sql, "date") == 0)
		return "date[]";
	if (strcmp(sql, "timestamp with time zone") == 0)
		return "timestamp with time zone[]";
	if (strcmp(sql, "time without time zone") == 0)
		return "time without time zone[]";
	return "jsonb[]";
}

/*
 * Sets the view's FHIR versions and, in them, each selection's item_type: the
 * FHIR type of the nodes its paths are evaluated on (the resource for the
 * root, a forEach path's type: HumanName for name, the path Patient.contact
 * for a BackboneElement; NULL when unknown: repeat).
 */
void
epic_view_set_fhir_versions(EpicView *view, int fhir_versions)
{
	view->fhir_versions = (fhir_versions & EPIC_FHIR_ANY) ? (fhir_versions & EPIC_FHIR_ANY) :
		EPIC_FHIR_ANY;
	/* a parent comes before its selections */
	for (int si = 0; si < view->nselects; si++)
	{
		EpicViewSelect *s = &view->selects[si];
		const char *parent = s->parent >= 0 && s->parent < si ?
			view->selects[s->parent].item_type : NULL;

		if (s->parent < 0)
			s->item_type = view->resource ?
				epic_fhir_type_name(view->resource, strlen(view->resource), view->fhir_versions) :
				NULL;
		else if (s->kind == EPIC_VIEW_PLAIN)
			s->item_type = parent;
		else if ((s->kind == EPIC_VIEW_FOREACH || s->kind == EPIC_VIEW_FOREACH_OR_NULL) &&
				 s->iter != NULL && parent != NULL)
			s->item_type = epic_fp_static_type_versions(s->iter, &view->env, parent,
														view->fhir_versions);
		else
			s->item_type = NULL;
	}
}

/* A column's FHIR type: declared, else the boolean or numeric type its path gives */
static const char *
column_fhir_type(const EpicView *view, const EpicViewColumn *col)
{
	const char *t = col->type;

	if (t == NULL && col->expr != NULL)
	{
		/*
		 * untyped: the type the path gives if it is boolean or a number.  Not
		 * a date or time: as text a partial date ("2020-03") is kept, where a
		 * date or timestamptz column would make it NULL.
		 */
		const char *sql;

		t = epic_fp_static_type_versions(col->expr, &view->env,
										 view->selects[col->select].item_type,
										 view->fhir_versions);
		sql = t ? epic_view_sql_type(t, false) : NULL;
		if (sql == NULL || (strcmp(sql, "boolean") != 0 && strcmp(sql, "integer") != 0 &&
							strcmp(sql, "bigint") != 0 && strcmp(sql, "numeric") != 0))
			t = NULL;
	}
	return t;
}

const char *
epic_view_column_sql_type(const EpicView *view, const EpicViewColumn *col)
{
	const char *t = column_fhir_type(view, col);

	/* the unionAll branches sharing the slot must agree, else text */
	for (int i = 0; i < view->ncolumns; i++)
	{
		const EpicViewColumn *o = &view->columns[i];
		const char *ot;

		if (o == col || o->slot != col->slot)
			continue;
		ot = column_fhir_type(view, o);
		if (o->collection != col->collection ||
			(t == NULL) != (ot == NULL) || (t != NULL && strcmp(t, ot) != 0))
			return epic_view_sql_type(NULL, col->collection);
	}
	return epic_view_sql_type(t, col->collection);
}

/*
 * Every path of the view (where, forEach and forEachOrNull, columns) checked
 * against the FHIR type table in the type its nodes have: 0, or -1 with
 * errbuf naming the path and the element the type does not have (a
 * misspelled member would otherwise give NULL silently).  Paths whose
 * context type is unknown (inside repeat) are not checked.
 */
int
epic_view_check_members(const EpicView *view, char *errbuf, size_t errlen)
{
	char		msg[256];

	for (int i = 0; i < view->nwhere; i++)
		if (!epic_fp_check_members(view->where[i], &view->env, view->resource, msg, sizeof(msg)))
		{
			snprintf(errbuf, errlen, "where path \"%s\": %s", view->where_path[i], msg);
			return -1;
		}
	for (int si = 0; si < view->nselects; si++)
	{
		const EpicViewSelect *s = &view->selects[si];
		const char *ctx;

		if (s->iter == NULL)
			continue;
		ctx = s->parent < 0 ? view->resource : view->selects[s->parent].item_type;
		if (ctx != NULL &&
			!epic_fp_check_members(s->iter, &view->env, ctx, msg, sizeof(msg)))
		{
			snprintf(errbuf, errlen, "forEach path \"%s\": %s", s->iter_path, msg);
			return -1;
		}
	}
	for (int i = 0; i < view->ncolumns; i++)
	{
		const EpicViewColumn *c = &view->columns[i];
		const char *ctx;

		if (c->expr == NULL)
			continue;
		ctx = view->selects[c->select].item_type;
		if (ctx != NULL && !epic_fp_check_members(c->expr, &view->env, ctx, msg, sizeof(msg)))
		{
			snprintf(errbuf, errlen, "column \"%s\", path \"%s\": %s", c->name, c->path, msg);
			return -1;
		}
	}
	return 0;
}
