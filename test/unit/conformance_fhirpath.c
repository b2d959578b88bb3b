/*
 * conformance_fhirpath.c — runs the column-only part of the SQL on FHIR v2
 * conformance tests (the tests JSON files given as arguments) through the FHIRPath
 * evaluator (src/fhirpath.c) outside PostgreSQL.
 *
 * A test is run when its view selects only plain columns (select[] entries
 * with just "column": no forEach, forEachOrNull, unionAll, repeat or nested
 * select) and its constants are strings, codes or integers (EpicFpEnv holds
 * text only: a boolean constant could not compare as a boolean).  View-level
 * where[] filters are applied.  Each column path is evaluated on each
 * resource of the view's type: collection:true gives a JSON array of the
 * items, otherwise the single item (null when empty; more than one item is
 * an error).  Rows are compared with "expect" ignoring order; numbers
 * compare by value.  "expectError" tests pass when a path does not parse,
 * names an undefined %constant, gives several items for a non-collection
 * column, or a where path gives a non-boolean; or when the view names no
 * resource.
 *
 * Prints "ok"/"not ok"/"skip" per test and "N passed, N failed, N skipped";
 * exits 1 when any test failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fhirpath.h"
#include "json_jansson.h"

static int	passed,
			failed,
			skipped;

/* JSON equality with numbers compared by value (42 = 42.0). */
static int
json_eq(const json_t *a, const json_t *b)
{
	if (json_is_number(a) && json_is_number(b))
		return json_number_value(a) == json_number_value(b);
	if (json_typeof(a) != json_typeof(b))
		return 0;
	if (json_is_array(a))
	{
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!json_eq(json_array_get(a, i), json_array_get(b, i)))
				return 0;
		return 1;
	}
	if (json_is_object(a))
	{
		const char *k;
		json_t	   *v;

		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *) a, k, v)
		{
			json_t	   *w = json_object_get(b, k);

			if (w == NULL || !json_eq(v, w))
				return 0;
		}
		return 1;
	}
	return json_equal(a, b);
}

static json_t *
item_json(const EpicFpItem *it)
{
	char		buf[128];

	switch (it->kind)
	{
		case EPIC_FP_NODE:
			return json_deep_copy((const json_t *) it->node);
		case EPIC_FP_STRING:
			return json_stringn(it->str, it->len);
		case EPIC_FP_BOOL:
			return json_boolean(it->boolval);
		case EPIC_FP_NUMBER:
			if (it->len >= sizeof(buf))
				return json_null();
			memcpy(buf, it->str, it->len);
			buf[it->len] = '\0';
			if (strpbrk(buf, ".eE") == NULL)
				return json_integer(strtoll(buf, NULL, 10));
			return json_real(strtod(buf, NULL));
	}
	return json_null();
}

/* Does the view use only features this runner supports?  NULL if so. */
static const char *
unsupported(const json_t *view)
{
	const json_t *sel = json_object_get(view, "select");
	const json_t *c;
	size_t		i;

	if (!json_is_array(sel))
		return "no select";
	json_array_foreach(sel, i, c)
	{
		const char *k;
		json_t	   *v;

		json_object_foreach((json_t *) c, k, v)
			if (strcmp(k, "column") != 0)
			return "select uses more than column";
	}
	json_array_foreach(json_object_get(view, "constant"), i, c)
	{
		if (json_object_get(c, "valueBoolean") || json_object_get(c, "valueDecimal"))
			return "typed (boolean/decimal) constant";
	}
	return NULL;
}

/* Does path reference a %name that is not among names? */
static int
undefined_constant(const char *path, int n, const char **names)
{
	for (const char *p = strchr(path, '%'); p != NULL; p = strchr(p + 1, '%'))
	{
		size_t		l = 0;
		int			found = 0;

		while (p[1 + l] == '_' || (p[1 + l] >= 'a' && p[1 + l] <= 'z') ||
			   (p[1 + l] >= 'A' && p[1 + l] <= 'Z') || (p[1 + l] >= '0' && p[1 + l] <= '9'))
			l++;
		for (int i = 0; i < n; i++)
			if (strlen(names[i]) == l && strncmp(names[i], p + 1, l) == 0)
				found = 1;
		if (!found)
			return 1;
	}
	return 0;
}

