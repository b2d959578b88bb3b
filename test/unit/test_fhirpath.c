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

#include "unit_check.h"

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

static const char *observation =
"{\"resourceType\": \"Observation\", \"id\": \"o1\","
" \"valueQuantity\": {\"value\": 7.25, \"unit\": \"mg\"},"
" \"effectiveDateTime\": \"2020-03-04T10:20\","
" \"issued\": \"2020-03-04T10:20:30.5+02:00\","
" \"extension\": ["
"   {\"url\": \"http://x/race\", \"extension\": ["
"      {\"url\": \"omb\", \"valueCoding\": {\"code\": \"2106-3\"}},"
"      {\"url\": \"omb\", \"valueCoding\": {\"code\": \"1002-5\"}},"
"      {\"url\": \"text\", \"valueString\": \"White\"}]},"
"   {\"url\": \"http://x/birthsex\", \"valueCode\": \"F\"},"
"   {\"url\": \"http://x/count\", \"valueInteger\": 11}],"
" \"dt\": [{\"valueDateTime\": \"2010-10-10\"}, {\"valueTime\": \"12:34\"}],"
" \"component\": [{\"valueString\": \"foo\"}, {\"valueInteger\": 42},"
"                 {\"valueBoolean\": true}, {\"valueDecimal\": 1.5}],"
" \"dates\": [\"1987\", \"2020-02\", \"2019-02\", \"2021-04-05\","
"             \"2021-04-05T08\", \"2021-04-05T08:30:15.1Z\", \"10:15\", \"nope\", \"2021-13\"]"
"}";

static const char *names[] = {"mrn_system", "unset", "idx"};
static const char *values[] = {"urn:oid:9.9", NULL, "1"};
static const EpicFpEnv env = {3, names, values, NULL, NULL};

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


/* expect() on a document given as JSON text */
static void
expect_in(const char *json, const char *path, const char *want)
{
	char		errbuf[256];
	void	   *d = epic_json_parse(json, strlen(json), errbuf, sizeof(errbuf));

	if (d == NULL)
	{
		check(false, json);
		return;
	}
	expect(d, path, want);
	epic_json_free(d);
}

