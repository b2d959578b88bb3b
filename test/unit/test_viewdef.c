/*
 * test_viewdef.c — unit tests of the SQL on FHIR v2 ViewDefinition engine
 * (src/viewdef.c) over the FHIRPath evaluator (src/fhirpath.c) and the
 * jansson document interface (src/json_jansson.c), outside PostgreSQL.
 *
 *   test_viewdef [VIEW.json ...]
 *
 * The arguments are the built-in views (the views directory's JSON files, given by
 * run_viewdef.sh): each must compile and give exactly one row for a minimal
 * resource of its type.
 *
 * Prints "ok N - ..." / "not ok N - ..." and a final "N passed, N failed";
 * exits non-zero on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_jansson.h"
#include "viewdef.h"

#include "unit_check.h"

/* %mrn_system, as catalog.c defines it for every view */
static const char *env_names[] = {"mrn_system"};
static const char *env_values[] = {"urn:oid:9.9"};
static const EpicFpEnv env = {1, env_names, env_values, NULL, NULL};

/* Compile ViewDefinition text (with env); NULL with err / *errpos set. */
static EpicView *
compile(const char *json, char *err, size_t errlen, int *errpos)
{
	void	   *doc = epic_json_parse(json, strlen(json), err, errlen);
	EpicView   *v;

	*errpos = -1;
	if (doc == NULL)
	{
		fprintf(stderr, "test JSON does not parse: %s\n%s\n", err, json);
		exit(2);
	}
	v = epic_view_compile(&epic_jansson_ops, doc, &env, err, errlen, errpos);
	epic_json_free(doc);
	return v;
}

static void
append(char *out, size_t outlen, const char *s, size_t len)
{
	size_t		have = strlen(out);

	if (have + 1 >= outlen)
		return;
	if (len > outlen - have - 1)
		len = outlen - have - 1;
	memcpy(out + have, s, len);
	out[have + len] = '\0';
}

static void
appends(char *out, size_t outlen, const char *s)
{
	append(out, outlen, s, strlen(s));
}

/*
 * The rows of a view for a resource as text: rows joined by ";", cells by
 * ",".  A NULL cell is "NULL"; otherwise the items' texts joined by "|"
 * (objects and arrays as compact JSON), "{}" for no items; a collection
 * column's items are in [...].  "<rows error: ...>" / "<cell error: ...>"
 * when the engine fails.
 */
static const char *
rows_of(const EpicView *v, const void *resource)
{
	static char out[4096];
	char		errbuf[256];
	EpicViewRows rows = {0};
	EpicFpResult res = {0};

	out[0] = '\0';
	if (epic_view_rows(v, &epic_jansson_ops, resource, &rows, errbuf, sizeof(errbuf)) != 0)
	{
		snprintf(out, sizeof(out), "<rows error: %s>", errbuf);
		epic_view_rows_free(&rows);
		return out;
	}
	if (rows.width != v->nslots)
		snprintf(out, sizeof(out), "<width %d != nslots %d>", rows.width, v->nslots);
	for (int r = 0; r < rows.nrows; r++)
	{
		if (r > 0)
			appends(out, sizeof(out), ";");
		for (int s = 0; s < rows.width; s++)
		{
			const EpicViewCell *cell = &rows.cells[r * rows.width + s];
			int			ci = cell->column >= 0 ? cell->column : v->slot_column[s];
			bool		coll = v->columns[ci].collection;

			if (s > 0)
				appends(out, sizeof(out), ",");
			if (cell->column >= 0 && v->columns[cell->column].slot != s)
				appends(out, sizeof(out), "<wrong slot>");
			if (epic_view_cell_null(v, cell))
			{
				appends(out, sizeof(out), "NULL");
				continue;
			}
			if (epic_view_cell(v, &epic_jansson_ops, resource, cell, &res,
							   errbuf, sizeof(errbuf)) != 0)
			{
				appends(out, sizeof(out), "<cell error: ");
				appends(out, sizeof(out), errbuf);
				appends(out, sizeof(out), ">");
				continue;
			}
			if (coll)
				appends(out, sizeof(out), "[");
			else if (res.count == 0)
				appends(out, sizeof(out), "{}");
			for (int i = 0; i < res.count; i++)
			{
				char		buf[64];
				size_t		len;
				const char *t = epic_fp_item_text(&epic_jansson_ops, &res.items[i],
												  buf, sizeof(buf), &len);

				if (i > 0)
					appends(out, sizeof(out), "|");
				if (t != NULL)
					append(out, sizeof(out), t, len);
				else if (res.items[i].kind == EPIC_FP_NODE)
				{
					char	   *dump = epic_json_dump(res.items[i].node);

					appends(out, sizeof(out), dump ? dump : "<dump failed>");
					free(dump);
				}
				else
					appends(out, sizeof(out), "<no text>");
			}
			if (coll)
				appends(out, sizeof(out), "]");
		}
	}
	epic_fp_result_free(&res);
	epic_view_rows_free(&rows);
	return out;
}

/* view (JSON text) on resource (JSON text) gives want (see rows_of). */
static void
expect_rows(const char *what, const char *view, const char *resource, const char *want)
{
	char		err[512];
	char		msg[2048];
	int			pos;
	EpicView   *v = compile(view, err, sizeof(err), &pos);
	void	   *doc = epic_json_parse(resource, strlen(resource), err + 256, 256);
	const char *got;

	if (doc == NULL)
	{
		fprintf(stderr, "test resource does not parse: %s\n", resource);
		exit(2);
	}
	if (v == NULL)
	{
		snprintf(msg, sizeof(msg), "%s   GOT compile error: %s", what, err);
		check(0, msg);
	}
	else
	{
		got = rows_of(v, doc);
		snprintf(msg, sizeof(msg), "%s => \"%s\"%s%s%s", what, want,
				 strcmp(got, want) ? "   GOT \"" : "", strcmp(got, want) ? got : "",
				 strcmp(got, want) ? "\"" : "");
		check(strcmp(got, want) == 0, msg);
	}
	epic_view_free(v);
	epic_json_free(doc);
}

/* view does not compile; the message contains want_text; *errpos is want_pos. */
static void
expect_compile_error(const char *what, const char *view, const char *want_text, int want_pos)
{
	char		err[512];
	char		msg[1200];
	int			pos;
	EpicView   *v = compile(view, err, sizeof(err), &pos);

	snprintf(msg, sizeof(msg), "%s: compile error containing \"%s\" at %d (got %s at %d)",
			 what, want_text, want_pos, v ? "success" : err, pos);
	check(v == NULL && strstr(err, want_text) != NULL && pos == want_pos, msg);
	epic_view_free(v);
}

/* view compiles, but epic_view_rows fails on resource with a message containing want_text */
static void
expect_rows_error(const char *what, const char *view, const char *resource, const char *want_text)
{
	char		err[512];
	char		msg[1200];
	int			pos;
	EpicView   *v = compile(view, err, sizeof(err), &pos);
	void	   *doc = epic_json_parse(resource, strlen(resource), err, sizeof(err));
	EpicViewRows rows = {0};
	int			rc = -2;

	if (v != NULL)
	{
		err[0] = '\0';
		rc = epic_view_rows(v, &epic_jansson_ops, doc, &rows, err, sizeof(err));
	}
	snprintf(msg, sizeof(msg), "%s: epic_view_rows fails with \"%s\" (got %s: %s)", what, want_text,
			 v == NULL ? "compile error" : rc == 0 ? "success" : "failure", err);
	check(v != NULL && rc == -1 && strstr(err, want_text) != NULL, msg);
	epic_view_rows_free(&rows);
	epic_view_free(v);
	epic_json_free(doc);
}

/* ---------------------------------------------------------------------- */

static const char *patient =
"{\"resourceType\": \"Patient\", \"id\": \"p1\", \"active\": true, \"gender\": \"female\","
" \"birthDate\": \"1990-01-02\","
" \"identifier\": [{\"system\": \"urn:oid:9.9\", \"value\": \"M1\"},"
"                  {\"system\": \"urn:oid:1.1\", \"value\": \"X1\"}],"
" \"name\": [{\"use\": \"official\", \"family\": \"Lopez\", \"given\": [\"Camila\", \"Maria\"]},"
"          {\"use\": \"usual\", \"family\": \"Lo\", \"given\": [\"Cami\"]}],"
" \"telecom\": [{\"system\": \"phone\", \"value\": \"555\"},"
"             {\"system\": \"email\", \"value\": \"a@b\"},"
"             {\"system\": \"phone\", \"value\": \"666\", \"use\": \"work\"}],"
" \"address\": [{\"city\": \"Austin\", \"postalCode\": \"78701\"}]"
"}";

static const char *bare_patient = "{\"resourceType\": \"Patient\", \"id\": \"p2\"}";

static const char *questionnaire =
"{\"resourceType\": \"Questionnaire\", \"id\": \"q1\", \"item\": ["
"  {\"linkId\": \"1\", \"item\": ["
"     {\"linkId\": \"1.1\"},"
"     {\"linkId\": \"1.2\", \"item\": [{\"linkId\": \"1.2.1\", \"item\": [{\"linkId\": \"1.2.1.1\"}]}]}]},"
"  {\"linkId\": \"2\"}]}";

static const char *qresponse =
"{\"resourceType\": \"QuestionnaireResponse\", \"id\": \"r1\", \"item\": ["
"  {\"linkId\": \"a\", \"answer\": [{\"valueString\": \"x\", \"item\": [{\"linkId\": \"a.x\"}]}],"
"   \"item\": [{\"linkId\": \"a.1\"}]},"
"  {\"linkId\": \"b\"}]}";

/* ViewDefinition text: resource R, then the rest of the members */
#define VIEW(R, REST) "{\"resourceType\": \"ViewDefinition\", \"resource\": \"" R "\", " REST "}"
#define COL(N, P) "{\"name\": \"" N "\", \"path\": \"" P "\"}"
#define COLC(N, P) "{\"name\": \"" N "\", \"path\": \"" P "\", \"collection\": true}"

