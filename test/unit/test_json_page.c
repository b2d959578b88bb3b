/*
 * test_json_page.c — unit tests of the page JSON parser (src/json_page.c),
 * outside PostgreSQL: grammar, escapes, UTF-8, numbers kept as sent, value
 * spans, duplicate names, depth, and a comparison with jansson on every
 * JSON file given as an argument (the sandbox fixtures).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_jansson.h"
#include "json_page.h"

#include "unit_check.h"

#define J (&epic_jdoc_ops)

static const char *
str_of(const void *n, size_t *len)
{
	char		buf[64];

	return n ? J->scalar(n, buf, sizeof(buf), len) : NULL;
}

static int
str_is(const void *n, const char *want)
{
	size_t		len;
	const char *s = str_of(n, &len);

	return s != NULL && len == strlen(want) && memcmp(s, want, len) == 0;
}

static void
expect_error(const char *text, const char *what)
{
	char		err[200] = "";
	EpicJdoc   *d = epic_jdoc_parse(text, strlen(text), err, sizeof(err));
	char		msg[400];

	snprintf(msg, sizeof(msg), "rejects %s (%s)", what, d ? "accepted" : err);
	check(d == NULL && strstr(err, " at byte ") != NULL, msg);
	epic_jdoc_free(d);
}

/* the same value under both parsers (numbers: by value; objects: by name) */
static int
same(const void *a, const void *b)
{
	const EpicJsonOps *K = &epic_jansson_ops;
	EpicJsonKind ka = J->kind(a),
				kb = K->kind(b);
	char		b1[64],
				b2[64];
	size_t		l1,
				l2;
	const char *s1,
			   *s2;

	if (ka != kb)
		return 0;
	switch (ka)
	{
		case EPIC_JSON_OBJECT:
			{
				const char *name;
				size_t		nl;
				const void *v;
				size_t		n = 0;
				char	   *keys = epic_json_object_keys(b);
				size_t		nb = 0;

				for (char *k = keys; k && *k; k += strlen(k) + 1)
					nb++;
				free(keys);
				for (size_t i = 0; J->member_at(a, i, &name, &nl, &v); i++)
				{
					char		key[256];

					if (nl >= sizeof(key))
						return 0;
					memcpy(key, name, nl);
					key[nl] = '\0';
					if (!same(J->member(a, key), K->member(b, key)))
						return 0;
					n++;
				}
				return n >= nb;
			}
		case EPIC_JSON_ARRAY:
			if (J->size(a) != K->size(b))
				return 0;
			for (size_t i = 0; i < J->size(a); i++)
				if (!same(J->item(a, i), K->item(b, i)))
					return 0;
			return 1;
		case EPIC_JSON_NUMBER:
			s1 = J->scalar(a, b1, sizeof(b1), &l1);
			s2 = K->scalar(b, b2, sizeof(b2), &l2);
			{
				char		t1[128];

				if (l1 >= sizeof(t1))
					return 0;
				memcpy(t1, s1, l1);
				t1[l1] = '\0';
				return strtod(t1, NULL) == strtod(s2, NULL);
			}
		default:
			s1 = J->scalar(a, b1, sizeof(b1), &l1);
			s2 = K->scalar(b, b2, sizeof(b2), &l2);
			return (s1 == NULL && s2 == NULL) ||
				(s1 && s2 && l1 == l2 && memcmp(s1, s2, l1) == 0);
	}
}

static void
compare_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		len;
	char		err[200];
	EpicJdoc   *d;
	void	   *j;
	char		msg[600];

	if (f == NULL)
		return;
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) len + 1);
	if (buf == NULL || fread(buf, 1, (size_t) len, f) != (size_t) len)
	{
		fclose(f);
		free(buf);
		return;
	}
	fclose(f);
	d = epic_jdoc_parse(buf, (size_t) len, err, sizeof(err));
	j = epic_json_parse(buf, (size_t) len, NULL, 0);
	snprintf(msg, sizeof(msg), "%s: the same document as jansson reads", path);
	check(d != NULL && j != NULL && same(epic_jdoc_root(d), j), msg);
	epic_jdoc_free(d);
	if (j)
		epic_json_free(j);
	free(buf);
}

