/*
 * fuzz_view.c - libFuzzer target for the ViewDefinition compiler and row
 * generator (src/viewdef.c) over src/fhirpath.c and src/json_jansson.c.
 * No PostgreSQL.
 *
 * Input: a ViewDefinition (JSON).  It is compiled with epic_view_compile,
 * with %mrn_system defined as catalog.c defines it (with a value, or none
 * when the input's size is odd).  When it does not compile, the error
 * message must be a non-empty, terminated string and *errpos >= 0.  When it
 * compiles, the view's structure is checked (slots, columns, selections,
 * epic_view_slot, epic_view_sql_type), then its rows are computed for each
 * of a few fixed resources (whatever the view's resource type: the engine
 * does not look at it) and every cell is evaluated and its items read;
 * then a column is added with epic_view_add_column and the rows of the
 * first resource are computed again.  Everything is freed.
 *
 * Build: see scripts/fuzz.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_jansson.h"
#include "fuzz_consume.h"
#include "viewdef.h"

static const char *const resources_text[] = {
	"{\"resourceType\": \"Patient\", \"id\": \"p1\", \"active\": true, \"gender\": \"female\","
	" \"birthDate\": \"1990-01-02\", \"multipleBirthInteger\": 2,"
	" \"identifier\": [{\"system\": \"urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14\", \"value\": \"E1\"},"
	"   {\"type\": {\"coding\": [{\"code\": \"MR\"}], \"text\": \"MRN\"}, \"value\": \"M1\"}],"
	" \"name\": [{\"use\": \"official\", \"family\": \"Lopez\", \"given\": [\"Camila\", \"Maria\"]},"
	"   {\"use\": \"usual\", \"text\": \"Cami\", \"given\": [\"Cami\"]}],"
	" \"telecom\": [{\"system\": \"phone\", \"value\": \"555\", \"use\": \"home\"},"
	"   {\"system\": \"email\", \"value\": \"a@b\"}, null],"
	" \"address\": [{\"line\": [\"1 Main\", \"Apt 2\"], \"city\": \"Austin\", \"postalCode\": \"78701\"}],"
	" \"contact\": [{\"name\": {\"text\": \"Ana\"}, \"telecom\": [{\"value\": \"1\"}, {\"value\": \"2\"}]}],"
	" \"extension\": [{\"url\": \"http://x/race\", \"extension\": [{\"url\": \"text\", \"valueString\": \"W\"}]}]}",

	"{\"resourceType\": \"Questionnaire\", \"id\": \"q1\", \"item\": ["
	"  {\"linkId\": \"1\", \"text\": \"a\", \"item\": [{\"linkId\": \"1.1\","
	"     \"item\": [{\"linkId\": \"1.1.1\", \"answerOption\": [{\"valueString\": \"y\"}]}]},"
	"   {\"linkId\": \"1.2\", \"code\": [{\"code\": \"c\"}]}]},"
	"  {\"linkId\": \"2\", \"item\": []}]}",

	"{\"resourceType\": \"Observation\", \"id\": \"o1\", \"status\": \"final\","
	" \"subject\": {\"reference\": \"Patient/p1\"},"
	" \"category\": [{\"coding\": [{\"code\": \"vital-signs\"}]}],"
	" \"code\": {\"coding\": [{\"system\": \"http://loinc.org\", \"code\": \"8867-4\"}], \"text\": \"HR\"},"
	" \"valueQuantity\": {\"value\": 72.5, \"unit\": \"/min\"},"
	" \"effectiveDateTime\": \"2020-03-04T10:20\","
	" \"component\": [{\"code\": {\"text\": \"x\"}, \"valueInteger\": 1},"
	"   {\"code\": {\"text\": \"y\"}, \"valueBoolean\": false}]}",

	"{\"resourceType\": \"Patient\"}",
};
#define NRESOURCES ((int) (sizeof(resources_text) / sizeof(resources_text[0])))

static void *resources[NRESOURCES];
static void
load_resources(void)
{
	static int	done;

	if (done)
		return;
	done = 1;
	for (int i = 0; i < NRESOURCES; i++)
	{
		char		errbuf[256];

		resources[i] = epic_json_parse(resources_text[i], strlen(resources_text[i]),
									   errbuf, sizeof(errbuf));
		if (resources[i] == NULL)
		{
			fprintf(stderr, "fixed resource %d does not parse: %s\n", i, errbuf);
			abort();
		}
	}
}

/* The compiled view's structure is consistent. */
static void
check_view(const EpicView *v)
{
	if (v->resource == NULL || v->resource[0] == '\0' || v->nslots <= 0 ||
		v->ncolumns < v->nslots || v->nselects < 1 || v->selects[0].parent != -1 ||
		v->selects[0].first_slot != 0 || v->selects[0].nslots != v->nslots ||
		v->env.count != v->nconst)
		abort();
	for (int i = 0; i < v->nslots; i++)
	{
		int			c = v->slot_column[i];

		if (c < 0 || c >= v->ncolumns || v->columns[c].slot != i)
			abort();
		if (epic_view_slot(v, v->columns[c].name) != i)
			abort();			/* names are unique */
	}
	for (int i = 0; i < v->ncolumns; i++)
	{
		const EpicViewColumn *col = &v->columns[i];
		const EpicViewSelect *s;

		if (col->slot < 0 || col->slot >= v->nslots || col->expr == NULL || col->name == NULL ||
			col->path == NULL || col->select < 0 || col->select >= v->nselects)
			abort();
		if (strcmp(v->columns[v->slot_column[col->slot]].name, col->name) != 0)
			abort();			/* unionAll branches name the same columns */
		s = &v->selects[col->select];
		if (col->slot < s->first_slot || col->slot >= s->first_slot + s->nslots)
			abort();
		if (epic_view_sql_type(col->type, col->collection) == NULL)
			abort();
		sink += strlen(col->name) + (col->search_param ? strlen(col->search_param) : 0) +
			(col->ansi_type ? strlen(col->ansi_type) : 0) +
			(col->description ? strlen(col->description) : 0);
	}
	for (int i = 1; i < v->nselects; i++)
	{
		const EpicViewSelect *s = &v->selects[i];

		if (s->parent < 0 || s->parent >= i)
			abort();
		if ((s->kind == EPIC_VIEW_FOREACH || s->kind == EPIC_VIEW_FOREACH_OR_NULL) &&
			(s->iter == NULL || s->iter_path == NULL))
			abort();
		if (s->kind == EPIC_VIEW_REPEAT && s->nrepeat < 1)
			abort();
		for (int j = 0; j < s->nrepeat; j++)
			if (s->repeat[j] == NULL)
				abort();
	}
	for (int i = 0; i < v->nwhere; i++)
		if (v->where[i] == NULL || v->where_path[i] == NULL)
			abort();
	for (int i = 0; i < v->nrequired; i++)
		if (v->required[i] == NULL)
			abort();
}