static void
test_plain(void)
{
	expect_rows("plain columns", VIEW("Patient", "\"select\": [{\"column\": ["
									  COL("id", "id") ", " COL("gender", "gender") ", "
									  COL("active", "active") ", " COL("birth", "birthDate") ", "
									  COL("nothing", "deceasedBoolean") ", "
									  COLC("families", "name.family") "]}]"),
				patient, "p1,female,true,1990-01-02,{},[Lopez|Lo]");
	expect_rows("plain columns on a bare resource: one row, empty values",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") ", "
					 COL("gender", "gender") ", " COLC("families", "name.family") "]}]"),
				bare_patient, "p2,{},[]");
	expect_rows("an object-valued column gives the element",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("addr", "address") "]}]"),
				patient, "{\"city\":\"Austin\",\"postalCode\":\"78701\"}");
	expect_rows("several select[] at the top are cross-joined (one row each: one row)",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 "{\"column\": [" COL("g", "gender") "]}]"),
				patient, "p1,female");
	expect_rows("%resource and getResourceKey() at the top",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("a", "%resource.id") ", "
					 COL("b", "getResourceKey()") "]}]"),
				patient, "p1,p1");
}

static void
test_foreach(void)
{
	const char *v = VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "],"
						 " \"select\": [{\"forEach\": \"name\", \"column\": ["
						 COL("family", "family") ", " COLC("given", "given") ", "
						 COL("rid", "%resource.id") "]}]}]");

	expect_rows("forEach: one row per item; the parent's columns repeat", v, patient,
				"p1,Lopez,[Camila|Maria],p1;p1,Lo,[Cami],p1");
	expect_rows("forEach without items: no rows", v, bare_patient, "");
	expect_rows("forEach at the top level",
				VIEW("Patient", "\"select\": [{\"forEach\": \"telecom.where(system = 'phone')\","
					 " \"column\": [" COL("v", "value") ", " COL("use", "use") "]}]"),
				patient, "555,{};666,work");
	expect_rows("forEach over an empty array: no rows",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"column\": [" COL("f", "family") "]}]"),
				"{\"resourceType\": \"Patient\", \"name\": []}", "");
	expect_rows("forEach items that are primitives ($this)",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name.given\", \"column\": [" COL("g", "$this") "]}]"),
				patient, "Camila;Maria;Cami");
	expect_rows("nested forEach",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"column\": [" COL("f", "family") "],"
					 " \"select\": [{\"forEach\": \"given\", \"column\": [" COL("g", "$this") "]}]}]"),
				patient, "Lopez,Camila;Lopez,Maria;Lo,Cami");
	expect_rows_error("a forEach yielding computed values",
					  VIEW("Patient", "\"select\": [{\"forEach\": \"name.count()\", \"column\": [" COL("x", "$this") "]}]"),
					  patient, "computed value");
}

static void
test_foreach_or_null(void)
{
	const char *v = VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
						 " {\"forEachOrNull\": \"name\", \"column\": ["
						 COL("family", "family") ", " COLC("given", "given") "]}]");

	expect_rows("forEachOrNull with items: one row per item", v, patient,
				"p1,Lopez,[Camila|Maria];p1,Lo,[Cami]");
	expect_rows("forEachOrNull without items: one row of NULLs", v, bare_patient, "p2,NULL,NULL");
	expect_rows("forEachOrNull without items: nested selections are NULL too",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 " {\"forEachOrNull\": \"contact\", \"column\": [" COL("rel", "relationship.text") "],"
					 "  \"select\": [{\"forEach\": \"telecom\", \"column\": [" COL("t", "value") "]}]}]"),
				bare_patient, "p2,NULL,NULL");
	expect_rows("forEachOrNull without items: unionAll below gives one row of NULLs",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 " {\"forEachOrNull\": \"contact\", \"unionAll\": ["
					 "   {\"column\": [" COL("t", "'a'") "]}, {\"column\": [" COL("t", "'b'") "]}]}]"),
				bare_patient, "p2,NULL");
}

static void
test_cross_join(void)
{
	const char *v = VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
						 " {\"forEach\": \"name\", \"column\": [" COL("f", "family") "]},"
						 " {\"forEach\": \"telecom\", \"column\": [" COL("t", "value") "]}]");

	expect_rows("sibling selects are cross-joined (2 names x 3 telecoms)", v, patient,
				"p1,Lopez,555;p1,Lopez,a@b;p1,Lopez,666;p1,Lo,555;p1,Lo,a@b;p1,Lo,666");
	expect_rows("a cross join with an empty forEach is empty",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 " {\"forEach\": \"name\", \"column\": [" COL("f", "family") "]},"
					 " {\"forEach\": \"contact\", \"column\": [" COL("c", "name.family") "]}]"),
				patient, "");
	expect_rows("a cross join with an empty forEachOrNull keeps the rows",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 " {\"forEach\": \"name\", \"column\": [" COL("f", "family") "]},"
					 " {\"forEachOrNull\": \"contact\", \"column\": [" COL("c", "name.family") "]}]"),
				patient, "p1,Lopez,NULL;p1,Lo,NULL");
	expect_rows("nested select inside a select (cross join below a forEach)",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"column\": [" COL("f", "family") "],"
					 " \"select\": [{\"column\": [" COL("rid", "%resource.id") "]},"
					 "              {\"forEach\": \"given\", \"column\": [" COL("g", "$this") "]}]}]"),
				patient, "Lopez,p1,Camila;Lopez,p1,Maria;Lo,p1,Cami");
}

static void
test_union_all(void)
{
	const char *v = VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "],"
						 " \"unionAll\": ["
						 "  {\"forEach\": \"telecom\", \"column\": [" COL("kind", "'telecom'") ", " COL("v", "value") "]},"
						 "  {\"forEach\": \"address\", \"column\": [" COL("kind", "'address'") ", " COL("v", "city") "]},"
						 "  {\"forEach\": \"contact\", \"column\": [" COL("kind", "'contact'") ", " COL("v", "name.text") "]}]}]");

	expect_rows("unionAll: branches concatenated, a branch without rows adds none", v, patient,
				"p1,telecom,555;p1,telecom,a@b;p1,telecom,666;p1,address,Austin");
	expect_rows("unionAll: every branch empty gives no rows", v, bare_patient, "");
	expect_rows("unionAll of plain branches",
				VIEW("Patient", "\"select\": [{\"unionAll\": [{\"column\": [" COL("x", "id") "]},"
					 " {\"column\": [" COL("x", "gender") "]}]}]"),
				patient, "p1;female");
	expect_rows("unionAll next to columns and a nested select",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "],"
					 " \"select\": [{\"column\": [" COL("g", "gender") "]}],"
					 " \"unionAll\": [{\"forEach\": \"name\", \"column\": [" COL("n", "family") "]},"
					 "               {\"forEach\": \"name.given\", \"column\": [" COL("n", "$this") "]}]}]"),
				patient, "p1,female,Lopez;p1,female,Lo;p1,female,Camila;p1,female,Maria;p1,female,Cami");
	expect_compile_error("unionAll branches with different numbers of columns",
						 VIEW("Patient", "\"select\": [{\"unionAll\": [{\"column\": [" COL("a", "id") "]},"
							  " {\"column\": [" COL("a", "id") ", " COL("b", "id") "]}]}]"),
						 "unionAll branches must have the same columns", 0);
	expect_compile_error("unionAll branches with different column names",
						 VIEW("Patient", "\"select\": [{\"unionAll\": [{\"column\": [" COL("a", "id") "]},"
							  " {\"column\": [" COL("b", "id") "]}]}]"),
						 "unionAll branches must name the same columns", 0);
	expect_compile_error("unionAll branches with the columns in another order",
						 VIEW("Patient", "\"select\": [{\"unionAll\": [{\"column\": [" COL("a", "id") ", " COL("b", "id") "]},"
							  " {\"column\": [" COL("b", "id") ", " COL("a", "id") "]}]}]"),
						 "unionAll branches must name the same columns", 0);
	expect_compile_error("an empty unionAll",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("a", "id") "], \"unionAll\": []}]"),
						 "unionAll needs at least one selection", 0);
}

