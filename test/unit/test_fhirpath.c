/*
 * test_fhirpath.c — unit tests of the FHIRPath subset (src/fhirpath.c) over
 * the jansson document interface (src/json_jansson.c), outside PostgreSQL.
 *
 * Prints "ok N - ..." / "not ok N - ..." and a final "N passed, N failed";
 * exits non-zero on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_jansson.h"

static int	passed,
			failed;

static void
check(int cond, const char *what)
{
	if (cond)
		passed++;
	else
		failed++;
	printf("%s %d - %s\n", cond ? "ok" : "not ok", passed + failed, what);
}

static const char *patient =
"{\"resourceType\": \"Patient\", \"id\": \"p1\","
" \"identifier\": ["
"   {\"system\": \"urn:oid:1.2\", \"value\": \"A1\", \"type\": {\"text\": \"EPI\"}},"
"   {\"system\": \"urn:oid:9.9\", \"value\": \"Z9\","
"    \"type\": {\"coding\": [{\"code\": \"XX\"}, {\"code\": \"MR\"}]}}],"
" \"name\": [{\"use\": \"usual\", \"given\": [\"Cami\"], \"family\": \"Lopez\"},"
"          {\"use\": \"official\", \"given\": [\"Camila\", \"Maria\"], \"family\": \"Lopez\","
"           \"text\": \"Camila Maria Lopez\"}],"
" \"telecom\": [{\"system\": \"phone\", \"use\": \"work\", \"value\": \"1\"},"
"             {\"system\": \"phone\", \"use\": \"home\", \"value\": \"2\"},"
"             {\"system\": \"email\", \"value\": \"a@b\"}, null],"
" \"active\": true, \"multipleBirthInteger\": 2, \"deceasedBoolean\": false,"
" \"subject\": {\"reference\": \"https://x.example/fhir/Patient/p9/_history/3\"},"
" \"performer\": {\"reference\": \"Practitioner/d7\"},"
" \"contained\": {\"reference\": \"#c1\"}"
"}";

static const char *names[] = {"mrn_system", "unset"};
static const char *values[] = {"urn:oid:9.9", NULL};
static const EpicFpEnv env = {2, names, values};

/* Evaluate and return the items' texts joined with "|" ("<error>" on failure). */
static char *
eval(const void *doc, const char *path)
{
	static char out[1024];
	char		errbuf[256];
	int			pos;
	EpicFpExpr *e = epic_fp_parse(path, errbuf, sizeof(errbuf), &pos);
	EpicFpResult res = {0};

	if (e == NULL)
	{
		snprintf(out, sizeof(out), "<parse error: %s at %d>", errbuf, pos);
		return out;
	}
	out[0] = '\0';
	if (epic_fp_eval(e, &epic_jansson_ops, doc, &env, &res, errbuf, sizeof(errbuf)) != 0)
		snprintf(out, sizeof(out), "<error: %s>", errbuf);
	else
		for (int i = 0; i < res.count; i++)
		{
			char		buf[64];
			size_t		len;
			const char *t = epic_fp_item_text(&epic_jansson_ops, &res.items[i], buf, sizeof(buf), &len);

			if (i > 0)
				strncat(out, "|", sizeof(out) - strlen(out) - 1);
			if (t == NULL)
				strncat(out, "<node>", sizeof(out) - strlen(out) - 1);
			else
				strncat(out, t, len < sizeof(out) - strlen(out) - 1 ? len : sizeof(out) - strlen(out) - 1);
		}
	epic_fp_result_free(&res);
	epic_fp_free(e);
	return out;
}

static void
expect(const void *doc, const char *path, const char *want)
{
	char		what[600];
	char	   *got = eval(doc, path);

	snprintf(what, sizeof(what), "%s => %s%s%s", path, want,
			 strcmp(got, want) ? "   GOT " : "", strcmp(got, want) ? got : "");
	check(strcmp(got, want) == 0, what);
}

static void
expect_parse_error(const char *path, int want_pos, const char *want_text)
{
	char		errbuf[256];
	int			pos = -1;
	EpicFpExpr *e = epic_fp_parse(path, errbuf, sizeof(errbuf), &pos);
	char		what[600];

	snprintf(what, sizeof(what), "parse error for \"%s\" at %d containing \"%s\" (got %s at %d)",
			 path, want_pos, want_text, e ? "success" : errbuf, pos);
	check(e == NULL && pos == want_pos && strstr(errbuf, want_text) != NULL, what);
	epic_fp_free(e);
}

