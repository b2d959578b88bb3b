/*-------------------------------------------------------------------------
 *
 * json_jansson.c
 *		The EpicJsonOps interface (fhirpath.h) implemented over jansson, plus
 *		parse/dump helpers.  The only jansson users outside this file are
 *		bundle.c (Bundle and OperationOutcome structure) and auth.c.
 *
 * Pure C: usable by the backend, the unit tests and the fuzz targets.
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fhirpath.h"
#include "json_jansson.h"

static EpicJsonKind
jj_kind(const void *node)
{
	switch (json_typeof((const json_t *) node))
	{
		case JSON_OBJECT:
			return EPIC_JSON_OBJECT;
		case JSON_ARRAY:
			return EPIC_JSON_ARRAY;
		case JSON_STRING:
			return EPIC_JSON_STRING;
		case JSON_INTEGER:
		case JSON_REAL:
			return EPIC_JSON_NUMBER;
		case JSON_TRUE:
			return EPIC_JSON_TRUE;
		case JSON_FALSE:
			return EPIC_JSON_FALSE;
		case JSON_NULL:
			return EPIC_JSON_NULL;
	}
	return EPIC_JSON_NULL;
}

static const void *
jj_member(const void *object, const char *name)
{
	return json_object_get((const json_t *) object, name);
}

static size_t
jj_size(const void *array)
{
	return json_array_size((const json_t *) array);
}

static const void *
jj_item(const void *array, size_t index)
{
	return json_array_get((const json_t *) array, index);
}

static const char *
jj_scalar(const void *node, char *buf, size_t buflen, size_t *len)
{
	const json_t *j = node;
	int			n;

	switch (json_typeof(j))
	{
		case JSON_STRING:
			*len = json_string_length(j);
			return json_string_value(j);
		case JSON_INTEGER:
			n = snprintf(buf, buflen, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
			*len = (n < 0) ? 0 : (size_t) n;
			return buf;
		case JSON_REAL:
			{
				/* the shortest text that reads back as the same double (15.7, not 15.699999999999999) */
				double		v = json_real_value(j);

				for (int prec = 15; prec <= 17; prec++)
				{
					n = snprintf(buf, buflen, "%.*g", prec, v);
					if (n < 0 || strtod(buf, NULL) == v)
						break;
				}
				*len = (n < 0) ? 0 : (size_t) n;
				return buf;
			}
		case JSON_TRUE:
			*len = 4;
			return "true";
		case JSON_FALSE:
			*len = 5;
			return "false";
		default:
			return NULL;
	}
}

/* the i-th member of an object (jansson keeps insertion order): O(i) */
static bool
jj_member_at(const void *object, size_t i, const char **name, size_t *namelen,
			 const void **value)
{
	json_t	   *o = (json_t *) object;
	void	   *it = json_object_iter(o);

	for (size_t k = 0; it != NULL && k < i; k++)
		it = json_object_iter_next(o, it);
	if (it == NULL)
		return false;
	*name = json_object_iter_key(it);
	*namelen = strlen(*name);
	*value = json_object_iter_value(it);
	return true;
}

const EpicJsonOps epic_jansson_ops = {
	jj_kind, jj_member, jj_size, jj_item, jj_scalar, jj_member_at
};

void *
epic_json_parse(const char *text, size_t len, char *errbuf, size_t errlen)
{
	json_error_t err;
	json_t	   *root;

	/* reject NUL bytes inside strings; keep decoding strict */
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
	if (root == NULL && errbuf != NULL)
		snprintf(errbuf, errlen, "%s at line %d, column %d", err.text, err.line, err.column);
	return root;
}

void
epic_json_free(void *root)
{
	json_decref((json_t *) root);
}

/* A growable malloc'd buffer for epic_json_dump. */
typedef struct DumpBuf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	int			failed;
} DumpBuf;

static void
dump_put(DumpBuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;
		char	   *d;

		while (cap < b->len + n + 1)
			cap *= 2;
		d = realloc(b->data, cap);
		if (d == NULL)
		{
			b->failed = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void
dump_string(DumpBuf *b, const char *s, size_t n)
{
	size_t		start = 0;

	dump_put(b, "\"", 1);
	for (size_t i = 0; i < n; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char		esc[8];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		dump_put(b, s + start, i - start);
		if (c == '"' || c == '\\')
		{
			esc[0] = '\\';
			esc[1] = (char) c;
			dump_put(b, esc, 2);
		}
		else
		{
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			dump_put(b, esc, 6);
		}
		start = i + 1;
	}
	dump_put(b, s + start, n - start);
	dump_put(b, "\"", 1);
}

static void
dump_node(DumpBuf *b, const json_t *j, int depth)
{
	char		buf[64];
	size_t		len;
	const char *t;

	if (depth > 10000)
	{
		b->failed = 1;
		return;
	}
	switch (json_typeof(j))
	{
		case JSON_OBJECT:
			{
				const char *key;
				json_t	   *v;
				int			first = 1;

				dump_put(b, "{", 1);
				json_object_foreach((json_t *) j, key, v)
				{
					if (!first)
						dump_put(b, ",", 1);
					first = 0;
					dump_string(b, key, strlen(key));
					dump_put(b, ":", 1);
					dump_node(b, v, depth + 1);
				}
				dump_put(b, "}", 1);
				break;
			}
		case JSON_ARRAY:
			dump_put(b, "[", 1);
			for (size_t i = 0; i < json_array_size(j); i++)
			{
				if (i > 0)
					dump_put(b, ",", 1);
				dump_node(b, json_array_get(j, i), depth + 1);
			}
			dump_put(b, "]", 1);
			break;
		case JSON_STRING:
			dump_string(b, json_string_value(j), json_string_length(j));
			break;
		case JSON_NULL:
			dump_put(b, "null", 4);
			break;
		default:
			/* numbers (shortest round-trip text) and booleans */
			t = jj_scalar(j, buf, sizeof(buf), &len);
			if (t == NULL)
				b->failed = 1;
			else
				dump_put(b, t, len);
			break;
	}
}

/*
 * Compact JSON text of node.  Not json_dumps(): that writes reals with 17
 * digits (15.7 becomes 15.699999999999999); here they get the shortest
 * text that reads back as the same double, as scalar() gives.
 */
char *
epic_json_dump(const void *node)
{
	DumpBuf		b = {0};

	dump_node(&b, (const json_t *) node, 0);
	if (b.failed)
	{
		free(b.data);
		return NULL;
	}
	return b.data;
}

/*
 * The member names of an object, as consecutive NUL-terminated strings
 * ending with an empty one, malloc'd; NULL for a non-object.
 */
char *
epic_json_object_keys(const void *node)
{
	const json_t *obj = node;
	const char *key;
	json_t	   *value;
	size_t		total = 1;
	char	   *out,
			   *p;

	if (!json_is_object(obj))
		return NULL;
	json_object_foreach((json_t *) obj, key, value)
		total += strlen(key) + 1;
	out = malloc(total);
	if (out == NULL)
		return NULL;
	p = out;
	json_object_foreach((json_t *) obj, key, value)
	{
		size_t		n = strlen(key) + 1;

		memcpy(p, key, n);
		p += n;
	}
	*p = '\0';
	return out;
}
