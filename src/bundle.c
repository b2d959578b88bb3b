/*-------------------------------------------------------------------------
 *
 * bundle.c
 *		Search Bundles (one page of results) and OperationOutcomes.
 *
 * A page is parsed once; its matched resources become rows, its next link
 * is returned only if it is a proper absolute URL, and entries with
 * search.mode = "outcome" are never rows: their issues are reported once
 * per scan (deduplicated), at WARNING when they mean that data was withheld
 * or failed and at DEBUG1 when they are informational.  A search parameter
 * the server ignored (a "not-supported" issue naming it, or its absence from
 * the self link, which FHIR says lists the parameters the server used) is
 * one WARNING per scan.
 *
 * Pages are parsed with json_page.c (fast, arena-allocated, keeps the
 * server's text of every value); the document is malloc'd and a memory
 * context reset callback frees it with the palloc'd EpicPage, so error
 * paths never leak it.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include "common/hashfn.h"
#include "json_page.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#define J (&epic_jdoc_ops)

struct EpicPage
{
	EpicJdoc   *doc;
	const void **resources;		/* matched resources, in page order */
	int			nresources;
	const void **outcomes;		/* OperationOutcome resources */
	int			noutcomes;
	const char *next;			/* next link URL, or NULL */
	const char *self;			/* self link URL, or NULL */
	MemoryContextCallback cb;
};

const EpicJsonOps *const epic_page_ops = &epic_jdoc_ops;

static void
page_free_cb(void *arg)
{
	EpicPage   *page = arg;

	epic_jdoc_free(page->doc);
	page->doc = NULL;
}

/*
 * Parse len bytes of text into page's document (freed with the current
 * memory context); its root.  Invalid JSON raises message.
 */
static const void *
page_doc(EpicPage *page, const char *text, size_t len, const char *message,
		 const char *display)
{
	char		errbuf[200];

	errbuf[0] = '\0';
	page->doc = epic_jdoc_parse(text, len, errbuf, sizeof(errbuf));
	page->cb.func = page_free_cb;
	page->cb.arg = page;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &page->cb);
	if (page->doc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("%s", message),
				 errdetail("%s.", errbuf),
				 errcontext("FHIR request: GET %s", display)));
	return epic_jdoc_root(page->doc);
}

/* A JSON string's text (palloc'd copy), or NULL if v is not a string. */
static const char *
jstr_value(const void *v)
{
	char		buf[64];
	size_t		len;
	const char *s;

	if (v == NULL || J->kind(v) != EPIC_JSON_STRING)
		return NULL;
	s = J->scalar(v, buf, sizeof(buf), &len);
	return s ? pnstrdup(s, len) : NULL;
}

/* A string member of obj (palloc'd copy), or NULL. */
static const char *
jstr(const void *obj, const char *key)
{
	return jstr_value(obj ? J->member(obj, key) : NULL);
}

static bool
is_kind(const void *node, EpicJsonKind k)
{
	return node != NULL && J->kind(node) == k;
}

/*
 * A page whose document is the JSON text body (an error if it is not JSON),
 * freed with the current memory context.
 */
static EpicPage *
page_parse_json(const char *body, size_t len, const char *display)
{
	EpicPage   *page = palloc0(sizeof(EpicPage));

	(void) page_doc(page, body, len, "FHIR server returned invalid JSON", display);
	return page;
}

/*
 * Parse one search page.  Raises an ERROR for anything that is not a
 * searchset Bundle of the expected resource type.  The result lives in the
 * current memory context; resetting or deleting it frees the document.
 */