static void
test_repeat(void)
{
	expect_rows("repeat: the items of every depth, depth first",
				VIEW("Questionnaire", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 " {\"repeat\": [\"item\"], \"column\": [" COL("link", "linkId") "]}]"),
				questionnaire, "q1,1;q1,1.1;q1,1.2;q1,1.2.1;q1,1.2.1.1;q1,2");
	expect_rows("repeat with two paths (item and answer.item)",
				VIEW("QuestionnaireResponse", "\"select\": [{\"repeat\": [\"item\", \"answer.item\"],"
					 " \"column\": [" COL("link", "linkId") "]}]"),
				qresponse, "a;a.1;a.x;b");
	expect_rows("repeat without items: no rows",
				VIEW("Questionnaire", "\"select\": [{\"repeat\": [\"item\"], \"column\": [" COL("link", "linkId") "]}]"),
				"{\"resourceType\": \"Questionnaire\", \"id\": \"q0\"}", "");
	expect_rows("repeat with a forEach below it",
				VIEW("Questionnaire", "\"select\": [{\"repeat\": [\"item\"], \"column\": [" COL("link", "linkId") "],"
					 " \"select\": [{\"forEach\": \"code\", \"column\": [" COL("code", "code") "]}]}]"),
				"{\"resourceType\": \"Questionnaire\", \"item\": [{\"linkId\": \"1\", \"code\": [{\"code\": \"c1\"}, {\"code\": \"c2\"}],"
				" \"item\": [{\"linkId\": \"1.1\", \"code\": [{\"code\": \"c3\"}]}, {\"linkId\": \"1.2\"}]}]}",
				"1,c1;1,c2;1.1,c3");
	expect_compile_error("repeat without paths",
						 VIEW("Questionnaire", "\"select\": [{\"repeat\": [], \"column\": [" COL("l", "linkId") "]}]"),
						 "repeat needs at least one path", 0);
	expect_compile_error("repeat with a non-string path",
						 VIEW("Questionnaire", "\"select\": [{\"repeat\": [1], \"column\": [" COL("l", "linkId") "]}]"),
						 "repeat: each path must be a string", 0);
	expect_compile_error("repeat and forEach together",
						 VIEW("Questionnaire", "\"select\": [{\"repeat\": [\"item\"], \"forEach\": \"item\","
							  " \"column\": [" COL("l", "linkId") "]}]"),
						 "both repeat and forEach", 0);

	/* deeper than the engine's bound: an error, not a stack overflow */
	{
		char	   *deep = malloc(100 * 40 + 200);
		char		what[100];

		strcpy(deep, "{\"resourceType\": \"Questionnaire\"");
		for (int i = 0; i < 100; i++)
			strcat(deep, ", \"item\": [{\"linkId\": \"x\"");
		for (int i = 0; i < 100; i++)
			strcat(deep, "}]");
		strcat(deep, "}");
		snprintf(what, sizeof(what), "repeat 100 levels deep");
		expect_rows_error(what, VIEW("Questionnaire", "\"select\": [{\"repeat\": [\"item\"], \"column\": [" COL("l", "linkId") "]}]"),
						  deep, "repeat goes deeper than");
		free(deep);
	}
}

static void
test_where(void)
{
#define WHERE_VIEW(W) VIEW("Patient", "\"where\": [" W "], \"select\": [{\"column\": [" COL("id", "id") "]}]")
	expect_rows("where true keeps the resource", WHERE_VIEW("{\"path\": \"active\"}"), patient, "p1");
	expect_rows("where computed true", WHERE_VIEW("{\"path\": \"gender = 'female'\"}"), patient, "p1");
	expect_rows("where false drops the resource", WHERE_VIEW("{\"path\": \"gender = 'male'\"}"), patient, "");
	expect_rows("where on a JSON false", WHERE_VIEW("{\"path\": \"active\"}"),
				"{\"resourceType\": \"Patient\", \"id\": \"x\", \"active\": false}", "");
	expect_rows("where empty drops the resource", WHERE_VIEW("{\"path\": \"active\"}"), bare_patient, "");
	expect_rows("every where must hold (true, true)",
				WHERE_VIEW("{\"path\": \"active\"}, {\"path\": \"name.exists()\"}"), patient, "p1");
	expect_rows("every where must hold (true, false)",
				WHERE_VIEW("{\"path\": \"active\"}, {\"path\": \"photo.exists()\"}"), patient, "");
	expect_rows("where with a forEach below: the resource's rows all go",
				VIEW("Patient", "\"where\": [{\"path\": \"active.not()\"}],"
					 " \"select\": [{\"forEach\": \"name\", \"column\": [" COL("f", "family") "]}]"),
				patient, "");
	expect_rows_error("where giving a string", WHERE_VIEW("{\"path\": \"gender\"}"), patient,
					  "where path \"gender\" gives 1 value that is not a boolean");
	expect_rows_error("where giving several values", WHERE_VIEW("{\"path\": \"name.family\"}"), patient,
					  "gives 2 values that are not a boolean");
	expect_rows_error("where giving a number", WHERE_VIEW("{\"path\": \"name.count()\"}"), patient,
					  "not a boolean");
	expect_compile_error("a where without path", WHERE_VIEW("{\"description\": \"x\"}"),
						 "a where entry has no \"path\"", 0);
	expect_compile_error("a where that is not an object", WHERE_VIEW("\"active\""),
						 "a where entry must be an object", 0);
	expect_compile_error("a where with a syntax error", WHERE_VIEW("{\"path\": \"active and\"}"),
						 "where:", 11);
#undef WHERE_VIEW
}

