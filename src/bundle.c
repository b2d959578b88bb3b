/*-------------------------------------------------------------------------
 *
 * bundle.c
 *		Search Bundles (one page of results) and OperationOutcomes.
 *
 * A page is parsed once; its matched resources become rows, its next link
 * is returned only if it is a proper absolute URL, and entries with
 * search.mode = "outcome" are never rows: their issues are reported once
 * per scan (deduplicated), at WARNING when they mean that data was withheld
 * or failed and at DEBUG1 when they are informational.
 *
 * The parsed document is malloc'd by jansson; the EpicPage is palloc'd and a
 * memory context reset callback frees the document, so error paths never
 * leak it.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <jansson.h>

#include "utils/memutils.h"

struct EpicPage
{
	json_t	   *root;
	json_t	  **resources;		/* matched resources, in page order */
	int			nresources;
	json_t	  **outcomes;		/* OperationOutcome resources */
	int			noutcomes;
	const char *next;			/* next link URL, or NULL */
	MemoryContextCallback cb;
};

static void
page_free_cb(void *arg)
{
	EpicPage   *page = arg;

	if (page->root)
		json_decref(page->root);
	page->root = NULL;
}

static const char *
jstr(const json_t *obj, const char *key)
{
	json_t	   *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/*
 * Parse one search page.  Raises an ERROR for anything that is not a
 * searchset Bundle of the expected resource type.  The result lives in the
 * current memory context; resetting or deleting it frees the document.
 */
EpicPage *
epic_page_parse(const char *body, size_t len, const char *resource, const char *display)
{
	EpicPage   *page = palloc0(sizeof(EpicPage));
	char		errbuf[200];
	json_t	   *entries;
	json_t	   *links;
	const char *rt;
	const char *type;
	size_t		n;

	page->root = epic_json_parse(body, len, errbuf, sizeof(errbuf));
	page->cb.func = page_free_cb;
	page->cb.arg = page;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &page->cb);

	if (page->root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned invalid JSON"),
				 errdetail("%s.", errbuf),
				 errcontext("FHIR request: GET %s", display)));
	if (!json_is_object(page->root))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned JSON that is not a Bundle"),
				 errcontext("FHIR request: GET %s", display)));
	rt = jstr(page->root, "resourceType");
	if (rt == NULL || strcmp(rt, "Bundle") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned a %s instead of a search Bundle",
						rt ? rt : "JSON object without resourceType"),
				 errcontext("FHIR request: GET %s", display)));
	type = jstr(page->root, "type");
	if (type == NULL || strcmp(type, "searchset") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR server returned a Bundle of type \"%s\" instead of \"searchset\"",
						type ? type : "(none)"),
				 errcontext("FHIR request: GET %s", display)));

	entries = json_object_get(page->root, "entry");
	if (entries != NULL && !json_is_array(entries))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_DATA_TYPE),
				 errmsg("FHIR Bundle has an \"entry\" that is not an array"),
				 errcontext("FHIR request: GET %s", display)));
	n = json_array_size(entries);
	page->resources = palloc(sizeof(json_t *) * Max(n, 1));
	page->outcomes = palloc(sizeof(json_t *) * Max(n, 1));
	for (size_t i = 0; i < n; i++)
	{
		json_t	   *entry = json_array_get(entries, i);
		json_t	   *res = json_object_get(entry, "resource");
		json_t	   *search = json_object_get(entry, "search");
		const char *mode = json_is_object(search) ? jstr(search, "mode") : NULL;
		const char *ert;

		if (!json_is_object(res))
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

	links = json_object_get(page->root, "link");
	for (size_t i = 0; i < json_array_size(links); i++)
	{
		json_t	   *link = json_array_get(links, i);
		const char *rel = jstr(link, "relation");

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
issue_text(const json_t *issue)
{
	const char *s = jstr(issue, "diagnostics");
	json_t	   *details = json_object_get(issue, "details");

	if (s == NULL && json_is_object(details))
	{
		s = jstr(details, "text");
		if (s == NULL)
			s = jstr(json_array_get(json_object_get(details, "coding"), 0), "display");
	}
	return s;
}

static const char *
issue_coding_code(const json_t *issue)
{
	json_t	   *details = json_object_get(issue, "details");

	return jstr(json_array_get(json_object_get(details, "coding"), 0), "code");
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

/*
 * Report the page's outcome issues that this scan has not reported yet.
 * New keys are added to seen->keys in seen->cxt, which must live as long
 * as the scan (rescans included, so a join reports an issue once, not once
 * per outer row).
 */
void
epic_page_report_outcomes(EpicPage *page, EpicOutcomeSeen *seen)
{
	for (int i = 0; i < page->noutcomes; i++)
	{
		json_t	   *issues = json_object_get(page->outcomes[i], "issue");

		for (size_t j = 0; j < json_array_size(issues); j++)
		{
			json_t	   *issue = json_array_get(issues, j);
			const char *severity = jstr(issue, "severity");
			const char *code = jstr(issue, "code");
			const char *ccode = issue_coding_code(issue);
			const char *text = issue_text(issue);
			char	   *key;
			ListCell   *lc;
			bool		dup = false;
			MemoryContext old;

			key = psprintf("%s|%s|%s|%s", severity ? severity : "", code ? code : "",
						   ccode ? ccode : "", text ? text : "");
			foreach(lc, seen->keys)
				if (strcmp((char *) lfirst(lc), key) == 0)
					dup = true;
			if (dup)
				continue;
			old = MemoryContextSwitchTo(seen->cxt);
			seen->keys = lappend(seen->keys, pstrdup(key));
			MemoryContextSwitchTo(old);

			ereport(issue_is_serious(severity, code) ? WARNING : DEBUG1,
					(errcode(ERRCODE_WARNING),
					 errmsg("FHIR server: %s", text ? text : "(issue without text)"),
					 errdetail("OperationOutcome issue: severity %s, code %s%s%s.",
							   severity ? severity : "(none)", code ? code : "(none)",
							   ccode ? ", detail code " : "", ccode ? ccode : "")));
		}
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
	json_t	   *root;
	json_t	   *issues;
	StringInfoData buf;
	const char *rt;

	if (len == 0)
		return NULL;
	root = epic_json_parse(body, len, NULL, 0);
	if (root == NULL)
		return NULL;
	rt = jstr(root, "resourceType");
	if (rt == NULL || strcmp(rt, "OperationOutcome") != 0)
	{
		json_decref(root);
		return NULL;
	}
	initStringInfo(&buf);
	issues = json_object_get(root, "issue");
	for (size_t j = 0; j < json_array_size(issues); j++)
	{
		json_t	   *issue = json_array_get(issues, j);
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
	json_decref(root);
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