int
main(void)
{
	char		errbuf[256];
	void	   *doc = epic_json_parse(patient, strlen(patient), errbuf, sizeof(errbuf));

	if (doc == NULL)
	{
		printf("not ok 1 - test document parses: %s\n", errbuf);
		return 1;
	}

	/* navigation and flattening */
	expect(doc, "id", "p1");
	expect(doc, "Patient.id", "p1");
	expect(doc, "Observation.id", "");
	expect(doc, "name.family", "Lopez|Lopez");
	expect(doc, "name.given", "Cami|Camila|Maria");
	expect(doc, "telecom.value", "1|2|a@b");
	expect(doc, "nothing.here", "");
	expect(doc, "name[1].given[0]", "Camila");
	expect(doc, "name[5]", "");
	expect(doc, "active", "true");
	expect(doc, "multipleBirthInteger", "2");
	expect(doc, "`id`", "p1");

	/* where, first, exists, empty, not */
	expect(doc, "name.where(use = 'official').given", "Camila|Maria");
	expect(doc, "name.where(use = 'official').first().text", "Camila Maria Lopez");
	expect(doc, "name.first().given", "Cami");
	expect(doc, "telecom.where(system = 'phone' and use = 'home').value", "2");
	expect(doc, "telecom.where(system = 'email' or use = 'work').value", "1|a@b");
	expect(doc, "telecom.where(use != 'work').value", "2");
	expect(doc, "name.where(use = 'nickname').exists()", "false");
	expect(doc, "name.exists()", "true");
	expect(doc, "photo.empty()", "true");
	expect(doc, "active.not()", "false");
	expect(doc, "deceasedBoolean.not()", "true");
	expect(doc, "multipleBirthInteger = 2", "true");
	expect(doc, "multipleBirthInteger = 2.0", "true");
	expect(doc, "multipleBirthInteger = '2'", "false");
	expect(doc, "(id = 'p1')", "true");
	/* equality of collections: same count and items, in order */
	expect(doc, "identifier.where(type.coding.code = 'MR').value", "");
	expect(doc, "identifier.where(type.coding.where(code = 'MR').exists()).value", "Z9");
	/* comparison with an empty collection is empty */
	expect(doc, "identifier.where(type.text = 'EPI').value", "A1");

	/* constants */
	expect(doc, "identifier.where(system = %mrn_system).value", "Z9");
	expect(doc, "identifier.where(system = %unset).value", "");
	expect(doc, "%mrn_system", "urn:oid:9.9");
	expect(doc, "%undefined", "");

	/* keys */
	expect(doc, "getResourceKey()", "p1");
	expect(doc, "subject.getReferenceKey()", "p9");
	expect(doc, "subject.getReferenceKey(Patient)", "p9");
	expect(doc, "subject.getReferenceKey(Practitioner)", "");
	expect(doc, "performer.getReferenceKey(Practitioner)", "d7");
	expect(doc, "contained.getReferenceKey()", "");

	/* literals */
	expect(doc, "'it''s'", "<parse error: syntax error at \"'\" at 5>");
	expect(doc, "'a\\'b'", "a'b");
	expect(doc, "true", "true");

	/* parse errors carry a 1-based position */
	expect_parse_error("", 1, "empty expression");
	expect_parse_error("name..family", 6, "expected a name");
	expect_parse_error("name.where(use = ", 18, "unexpected end");
	expect_parse_error("name.frobnicate()", 6, "unsupported function");
	expect_parse_error("name.first(1)", 6, "wrong number of arguments");
	expect_parse_error("name.where(use = 'x'", 21, "expected \")\"");
	expect_parse_error("'open", 1, "unterminated string");
	expect_parse_error("name[x]", 6, "index");
	expect_parse_error("a b", 3, "syntax error");
	expect_parse_error("name.where()", 6, "wrong number of arguments");

	/* deep nesting is refused at evaluation, not a crash */
	{
		char		deep[3000];
		size_t		n = 0;

		for (int i = 0; i < 400; i++)
			deep[n++] = '(';
		deep[n++] = 'i';
		deep[n++] = 'd';
		for (int i = 0; i < 400; i++)
			deep[n++] = ')';
		deep[n] = '\0';
		check(strcmp(eval(doc, deep), "<parse error: expression nested too deeply at 101>") == 0,
			  "400 nested parentheses give a parse error, not a stack overflow");
		/* a long chain of where() nests the evaluator: bounded too */
		n = 0;
		for (int i = 0; i < 90; i++)
			n += (size_t) sprintf(deep + n, "where(");
		n += (size_t) sprintf(deep + n, "true");
		for (int i = 0; i < 90; i++)
			deep[n++] = ')';
		deep[n] = '\0';
		check(strcmp(eval(doc, deep), "<node>") == 0, "90 nested where() evaluate to the resource");
	}

	/* a very long member chain is refused by the parser (found by fuzzing:
	 * it overflowed the stack when freed) */
	{
		static char chain[400001];
		size_t		n = 0;

		for (int i = 0; i < 100000 && n + 4 < sizeof(chain); i++)
		{
			memcpy(chain + n, "a.", 2);
			n += 2;
		}
		chain[n++] = 'a';
		chain[n] = '\0';
		check(strcmp(eval(doc, chain), "<parse error: expression has too many steps at 302>") == 0,
			  "100,000-step chain gives a parse error");
		chain[299] = '\0';		/* 150 steps: fine */
		check(strcmp(eval(doc, chain), "") == 0, "150-step chain evaluates");
	}

	/* so is a long chain of or/and (found by review: freeing it overflowed
	 * the stack) */
	{
		static char ors[600001];
		size_t		n = 0;

		for (int i = 0; i < 100000; i++)
		{
			memcpy(ors + n, "1 or ", 5);
			n += 5;
		}
		ors[n++] = '1';
		ors[n] = '\0';
		check(strncmp(eval(doc, ors), "<parse error: expression nested too deeply", 42) == 0,
			  "100,000 or-ed terms give a parse error");
		check(strcmp(eval(doc, "id = 'x' or id = 'p1' and active"), "true") == 0,
			  "a short or/and chain still works");
	}

	/* plain paths are recognised (pushdown uses them) */
	{
		EpicFpExpr *e1 = epic_fp_parse("name.family", errbuf, sizeof(errbuf), NULL);
		EpicFpExpr *e2 = epic_fp_parse("name.first().family", errbuf, sizeof(errbuf), NULL);

		check(e1 && epic_fp_text(e1) && strcmp(epic_fp_text(e1), "name.family") == 0,
			  "epic_fp_text of a plain path");
		check(e2 && epic_fp_text(e2) == NULL, "epic_fp_text of a path with a function is NULL");
		epic_fp_free(e1);
		epic_fp_free(e2);
	}

	epic_json_free(doc);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