EpicPage *
epic_page_parse(const char *body, size_t len, const char *resource, const char *display)
{
	EpicPage   *page = page_parse_json(body, len, display);
	const void *root;
	const void *entries;
	const void *links;
	const char *rt;
	const char *type;
	size_t		n;

	root = epic_jdoc_root(page->doc);
	if (!is_kind(root, EPIC_JSON_OBJECT))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned JSON that is not a Bundle"),
				 errcontext("FHIR request: GET %s", display)));
	rt = jstr(root, "resourceType");
	if (rt == NULL || strcmp(rt, "Bundle") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned a %s instead of a search Bundle",
						rt ? rt : "JSON object without resourceType"),
				 errcontext("FHIR request: GET %s", display)));
	type = jstr(root, "type");
	if (type == NULL || strcmp(type, "searchset") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned a Bundle of type \"%s\" instead of \"searchset\"",
						type ? type : "(none)"),
				 errcontext("FHIR request: GET %s", display)));

	entries = J->member(root, "entry");
	if (entries != NULL && !is_kind(entries, EPIC_JSON_ARRAY))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR Bundle has an \"entry\" that is not an array"),
				 errcontext("FHIR request: GET %s", display)));
	n = entries ? J->size(entries) : 0;
	page->resources = palloc(sizeof(void *) * Max(n, 1));
	page->outcomes = palloc(sizeof(void *) * Max(n, 1));
	for (size_t i = 0; i < n; i++)
	{
		const void *entry = J->item(entries, i);
		const void *res = J->member(entry, "resource");
		const void *search = J->member(entry, "search");
		const char *mode = is_kind(search, EPIC_JSON_OBJECT) ? jstr(search, "mode") : NULL;
		const char *ert;

		if (!is_kind(res, EPIC_JSON_OBJECT))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("FHIR Bundle entry %zu has no resource", i + 1),
					 errcontext("FHIR request: GET %s", display)));
		ert = jstr(res, "resourceType");
		if (mode != NULL && strcmp(mode, "outcome") == 0)
		{
			if (ert && strcmp(ert, "OperationOutcome") == 0)
				page->outcomes[page->noutcomes++] = res;
			continue;
		}
		if (mode != NULL && strcmp(mode, "include") == 0)
			continue;
		if (ert == NULL || strcmp(ert, resource) != 0)
		{
			/* an untagged OperationOutcome is still an outcome, not a row */
			if (ert && strcmp(ert, "OperationOutcome") == 0 && mode == NULL)
			{
				page->outcomes[page->noutcomes++] = res;
				continue;
			}
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("FHIR Bundle entry %zu is a %s, but the table reads %s",
							i + 1, ert ? ert : "resource without resourceType", resource),
					 errcontext("FHIR request: GET %s", display)));
		}
		page->resources[page->nresources++] = res;
	}

	links = J->member(root, "link");
	for (size_t i = 0; links && i < J->size(links); i++)
	{
		const void *link = J->item(links, i);
		const char *rel = jstr(link, "relation");

		if (rel && strcmp(rel, "self") == 0)
			page->self = jstr(link, "url");
		if (rel && strcmp(rel, "next") == 0)
		{
			page->next = jstr(link, "url");
			if (page->next == NULL || page->next[0] == '\0')
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
						 errmsg("FHIR Bundle has a next link without a URL"),
						 errcontext("FHIR request: GET %s", display)));
		}
	}
	return page;
}

/*
 * The answer of a read (GET Resource/id) as a page of that one resource,
 * which must be of type resource and have the id asked for.  Allocated in
 * the current memory context, like epic_page_parse.
 */
EpicPage *
epic_page_parse_read(const char *body, size_t len, const char *resource, const char *id,
					 const char *display)
{
	EpicPage   *page = page_parse_json(body, len, display);
	const void *root;
	const char *rt;
	const char *rid;

	root = epic_jdoc_root(page->doc);
	rt = is_kind(root, EPIC_JSON_OBJECT) ? jstr(root, "resourceType") : NULL;
	if (rt == NULL || strcmp(rt, resource) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned %s%s instead of the %s read",
						rt ? "a " : "", rt ? rt : "JSON without resourceType", resource),
				 errcontext("FHIR request: GET %s", display)));
	rid = jstr(root, "id");
	if (rid == NULL || strcmp(rid, id) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned %s \"%s\" for a read of %s \"%s\"",
						resource, rid ? rid : "(no id)", resource, id),
				 errcontext("FHIR request: GET %s", display)));
	page->resources = palloc(sizeof(void *));
	page->outcomes = palloc(sizeof(void *));
	page->resources[page->nresources++] = root;
	return page;
}