static void
test_constants(void)
{
	const char *v = VIEW("Patient",
						 "\"constant\": ["
						 " {\"name\": \"use\", \"valueString\": \"usual\"},"
						 " {\"name\": \"idx\", \"valueInteger\": 1},"
						 " {\"name\": \"flag\", \"valueBoolean\": true},"
						 " {\"name\": \"dec\", \"valueDecimal\": 1.5},"
						 " {\"name\": \"day\", \"valueDate\": \"1990-01-02\"},"
						 " {\"name\": \"sys\", \"valueUri\": \"urn:oid:1.1\"},"
						 " {\"name\": \"code\", \"valueCode\": \"female\"}],"
						 "\"select\": [{\"column\": ["
						 COL("by_string", "name.where(use = %use).family") ", "
						 COL("by_integer", "name[%idx].family") ", "
						 COL("int_sum", "%idx + 2") ", "
						 COL("by_boolean", "active = %flag") ", "
						 COL("dec_cmp", "%dec > 1") ", "
						 COL("dec_text", "%dec") ", "
						 COL("by_date", "birthDate = %day") ", "
						 COL("by_uri", "identifier.where(system = %sys).value") ", "
						 COL("by_code", "gender = %code") ", "
						 COL("extra_env", "identifier.where(system = %mrn_system).value") "]}]");
	char		err[512];
	int			pos;
	EpicView   *cv;

	expect_rows("constants of each kind in paths", v, patient,
				"Lo,Lo,3,true,true,1.5,true,X1,true,M1");
	expect_rows("constants in forEach and where paths",
				VIEW("Patient", "\"constant\": [{\"name\": \"sys\", \"valueString\": \"phone\"},"
					 " {\"name\": \"yes\", \"valueBoolean\": true}],"
					 " \"where\": [{\"path\": \"active = %yes\"}],"
					 " \"select\": [{\"forEach\": \"telecom.where(system = %sys)\", \"column\": [" COL("v", "value") "]}]"),
				patient, "555;666");
	expect_rows("a false boolean constant",
				VIEW("Patient", "\"constant\": [{\"name\": \"no\", \"valueBoolean\": false}],"
					 " \"select\": [{\"column\": [" COL("x", "active = %no") ", " COL("y", "%no") "]}]"),
				patient, "false,false");

	cv = compile(v, err, sizeof(err), &pos);
	check(cv != NULL && cv->nconst == 8 &&
		  cv->const_kinds[0] == EPIC_FP_STRING && cv->const_kinds[1] == EPIC_FP_NUMBER &&
		  cv->const_kinds[2] == EPIC_FP_BOOL && cv->const_kinds[3] == EPIC_FP_NUMBER &&
		  cv->const_kinds[4] == EPIC_FP_STRING && cv->const_kinds[7] == EPIC_FP_STRING &&
		  strcmp(cv->const_names[7], "mrn_system") == 0 &&
		  strcmp(cv->const_values[1], "1") == 0 && strcmp(cv->const_values[2], "true") == 0 &&
		  strcmp(cv->const_values[3], "1.5") == 0 && strcmp(cv->const_values[4], "1990-01-02") == 0 &&
		  cv->env.count == 8,
		  "constants: the view's own (kinds string/number/bool/number/string), then extra_env's");
	epic_view_free(cv);

	expect_compile_error("an undefined %constant in a column",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "name.where(use = %nope).family") "]}]"),
						 "constant %nope is not defined", 0);
	expect_compile_error("an undefined %constant in a forEach",
						 VIEW("Patient", "\"select\": [{\"forEach\": \"name[%i]\", \"column\": [" COL("x", "family") "]}]"),
						 "forEach: constant %i is not defined", 0);
	expect_compile_error("an undefined %constant in a where",
						 VIEW("Patient", "\"where\": [{\"path\": \"active = %flag\"}], \"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "where: constant %flag is not defined", 0);
	expect_compile_error("an undefined %constant in a repeat",
						 VIEW("Questionnaire", "\"select\": [{\"repeat\": [\"item.where(linkId = %l)\"], \"column\": [" COL("x", "linkId") "]}]"),
						 "repeat: constant %l is not defined", 0);
	expect_compile_error("a constant without a value",
						 VIEW("Patient", "\"constant\": [{\"name\": \"c\"}], \"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "constant \"c\" needs one value[x]", 0);
	expect_compile_error("a valueInteger that is a string",
						 VIEW("Patient", "\"constant\": [{\"name\": \"c\", \"valueInteger\": \"1\"}], \"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "constant \"c\" needs one value[x]", 0);
	expect_compile_error("a valueBoolean that is a string",
						 VIEW("Patient", "\"constant\": [{\"name\": \"c\", \"valueBoolean\": \"true\"}], \"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "constant \"c\" needs one value[x]", 0);
	expect_compile_error("a valueString that is a number",
						 VIEW("Patient", "\"constant\": [{\"name\": \"c\", \"valueString\": 1}], \"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "constant \"c\" needs one value[x]", 0);
	expect_compile_error("a constant without a name",
						 VIEW("Patient", "\"constant\": [{\"valueString\": \"x\"}], \"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "a constant has no \"name\"", 0);
	expect_compile_error("a constant that is not an object",
						 VIEW("Patient", "\"constant\": [\"x\"], \"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "a constant must be an object", 0);
}

static void
test_compile_errors(void)
{
	char		err[256];
	int			pos = -1;

	expect_compile_error("no resource", "{\"select\": [{\"column\": [" COL("x", "id") "]}]}",
						 "the ViewDefinition has no \"resource\"", 0);
#define REQ(V) VIEW("Observation", "\"extension\": [{\"url\": \"urn:epic_fdw:required-search-param\"," \
						   " \"valueString\": \"" V "\"}], \"select\": [{\"column\": [" COL("x", "id") "]}]")
	expect_compile_error("a required parameter with a space", REQ("patient id"),
						 "is not a search parameter name, or names separated by \"|\"", 0);
	expect_compile_error("an empty alternative", REQ("category||code"), "is not a search parameter name", 0);
	expect_compile_error("a trailing bar", REQ("category|"), "is not a search parameter name", 0);
	expect_compile_error("an empty required parameter", REQ(""), "is not a search parameter name", 0);
	{
		EpicView   *v = compile(REQ("category|code|_id"), err, sizeof(err), &pos);

		check(v != NULL && v->nrequired == 1 && strcmp(v->required[0], "category|code|_id") == 0,
			  "alternatives of a required parameter are kept as written");
		epic_view_free(v);
	}
#undef REQ
	expect_compile_error("an empty resource", VIEW("", "\"select\": [{\"column\": [" COL("x", "id") "]}]"),
						 "\"resource\" is empty", 0);
	expect_compile_error("a resource that is not a string",
						 "{\"resource\": 1, \"select\": [{\"column\": [" COL("x", "id") "]}]}",
						 "\"resource\" must be a string", 0);
	expect_compile_error("select missing", VIEW("Patient", "\"name\": \"v\""),
						 "the ViewDefinition has no \"select\"", 0);
	expect_compile_error("select empty", VIEW("Patient", "\"select\": []"),
						 "the ViewDefinition has no \"select\"", 0);
	expect_compile_error("select not an array", VIEW("Patient", "\"select\": {}"),
						 "\"select\" must be an array", 0);
	expect_compile_error("a select that is not an object", VIEW("Patient", "\"select\": [1]"),
						 "a select must be an object", 0);
	expect_compile_error("no columns at all", VIEW("Patient", "\"select\": [{\"select\": [{}]}]"),
						 "the ViewDefinition has no columns", 0);
	expect_compile_error("a document that is not an object", "[]",
						 "must be a JSON object", 0);
	expect_compile_error("a column name starting with a digit",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("1abc", "id") "]}]"),
						 "column name \"1abc\" is not a letter", 0);
	expect_compile_error("a column name with a hyphen",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("a-b", "id") "]}]"),
						 "column name \"a-b\" is not a letter", 0);
	expect_compile_error("an empty column name",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("", "id") "]}]"),
						 "column name \"\" is not a letter", 0);
	expect_compile_error("a column name starting with an underscore",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("_a", "id") "]}]"),
						 "column name \"_a\" is not a letter", 0);
	expect_compile_error("a column without a name",
						 VIEW("Patient", "\"select\": [{\"column\": [{\"path\": \"id\"}]}]"),
						 "a column has no \"name\"", 0);
	expect_compile_error("a column without a path",
						 VIEW("Patient", "\"select\": [{\"column\": [{\"name\": \"x\"}]}]"),
						 "column \"x\" has no \"path\"", 0);
	expect_compile_error("a column that is not an object",
						 VIEW("Patient", "\"select\": [{\"column\": [\"id\"]}]"),
						 "a column must be an object", 0);
	expect_compile_error("collection that is not a boolean",
						 VIEW("Patient", "\"select\": [{\"column\": [{\"name\": \"x\", \"path\": \"id\", \"collection\": \"yes\"}]}]"),
						 "\"collection\" must be a boolean", 0);
	expect_compile_error("a type that is not a string",
						 VIEW("Patient", "\"select\": [{\"column\": [{\"name\": \"x\", \"path\": \"id\", \"type\": 1}]}]"),
						 "column \"x\": \"type\" must be a string", 0);
	expect_compile_error("a tag without a value",
						 VIEW("Patient", "\"select\": [{\"column\": [{\"name\": \"x\", \"path\": \"id\", \"tag\": [{\"name\": \"ansi/type\"}]}]}]"),
						 "a tag has no \"value\"", 0);
	expect_compile_error("duplicate column names in one select",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "id") ", " COL("x", "gender") "]}]"),
						 "column name \"x\" appears more than once", 0);
	expect_compile_error("duplicate column names across selects",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "id") "]},"
							  " {\"forEach\": \"name\", \"column\": [" COL("x", "family") "]}]"),
						 "column name \"x\" appears more than once", 0);
	expect_compile_error("a unionAll column named like another column",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "id") "],"
							  " \"unionAll\": [{\"column\": [" COL("x", "id") "]}, {\"column\": [" COL("x", "id") "]}]}]"),
						 "column name \"x\" appears more than once", 0);
	expect_compile_error("forEach and forEachOrNull together",
						 VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"forEachOrNull\": \"name\","
							  " \"column\": [" COL("x", "family") "]}]"),
						 "both forEach and forEachOrNull", 0);
	expect_compile_error("a forEach that is not a string",
						 VIEW("Patient", "\"select\": [{\"forEach\": 1, \"column\": [" COL("x", "family") "]}]"),
						 "\"forEach\" must be a string", 0);
	/* FHIRPath syntax errors: the message names the place; *errpos is the position in the path */
	expect_compile_error("a column path syntax error",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "name.where(use = 'a'") "]}]"),
						 "column \"x\": syntax error: expected \")\" at position 21 of \"name.where(use = 'a'\"", 21);
	expect_compile_error("a column path with a stray token",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "name..family") "]}]"),
						 "column \"x\": syntax error", 6);
	expect_compile_error("a forEach syntax error",
						 VIEW("Patient", "\"select\": [{\"forEach\": \"name[\", \"column\": [" COL("x", "family") "]}]"),
						 "forEach: syntax error", 6);
	expect_compile_error("a forEachOrNull syntax error",
						 VIEW("Patient", "\"select\": [{\"forEachOrNull\": \"(name\", \"column\": [" COL("x", "family") "]}]"),
						 "forEachOrNull: syntax error", 6);
	expect_compile_error("a repeat syntax error",
						 VIEW("Questionnaire", "\"select\": [{\"repeat\": [\"item\", \"item.\"], \"column\": [" COL("x", "linkId") "]}]"),
						 "repeat: syntax error", 6);
	expect_compile_error("an empty path",
						 VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "") "]}]"),
						 "column \"x\": empty expression", 1);

	/* nesting bound */
	{
		char		big[8192];
		char		what[64];

		strcpy(big, VIEW("Patient", "\"select\": [") );
		big[strlen(big) - 1] = '\0';	/* drop the closing brace */
		for (int i = 0; i < 40; i++)
			strcat(big, "{\"column\": [" COL("c", "id") "], \"select\": [");
		for (int i = 0; i < 40; i++)
			strcat(big, "]}");
		strcat(big, "]}");
		snprintf(what, sizeof(what), "selections nested 40 deep");
		expect_compile_error(what, big, "nested more than", 0);
	}

	/* a NULL doc, and no errpos pointer */
	{
		EpicView   *v = epic_view_compile(&epic_jansson_ops, NULL, NULL, err, sizeof(err), &pos);

		check(v == NULL && strstr(err, "must be a JSON object") != NULL && pos == 0,
			  "a NULL document does not compile");
	}
	{
		const char *t = VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "name.(") "]}]");
		void	   *doc = epic_json_parse(t, strlen(t), err, sizeof(err));
		EpicView   *v = epic_view_compile(&epic_jansson_ops, doc, NULL, err, sizeof(err), NULL);

		check(v == NULL && strstr(err, "syntax error") != NULL,
			  "a syntax error without an errpos pointer");
		epic_json_free(doc);
	}
	{
		/* a view that needs %mrn_system compiles only when extra_env gives it */
		const char *t = VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "identifier.where(system = %mrn_system).value") "]}]");
		void	   *doc = epic_json_parse(t, strlen(t), err, sizeof(err));
		EpicView   *v = epic_view_compile(&epic_jansson_ops, doc, NULL, err, sizeof(err), &pos);

		check(v == NULL && strstr(err, "constant %mrn_system is not defined") != NULL,
			  "%mrn_system is undefined without extra_env");
		epic_view_free(v);
		epic_json_free(doc);
	}
	{
		/* errbuf is truncated, not overrun */
		const char *t = VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "name.where(use = 'a'") "]}]");
		void	   *doc = epic_json_parse(t, strlen(t), err, sizeof(err));
		char		small[8];
		EpicView   *v;

		memset(small, 'z', sizeof(small));
		v = epic_view_compile(&epic_jansson_ops, doc, &env, small, 6, &pos);
		check(v == NULL && strlen(small) == 5 && small[6] == 'z' && small[7] == 'z' && pos == 21,
			  "a short errbuf is truncated and NUL-terminated");
		epic_json_free(doc);
	}
}

