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
			n = snprintf(buf, buflen, "%.17g", json_real_value(j));
			*len = (n < 0) ? 0 : (size_t) n;
			return buf;
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

const EpicJsonOps epic_jansson_ops = {
	jj_kind, jj_member, jj_size, jj_item, jj_scalar
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

char *
epic_json_dump(const void *node)
{
	return json_dumps((const json_t *) node, JSON_COMPACT | JSON_ENCODE_ANY);
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