int
epic_page_count(EpicPage *page)
{
	return page->nresources;
}

const void *
epic_page_resource(EpicPage *page, int i)
{
	return page->resources[i];
}

const char *
epic_page_next(EpicPage *page)
{
	return page->next;
}

/* Text of one issue: diagnostics, else details.text, else first coding display. */
static const char *
issue_text(const void *issue)
{
	const char *s = jstr(issue, "diagnostics");
	const void *details = J->member(issue, "details");

	if (s == NULL && is_kind(details, EPIC_JSON_OBJECT))
	{
		s = jstr(details, "text");
		if (s == NULL)
			s = jstr(J->item(J->member(details, "coding"), 0), "display");
	}
	return s;
}

static const char *
issue_coding_code(const void *issue)
{
	const void *details = J->member(issue, "details");

	return jstr(J->item(J->member(details, "coding"), 0), "code");
}

/*
 * Does an issue mean that data was withheld or that something failed?  Such
 * issues are WARNINGs; the rest ("no results", "may not contain the entire
 * record") are informational.
 */
static bool
issue_is_serious(const char *severity, const char *code)
{
	static const char *const serious_codes[] = {
		"suppressed", "forbidden", "security", "login", "unknown", "expired",
		"incomplete", "too-costly", "throttled", "exception", "timeout",
		"transient", "too-long", "lock-error", "no-store", NULL
	};

	if (severity && (strcmp(severity, "fatal") == 0 || strcmp(severity, "error") == 0))
		return true;
	if (code)
		for (int i = 0; serious_codes[i]; i++)
			if (strcmp(code, serious_codes[i]) == 0)
				return true;
	return false;
}

/* names with name appended, unless it is there already */
static List *
add_name(List *names, const char *name)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp((char *) lfirst(lc), name) == 0)
			return names;
	return lappend(names, pstrdup(name));
}

/*
 * The parameter names of a request's query string ("Patient?a=1&b:exact=2"),
 * without _count and percent-decoded; palloc'd.
 */
static List *
query_names(const char *url)
{
	const char *q = strchr(url, '?');
	List	   *out = NIL;

	for (const char *p = q ? q + 1 : NULL; p && *p;)
	{
		size_t		len = strcspn(p, "=&");
		StringInfoData name;

		initStringInfo(&name);
		for (size_t i = 0; i < len; i++)
		{
			if (p[i] == '%' && i + 2 < len && isxdigit((unsigned char) p[i + 1]) &&
				isxdigit((unsigned char) p[i + 2]))
			{
				char		hex[3] = {p[i + 1], p[i + 2], '\0'};

				appendStringInfoChar(&name, (char) strtol(hex, NULL, 16));
				i += 2;
			}
			else
				appendStringInfoChar(&name, p[i]);
		}
		if (name.len > 0 && strcmp(name.data, "_count") != 0)
			out = add_name(out, name.data);
		p = strchr(p, '&');
		if (p)
			p++;
	}
	return out;
}

/* Is name (possibly "name:modifier") in used, with or without its modifier? */
static bool
name_listed(List *used, const char *name)
{
	size_t		base = strcspn(name, ":");
	ListCell   *lc;

	foreach(lc, used)
	{
		const char *u = lfirst(lc);

		if (strcmp(u, name) == 0 ||
			(strncmp(u, name, base) == 0 && (u[base] == '\0' || u[base] == ':')))
			return true;
	}
	return false;
}