static void
test_metadata(void)
{
	const char *t = "{\"resourceType\": \"ViewDefinition\", \"name\": \"meta\", \"resource\": \"Patient\","
		" \"extension\": [{\"url\": \"urn:epic_fdw:required-search-param\", \"valueString\": \"patient\"},"
		"   {\"url\": \"http://other\", \"valueString\": \"ignored\"},"
		"   {\"url\": \"urn:epic_fdw:required-search-param\", \"valueString\": \"category\"}],"
		" \"where\": [{\"path\": \"active\"}],"
		" \"select\": ["
		"  {\"column\": [{\"name\": \"a\", \"path\": \"id\", \"type\": \"id\", \"description\": \"the id\","
		"     \"tag\": [{\"name\": \"epic_fdw/search_param\", \"value\": \"_id\"},"
		"              {\"name\": \"ansi/type\", \"value\": \"CHAR(64)\"},"
		"              {\"name\": \"other\", \"value\": \"x\"}]},"
		"    {\"name\": \"b\", \"path\": \"name.family\", \"type\": \"string\", \"collection\": true}],"
		"   \"select\": [{\"column\": [" COL("c", "gender") "],"
		"                 \"select\": [{\"forEach\": \"telecom\", \"column\": [" COL("d", "value") "]}]}],"
		"   \"unionAll\": [{\"column\": [" COL("e", "'x'") ", " COL("f", "'y'") "]},"
		"                  {\"forEach\": \"name\", \"column\": [" COL("e", "family") ", " COL("f", "use") "]}]},"
		"  {\"column\": [{\"name\": \"g\", \"path\": \"active\", \"collection\": false}]},"
		"  {\"repeat\": [\"contact\"], \"column\": [" COL("h", "name.text") "]},"
		"  {\"forEachOrNull\": \"address\", \"column\": [" COL("i", "city") "]}]}";
	char		err[512];
	int			pos;
	EpicView   *v = compile(t, err, sizeof(err), &pos);
	static const char *const order[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
	/* resource_level per slot */
	static const bool level[] = {true, true, true, false, false, false, true, false, false};
	bool		ok;
	char		what[256];

	check(v != NULL, "the metadata view compiles");
	if (v == NULL)
	{
		printf("# %s\n", err);
		return;
	}
	check(strcmp(v->name, "meta") == 0 && strcmp(v->resource, "Patient") == 0,
		  "name and resource");
	check(v->nrequired == 2 && strcmp(v->required[0], "patient") == 0 &&
		  strcmp(v->required[1], "category") == 0,
		  "required-search-param extensions, in order, others ignored");
	check(v->nwhere == 1 && strcmp(v->where_path[0], "active") == 0 && v->where[0] != NULL,
		  "where paths kept");
	check(v->nslots == 9 && v->ncolumns == 11, "9 slots, 11 column instances (unionAll shares e, f)");
	ok = v->nslots == 9;
	for (int i = 0; ok && i < 9; i++)
		ok = strcmp(v->columns[v->slot_column[i]].name, order[i]) == 0 &&
			epic_view_slot(v, order[i]) == i;
	check(ok, "slot order: a select's columns, then its nested selects, then its unionAll; then the next select");
	check(epic_view_slot(v, "zz") == -1, "epic_view_slot of an unknown name is -1");
	ok = v->nslots == 9;
	for (int i = 0; ok && i < 9; i++)
		ok = v->columns[v->slot_column[i]].resource_level == level[i];
	check(ok, "resource_level: true at the top and in plain nested selects, false inside forEach, unionAll, repeat, forEachOrNull");
	ok = true;
	for (int i = 0; i < v->ncolumns; i++)
		if (strcmp(v->columns[i].name, "e") == 0 || strcmp(v->columns[i].name, "f") == 0)
			ok = ok && v->columns[i].slot == epic_view_slot(v, v->columns[i].name) &&
				!v->columns[i].resource_level;
	check(ok, "both unionAll branches' columns share the first branch's slots");
	{
		const EpicViewColumn *a = &v->columns[v->slot_column[0]];
		const EpicViewColumn *b = &v->columns[v->slot_column[1]];
		const EpicViewColumn *c = &v->columns[v->slot_column[2]];
		const EpicViewColumn *g = &v->columns[v->slot_column[6]];

		check(a->search_param && strcmp(a->search_param, "_id") == 0 &&
			  a->ansi_type && strcmp(a->ansi_type, "CHAR(64)") == 0 &&
			  a->type && strcmp(a->type, "id") == 0 &&
			  a->description && strcmp(a->description, "the id") == 0 &&
			  strcmp(a->path, "id") == 0 && a->expr != NULL && !a->collection && !a->first_only,
			  "tags epic_fdw/search_param and ansi/type, type, description, path");
		check(b->collection && b->search_param == NULL && b->ansi_type == NULL &&
			  strcmp(b->type, "string") == 0, "collection: true; no tags");
		check(!c->collection && c->type == NULL && c->description == NULL, "untyped column");
		check(!g->collection, "collection: false");
		snprintf(what, sizeof(what), "columns know their selection (a:%d c:%d d:%d g:%d)",
				 a->select, c->select, v->columns[v->slot_column[3]].select, g->select);
		check(a->select != c->select && c->select != v->columns[v->slot_column[3]].select &&
			  v->selects[v->columns[v->slot_column[3]].select].kind == EPIC_VIEW_FOREACH &&
			  v->selects[v->columns[v->slot_column[7]].select].kind == EPIC_VIEW_REPEAT &&
			  v->selects[v->columns[v->slot_column[8]].select].kind == EPIC_VIEW_FOREACH_OR_NULL &&
			  v->selects[a->select].kind == EPIC_VIEW_PLAIN, what);
	}
	check(v->selects[0].parent == -1 && v->selects[0].nchildren == 4 &&
		  v->selects[0].first_slot == 0 && v->selects[0].nslots == 9 &&
		  v->selects[v->selects[0].children[0]].nunions == 2 &&
		  v->selects[v->selects[0].children[0]].nchildren == 1 &&
		  v->selects[v->selects[0].children[0]].nslots == 6,
		  "selection tree: root with 4 children; the first has 1 nested select, 2 unionAll branches, 6 slots");
	check(v->selects[v->selects[0].children[3]].iter_path &&
		  strcmp(v->selects[v->selects[0].children[3]].iter_path, "address") == 0 &&
		  v->selects[v->selects[0].children[2]].nrepeat == 1,
		  "forEachOrNull path and repeat paths kept");
	{
		/* the repeat over contact (none here) leaves the metadata view without rows */
		void	   *doc = epic_json_parse(patient, strlen(patient), err, sizeof(err));
		EpicViewRows rows = {0};
		int			rc = epic_view_rows(v, &epic_jansson_ops, doc, &rows, err, sizeof(err));

		check(rc == 0 && rows.nrows == 0 && rows.width == 9,
			  "the metadata view on a Patient without contacts: no rows, width 9");
		epic_view_rows_free(&rows);
		epic_json_free(doc);
	}
	epic_view_free(v);

	/* unionAll cells: a row from branch 2 names branch 2's column */
	{
		const char *u = VIEW("Patient", "\"select\": [{\"unionAll\": [{\"column\": [" COL("e", "'x'") "]},"
							 " {\"forEach\": \"name\", \"column\": [" COL("e", "family") "]}]}]");
		void	   *doc = epic_json_parse(patient, strlen(patient), err, sizeof(err));
		EpicViewRows rows = {0};

		v = compile(u, err, sizeof(err), &pos);
		check(v && epic_view_rows(v, &epic_jansson_ops, doc, &rows, err, sizeof(err)) == 0 &&
			  rows.nrows == 3 && rows.width == 1 &&
			  rows.cells[0].column == v->slot_column[0] &&
			  rows.cells[1].column != v->slot_column[0] && rows.cells[1].column >= 0 &&
			  rows.cells[1].column == rows.cells[2].column &&
			  strcmp(v->columns[rows.cells[1].column].path, "family") == 0,
			  "unionAll rows name the column instance of their branch");
		epic_view_rows_free(&rows);
		epic_view_free(v);
		epic_json_free(doc);
	}
}

static void
test_rows_reuse(void)
{
	const char *t = VIEW("Patient", "\"select\": [{\"forEach\": \"name.given\", \"column\": [" COL("g", "$this") "]}]");
	char		err[256];
	int			pos;
	EpicView   *v = compile(t, err, sizeof(err), &pos);
	void	   *p1 = epic_json_parse(patient, strlen(patient), err, sizeof(err));
	void	   *p2 = epic_json_parse(bare_patient, strlen(bare_patient), err, sizeof(err));
	EpicViewRows rows = {0};
	int			n1,
				n2,
				n3;

	epic_view_rows(v, &epic_jansson_ops, p1, &rows, err, sizeof(err));
	n1 = rows.nrows;
	epic_view_rows(v, &epic_jansson_ops, p2, &rows, err, sizeof(err));
	n2 = rows.nrows;
	epic_view_rows(v, &epic_jansson_ops, p1, &rows, err, sizeof(err));
	n3 = rows.nrows;
	check(n1 == 3 && n2 == 0 && n3 == 3 && rows.capacity >= 3,
		  "EpicViewRows is reused across resources (3, 0, 3 rows)");
	epic_view_rows_free(&rows);
	check(rows.cells == NULL && rows.nrows == 0 && rows.capacity == 0,
		  "epic_view_rows_free leaves the rows empty");
	epic_view_free(v);
	epic_view_free(NULL);
	check(1, "epic_view_free(NULL) is harmless");
	epic_json_free(p1);
	epic_json_free(p2);
}

static void
test_sql_type(void)
{
	static const struct
	{
		const char *fhir;
		bool		coll;
		const char *sql;
	}			cases[] =
	{
		{NULL, false, "text"}, {NULL, true, "text[]"},
		{"boolean", false, "boolean"}, {"boolean", true, "boolean[]"},
		{"integer", false, "integer"}, {"positiveInt", false, "integer"},
		{"unsignedInt", false, "integer"}, {"integer", true, "integer[]"},
		{"integer64", false, "bigint"}, {"integer64", true, "bigint[]"},
		{"decimal", false, "numeric"}, {"decimal", true, "numeric[]"},
		{"date", false, "date"}, {"date", true, "date[]"},
		{"dateTime", false, "timestamp with time zone"},
		{"instant", false, "timestamp with time zone"},
		{"instant", true, "timestamp with time zone[]"},
		{"time", false, "time without time zone"}, {"time", true, "time without time zone[]"},
		{"string", false, "text"}, {"code", false, "text"}, {"id", false, "text"},
		{"uri", false, "text"}, {"url", false, "text"}, {"canonical", false, "text"},
		{"oid", false, "text"}, {"uuid", false, "text"}, {"markdown", false, "text"},
		{"base64Binary", false, "text"}, {"xhtml", false, "text"}, {"string", true, "text[]"},
		{"code", true, "text[]"},
		{"Quantity", false, "jsonb"}, {"Quantity", true, "jsonb[]"},
		{"Resource", false, "jsonb"}, {"CodeableConcept", true, "jsonb[]"},
		{"Boolean", false, "jsonb"},	/* FHIR type names are case-sensitive */
		{"", false, "jsonb"},
	};
	char		what[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const char *got = epic_view_sql_type(cases[i].fhir, cases[i].coll);

		snprintf(what, sizeof(what), "epic_view_sql_type(%s%s%s, %s) = %s%s%s",
				 cases[i].fhir ? "\"" : "", cases[i].fhir ? cases[i].fhir : "NULL",
				 cases[i].fhir ? "\"" : "", cases[i].coll ? "true" : "false", cases[i].sql,
				 strcmp(got, cases[i].sql) ? "   GOT " : "", strcmp(got, cases[i].sql) ? got : "");
		check(strcmp(got, cases[i].sql) == 0, what);
	}
}

/* %rowIndex: the position of a row's node in the collection it came from */
static void
test_row_index(void)
{
	expect_rows("%rowIndex at the resource level is 0",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") ", " COL("i", "%rowIndex") "]}]"),
				patient, "p1,0");
	expect_rows("%rowIndex counts forEach items from 0",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 " {\"forEach\": \"name\", \"column\": [" COL("i", "%rowIndex") ", " COL("f", "family") "]}]"),
				patient, "p1,0,Lopez;p1,1,Lo");
	expect_rows("%rowIndex in arithmetic",
				VIEW("Patient", "\"select\": [{\"forEach\": \"telecom\", \"column\": [" COL("n", "%rowIndex + 1") "]}]"),
				patient, "1;2;3");
	expect_rows("nested forEach: each level numbers its own items",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"column\": [" COL("ni", "%rowIndex") "],"
					 " \"select\": [{\"forEach\": \"given\", \"column\": [" COL("gi", "%rowIndex") ", " COL("g", "$this") "]}]}]"),
				patient, "0,0,Camila;0,1,Maria;1,0,Cami");
	expect_rows("forEachOrNull without items: %rowIndex is 0, the other columns NULL",
				VIEW("Patient", "\"select\": [{\"column\": [" COL("id", "id") "]},"
					 " {\"forEachOrNull\": \"name\", \"column\": [" COL("i", "%rowIndex") ", " COL("f", "family") "]}]"),
				bare_patient, "p2,0,NULL");
	expect_rows("repeat numbers the flattened items depth first",
				VIEW("Questionnaire", "\"select\": [{\"repeat\": [\"item\"], \"column\": ["
					 COL("i", "%rowIndex") ", " COL("l", "linkId") "]}]"),
				questionnaire, "0,1;1,1.1;2,1.2;3,1.2.1;4,1.2.1.1;5,2");
	expect_rows("unionAll branches that iterate number their own items; plain ones keep the enclosing index",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"column\": [" COL("ni", "%rowIndex") "],"
					 " \"unionAll\": [{\"forEach\": \"given\", \"column\": [" COL("i", "%rowIndex") ", " COL("v", "$this") "]},"
					 "               {\"column\": [" COL("i", "%rowIndex") ", " COL("v", "family") "]}]}]"),
				patient, "0,0,Camila;0,1,Maria;0,0,Lopez;1,0,Cami;1,1,Lo");
	expect_rows("a forEach path sees its parent's %rowIndex",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"column\": [" COL("f", "family") "],"
					 " \"select\": [{\"forEach\": \"%resource.name[%rowIndex].given\", \"column\": [" COL("g", "$this") "]}]}]"),
				patient, "Lopez,Camila;Lopez,Maria;Lo,Cami");
	expect_rows("a view constant named rowIndex wins",
				"{\"resourceType\": \"ViewDefinition\", \"resource\": \"Patient\","
				" \"constant\": [{\"name\": \"rowIndex\", \"valueString\": \"mine\"}],"
				" \"select\": [{\"forEach\": \"name\", \"column\": [" COL("i", "%rowIndex") "]}]}",
				patient, "mine;mine");
}

