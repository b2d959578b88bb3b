/*
 * conformance_fhirpath.c — runs the SQL on FHIR v2 conformance tests (the
 * test JSON files given as arguments) through the ViewDefinition engine
 * (src/viewdef.c) and the FHIRPath evaluator (src/fhirpath.c) outside
 * PostgreSQL: the fast, valgrind-able tier.  test/conformance/run.py runs
 * the same files through epic_fdw itself.
 *
 * The resources are read with the page parser epic_fdw reads servers'
 * pages with (src/json_page.c: numbers keep their text, 1.0 stays 1.0, as
 * FHIR decimals need), the views with jansson.
 *
 * Each view is compiled; its rows are computed for every resource of the
 * view's type: collection columns give a JSON array of the items, others
 * the single item (null when empty; more than one item is an error).  Rows
 * are compared with "expect" ignoring order; numbers compare by value.
 * "expectError" tests pass when the view does not compile or evaluating it
 * fails.
 *
 * Prints "ok"/"not ok" per test and "N passed, N failed, N skipped";
 * exits 1 when any test failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fhirpath.h"
#include "json_jansson.h"
#include "json_page.h"
#include "viewdef.h"

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
			{
				const char *raw;
				size_t		rawlen;

				epic_jdoc_raw(it->node, &raw, &rawlen);
				return json_loadb(raw, rawlen, JSON_DECODE_ANY, NULL);
			}
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

/*
 * Run one test.  Returns 1 pass, 0 fail; *why explains.
 */
static int
run_test(const void *resources, const json_t *test, char *why, size_t whylen)
{
	const json_t *view = json_object_get(test, "view");
	const json_t *expect = json_object_get(test, "expect");
	int			expect_error = json_is_true(json_object_get(test, "expectError"));
	json_t	   *rows = json_array();
	const EpicJsonOps *ops = &epic_jdoc_ops;
	const json_t *c;
	size_t		i,
				j,
				nres = resources ? ops->size(resources) : 0;
	int			result;
	char		errbuf[256];
	int			errpos;
	int			error = 0;
	EpicView   *v;
	EpicViewRows vr = {0};
	EpicFpResult res = {0};

	why[0] = '\0';
	v = epic_view_compile(&epic_jansson_ops, view, NULL, errbuf, sizeof(errbuf), &errpos);
	if (v == NULL)
	{
		error = 1;
		snprintf(why, whylen, "%s", errbuf);
	}
	for (i = 0; i < nres && !error; i++)
	{
		const void *r = ops->item(resources, i);
		const void *rt = ops->member(r, "resourceType");
		char		tb[64];
		size_t		tl = 0;
		const char *t = (rt != NULL && ops->kind(rt) == EPIC_JSON_STRING) ?
			ops->scalar(rt, tb, sizeof(tb), &tl) : NULL;

		if (t == NULL || tl != strlen(v->resource) || memcmp(t, v->resource, tl) != 0)
			continue;
		if (epic_view_rows(v, ops, r, &vr, errbuf, sizeof(errbuf)) != 0)
		{
			error = 1;
			snprintf(why, whylen, "%s", errbuf);
			break;
		}
		for (int k = 0; k < vr.nrows && !error; k++)
		{
			json_t	   *row = json_object();

			for (int s = 0; s < vr.width && !error; s++)
			{
				const EpicViewCell *cell = &vr.cells[k * vr.width + s];
				const EpicViewColumn *col = &v->columns[cell->column >= 0 ? cell->column : v->slot_column[s]];
				json_t	   *val;

				if (epic_view_cell(v, ops, r, cell, &res, errbuf, sizeof(errbuf)) != 0)
				{
					error = 1;
					snprintf(why, whylen, "%s", errbuf);
					break;
				}
				if (col->collection)
				{
					val = json_array();
					for (int x = 0; x < res.count; x++)
						json_array_append_new(val, item_json(&res.items[x]));
				}
				else if (res.count == 0)
					val = json_null();
				else if (res.count == 1)
					val = item_json(&res.items[0]);
				else
				{
					error = 1;
					snprintf(why, whylen, "column %s: %d items", col->name, res.count);
					break;
				}
				json_object_set_new(row, col->name, val);
			}
			json_array_append_new(rows, row);
		}
	}
	epic_fp_result_free(&res);
	epic_view_rows_free(&vr);
	epic_view_free(v);

	if (expect_error)
		result = error ? 1 : 0;
	else if (error || !json_is_array(expect))
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
		EpicJdoc   *jdoc = NULL;
		const void *resources = NULL;
		const char *base = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
		const json_t *t;
		size_t		i;

		if (doc == NULL)
		{
			printf("not ok - %s: %s\n", base, jerr.text);
			failed++;
			continue;
		}
		{
			/* the same file through the page parser, for its resources */
			FILE	   *f = fopen(argv[a], "rb");
			char	   *text = NULL;
			long		flen = -1;
			char		perr[256];

			if (f != NULL && fseek(f, 0, SEEK_END) == 0 && (flen = ftell(f)) >= 0 &&
				fseek(f, 0, SEEK_SET) == 0 && (text = malloc((size_t) flen + 1)) != NULL &&
				fread(text, 1, (size_t) flen, f) == (size_t) flen)
				jdoc = epic_jdoc_parse(text, (size_t) flen, perr, sizeof(perr));
			if (f != NULL)
				fclose(f);
			free(text);
			if (jdoc == NULL)
			{
				printf("not ok - %s: cannot read it with the page parser\n", base);
				failed++;
				json_decref(doc);
				continue;
			}
			resources = epic_jdoc_ops.member(epic_jdoc_root(jdoc), "resources");
			if (resources != NULL && epic_jdoc_ops.kind(resources) != EPIC_JSON_ARRAY)
				resources = NULL;
		}
		json_array_foreach(json_object_get(doc, "tests"), i, t)
		{
			char		why[2048];
			const char *title = json_string_value(json_object_get(t, "title"));
			int			r = run_test(resources, t, why, sizeof(why));

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
		epic_jdoc_free(jdoc);
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}