/* Does text name the parameter base (len bytes) as a whole word? */
static bool
text_names(const char *text, const char *base, size_t len)
{
	for (const char *p = text ? strstr(text, base) : NULL; p; p = strstr(p + 1, base))
	{
		bool		start = (p == text || !(isalnum((unsigned char) p[-1]) || p[-1] == '-' || p[-1] == '_'));
		char		after = p[len];

		if (start && !(isalnum((unsigned char) after) || after == '-' || after == '_'))
			return true;
	}
	return false;
}

/*
 * The parameters of sent that a "not-supported" issue names (in its text,
 * expression or location), added to ignored.
 */
static List *
names_mentioned(List *sent, const void *issue, List *ignored)
{
	StringInfoData all;
	static const char *const lists[] = {"expression", "location"};
	ListCell   *lc;

	initStringInfo(&all);
	appendStringInfo(&all, "%s\n", issue_text(issue) ? issue_text(issue) : "");
	for (int k = 0; k < 2; k++)
	{
		const void *arr = J->member(issue, lists[k]);

		for (size_t i = 0; is_kind(arr, EPIC_JSON_ARRAY) && i < J->size(arr); i++)
		{
			const char *str = jstr_value(J->item(arr, i));

			if (str)
				appendStringInfo(&all, "%s\n", str);
		}
	}
	foreach(lc, sent)
	{
		const char *name = lfirst(lc);
		char	   *base = pnstrdup(name, strcspn(name, ":"));

		if (text_names(all.data, base, strlen(base)))
			ignored = add_name(ignored, name);
	}
	return ignored;
}

/*
 * Report the page's outcome issues that this scan has not reported yet.
 * New keys are added to seen->keys in seen->cxt, which must live as long
 * as the scan (rescans included, so a join reports an issue once, not once
 * per outer row).
 */
void
epic_page_report_outcomes(EpicPage *page, EpicOutcomeSeen *seen, const char *request)
{
	List	   *sent = request ? query_names(request) : NIL;
	List	   *ignored = NIL;

	for (int i = 0; i < page->noutcomes; i++)
	{
		const void *issues = J->member(page->outcomes[i], "issue");

		for (size_t j = 0; j < J->size(issues); j++)
		{
			const void *issue = J->item(issues, j);
			const char *severity = jstr(issue, "severity");
			const char *code = jstr(issue, "code");
			const char *ccode = issue_coding_code(issue);
			const char *text = issue_text(issue);
			char	   *key;
			uint64		hkey[2];
			bool		dup = false;

			if (code && strcmp(code, "not-supported") == 0)
				ignored = names_mentioned(sent, issue, ignored);
			/* one report per distinct issue and scan: a hash set, not a list */
			key = psprintf("%s|%s|%s|%s", severity ? severity : "", code ? code : "",
						   ccode ? ccode : "", text ? text : "");
			hkey[0] = hash_bytes_extended((const unsigned char *) key, (int) strlen(key), 0);
			hkey[1] = hash_bytes_extended((const unsigned char *) key, (int) strlen(key),
										  UINT64CONST(0x9e3779b97f4a7c15));
			pfree(key);
			if (seen->keys == NULL)
			{
				HASHCTL		ctl;

				ctl.keysize = sizeof(hkey);
				ctl.entrysize = sizeof(hkey);
				ctl.hcxt = seen->cxt;
				seen->keys = hash_create("epic_fdw outcome issues", 16, &ctl,
										 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			}
			hash_search(seen->keys, hkey, HASH_ENTER, &dup);
			if (dup)
				continue;

			ereport(issue_is_serious(severity, code) ? WARNING : DEBUG1,
					(errcode(ERRCODE_WARNING),
					 errmsg("FHIR server: %s", text ? text : "(issue without text)"),
					 errdetail("OperationOutcome issue: severity %s, code %s%s%s.",
							   severity ? severity : "(none)", code ? code : "(none)",
							   ccode ? ", detail code " : "", ccode ? ccode : "")));
		}
	}

	/* the self link lists the parameters the server used */
	if (sent != NIL && page->self != NULL && strchr(page->self, '?') != NULL)
	{
		List	   *used = query_names(page->self);
		ListCell   *lc;

		foreach(lc, sent)
			if (!name_listed(used, lfirst(lc)))
				ignored = add_name(ignored, lfirst(lc));
	}
	if (ignored != NIL && !seen->ignored_warned)
	{
		StringInfoData names;
		ListCell   *lc;

		seen->ignored_warned = true;
		initStringInfo(&names);
		foreach(lc, ignored)
			appendStringInfo(&names, "%s\"%s\"", names.len ? ", " : "", (char *) lfirst(lc));
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("FHIR server ignored search parameter%s %s",
						list_length(ignored) > 1 ? "s" : "", names.data),
				 errdetail("The server searched without %s, so more resources were read than the conditions select; "
						   "every condition is still checked locally, so the rows are correct.",
						   list_length(ignored) > 1 ? "them" : "it"),
				 errhint("Check which search parameters the server supports (its CapabilityStatement)."),
				 errcontext("FHIR request: GET %s", request)));
	}
}