/* untyped columns: the SQL type the path alone decides */
static void
test_column_type(void)
{
	static const struct
	{
		const char *path;
		const char *sql;
	}			cases[] =
	{
		{"id", "text"},
		{"active", "text"},		/* an element of a resource: not modelled */
		{"name.exists()", "boolean"},
		{"name.family = 'Lopez'", "boolean"},
		{"gender != 'male' and active", "boolean"},
		{"name.count()", "integer"},
		{"%rowIndex", "integer"},
		{"%rowIndex + 1", "bigint"},	/* integer arithmetic can pass 32 bits */
		{"1.5", "numeric"},
		{"2 * 3", "bigint"},
		{"6 / 3", "numeric"},
		{"-(2)", "integer"},
		{"'a' + 'b'", "text"},
		{"name.given.join(' ')", "text"},
		{"getResourceKey()", "text"},
		{"@2020-01-02", "text"},		/* dates stay text: partial dates kept */
		{"@2020-01-02T10:00:00Z", "text"},
		{"valueQuantity.value", "numeric"},
		{"value.ofType(Quantity).value", "numeric"},
		{"value.ofType(Range).low.value + value.ofType(Range).high.value", "numeric"},
		{"value.ofType(Range).low.value - 1", "numeric"},
		{"valueQuantity.unit", "text"},
		{"valueBoolean", "boolean"},
		{"valueInteger", "integer"},
		{"effectiveDateTime", "text"},
		{"effectivePeriod.start", "text"},
		{"valueInteger64", "bigint"},
		{"effectivePeriod.start < effectivePeriod.end", "boolean"},
		{"deceasedBoolean.not()", "boolean"},
		{"valueString", "text"},
		{"value.ofType(integer)", "integer"},
		{"value.ofType(FHIR.boolean)", "boolean"},
		{"value.ofType(System.Decimal)", "numeric"},
		{"valueQuantity", "text"},		/* complex: text, as without a type */
		{"valueCodeableConcept.coding.userSelected", "boolean"},
		/* elements of the resource: typed by the FHIR type table */
		{"code.coding.userSelected", "boolean"},
		{"referenceRange.low.value", "numeric"},	/* a BackboneElement's SimpleQuantity */
		{"component.valueInteger", "integer"},
		{"status", "text"},
		{"contact.telecom.rank", "text"},	/* no such element of Observation */
		{"telecom.rank", "text"},
		{"iif(active, 1, 2)", "integer"},
		{"iif(active, 1, 'x')", "text"},
		{"valueQuantity.value | valueQuantity.value", "numeric"},
		{"valueQuantity.value.first()", "numeric"},
		{"valueQuantity.value.lowBoundary()", "numeric"},
		{"birthDate.lowBoundary()", "text"},
		{"recordedDate", "text"},		/* not a choice element: not guessed */
		{"%mrn_system", "text"},
		{"%n", "integer"},
		{"%d", "numeric"},
		{"%b", "boolean"},
		{"extension('u').valueDecimal", "numeric"},
		{"name.select(family = 'Lopez')", "boolean"},
	};
	char		what[1200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char		json[1024];
		char		err[512];
		int			pos;
		EpicView   *v;
		const char *got;

		snprintf(json, sizeof(json),
				 "{\"resourceType\": \"ViewDefinition\", \"resource\": \"Observation\","
				 " \"constant\": [{\"name\": \"n\", \"valueInteger\": 3},"
				 " {\"name\": \"d\", \"valueDecimal\": 1.5}, {\"name\": \"b\", \"valueBoolean\": true}],"
				 " \"select\": [{\"column\": [{\"name\": \"c\", \"path\": \"%s\"}]}]}", cases[i].path);
		v = compile(json, err, sizeof(err), &pos);
		got = v ? epic_view_column_sql_type(v, &v->columns[0]) : err;
		snprintf(what, sizeof(what), "untyped column \"%s\" is %s%s%s", cases[i].path, cases[i].sql,
				 strcmp(got, cases[i].sql) ? "   GOT " : "", strcmp(got, cases[i].sql) ? got : "");
		check(v != NULL && strcmp(got, cases[i].sql) == 0, what);
		epic_view_free(v);
	}

	/* untyped columns under forEach: typed in the forEach path's type */
	{
		char		err[512];
		int			pos;
		EpicView   *v = compile(VIEW("Patient", "\"select\": [{\"column\": [" COL("a", "active") "]},"
										 "{\"forEach\": \"contact\", \"column\": [" COL("p", "period.start.exists()") ","
										 COL("r", "telecom.rank") "]},"
										 "{\"forEach\": \"name\", \"column\": [" COL("g", "given") "]}]"),
							 err, sizeof(err), &pos);

		check(v != NULL && strcmp(epic_view_column_sql_type(v, &v->columns[0]), "boolean") == 0 &&
			  strcmp(epic_view_column_sql_type(v, &v->columns[1]), "boolean") == 0 &&
			  strcmp(epic_view_column_sql_type(v, &v->columns[2]), "integer") == 0 &&
			  strcmp(epic_view_column_sql_type(v, &v->columns[3]), "text") == 0,
			  "untyped columns: Patient.active boolean, contact.telecom.rank integer (forEach), name.given text");
		epic_view_free(v);
	}

	/* unionAll branches: one type when they agree, else text */
	{
		char		err[512];
		int			pos;
		EpicView   *v = compile(VIEW("Patient", "\"select\": [{\"unionAll\": ["
										 "{\"column\": [" COL("n", "name.count()") "]},"
										 "{\"column\": [" COL("n", "telecom.count()") "]}]},"
										 "{\"unionAll\": [{\"column\": [" COL("m", "name.count()") "]},"
										 "{\"column\": [" COL("m", "name.family.first()") "]}]}]"),
								err, sizeof(err), &pos);

		check(v != NULL && strcmp(epic_view_column_sql_type(v, &v->columns[0]), "integer") == 0,
			  "unionAll branches that agree (integer, integer) give their type");
		check(v != NULL && strcmp(epic_view_column_sql_type(v, &v->columns[2]), "text") == 0 &&
			  strcmp(epic_view_column_sql_type(v, &v->columns[3]), "text") == 0,
			  "unionAll branches that differ (integer, untyped) give text");
		epic_view_free(v);
	}

	/* a declared type always wins, and collection gives an array */
	{
		char		err[512];
		int			pos;
		EpicView   *v = compile(VIEW("Observation", "\"select\": [{\"column\": ["
										 "{\"name\": \"a\", \"path\": \"name.exists()\", \"type\": \"string\"},"
										 "{\"name\": \"b\", \"path\": \"component.valueQuantity.value\", \"collection\": true}]}]"),
								err, sizeof(err), &pos);

		check(v != NULL && strcmp(epic_view_column_sql_type(v, &v->columns[0]), "text") == 0,
			  "a declared type wins over the path's");
		check(v != NULL && strcmp(epic_view_column_sql_type(v, &v->columns[1]), "numeric[]") == 0,
			  "an untyped collection of decimals is numeric[]");
		epic_view_free(v);
	}
}

