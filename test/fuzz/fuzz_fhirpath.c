/*
 * fuzz_fhirpath.c - libFuzzer target for the FHIRPath subset (src/fhirpath.c)
 * evaluated over jansson documents (src/json_jansson.c).  No PostgreSQL.
 *
 * Input: the first line is a FHIRPath expression, the rest a JSON document.
 *   1. the whole input (up to the first NUL) is parsed as an expression;
 *   2. the first line is parsed, the rest is parsed as JSON, and the
 *      expression is evaluated with the document as context (and, when the
 *      document is an array or a Bundle, with each item / entry resource as
 *      context, and once with an empty context), every item's text is read,
 *      and everything is freed.
 *
 * Build: see scripts/fuzz.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_jansson.h"
#include "fuzz_consume.h"

static const char *env_names[] = {"mrn_system", "unset", "ucum"};
static const char *env_values[] = {"urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14", NULL,
	"http://unitsofmeasure.org"};
static const EpicFpEnv env = {3, env_names, env_values, NULL};

static void
eval_on(const EpicFpExpr *e, const void *ctx, const EpicFpEnv *envp, EpicFpResult *res)
{
	char		errbuf[256];

	if (epic_fp_eval(e, &epic_jansson_ops, ctx, envp, res, errbuf, sizeof(errbuf)) == 0)
		consume(res);
	else
		sink += strlen(errbuf);
}

static void
parse_only(const char *text)
{
	char		errbuf[256];
	int			pos = -1;
	EpicFpExpr *e = epic_fp_parse(text, errbuf, sizeof(errbuf), &pos);

	if (e == NULL)
	{
		/* the error position must lie within the text (1-based, or 0) */
		if (pos < 0 || (size_t) pos > strlen(text) + 1)
			abort();
		sink += strlen(errbuf);
		return;
	}
	{
		const char *t = epic_fp_text(e);
		const char *st = epic_fp_static_type(e, &env);	/* walks the whole tree */

		if (t != NULL)
			sink += strlen(t);
		if (st != NULL)
			sink += strlen(st);
	}
	epic_fp_free(e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *copy = malloc(size + 1);
	const uint8_t *nl;
	size_t		exprlen;
	EpicFpExpr *e;
	void	   *doc;
	char		errbuf[256];
	int			pos;
	EpicFpResult res = {0};

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';

	/* 1. arbitrary bytes as an expression */
	parse_only(copy);

	/* 2. first line = expression, the rest = JSON document */
	nl = memchr(data, '\n', size);
	exprlen = nl ? (size_t) (nl - data) : size;
	copy[exprlen] = '\0';
	e = epic_fp_parse(copy, errbuf, sizeof(errbuf), &pos);
	if (e == NULL || nl == NULL)
	{
		epic_fp_free(e);
		free(copy);
		return 0;
	}
	doc = epic_json_parse((const char *) nl + 1, size - exprlen - 1, errbuf, sizeof(errbuf));
	if (doc != NULL)
	{
		const EpicJsonOps *ops = &epic_jansson_ops;

		eval_on(e, doc, &env, &res);
		eval_on(e, doc, NULL, &res);
		eval_on(e, NULL, &env, &res);
		if (ops->kind(doc) == EPIC_JSON_ARRAY)
		{
			for (size_t i = 0; i < ops->size(doc) && i < 64; i++)
				eval_on(e, ops->item(doc, i), &env, &res);
		}
		else if (ops->kind(doc) == EPIC_JSON_OBJECT)
		{
			const void *entries = ops->member(doc, "entry");

			if (entries != NULL && ops->kind(entries) == EPIC_JSON_ARRAY)
				for (size_t i = 0; i < ops->size(entries) && i < 64; i++)
				{
					const void *entry = ops->item(entries, i);
					const void *r = (entry && ops->kind(entry) == EPIC_JSON_OBJECT) ?
						ops->member(entry, "resource") : NULL;

					if (r != NULL)
						eval_on(e, r, &env, &res);
				}
		}
		epic_fp_result_free(&res);
		epic_json_free(doc);
	}
	epic_fp_free(e);
	free(copy);
	return 0;
}