/*
 * Run one test.  Returns 1 pass, 0 fail, -1 skip; *why explains.
 */
static int
run_test(const json_t *resources, const json_t *test, char *why, size_t whylen)
{
	const json_t *view = json_object_get(test, "view");
	const char *rtype = json_string_value(json_object_get(view, "resource"));
	const json_t *expect = json_object_get(test, "expect");
	int			expect_error = json_is_true(json_object_get(test, "expectError"));
	const char *u = unsupported(view);
	const char *cnames[32];
	const char *cvalues[32];
	char		numbufs[32][64];
	int			nconst = 0;
	EpicFpEnv	env;
	EpicFpExpr *cols[64];
	const char *colnames[64];
	int			colcoll[64];
	int			ncols = 0;
	EpicFpExpr *wheres[16];
	int			nwhere = 0;
	json_t	   *rows = json_array();
	const json_t *c,
			   *r;
	size_t		i,
				j;
	int			result = -1;
	char		errbuf[256];
	int			errpos;
	int			error = 0;

	why[0] = '\0';
	if (u != NULL)
	{
		snprintf(why, whylen, "%s", u);
		json_decref(rows);
		return -1;
	}
	if (!expect_error && !json_is_array(expect))
	{
		snprintf(why, whylen, "no expected rows");
		json_decref(rows);
		return -1;
	}
	/* constants */
	json_array_foreach(json_object_get(view, "constant"), i, c)
	{
		const char *k;
		json_t	   *v;
		const char *val = NULL;

		if (nconst >= 32)
			break;
		json_object_foreach((json_t *) c, k, v)
		{
			if (strncmp(k, "value", 5) != 0)
				continue;
			if (json_is_string(v))
				val = json_string_value(v);
			else if (json_is_integer(v))
			{
				snprintf(numbufs[nconst], 64, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
				val = numbufs[nconst];
			}
		}
		if (val == NULL)
		{
			/* a constant without a value is an invalid view */
			error = 1;
			snprintf(why, whylen, "constant without a value");
			continue;
		}
		cnames[nconst] = json_string_value(json_object_get(c, "name"));
		cvalues[nconst] = val;
		if (cnames[nconst] != NULL)
			nconst++;
	}
	if (rtype == NULL)
	{
		error = 1;
		snprintf(why, whylen, "the view names no resource");
	}
	env.count = nconst;
	env.names = cnames;
	env.values = cvalues;

	/* compile columns and where paths */
	json_array_foreach(json_object_get(view, "select"), i, c)
	{
		json_array_foreach(json_object_get(c, "column"), j, r)
		{
			const char *path = json_string_value(json_object_get(r, "path"));

			if (ncols >= 64 || path == NULL)
				continue;
			if (undefined_constant(path, nconst, cnames))
			{
				error = 1;
				snprintf(why, whylen, "undefined constant in %s", path);
			}
			cols[ncols] = epic_fp_parse(path, errbuf, sizeof(errbuf), &errpos);
			if (cols[ncols] == NULL)
			{
				error = 1;
				snprintf(why, whylen, "%s: %s at %d", path, errbuf, errpos);
				continue;
			}
			colnames[ncols] = json_string_value(json_object_get(r, "name"));
			colcoll[ncols] = json_is_true(json_object_get(r, "collection"));
			ncols++;
		}
	}
	json_array_foreach(json_object_get(view, "where"), i, c)
	{
		const char *path = json_string_value(json_object_get(c, "path"));

		if (nwhere >= 16 || path == NULL)
			continue;
		if (undefined_constant(path, nconst, cnames))
		{
			error = 1;
			snprintf(why, whylen, "undefined constant in %s", path);
		}
		wheres[nwhere] = epic_fp_parse(path, errbuf, sizeof(errbuf), &errpos);
		if (wheres[nwhere] == NULL)
		{
			error = 1;
			snprintf(why, whylen, "%s: %s at %d", path, errbuf, errpos);
			continue;
		}
		nwhere++;
	}

	/* evaluate */
	json_array_foreach(resources, i, r)
	{
		EpicFpResult res = {0};
		json_t	   *row;
		int			keep = 1;

		if (error)
			break;
		if (rtype == NULL || !json_is_string(json_object_get(r, "resourceType")) ||
			strcmp(json_string_value(json_object_get(r, "resourceType")), rtype) != 0)
			continue;
		for (int w = 0; w < nwhere && keep; w++)
		{
			if (epic_fp_eval(wheres[w], &epic_jansson_ops, r, &env, &res, errbuf, sizeof(errbuf)) != 0)
			{
				error = 1;
				snprintf(why, whylen, "where: %s", errbuf);
				break;
			}
			if (res.count > 1 ||
				(res.count == 1 && res.items[0].kind != EPIC_FP_BOOL &&
				 !(res.items[0].kind == EPIC_FP_NODE &&
				   json_is_boolean((const json_t *) res.items[0].node))))
			{
				error = 1;
				snprintf(why, whylen, "where path is not boolean");
				break;
			}
			keep = (res.count == 1 &&
					((res.items[0].kind == EPIC_FP_BOOL && res.items[0].boolval) ||
					 (res.items[0].kind == EPIC_FP_NODE &&
					  json_is_true((const json_t *) res.items[0].node))));
		}
		if (error || !keep)
		{
			epic_fp_result_free(&res);
			continue;
		}
		row = json_object();
		for (int k = 0; k < ncols && !error; k++)
		{
			json_t	   *v;

			if (epic_fp_eval(cols[k], &epic_jansson_ops, r, &env, &res, errbuf, sizeof(errbuf)) != 0)
			{
				error = 1;
				snprintf(why, whylen, "%s", errbuf);
				break;
			}
			if (colcoll[k])
			{
				v = json_array();
				for (int x = 0; x < res.count; x++)
					json_array_append_new(v, item_json(&res.items[x]));
			}
			else if (res.count == 0)
				v = json_null();
			else if (res.count == 1)
				v = item_json(&res.items[0]);
			else
			{
				error = 1;
				snprintf(why, whylen, "column %s: %d items", colnames[k], res.count);
				break;
			}
			json_object_set_new(row, colnames[k] ? colnames[k] : "?", v);
		}
		epic_fp_result_free(&res);
		json_array_append_new(rows, row);
	}

	if (expect_error)
		result = error ? 1 : 0;
	else if (error)
		result = 0;
	else
	{
		/* order-insensitive match */
		size_t		n = json_array_size(rows);
		char	   *used = calloc(n + 1, 1);

		result = (json_array_size(expect) == n);
		json_array_foreach(expect, i, c)
		{
			int			found = 0;

			if (!result)
				break;
			for (j = 0; j < n && !found; j++)
				if (!used[j] && json_eq(c, json_array_get(rows, j)))
					found = 1, used[j] = 1;
			if (!found)
				result = 0;
		}
		free(used);
		if (!result)
		{
			char	   *got = json_dumps(rows, JSON_COMPACT);
			char	   *want = json_dumps(expect, JSON_COMPACT);

			snprintf(why, whylen, "got %s want %s", got ? got : "?", want ? want : "?");
			free(got);
			free(want);
		}
	}
	if (expect_error && !result)
		snprintf(why, whylen, "expected an error");
	for (int k = 0; k < ncols; k++)
		epic_fp_free(cols[k]);
	for (int k = 0; k < nwhere; k++)
		epic_fp_free(wheres[k]);
	json_decref(rows);
	return result;
}

int
main(int argc, char **argv)
{
	for (int a = 1; a < argc; a++)
	{
		json_error_t jerr;
		json_t	   *doc = json_load_file(argv[a], 0, &jerr);
		const char *base = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
		const json_t *t;
		size_t		i;

		if (doc == NULL)
		{
			printf("not ok - %s: %s\n", base, jerr.text);
			failed++;
			continue;
		}
		json_array_foreach(json_object_get(doc, "tests"), i, t)
		{
			char		why[2048];
			const char *title = json_string_value(json_object_get(t, "title"));
			int			r = run_test(json_object_get(doc, "resources"), t, why, sizeof(why));

			if (r > 0)
				passed++;
			else if (r == 0)
				failed++;
			else
				skipped++;
			printf("%s - %s: %s%s%s\n", r > 0 ? "ok" : r == 0 ? "not ok" : "skip",
				   base, title ? title : "?", why[0] ? " # " : "", why);
		}
		json_decref(doc);
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
