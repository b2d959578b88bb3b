/*
 * oracle_fhirpath.c — the engine-level runner of the differential FHIRPath
 * tier: epic_fdw's evaluator (src/fhirpath.c with the FHIR type table) over
 * resources read with the page parser epic_fdw reads servers' pages with.
 *
 *   oracle_fhirpath RESOURCES.json < CASES
 *
 * RESOURCES.json is a JSON array of resources.  Each line of CASES is
 * "INDEX<TAB>VERSIONS<TAB>EXPRESSION" (VERSIONS: 1 STU3, 2 R4); for each the
 * runner prints one line: {"r":[items]} (nodes as their JSON text, strings,
 * numbers as their text, booleans) or {"e":"message"} when the expression
 * does not parse or its evaluation fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_page.h"

static void
put_json_string(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static char *
read_file(const char *path, size_t *len)
{
	FILE	   *f = fopen(path, "rb");
	char	   *text = NULL;
	long		n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
		(text = malloc((size_t) n + 1)) != NULL)
	{
		*len = fread(text, 1, (size_t) n, f);
		text[*len] = '\0';
	}
	fclose(f);
	return text;
}

int
main(int argc, char **argv)
{
	const EpicJsonOps *ops = &epic_jdoc_ops;
	char		errbuf[256];
	size_t		len = 0;
	char	   *text;
	EpicJdoc   *doc;
	const void *resources;
	size_t		nres;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;
	EpicFpResult res = {0};

	if (argc != 2 || (text = read_file(argv[1], &len)) == NULL)
	{
		fprintf(stderr, "usage: oracle_fhirpath RESOURCES.json < CASES\n");
		return 2;
	}
	doc = epic_jdoc_parse(text, len, errbuf, sizeof(errbuf));
	free(text);
	if (doc == NULL || ops->kind(epic_jdoc_root(doc)) != EPIC_JSON_ARRAY)
	{
		fprintf(stderr, "oracle_fhirpath: %s: not a JSON array (%s)\n", argv[1],
				doc ? "" : errbuf);
		return 2;
	}
	resources = epic_jdoc_root(doc);
	nres = ops->size(resources);
	while ((n = getline(&line, &cap, stdin)) > 0)
	{
		char	   *tab1,
				   *tab2;
		long		index;
		int			versions;
		EpicFpExpr *expr;
		int			pos;

		if (line[n - 1] == '\n')
			line[--n] = '\0';
		tab1 = strchr(line, '\t');
		tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
		if (tab2 == NULL)
		{
			printf("{\"e\":\"bad case line\"}\n");
			continue;
		}
		index = strtol(line, NULL, 10);
		versions = atoi(tab1 + 1);
		expr = epic_fp_parse(tab2 + 1, errbuf, sizeof(errbuf), &pos);
		if (expr == NULL || index < 0 || (size_t) index >= nres)
		{
			printf("{\"e\":");
			put_json_string(expr ? "no such resource" : errbuf,
							strlen(expr ? "no such resource" : errbuf));
			printf("}\n");
			epic_fp_free(expr);
			continue;
		}
		{
			const void *r = ops->item(resources, (size_t) index);

			if (epic_fp_eval_full(expr, ops, r, r, NULL, NULL, 0, versions, &res,
								  errbuf, sizeof(errbuf)) != 0)
			{
				printf("{\"e\":");
				put_json_string(errbuf, strlen(errbuf));
				printf("}\n");
			}
			else
			{
				printf("{\"r\":[");
				for (int i = 0; i < res.count; i++)
				{
					const EpicFpItem *it = &res.items[i];
					char		buf[64];
					size_t		tl;
					const char *t;

					if (i > 0)
						putchar(',');
					if (it->kind == EPIC_FP_NODE)
					{
						epic_jdoc_raw(it->node, &t, &tl);
						fwrite(t, 1, tl, stdout);
					}
					else if (it->kind == EPIC_FP_STRING)
						put_json_string(it->str, it->len);
					else
					{
						t = epic_fp_item_text(ops, it, buf, sizeof(buf), &tl);
						fwrite(t, 1, tl, stdout);
					}
				}
				printf("]}\n");
			}
		}
		epic_fp_free(expr);
	}
	epic_fp_result_free(&res);
	free(line);
	epic_jdoc_free(doc);
	return 0;
}