static void
test_add_column(void)
{
	char		err[256];
	int			pos;
	EpicView   *v = epic_view_new("Patient", &env);
	void	   *doc = epic_json_parse(patient, strlen(patient), err, sizeof(err));
	int			a,
				b,
				c;
	const char *got;

	check(v != NULL && strcmp(v->resource, "Patient") == 0 && v->nslots == 0 &&
		  v->nselects == 1 && v->nconst == 1 && strcmp(v->const_names[0], "mrn_system") == 0,
		  "epic_view_new: an empty view with extra_env's constants");
	a = epic_view_add_column(v, "id", "id", "id", false, false, err, sizeof(err), &pos);
	b = epic_view_add_column(v, "mrn", "identifier.where(system = %mrn_system).value", NULL,
							 false, true, err, sizeof(err), &pos);
	c = epic_view_add_column(v, "families", "name.family", "string", true, false,
							 err, sizeof(err), &pos);
	check(a == 0 && b == 1 && c == 2 && v->nslots == 3 && pos == 0 &&
		  epic_view_slot(v, "id") == 0 && epic_view_slot(v, "mrn") == 1 &&
		  epic_view_slot(v, "families") == 2,
		  "epic_view_add_column: indexes and slots in order");
	check(v->columns[1].first_only && !v->columns[1].collection && v->columns[1].type == NULL &&
		  v->columns[2].collection && !v->columns[2].first_only &&
		  strcmp(v->columns[2].type, "string") == 0 && v->columns[0].resource_level,
		  "epic_view_add_column: type, collection, first_only kept; resource level");
	got = rows_of(v, doc);
	check(strcmp(got, "p1,M1,[Lopez|Lo]") == 0, "epic_view_add_column: the columns evaluate");
	epic_view_free(v);

	/* adding to a compiled view: the root's columns come first, the slots move */
	{
		const char *t = VIEW("Patient", "\"select\": [{\"column\": [" COL("x", "id") "]},"
							 " {\"forEach\": \"name\", \"column\": [" COL("f", "family") "]}]");
		char		what[300];

		v = compile(t, err, sizeof(err), &pos);
		a = epic_view_add_column(v, "g", "gender", "code", false, false, err, sizeof(err), &pos);
		got = rows_of(v, doc);
		snprintf(what, sizeof(what), "epic_view_add_column on a compiled view: the root's new column takes slot 0 (%s)", got);
		check(a >= 0 && v->nslots == 3 && epic_view_slot(v, "g") == 0 &&
			  epic_view_slot(v, "x") == 1 && epic_view_slot(v, "f") == 2 &&
			  strcmp(got, "female,p1,Lopez;female,p1,Lo") == 0, what);
		epic_view_free(v);
	}

	/* errors (each on a fresh view: a failed add leaves the view for discarding) */
	v = epic_view_new("Patient", &env);
	epic_view_add_column(v, "id", "id", NULL, false, false, err, sizeof(err), &pos);
	a = epic_view_add_column(v, "id", "gender", NULL, false, false, err, sizeof(err), &pos);
	check(a == -1 && strstr(err, "column name \"id\" appears more than once") != NULL && pos == 0,
		  "epic_view_add_column: a duplicate name is an error");
	epic_view_free(v);

	v = epic_view_new("Patient", &env);
	a = epic_view_add_column(v, "bad", "name.where(", NULL, false, false, err, sizeof(err), &pos);
	check(a == -1 && strstr(err, "column \"bad\": syntax error") != NULL && pos == 12,
		  "epic_view_add_column: a syntax error gives its position");
	epic_view_free(v);

	v = epic_view_new("Patient", &env);
	a = epic_view_add_column(v, "bad", "%nope", NULL, false, false, err, sizeof(err), NULL);
	check(a == -1 && strstr(err, "constant %nope is not defined") != NULL,
		  "epic_view_add_column: an undefined constant is an error (NULL errpos)");
	epic_view_free(v);

	v = epic_view_new("Patient", NULL);
	a = epic_view_add_column(v, "m", "%mrn_system", NULL, false, false, err, sizeof(err), &pos);
	check(v->nconst == 0 && a == -1, "epic_view_new without extra_env: no constants");
	epic_view_free(v);
	epic_json_free(doc);
}

/*
 * Every built-in view compiles and gives one row for a minimal resource of
 * its type (a Group with one member: group_members has a row per member).
 */
static void
test_builtin_views(int argc, char **argv)
{
	check(argc > 1, "built-in view files given");
	for (int a = 1; a < argc; a++)
	{
		const char *base = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
		FILE	   *f = fopen(argv[a], "rb");
		char	   *text = NULL;
		long		len = 0;
		char		err[512];
		char		what[900];
		int			pos = -1;
		EpicView   *v = NULL;
		void	   *doc = NULL;

		if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0)
		{
			text = malloc((size_t) len + 1);
			if (text && fread(text, 1, (size_t) len, f) == (size_t) len)
				text[len] = '\0';
			else
			{
				free(text);
				text = NULL;
			}
		}
		if (f)
			fclose(f);
		snprintf(err, sizeof(err), "cannot read");
		if (text)
			doc = epic_json_parse(text, (size_t) len, err, sizeof(err));
		if (doc)
			v = epic_view_compile(&epic_jansson_ops, doc, &env, err, sizeof(err), &pos);
		snprintf(what, sizeof(what), "%s compiles%s%s", base, v ? "" : ": ", v ? "" : err);
		check(v != NULL, what);
		if (v != NULL)
		{
			char		merr[512] = "";
			int			mrc = epic_view_check_members(v, merr, sizeof(merr));

			snprintf(what, sizeof(what), "%s: every member name is an element of its type%s%s",
					 base, mrc ? ": " : "", merr);
			check(mrc == 0, what);
		}
		if (v != NULL)
		{
			char		res[256];
			void	   *r;
			EpicViewRows rows = {0};
			EpicFpResult fr = {0};
			int			rc;
			int			cells_ok = 1;

			snprintf(res, sizeof(res), "{\"resourceType\": \"%s\", \"id\": \"min1\"%s}", v->resource,
					 strcmp(v->resource, "Group") == 0 ?
					 ", \"member\": [{\"entity\": {\"reference\": \"Patient/p1\"}}]" : "");
			r = epic_json_parse(res, strlen(res), err, sizeof(err));
			rc = epic_view_rows(v, &epic_jansson_ops, r, &rows, err, sizeof(err));
			for (int i = 0; rc == 0 && i < rows.nrows * rows.width; i++)
			{
				const EpicViewCell *cell = &rows.cells[i];

				if (epic_view_cell(v, &epic_jansson_ops, r, cell, &fr, err, sizeof(err)) != 0 ||
					(cell->column >= 0 && !v->columns[cell->column].collection && fr.count > 1))
					cells_ok = 0;
			}
			snprintf(what, sizeof(what), "%s (%s, %d columns) gives one row for a minimal %s%s%s",
					 base, v->name ? v->name : "?", v->nslots, v->resource,
					 rc ? ": " : "", rc ? err : "");
			check(rc == 0 && rows.nrows == 1 && cells_ok, what);
			{
				/* group_members names it group_id (getResourceKey()) */
				int			id = epic_view_slot(v, "id") >= 0 ? epic_view_slot(v, "id") :
					epic_view_slot(v, "group_id");
				int			ok = id >= 0 && rc == 0 && rows.nrows == 1;

				if (ok)
				{
					epic_view_cell(v, &epic_jansson_ops, r, &rows.cells[id], &fr, err, sizeof(err));
					ok = fr.count == 1 &&
						(fr.items[0].kind == EPIC_FP_NODE ||
						 (fr.items[0].kind == EPIC_FP_STRING && fr.items[0].len == 4 &&
						  memcmp(fr.items[0].str, "min1", 4) == 0));
				}
				snprintf(what, sizeof(what), "%s: column id gives the resource id", base);
				check(ok, what);
			}
			epic_fp_result_free(&fr);
			epic_view_rows_free(&rows);
			epic_json_free(r);
		}
		epic_view_free(v);
		epic_json_free(doc);
		free(text);
	}
}