void
epic_page_free(EpicPage *page)
{
	page_free_cb(page);
}

/*
 * Summarise an OperationOutcome body (error responses): each issue's text,
 * separated by "; ".  Returns palloc'd text or NULL if body is not one.
 */
char *
epic_outcome_text(const char *body, size_t len)
{
	EpicJdoc   *doc;
	const void *root;
	const void *issues;
	StringInfoData buf;
	const char *rt;

	if (len == 0)
		return NULL;
	doc = epic_jdoc_parse(body, len, NULL, 0);
	if (doc == NULL)
		return NULL;
	root = epic_jdoc_root(doc);
	rt = jstr(root, "resourceType");
	if (rt == NULL || strcmp(rt, "OperationOutcome") != 0)
	{
		epic_jdoc_free(doc);
		return NULL;
	}
	/* the document is malloc'd: freed on an error (out of memory) too */
	PG_TRY();
	{
		initStringInfo(&buf);
		issues = J->member(root, "issue");
		for (size_t j = 0; j < J->size(issues); j++)
		{
			const void *issue = J->item(issues, j);
			const char *text = issue_text(issue);
			const char *ccode = issue_coding_code(issue);

			if (text == NULL)
				continue;
			if (buf.len)
				appendStringInfoString(&buf, "; ");
			appendStringInfoString(&buf, text);
			if (ccode)
				appendStringInfo(&buf, " (code %s)", ccode);
		}
	}
	PG_FINALLY();
	{
		epic_jdoc_free(doc);
	}
	PG_END_TRY();
	if (buf.len == 0)
	{
		pfree(buf.data);
		return NULL;
	}
	return buf.data;
}

/* Value of a parameter in a WWW-Authenticate challenge, palloc'd, or NULL. */
static char *
challenge_param(const char *header, const char *name)
{
	size_t		nl = strlen(name);

	for (const char *p = header; (p = strstr(p, name)) != NULL; p += nl)
	{
		const char *v;
		StringInfoData buf;

		if (p > header && p[-1] != ' ' && p[-1] != ',')
			continue;
		v = p + nl;
		while (*v == ' ')
			v++;
		if (*v != '=')
			continue;
		v++;
		while (*v == ' ')
			v++;
		initStringInfo(&buf);
		if (*v == '"')
		{
			for (v++; *v && *v != '"'; v++)
			{
				if (*v == '\\' && v[1])
					v++;
				appendStringInfoChar(&buf, *v);
			}
		}
		else
			while (*v && *v != ',' && *v != ' ')
				appendStringInfoChar(&buf, *v++);
		return buf.data;
	}
	return NULL;
}

/*
 * Raise the ERROR for a failed FHIR response: SQLSTATE from the status,
 * the OperationOutcome or WWW-Authenticate explanation in the detail, the
 * request in the context.
 */