/* Rows of the view for a resource; every cell evaluated and read. */
static void
view_rows(const EpicView *v, const void *resource, EpicViewRows *rows, EpicFpResult *res)
{
	char		errbuf[256];

	errbuf[0] = '\0';
	if (epic_view_rows(v, &epic_jansson_ops, resource, rows, errbuf, sizeof(errbuf)) != 0)
	{
		if (errbuf[0] == '\0' || memchr(errbuf, '\0', sizeof(errbuf)) == NULL)
			abort();			/* a failure explains itself */
		return;
	}
	if (rows->width != v->nslots || rows->nrows < 0)
		abort();
	for (int r = 0; r < rows->nrows; r++)
		for (int s = 0; s < rows->width; s++)
		{
			const EpicViewCell *cell = &rows->cells[r * rows->width + s];

			if (cell->column >= v->ncolumns ||
				(cell->column >= 0 && v->columns[cell->column].slot != s))
				abort();
			if (epic_view_cell(v, &epic_jansson_ops, resource, cell, res,
							   errbuf, sizeof(errbuf)) != 0)
				continue;		/* an evaluation error (e.g. too deep) */
			if (epic_view_cell_null(v, cell) && res->count != 0)
				abort();		/* a NULL cell has no items */
			consume(res);
		}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"mrn_system"};
	static const char *with[] = {"urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14"};
	static const char *without[] = {NULL};
	const EpicFpEnv env = {1, names, (size & 1) ? without : with, NULL};
	char		errbuf[512];
	int			errpos = -1;
	void	   *doc;
	EpicView   *v;
	EpicViewRows rows = {0};
	EpicFpResult res = {0};

	load_resources();
	doc = epic_json_parse((const char *) data, size, errbuf, sizeof(errbuf));
	if (doc == NULL)
		return 0;
	memset(errbuf, 'x', sizeof(errbuf));
	v = epic_view_compile(&epic_jansson_ops, doc, &env, errbuf, sizeof(errbuf), &errpos);
	epic_json_free(doc);		/* the view must not point into the document */
	if (v == NULL)
	{
		if (memchr(errbuf, '\0', sizeof(errbuf)) == NULL || errbuf[0] == '\0' || errpos < 0)
			abort();
		return 0;
	}
	if (errpos != 0)
		abort();
	check_view(v);
	/* every column has an SQL type: its own, the one its path gives, or text */
	for (int i = 0; i < v->ncolumns; i++)
		if (epic_view_column_sql_type(v, &v->columns[i]) == NULL)
			abort();
	for (int i = 0; i < NRESOURCES; i++)
		view_rows(v, resources[i], &rows, &res);

	/* a path-option column joins the root selection, as catalog.c adds one */
	if (epic_view_add_column(v, "fuzz_extra", (size & 2) ? "name.given" : "id", NULL,
							 (size & 4) != 0, true, errbuf, sizeof(errbuf), &errpos) >= 0)
	{
		check_view(v);
		view_rows(v, resources[0], &rows, &res);
	}
	epic_view_rows_free(&rows);
	epic_fp_result_free(&res);
	epic_view_free(v);
	return 0;
}