/* Work is bounded: collections, repeat and rows cannot grow without limit. */
static void
test_limits(void)
{
	char		q[8192];
	size_t		n = 0;
	char		view[4096];
	size_t		m = 0;
	char		err[256];
	int			pos;
	EpicView   *v;

	/* a Questionnaire nested 24 levels deep, repeat over item twice: 2^24 nodes */
	n += (size_t) snprintf(q + n, sizeof(q) - n, "{\"resourceType\": \"Questionnaire\", \"id\": \"q\", \"item\": [");
	for (int i = 0; i < 24; i++)
		n += (size_t) snprintf(q + n, sizeof(q) - n, "{\"linkId\": \"l%d\", \"item\": [", i);
	n += (size_t) snprintf(q + n, sizeof(q) - n, "{\"linkId\": \"leaf\"}");
	for (int i = 0; i < 24; i++)
		n += (size_t) snprintf(q + n, sizeof(q) - n, "]}");
	n += (size_t) snprintf(q + n, sizeof(q) - n, "]}");
	expect_rows_error("repeat over a deep tree stops at the item limit",
					  "{\"resource\": \"Questionnaire\", \"select\": [{\"repeat\": [\"item\", \"item\"],"
					  " \"column\": [{\"name\": \"l\", \"path\": \"linkId\"}]}]}",
					  q, "more than 1000000");

	/* select() multiplying a collection: stopped by the evaluator's bound */
	m += (size_t) snprintf(view + m, sizeof(view) - m,
						   "{\"resource\": \"Patient\", \"select\": [{\"column\": [{\"name\": \"n\", \"path\": \"telecom");
	for (int i = 0; i < 16; i++)
		m += (size_t) snprintf(view + m, sizeof(view) - m, ".select(%%resource.telecom)");
	m += (size_t) snprintf(view + m, sizeof(view) - m, ".count()\"}]}]}");
	v = compile(view, err, sizeof(err), &pos);
	check(v != NULL, "a multiplying select() view compiles");
	if (v != NULL)
	{
		void	   *doc = epic_json_parse(patient, strlen(patient), err, sizeof(err));
		const char *got = rows_of(v, doc);

		check(strstr(got, "too many values") != NULL, "multiplying select() gives an error, not 3^16 items");
		epic_json_free(doc);
		epic_view_free(v);
	}

	/* a failed epic_view_add_column leaves the view as it was */
	v = epic_view_new("Patient", &env);
	check(v != NULL && epic_view_add_column(v, "a", "id", NULL, false, false, err, sizeof(err), &pos) >= 0,
		  "add_column: a first column");
	check(v != NULL && epic_view_add_column(v, "b", "name.where(", NULL, false, false, err, sizeof(err), &pos) < 0,
		  "add_column: a bad path fails");
	check(v != NULL && epic_view_add_column(v, "c", "gender", NULL, false, false, err, sizeof(err), &pos) >= 0 &&
		  v->nslots == 2 && v->ncolumns == 2, "add_column: after a failure, the next column is added normally");
	if (v != NULL)
	{
		void	   *doc = epic_json_parse(patient, strlen(patient), err, sizeof(err));

		check(strstr(rows_of(v, doc), "error") == NULL, "add_column: the view still evaluates");
		epic_json_free(doc);
		epic_view_free(v);
	}
}

/*
 * A misspelled member is refused by epic_view_check_members, with the type
 * and the element; right names, choice elements, type-name prefixes,
 * extension() and forEach contexts pass.
 */
static void
test_member_check(void)
{
	static const struct
	{
		const char *view;
		const char *want;		/* NULL: passes */
	}			cases[] = {
		{"{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"g\",\"path\":\"name.givne\"}]}]}",
		"column \"g\", path \"name.givne\": FHIR type HumanName has no element \"givne\""},
		{"{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"b\",\"path\":\"brithDate\"}]}]}",
		"column \"b\", path \"brithDate\": FHIR type Patient has no element \"brithDate\""},
		{"{\"resource\":\"Patient\",\"select\":[{\"forEach\":\"name\",\"column\":[{\"name\":\"f\",\"path\":\"famly\"}]}]}",
		"column \"f\", path \"famly\": FHIR type HumanName has no element \"famly\""},
		{"{\"resource\":\"Patient\",\"select\":[{\"forEach\":\"nmae\",\"column\":[{\"name\":\"f\",\"path\":\"family\"}]}]}",
		"forEach path \"nmae\": FHIR type Patient has no element \"nmae\""},
		{"{\"resource\":\"Patient\",\"where\":[{\"path\":\"gendr = 'female'\"}],\"select\":[{\"column\":[{\"name\":\"id\",\"path\":\"id\"}]}]}",
		"where path \"gendr = 'female'\": FHIR type Patient has no element \"gendr\""},
		{"{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"x\",\"path\":\"name.where(usee = 'official').family\"}]}]}",
		"column \"x\", path \"name.where(usee = 'official').family\": FHIR type HumanName has no element \"usee\""},
		{"{\"resource\":\"Patient\",\"select\":[{\"column\":[{\"name\":\"a\",\"path\":\"Patient.name.given.first()\"},"
			"{\"name\":\"b\",\"path\":\"deceased.exists()\"},"
			"{\"name\":\"c\",\"path\":\"extension('http://x').value.ofType(string)\"},"
			"{\"name\":\"d\",\"path\":\"name.given.combine(name.family).join(' ')\"},"
			"{\"name\":\"e\",\"path\":\"contact.name.family.first()\"},"
			"{\"name\":\"f\",\"path\":\"generalPractitioner.getReferenceKey(Practitioner).first()\"},"
			"{\"name\":\"g\",\"path\":\"meta.lastUpdated\"}]}]}", NULL},
		{"{\"resource\":\"Observation\",\"select\":[{\"column\":[{\"name\":\"v\",\"path\":\"value.ofType(Quantity).value\"},"
			"{\"name\":\"u\",\"path\":\"valueQuantity.unit\"},{\"name\":\"c\",\"path\":\"code.coding.where(system = 'x').code\"}]}]}", NULL},
	};

	for (int i = 0; i < (int) (sizeof(cases) / sizeof(cases[0])); i++)
	{
		char		err[512] = "";
		char		what[900];
		int			pos = -1;
		void	   *doc = epic_json_parse(cases[i].view, strlen(cases[i].view), err, sizeof(err));
		EpicView   *v = doc ? epic_view_compile(&epic_jansson_ops, doc, &env, err, sizeof(err), &pos) : NULL;
		int			rc = v ? epic_view_check_members(v, err, sizeof(err)) : -2;

		if (cases[i].want == NULL)
		{
			snprintf(what, sizeof(what), "member check passes case %d%s%s", i, rc ? ": " : "", rc ? err : "");
			check(rc == 0, what);
		}
		else
		{
			snprintf(what, sizeof(what), "member check refuses case %d: got \"%s\"", i, rc == -1 ? err : "(passed)");
			check(rc == -1 && strcmp(err, cases[i].want) == 0, what);
		}
		if (v)
			epic_view_free(v);
		if (doc)
			epic_json_free(doc);
	}
}

/* The FHIR version(s) the paths are typed in; forEach items typed by their path */
static void
test_fhir_versions(void)
{
	static const char *cond3 =
		"{\"resourceType\": \"Condition\", \"id\": \"c\", \"clinicalStatus\": \"active\"}";
	static const char *const versions[] = {"\"fhirVersion\": [\"3.0.2\"], ",
		"\"fhirVersion\": [\"4.0.1\"], ", "", "\"fhirVersion\": [\"5.0.0\", \"3.0.1\"], "};
	static const char *const want[] = {"true,false", "false,true", "false,true", "false,true"};
	char		err[512];
	char		view[1024];
	char		msg[600];
	int			pos;
	void	   *doc = epic_json_parse(cond3, strlen(cond3), err, sizeof(err));
	EpicView   *v;

	/* STU3's Condition.clinicalStatus is a code, R4's a CodeableConcept */
	for (int i = 0; i < 4; i++)
	{
		const char *got;

		snprintf(view, sizeof(view), "{\"resourceType\": \"ViewDefinition\", \"resource\": \"Condition\", %s"
				 "\"select\": [{\"column\": [" COL("code", "clinicalStatus is code") ", "
				 COL("cc", "clinicalStatus.ofType(CodeableConcept).exists()") "]}]}", versions[i]);
		v = compile(view, err, sizeof(err), &pos);
		got = v ? rows_of(v, doc) : err;
		snprintf(msg, sizeof(msg), "fhirVersion %s: %s (got %s)", versions[i][0] ? versions[i] : "(none)",
				 want[i], got);
		check(v != NULL && strcmp(got, want[i]) == 0, msg);
		if (v != NULL && i == 2)
		{
			/* a foreign table's server decides: fhir_version 'STU3' */
			epic_view_set_fhir_versions(v, 1);
			got = rows_of(v, doc);
			snprintf(msg, sizeof(msg), "epic_view_set_fhir_versions(STU3): true,false (got %s)", got);
			check(strcmp(got, "true,false") == 0, msg);
		}
		epic_view_free(v);
	}
	epic_json_free(doc);

	/* the items of a forEach have their element's type (uri is no HumanName.family) */
	expect_rows("forEach items are typed",
				VIEW("Patient", "\"select\": [{\"forEach\": \"name\", \"column\": ["
					 COL("u", "family is uri") ", " COL("s", "family is string") ", "
					 COL("h", "$this is HumanName") "]}]"),
				patient, "false,true,true;false,true,true");
	expect_rows("nested forEach items are typed",
				VIEW("Patient", "\"select\": [{\"forEach\": \"telecom\", \"column\": ["
					 COL("c", "system is code") ", " COL("u", "value is uri") ", "
					 COL("p", "$this.ofType(ContactPoint).exists()") "]}]"),
				patient, "true,false,true;true,false,true;true,false,true");
	expect_rows("forEachOrNull and a nested select are typed",
				VIEW("Patient", "\"select\": [{\"forEachOrNull\": \"address\", \"select\": [{\"column\": ["
					 COL("d", "postalCode is date") ", " COL("s", "postalCode is string") "]}]}]"),
				patient, "false,true");
}

int
main(int argc, char **argv)
{
	test_plain();
	test_foreach();
	test_foreach_or_null();
	test_cross_join();
	test_union_all();
	test_repeat();
	test_where();
	test_constants();
	test_compile_errors();
	test_metadata();
	test_rows_reuse();
	test_sql_type();
	test_row_index();
	test_column_type();
	test_add_column();
	test_builtin_views(argc, argv);
	test_member_check();
	test_fhir_versions();
	test_limits();
	return unit_summary();
}