void
epic_raise_http_error(const EpicHttpResponse *resp, const char *display, const char *what)
{
	char	   *detail = epic_outcome_text(resp->body.data, resp->body.len);
	const char *hint = NULL;

	if (detail == NULL && resp->www_authenticate)
	{
		char	   *err = challenge_param(resp->www_authenticate, "error");
		char	   *desc = challenge_param(resp->www_authenticate, "error_description");

		if (err || desc)
			detail = psprintf("%s%s%s", err ? err : "", err && desc ? ": " : "", desc ? desc : "");
	}
	if (detail == NULL && resp->body.len > 0)
		detail = psprintf("The response is not a FHIR OperationOutcome (Content-Type: %s).",
						  resp->content_type ? resp->content_type : "none");
	if (detail == NULL)
		detail = pstrdup("The response has no body.");

	switch (resp->status)
	{
		case 400:
			hint = "The FHIR server rejected the search; check the table's \"search\" option and the WHERE conditions.";
			break;
		case 401:
			hint = "The server rejected a freshly issued access token; check the client's registration and scopes.";
			break;
		case 403:
			hint = "The client is not authorized for this resource or record; check the scopes granted to the app.";
			break;
		case 404:
			hint = "Check the server option \"fhir_url\" and the table option \"resource\".";
			break;
	}
	ereport(ERROR,
			(errcode(epic_http_status_errcode(resp->status)),
			 errmsg("%s failed: HTTP status %ld", what, resp->status),
			 errdetail("%s", detail),
			 hint ? errhint("%s", hint) : 0,
			 errcontext("FHIR request: GET %s", display)));
}

/*
 * A "page" of Bulk Data NDJSON (bulk.c): len bytes of whole lines (the last
 * one's '\n' may be missing), one resource a line; blank lines are skipped,
 * "\r\n" is accepted.  The lines are parsed in one pass as the JSON array
 * "[line,line,...]", which must then have exactly as many items as lines
 * (so a line holding "{...},{...}" is an error, not two resources).  Every
 * item must be a resource of type resource (NULL: any type).  The result
 * lives in the current memory context, as epic_page_parse()'s does.
 */
EpicPage *
epic_page_from_ndjson(const char *text, size_t len, const char *resource, const char *display)
{
	EpicPage   *page = palloc0(sizeof(EpicPage));
	char	   *arr = palloc(len + 3);
	size_t		alen = 0;
	int			nlines = 0;
	const void *root;
	size_t		n;

	arr[alen++] = '[';
	for (size_t pos = 0; pos < len;)
	{
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t		end = nl ? (size_t) (nl - text) : len;
		size_t		e = end;
		size_t		b = pos;

		while (e > b && (text[e - 1] == '\r' || text[e - 1] == ' ' || text[e - 1] == '\t'))
			e--;
		while (b < e && (text[b] == ' ' || text[b] == '\t'))
			b++;
		if (e > b)
		{
			if (nlines++ > 0)
				arr[alen++] = ',';
			memcpy(arr + alen, text + b, e - b);
			alen += e - b;
		}
		pos = end + 1;
	}
	arr[alen++] = ']';
	root = page_doc(page, arr, alen, "Bulk Data file has a line that is not valid JSON", display);
	pfree(arr);
	n = J->size(root);
	if ((int) n != nlines)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("Bulk Data file has a line that is not one JSON object"),
				 errcontext("FHIR request: GET %s", display)));
	page->resources = palloc(sizeof(void *) * Max(n, 1));
	for (size_t i = 0; i < n; i++)
	{
		const void *res = J->item(root, i);
		const char *rt = is_kind(res, EPIC_JSON_OBJECT) ? jstr(res, "resourceType") : NULL;

		if (rt == NULL || (resource != NULL && strcmp(rt, resource) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
					 errmsg("Bulk Data file has a %s where a %s was expected",
							rt ? rt : "line without resourceType", resource ? resource : "resource"),
					 errcontext("FHIR request: GET %s", display)));
		page->resources[page->nresources++] = res;
	}
	return page;
}