/* Issue 14: wrong results found by the differential run against fhirpath.js */
static void
test_issue14(void)
{
	const char *cond = "{\"resourceType\":\"Condition\",\"id\":\"c\"}";
	const char *names = "{\"resourceType\":\"Patient\",\"id\":\"p\",\"name\":["
		"{\"use\":\"official\"},{\"given\":[\"x\"]},{\"use\":\"nickname\"}]}";
	const char *given = "{\"resourceType\":\"Patient\",\"id\":\"p\","
		"\"name\":[{\"given\":[\"a\",\"b\"]},{\"given\":[\"a\"]}]}";
	const char *interp = "{\"resourceType\":\"Observation\",\"id\":\"o\",\"interpretation\":["
		"{\"coding\":[{\"system\":\"s\",\"code\":\"H\"}]},"
		"{\"coding\":[{\"code\":\"H\",\"system\":\"s\"}]},"
		"{\"coding\":[{\"system\":\"s\",\"code\":\"L\"}]}]}";
	const char *dates = "{\"resourceType\":\"Condition\",\"id\":\"c\",\"recordedDate\":\"2019-05-28\","
		"\"code\":{\"coding\":[{\"code\":\"1191\"}]},\"onsetAge\":{\"value\":5,\"unit\":\"a\"}}";
	const char *obs = "{\"resourceType\":\"Observation\",\"id\":\"o\","
		"\"effectiveDateTime\":\"2021-03-04T10:20:30+05:30\",\"issued\":\"2021-03-04T05:00:00Z\"}";
	const char *addr = "{\"resourceType\":\"Patient\",\"id\":\"p\",\"address\":[{\"postalCode\":\"8000\"}]}";
	const char *prac = "{\"resourceType\":\"Practitioner\",\"id\":\"d\",\"name\":[{\"_family\":"
		"{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/data-absent-reason\","
		"\"valueCode\":\"masked\"}]},\"given\":[\"a\",null],"
		"\"_given\":[null,{\"extension\":[{\"url\":\"u\",\"valueString\":\"g2\"}]}]}],"
		"\"birthDate\":\"1970\",\"_birthDate\":{\"id\":\"b1\",\"extension\":[{\"url\":\"u\",\"valueString\":\"x\"}]}}";

	/*
	 * 1. join() of an empty collection: the SQL on FHIR suite
	 * (fhirpath.json, "string join") wants '' where fhirpath.js gives empty;
	 * the suite wins (see README, FHIRPath deviations).
	 */
	expect_in(cond, "note.authorString.join().count()", "1");
	expect_in(cond, "note.authorString.join(',') = ''", "true");
	expect_in(names, "name.select(use.join('+')).join(';')", "official;;nickname");

	/* 2. a union (or distinct) inside select() works on each item alone */
	expect_in(given, "name.given.select($this | $this)", "a|b|a");
	expect_in(given, "name.select(given | 'z')", "a|b|z|a|z");
	expect_in(given, "name.select(given.distinct())", "a|b|a");
	expect_in(given, "name.select(given | given).count()", "3");

	/* 3. structural equality of complex values */
	expect_in(interp, "interpretation.distinct().count()", "2");
	expect_in(interp, "interpretation[0] = interpretation[1]", "true");
	expect_in(interp, "interpretation[0] != interpretation[1]", "false");
	expect_in(interp, "interpretation.first() = interpretation.last()", "false");
	expect_in(interp, "(interpretation[0] | interpretation[1]).count()", "1");
	expect_in(interp, "interpretation.coding.distinct().code", "H|L");

	/* 4. dates and times of different precisions: equality is empty */
	expect(NULL, "@2020 = @2020-01-01T05:00", "");
	expect(NULL, "@2020-01-01 = @2020-01-01T00:00:00", "");
	expect(NULL, "@T10:30:00 = @T10:30", "");
	expect(NULL, "@T10:30:00 != @T10:30", "");
	expect_in(dates, "recordedDate = @2019", "");
	expect_in(dates, "recordedDate = @2019-05-28", "true");
	expect(NULL, "@2020-01-01T = @2020-01-01", "true");
	expect(NULL, "@2020 = @2021-01-01", "false");

	/* 5. dateTimes compared by value: time zones, fractional seconds */
	expect(NULL, "@2020-01-01T10:00:00Z = @2020-01-01T11:00:00+01:00", "true");
	expect(NULL, "@2020-01-01T10:00:00Z = @2020-01-01T10:00:00.000Z", "true");
	expect(NULL, "@2020-01-01T10:00:00.5Z > @2020-01-01T10:00:00Z", "true");
	expect(NULL, "@2020-01-01T10:00:00Z > @2020-01-01T10:30:00+01:00", "true");
	expect(NULL, "@2020-01-01T23:30:00-01:00 = @2020-01-02T00:30:00Z", "true");
	expect(NULL, "@T10:00:00.5 > @T10:00:00", "true");
	expect_in(obs, "effective = @2021-03-04T04:50:30Z", "true");
	expect_in(obs, "effective < issued", "true");

	/* 6. a date is not a string */
	expect(NULL, "@2020 = '2020'", "false");
	expect(NULL, "@2020 != '2020'", "true");
	expect_in(dates, "code.coding.code = @1191", "false");
	expect_in(addr, "address.postalCode = @8000", "false");
	expect_in(addr, "address.postalCode = '8000'", "true");

	/* 7. ofType() knows subtypes: an Age is a Quantity */
	expect_in(dates, "onset.ofType(Quantity).value", "5");
	expect_in(dates, "onset.ofType(Age).unit", "a");
	expect_in(dates, "onset.ofType(Duration).exists()", "false");
	/* BackboneElements: typed by their path; their elements by the table */
	expect_in("{\"resourceType\":\"Patient\",\"contact\":[{\"name\":{\"family\":\"f\"},\"gender\":\"male\"}]}",
			  "contact.ofType(BackboneElement).count() = 1 and contact.ofType(Element).count() = 1 and "
			  "contact.name.ofType(HumanName).family = 'f' and contact.gender.ofType(code) = 'male'", "true");
	/* only the type's choice elements resolve: Immunization's doseQuantity is no dose[x] */
	expect_in("{\"resourceType\":\"Immunization\",\"doseQuantity\":{\"value\":1}}", "dose.exists()", "false");
	expect_in("{\"resourceType\":\"Immunization\",\"doseQuantity\":{\"value\":1}}", "doseQuantity.value", "1");

	/* is / as, operators and functions, with the type table (subtypes too) */
	expect_in(dates, "onset is Quantity", "true");
	expect_in(dates, "onset is Age", "true");
	expect_in(dates, "onset is Duration", "false");
	expect_in(dates, "onset.is(FHIR.Quantity)", "true");
	expect_in(dates, "(onset as Quantity).unit", "a");
	expect_in(dates, "onset.as(Age).value", "5");
	expect_in(dates, "(onset as Range).exists()", "false");
	expect_in(dates, "recordedDate is dateTime", "true");
	expect_in(dates, "recordedDate is date", "false");
	/* an element is of a FHIR type, not a System one (ofType differs: README) */
	expect_in(dates, "recordedDate is DateTime", "false");
	expect_in(dates, "recordedDate.ofType(DateTime).exists()", "true");
	expect_in(dates, "(recordedDate as System.DateTime).exists()", "false");
	expect_in(dates, "abatementString is String", "");	/* absent: empty */
	expect_in(given, "id is String", "true");	/* Resource.id is a System.String */
	expect_in(dates, "note is Annotation", "");	/* empty input: empty */
	expect_in(dates, "note as Annotation", "");
	expect_in(dates, "code.coding.code is code and code.coding.code is string", "true");
	expect_in(dates, "code.coding.code.as(string) = '1191'", "true");
	expect_in(dates, "$this is Condition and $this is DomainResource and $this is Resource", "true");
	expect_in(dates, "$this is Patient", "false");
	expect(NULL, "1 is Integer", "true");
	expect(NULL, "1 is System.Integer", "true");
	expect(NULL, "1 is integer", "false");	/* a literal is of a System type */
	expect(NULL, "1.5 as Decimal", "1.5");
	expect(NULL, "-2.0 is Decimal", "true");	/* negation keeps a decimal a decimal */
	expect(NULL, "-2.0 is Integer", "false");
	expect(NULL, "-(2) is Integer", "true");
	expect(NULL, "'a' is String and @2020 is Date and @T10 is Time", "true");
	expect(NULL, "1 + 2 is Integer", "true");	/* binds tighter than | and = */
	expect(NULL, "(1 | 2 as Integer).count()", "2");
	expect(NULL, "1 is Integer = true", "true");
	/* several items on the left: an error, as FHIRPath specifies */
	expect(NULL, "(1 | 2) is Integer", "<error: \"is Integer\" needs a single item on its left, got 2>");
	expect(NULL, "(1 | 2).as(Integer)", "<error: \"as Integer\" needs a single item on its left, got 2>");
	/* the grammar: an invocation or an operator after the type applies to (x as T) */
	expect_in(dates, "onset as Quantity.unit", "<parse error: unknown type namespace: only FHIR and System qualify a type name at 10>");
	expect_in(dates, "onset as Age.exists()", "true");
	expect_in(dates, "onset as Quantity[0].unit", "a");
	expect_in(dates, "onset as FHIR.Quantity.value", "<parse error: unknown type namespace: only FHIR and System qualify a type name at 10>");
	expect(NULL, "1 as Integer + 1", "2");
	expect(NULL, "1 + 1 as Integer * 2", "4");
	expect(NULL, "'a' as String & 'b'", "ab");
	expect_parse_error("1 is", 5, "");
	expect_parse_error("1 is (Integer)", 6, "");

	/* 8. negative indexes are empty, not a syntax error */
	expect(NULL, "(1|2|3)[-1]", "");
	expect(NULL, "(1|2|3)[-1].exists()", "false");

	/* 9. primitive extensions: a primitive with only an extension is an element */
	expect_in(prac, "name.family.exists()", "true");
	expect_in(prac, "name.family.count()", "1");
	expect_in(prac, "name.family", "");
	expect_in(prac, "name.family & '!'", "!");	/* operators see no value: empty */
	expect_in(prac, "name.family = 'x'", "false");
	expect_in(prac, "name.family != 'x'", "true");
	expect_in(prac, "name.family.extension('http://hl7.org/fhir/StructureDefinition/data-absent-reason').value",
			  "masked");
	expect_in(prac, "name.given.count()", "2");
	expect_in(prac, "name.given", "a");
	expect_in(prac, "name.given.extension('u').value", "g2");
	expect_in(prac, "birthDate", "1970");
	expect_in(prac, "birthDate.extension('u').value", "x");
	expect_in(prac, "birthDate.id", "b1");
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

	/* choice types: value resolves to value[x]; ofType selects by type */
	{
		void	   *obs = epic_json_parse(observation, strlen(observation), errbuf, sizeof(errbuf));

		check(obs != NULL, "observation document parses");
		expect(obs, "value.unit", "mg");
		expect(obs, "value.ofType(Quantity).value", "7.25");
		expect(obs, "value.ofType(FHIR.Quantity).unit", "mg");
		expect(obs, "value.ofType(string)", "");
		expect(obs, "effective", "2020-03-04T10:20");
		expect(obs, "effective.ofType(dateTime)", "2020-03-04T10:20");
		expect(obs, "effective.ofType(date)", "");
		expect(obs, "component.value", "foo|42|true|1.5");
		expect(obs, "component.value.ofType(string)", "foo");
		expect(obs, "component.value.ofType(String)", "foo");
		expect(obs, "component.value.ofType(System.String)", "foo");
		expect(obs, "component.value.ofType(integer)", "42");
		expect(obs, "component.value.ofType(boolean)", "true");
		expect(obs, "component.value.ofType(decimal)", "1.5");
		expect(obs, "component.where(value.ofType(integer) > 11).exists()", "true");
		expect(obs, "component.where(value.ofType(integer) < 11).exists()", "false");
		expect(obs, "ofType(Observation).id", "o1");
		expect(obs, "ofType(Patient).id", "");
		expect(doc, "deceased", "false");
		expect(doc, "deceased.ofType(boolean) = false", "true");
		expect(doc, "multipleBirth", "2");
		expect(doc, "multipleBirth.ofType(integer)", "2");
		expect(doc, "multipleBirth.ofType(decimal)", "");
		/* elements typed by the FHIR type table (R4's Resource.id is System.String) */
		expect(doc, "id.ofType(string)", "");
		expect(doc, "id.ofType(String)", "p1");
		expect(doc, "id.ofType(id)", "");
		expect(doc, "active.ofType(boolean)", "true");
		expect(doc, "name.ofType(HumanName)", "<node>|<node>");
		expect(doc, "name.ofType(Element).count()", "2");
		expect(doc, "name.ofType(Quantity)", "");
		/* literals are of System types (String), elements of FHIR types (string) */
		expect(doc, "'x'.ofType(string)", "");
		expect(doc, "'x'.ofType(String)", "x");
		expect(doc, "'x'.ofType(System.String)", "x");
		expect(doc, "name.given.ofType(String).count()", "3");
		expect(doc, "name.given.ofType(FHIR.string).count()", "3");
		expect(doc, "name.use.ofType(code).count()", "2");
		expect(doc, "name.use.ofType(string).count()", "2");	/* code is a string */
		expect(doc, "name.use.ofType(uri).count()", "0");
		expect(doc, "1.ofType(integer)", "");
		expect(doc, "1.ofType(Integer)", "1");
		expect(doc, "1.5.ofType(Decimal)", "1.5");
		expect(doc, "@2020.ofType(date)", "");
		expect(doc, "@2020.ofType(Date)", "2020");
		expect(doc, "@2020-01-01T10:00.ofType(DateTime)", "2020-01-01T10:00");

		/* extension(url) */
		expect(obs, "extension('http://x/birthsex').value.ofType(code)", "F");
		expect(obs, "extension('http://x/birthsex').value.ofType(code).first()", "F");
		expect(obs, "extension('http://x/race').extension('omb').value.ofType(Coding).code",
			   "2106-3|1002-5");
		expect(obs, "extension('http://x/race').extension('omb').value.ofType(Coding).code.first()",
			   "2106-3");
		expect(obs, "extension('http://x/race').extension('text').value", "White");
		expect(obs, "extension('http://x/none')", "");
		expect(obs, "extension('http://x/count').value + 1", "12");
		expect(doc, "extension('http://x/race')", "");

		/* join */
		expect(doc, "name.given.join(', ')", "Cami, Camila, Maria");
		expect(doc, "name.given.join(', ' )", "Cami, Camila, Maria");
		expect(doc, "name.given.join()", "CamiCamilaMaria");
		expect(doc, "photo.join(',')", "");
		expect(doc, "name.given.join(%mrn_system)", "Camiurn:oid:9.9Camilaurn:oid:9.9Maria");
		expect(doc, "name.given.join('-') = 'Cami-Camila-Maria'", "true");
		expect(doc, "name.where(given.join(' ') = 'Camila Maria').family", "Lopez");
		expect(doc, "telecom.value.join('/') + '!'", "1/2/a@b!");
		expect(obs, "component.value.join(',')", "foo,42,true,1.5");

		/* boundaries */
		expect(obs, "dates.lowBoundary()",
			   "1987-01-01|2020-02-01|2019-02-01|2021-04-05|2021-04-05T08:00:00.000+14:00|"
			   "2021-04-05T08:30:15.100Z|10:15:00.000");
		expect(obs, "dates.highBoundary()",
			   "1987-12-31|2020-02-29|2019-02-28|2021-04-05|2021-04-05T08:59:59.999-12:00|"
			   "2021-04-05T08:30:15.100Z|10:15:59.999");
		expect(obs, "issued.lowBoundary()", "2020-03-04T10:20:30.500+02:00");
		expect(obs, "issued.highBoundary()", "2020-03-04T10:20:30.500+02:00");
		/* a dateTime without a zone could be in any: the extreme ones */
		expect(obs, "effective.highBoundary()", "2020-03-04T10:20:59.999-12:00");
		expect(obs, "effective.lowBoundary()", "2020-03-04T10:20:00.000+14:00");
		/* a dateTime element holding a day is still a dateTime (SQL on FHIR fn_boundary) */
		expect(obs, "dt.value.ofType(dateTime).lowBoundary()", "2010-10-10T00:00:00.000+14:00");
		expect(obs, "dt.value.ofType(dateTime).highBoundary()", "2010-10-10T23:59:59.999-12:00");
		expect(doc, "@2014-01-01T08.lowBoundary()", "2014-01-01T08:00:00.000+14:00");
		expect(doc, "@2014-01-01T.highBoundary()", "2014-01-01T23:59:59.999-12:00");
		/* a time of hours alone */
		expect(doc, "@T10.lowBoundary()", "10:00:00.000");
		expect(doc, "@T10.highBoundary()", "10:59:59.999");
		expect(doc, "@T10:30.highBoundary()", "10:30:59.999");
		expect(obs, "dt.value.ofType(time).lowBoundary()", "12:34:00.000");
		expect(doc, "@2000-02.highBoundary()", "2000-02-29");
		expect(doc, "@1900-02.highBoundary()", "1900-02-28");
		expect(doc, "@2020-11.highBoundary()", "2020-11-30");
		expect(doc, "@2020.lowBoundary() = @2020-01-01", "true");
		expect(doc, "1.587.lowBoundary()", "1.5865");
		expect(doc, "1.587.highBoundary()", "1.5875");
		expect(doc, "(-1.5).lowBoundary()", "-1.55");
		expect(doc, "7.lowBoundary()", "6.5");
		expect(doc, "7.highBoundary()", "7.5");
		expect(doc, "name.lowBoundary()", "");

		/* count, last, distinct, union */
		expect(obs, "component.count()", "4");
		expect(doc, "photo.count()", "0");
		expect(doc, "name.given.last()", "Maria");
		expect(doc, "photo.last()", "");
		expect(doc, "name.family.distinct()", "Lopez");
		expect(doc, "name.distinct().count()", "2");
		expect(doc, "name.given | name.family", "Cami|Camila|Maria|Lopez");
		expect(doc, "name.family | name.family", "Lopez");
		expect(doc, "(1 | 2 | 1).count()", "2");

		epic_json_free(obs);
	}

	/* exists(criteria) */
	expect(doc, "name.exists(use = 'official')", "true");
	expect(doc, "name.exists(use = 'nickname')", "false");
	expect(doc, "photo.exists(true)", "false");
	expect(doc, "telecom.exists(system = 'email' and value = 'a@b')", "true");

	/* computed index */
	expect(doc, "name[%idx].family", "Lopez");
	expect(doc, "name[%idx].given", "Camila|Maria");
	expect(doc, "name[(0 + 1)].use", "official");
	expect(doc, "name[%unset]", "");
	expect(doc, "name[%mrn_system]", "");

	/* date literals compare as dates */
	expect(doc, "@2020-01-01", "2020-01-01");
	expect(doc, "@2020-01-01T10:00:00Z", "2020-01-01T10:00:00Z");
	expect(doc, "@2020-01-01T10:00:00.123+05:30", "2020-01-01T10:00:00.123+05:30");
	expect(doc, "@T10:30", "10:30");
	expect(doc, "@2020-01-01 < @2020-02-01", "true");
	expect(doc, "@2020-01-01 >= @2020-02-01", "false");
	expect(doc, "@2020-01-01 = '2020-01-01'", "false");	/* a date is not a string */
	expect(doc, "@2020 < @2020-01", "");
	expect(doc, "@2019 < @2020-01", "true");
	expect(doc, "'abc' < 'abd'", "true");
	expect(doc, "'ab' < 'abc'", "true");

	/* comparison and arithmetic */
	expect(doc, "multipleBirthInteger > 1", "true");
	expect(doc, "multipleBirthInteger >= 2", "true");
	expect(doc, "multipleBirthInteger <= 1.5", "false");
	expect(doc, "multipleBirthInteger < 10", "true");
	expect(doc, "1 < 'a'", "");
	expect(doc, "true < false", "");
	expect(doc, "name.given < 'z'", "");
	expect(doc, "photo > 1", "");
	expect(doc, "1 + 2 * 3", "7");
	expect(doc, "(1 + 2) * 3", "9");
	expect(doc, "10 - 4 - 3", "3");
	expect(doc, "7 / 2", "3.5");
	expect(doc, "6 / 2", "3.0");
	expect(doc, "1 / 0", "");
	expect(doc, "0.1 + 0.2", "0.3");
	expect(doc, "1.5 * 2", "3.0");
	expect(doc, "-5", "-5");
	expect(doc, "-1.50", "-1.50");
	expect(doc, "- -5", "5");
	expect(doc, "--+-5", "-5");
	expect(doc, "-multipleBirthInteger + 3", "1");
	expect(doc, "2 * -3", "-6");
	expect(doc, "-'a'", "");
	expect(doc, "multipleBirthInteger * 2 = 4", "true");
	expect(doc, "1 + 2 = 3 and 2 > 1", "true");
	expect(doc, "1 + 1 = 3 or 3 > 2 * 2", "false");
	expect(doc, "id + '-' + name.first().family", "p1-Lopez");
	expect(doc, "id & photo & 'x'", "p1x");
	expect(doc, "id + photo", "");
	expect(doc, "id + 1", "");
	expect(doc, "1 = 1 = true", "true");
	expect(doc, "1 < 2 = true", "true");

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
	expect_parse_error("@@", 1, "date/time literal");
	expect_parse_error("id = @20", 6, "date/time literal");
	expect_parse_error("@2020-01-01x", 1, "date/time literal");
	expect_parse_error("@Tx", 1, "date/time literal");
	expect_parse_error("1 + ", 5, "unexpected end");
	expect_parse_error("1 * * 2", 5, "syntax error at \"*\"");
	expect_parse_error("id < ", 6, "unexpected end");
	expect_parse_error("name.ofType('x')", 13, "expected a name");
	expect_parse_error("name.ofType()", 6, "wrong number of arguments");
	expect_parse_error("name.extension()", 6, "wrong number of arguments");
	expect_parse_error("name.join(',', ',')", 6, "wrong number of arguments");
	expect_parse_error("name.count(1)", 6, "wrong number of arguments");
	expect_parse_error("name.exists(a, b)", 6, "wrong number of arguments");
	expect_parse_error("name[%idx", 10, "expected \"]\"");
	expect_parse_error("name[(1]", 8, "expected \")\"");
	expect_parse_error("name.ofType(FHIR.)", 18, "expected a name");

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

	/* new recursive constructs are bounded too */
	{
		static char big[600001];
		size_t		n = 0;

		/* long +, *, |, <, & chains: left-deep trees, refused past the height limit */
		const char *ops[] = {" + ", " * ", " | ", " < ", " & ", " - ", " = "};

		for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++)
		{
			char		what[80];

			n = 0;
			for (int i = 0; i < 100000; i++)
			{
				memcpy(big + n, "1", 1);
				memcpy(big + n + 1, ops[k], 3);
				n += 4;
			}
			big[n++] = '1';
			big[n] = '\0';
			snprintf(what, sizeof(what), "100,000 terms joined by \"%s\" give a parse error", ops[k]);
			check(strncmp(eval(doc, big), "<parse error: expression nested too deeply", 42) == 0, what);
		}
		/* 150 additions are fine */
		n = 0;
		for (int i = 0; i < 150; i++)
		{
			memcpy(big + n, "1 + ", 4);
			n += 4;
		}
		big[n++] = '1';
		big[n] = '\0';
		check(strcmp(eval(doc, big), "151") == 0, "150 additions evaluate");
		/* 100,000 unary minus signs fold into one (no recursion) */
		n = 0;
		for (int i = 0; i < 100001; i++)
			big[n++] = '-';
		big[n++] = '2';
		big[n] = '\0';
		check(strcmp(eval(doc, big), "-2") == 0, "100,001 unary minus signs fold");
		/* nested computed indexes nest parse_or: bounded by the depth limit */
		n = 0;
		for (int i = 0; i < 400; i++)
			n += (size_t) sprintf(big + n, "a[(");
		n += (size_t) sprintf(big + n, "0");
		for (int i = 0; i < 400; i++)
			n += (size_t) sprintf(big + n, ")]");
		big[n] = '\0';
		check(strncmp(eval(doc, big), "<parse error: expression nested too deeply", 42) == 0,
			  "400 nested computed indexes give a parse error");
		/* nested exists(criteria), extension(), join() are bounded as where() is */
		n = 0;
		for (int i = 0; i < 120; i++)
			n += (size_t) sprintf(big + n, "exists(extension(join(");
		n += (size_t) sprintf(big + n, "'x'");
		for (int i = 0; i < 360; i++)
			big[n++] = ')';
		big[n] = '\0';
		check(strncmp(eval(doc, big), "<parse error: expression nested too deeply", 42) == 0,
			  "deeply nested exists/extension/join give a parse error");
		/* a long join of a long collection */
		n = 0;
		n += (size_t) sprintf(big + n, "(");
		for (int i = 0; i < 100; i++)
			n += (size_t) sprintf(big + n, "%s'abcdefghij'", i ? " | " : "");
		n += (size_t) sprintf(big + n, ").join(',').count()");
		check(strcmp(eval(doc, big), "1") == 0, "join of a union gives one string");
	}

	/* iif, select, combine */
	expect(doc, "iif(active, 'yes', 'no')", "yes");
	expect(doc, "iif(deceasedBoolean, 'yes', 'no')", "no");
	expect(doc, "iif(deceasedBoolean, 'yes')", "");
	expect(doc, "iif(photo.exists(), photo, name.first().family)", "Lopez");
	expect(doc, "name.select(given.first())", "Cami|Camila");
	expect(doc, "name.select(given.combine(family).join(' '))", "Cami Lopez|Camila Maria Lopez");
	expect(doc, "name.given.combine(name.family)", "Cami|Camila|Maria|Lopez|Lopez");
	expect(doc, "name.given.combine(name.family).count()", "5");
	expect(doc, "(name.given | name.family).count()", "4");
	expect(doc, "%resource.id", "p1");
	expect(doc, "name.where(%resource.id = 'p1').count()", "2");
	expect_parse_error("iif(true, 1, 2, 3)", 16, "too many arguments");
	expect_parse_error("iif(true)", 1, "wrong number of arguments");

	/* typed constants; undefined constants are found before evaluation */
	{
		static const char *tn[] = {"flag", "n", "s"};
		static const char *tv[] = {"true", "1", "official"};
		static const EpicFpItemKind tk[] = {EPIC_FP_BOOL, EPIC_FP_NUMBER, EPIC_FP_STRING};
		static const EpicFpEnv tenv = {3, tn, tv, tk, NULL};
		EpicFpExpr *e = epic_fp_parse("active = %flag and name[%n].use = %s and %n + 1 = 2",
									  errbuf, sizeof(errbuf), NULL);
		EpicFpExpr *u = epic_fp_parse("name.where(use = %s or use = %nope).given",
									  errbuf, sizeof(errbuf), NULL);
		EpicFpResult res = {0};

		check(e && epic_fp_eval(e, &epic_jansson_ops, doc, &tenv, &res, errbuf, sizeof(errbuf)) == 0 &&
			  res.count == 1 && res.items[0].kind == EPIC_FP_BOOL && res.items[0].boolval,
			  "a boolean constant compares with a JSON boolean, a number constant indexes and adds");
		check(e && epic_fp_undefined_constant(e, &tenv) == NULL, "all constants defined");
		check(u && epic_fp_undefined_constant(u, &tenv) != NULL &&
			  strcmp(epic_fp_undefined_constant(u, &tenv), "nope") == 0,
			  "the undefined constant %nope is named");
		epic_fp_result_free(&res);
		epic_fp_free(e);
		epic_fp_free(u);
	}

	/* \uXXXX escapes in string literals are code points, in UTF-8 */
	expect(doc, "'a\\u0041'", "aA");
	expect(doc, "'caf\\u00e9'", "caf\xc3\xa9");
	expect(doc, "'\\u20AC'", "\xe2\x82\xac");
	expect(doc, "'\\uD83D\\uDE00'", "\xf0\x9f\x98\x80");
	expect(doc, "'it\\'s'", "it's");
	expect_parse_error("'x\\u12'", 3, "invalid \\u escape");
	expect_parse_error("'\\uDE00'", 2, "invalid \\u escape");
	expect_parse_error("'\\u0000'", 2, "invalid \\u escape");

	/* %rowIndex: 0 unless the caller gives the row's index */
	expect(doc, "%rowIndex", "0");
	{
		EpicFpExpr *r = epic_fp_parse("%rowIndex * 2", errbuf, sizeof(errbuf), NULL);
		EpicFpResult res = {0};

		check(r && epic_fp_eval_row(r, &epic_jansson_ops, doc, doc, &env, 7, &res,
									errbuf, sizeof(errbuf)) == 0 &&
			  res.count == 1 && res.items[0].kind == EPIC_FP_NUMBER &&
			  res.items[0].len == 2 && memcmp(res.items[0].str, "14", 2) == 0,
			  "epic_fp_eval_row: %rowIndex is the given index (7 * 2 = 14)");
		check(r && epic_fp_eval_row(r, &epic_jansson_ops, doc, NULL, &env, 3, &res,
									errbuf, sizeof(errbuf)) == 0 && res.count == 1,
			  "%rowIndex is defined on an empty focus");
		check(r && epic_fp_undefined_constant(r, &env) == NULL, "%rowIndex is always defined");
		check(r && epic_fp_uses_constant(r, "rowIndex") && !epic_fp_uses_constant(r, "resource"),
			  "epic_fp_uses_constant finds %rowIndex, and only it");
		epic_fp_result_free(&res);
		epic_fp_free(r);
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

	test_issue14();

	epic_json_free(doc);
	return unit_summary();
}