int
main(int argc, char **argv)
{
	char		err[200];
	const char *text =
		" {\"resourceType\": \"Patient\", \"id\": \"p1\", \"n\": 15.70, \"e\": -1.5e+3,"
		" \"name\": [{\"family\": \"L\\u00f3pez\", \"given\": [\"A\\\"b\", \"\\ud83d\\ude00\"]}],"
		" \"dup\": 1, \"dup\": 2, \"t\": true, \"f\": false, \"z\": null, \"o\": {}, \"a\": [] } ";
	EpicJdoc   *d = epic_jdoc_parse(text, strlen(text), err, sizeof(err));
	const void *r = d ? epic_jdoc_root(d) : NULL;
	const char *raw;
	size_t		rl;

	check(d != NULL, "parses a resource");
	if (d == NULL)
		return 1;
	check(J->kind(r) == EPIC_JSON_OBJECT && str_is(J->member(r, "id"), "p1"), "member lookup");
	check(J->kind(J->member(r, "n")) == EPIC_JSON_NUMBER && str_is(J->member(r, "n"), "15.70"),
		  "a number keeps the server's text (15.70)");
	check(str_is(J->member(r, "e"), "-1.5e+3"), "an exponent number keeps its text");
	check(str_is(J->member(J->item(J->member(r, "name"), 0), "family"), "L\xc3\xb3pez"),
		  "\\u00f3 becomes UTF-8");
	check(str_is(J->item(J->member(J->item(J->member(r, "name"), 0), "given"), 0), "A\"b"),
		  "escaped quote");
	check(str_is(J->item(J->member(J->item(J->member(r, "name"), 0), "given"), 1), "\xf0\x9f\x98\x80"),
		  "a surrogate pair becomes one 4-byte character");
	check(str_is(J->member(r, "dup"), "2"), "the last of duplicate names wins");
	check(J->kind(J->member(r, "t")) == EPIC_JSON_TRUE && J->kind(J->member(r, "f")) == EPIC_JSON_FALSE &&
		  J->kind(J->member(r, "z")) == EPIC_JSON_NULL, "literals");
	check(J->kind(J->member(r, "o")) == EPIC_JSON_OBJECT && J->kind(J->member(r, "a")) == EPIC_JSON_ARRAY &&
		  J->size(J->member(r, "a")) == 0, "empty containers");
	check(J->member(r, "nope") == NULL && J->item(J->member(r, "a"), 0) == NULL &&
		  J->member(J->member(r, "a"), "x") == NULL, "absent members and items are NULL");
	epic_jdoc_raw(J->item(J->member(r, "name"), 0), &raw, &rl);
	check(rl > 0 && raw[0] == '{' && raw[rl - 1] == '}' &&
		  strncmp(raw, "{\"family\": \"L\\u00f3pez\"", 22) == 0,
		  "a value's raw text is the server's, escapes included");
	epic_jdoc_raw(r, &raw, &rl);
	check(rl == strlen(text) - 2, "the root's raw text excludes surrounding white space");
	epic_jdoc_free(d);

	expect_error("", "empty input");
	expect_error("{\"a\": 1,}", "a trailing comma");
	expect_error("{\"a\" 1}", "a missing colon");
	expect_error("[1 2]", "a missing comma");
	expect_error("{\"a\": 01}", "a leading zero");
	expect_error("{\"a\": 1.}", "a number without fraction digits");
	expect_error("{\"a\": .5}", "a number without integer digits");
	expect_error("{\"a\": -}", "a lone minus");
	expect_error("{\"a\": tru}", "a truncated literal");
	expect_error("{\"a\": \"x}", "an unterminated string");
	expect_error("{\"a\": \"\x01\"}", "a control character in a string");
	expect_error("{\"a\": \"\\x\"}", "an unknown escape");
	expect_error("{\"a\": \"\\u12\"}", "a short \\u escape");
	expect_error("{\"a\": \"\\u0000\"}", "\\u0000 (PostgreSQL text cannot hold it)");
	expect_error("{\"a\": \"\\ud800\"}", "a lone high surrogate");
	expect_error("{\"a\": \"\\udc00\"}", "a lone low surrogate");
	expect_error("{\"a\": \"\xff\"}", "an invalid UTF-8 byte");
	expect_error("{\"a\": \"\xc0\xaf\"}", "an overlong UTF-8 sequence");
	expect_error("{\"a\": \"\xed\xa0\x80\"}", "an encoded surrogate");
	expect_error("{\"a\": \"\xe2\x82\"}", "a truncated UTF-8 sequence");
	expect_error("{} x", "text after the value");
	expect_error("{'a': 1}", "single quotes");
	{
		char		deep[2 * EPIC_JDOC_MAX_DEPTH + 10];
		size_t		n = 0;

		for (int i = 0; i <= EPIC_JDOC_MAX_DEPTH; i++)
			deep[n++] = '[';
		for (int i = 0; i <= EPIC_JDOC_MAX_DEPTH; i++)
			deep[n++] = ']';
		deep[n] = '\0';
		expect_error(deep, "nesting deeper than the limit");
		d = epic_jdoc_parse(deep + 2, n - 4, err, sizeof(err));
		check(d != NULL, "nesting at the limit parses");
		epic_jdoc_free(d);
	}
	{
		const char *name;
		size_t		nl;
		const void *v;
		const char *obj = "{\"valueQuantity\": {\"value\": 1}, \"status\": \"final\"}";

		d = epic_jdoc_parse(obj, strlen(obj), err, sizeof(err));
		r = epic_jdoc_root(d);
		check(J->member_at(r, 0, &name, &nl, &v) && nl == 13 && memcmp(name, "valueQuantity", 13) == 0 &&
			  J->kind(v) == EPIC_JSON_OBJECT && J->member_at(r, 1, &name, &nl, &v) &&
			  !J->member_at(r, 2, &name, &nl, &v), "member_at walks the members in order");
		epic_jdoc_free(d);
	}
	for (int a = 1; a < argc; a++)
		compare_file(argv[a]);
	return unit_summary();
}
