/*-------------------------------------------------------------------------
 *
 * http.c
 *		HTTPS transfers with libcurl: the only file that includes curl.h.
 *
 * One easy handle per cached connection (connection.c owns it), so TLS
 * sessions and keep-alive connections are reused across pages and queries.
 * HTTPS only, peer and host name always verified, redirects never followed.
 * Cancellation follows the libcurl-safe pattern: the progress callback only
 * reports that an interrupt is pending; after curl returns,
 * CHECK_FOR_INTERRUPTS() raises the real error.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "utils/memutils.h"

struct EpicHttpClient
{
	CURL	   *curl;
};

static bool curl_ready = false;

static void
ensure_curl_global(void)
{
	if (!curl_ready)
	{
		if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
					 errmsg("could not initialize libcurl")));
		curl_ready = true;
	}
}

/*
 * Create a client (malloc'd; destroy with epic_http_client_destroy).  The
 * caller keeps it in a long-lived cache.
 */
EpicHttpClient *
epic_http_client_create(void)
{
	EpicHttpClient *c;

	ensure_curl_global();
	c = malloc(sizeof(EpicHttpClient));
	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	c->curl = curl_easy_init();
	if (c->curl == NULL)
	{
		free(c);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	}
	return c;
}

void
epic_http_client_destroy(EpicHttpClient *client)
{
	if (client == NULL)
		return;
	if (client->curl)
		curl_easy_cleanup(client->curl);
	free(client);
}

/* State shared with the callbacks of one transfer. */
typedef struct Transfer
{
	EpicHttpResponse *resp;
	size_t		limit;			/* max_response_size */
	bool		too_large;
	char	   *content_type;
	char	   *www_authenticate;
	char	   *retry_after;
} Transfer;

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Transfer   *t = userdata;
	size_t		n = size * nmemb;

	if ((size_t) t->resp->body.len + n > t->limit)
	{
		t->too_large = true;
		return 0;				/* aborts the transfer */
	}
	appendBinaryStringInfo(&t->resp->body, ptr, (int) n);
	return n;
}

/* Copy the value of "Name: value\r\n" if the header is name. */
static bool
header_value(const char *line, size_t len, const char *name, char **out)
{
	size_t		nl = strlen(name);
	const char *v,
			   *end;

	if (len <= nl || pg_strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return false;
	v = line + nl + 1;
	end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	if (*out)
		pfree(*out);
	*out = pnstrdup(v, end - v);
	return true;
}

static size_t
header_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	Transfer   *t = userdata;
	size_t		n = size * nitems;

	/* a new status line (e.g. after 100 Continue) starts a new header set */
	if (n > 5 && strncmp(buffer, "HTTP/", 5) == 0)
	{
		if (t->content_type)
			pfree(t->content_type);
		if (t->www_authenticate)
			pfree(t->www_authenticate);
		if (t->retry_after)
			pfree(t->retry_after);
		t->content_type = t->www_authenticate = t->retry_after = NULL;
		return n;
	}
	if (!header_value(buffer, n, "Content-Type", &t->content_type) &&
		!header_value(buffer, n, "WWW-Authenticate", &t->www_authenticate))
		(void) header_value(buffer, n, "Retry-After", &t->retry_after);
	return n;
}

static int
progress_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	/* never ereport here: just tell curl to stop if an interrupt is due */
	return (InterruptPending && (QueryCancelPending || ProcDiePending)) ? 1 : 0;
}

/*
 * Map an HTTP status to an SQLSTATE: the one place that decides it.
 */
int
epic_http_status_errcode(long status)
{
	switch (status)
	{
		case 401:
			return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		case 403:
			return ERRCODE_INSUFFICIENT_PRIVILEGE;
		case 404:
		case 410:
			return ERRCODE_FDW_TABLE_NOT_FOUND;
		case 400:
		case 422:
			return ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE;
		case 408:
		case 429:
		case 502:
		case 503:
		case 504:
			return ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;
		default:
			return ERRCODE_FDW_ERROR;
	}
}

/*
 * Append "Name: value" for each member of a headers option (a JSON object,
 * checked by the validator).  Values may be secrets (user mapping headers):
 * free_headers() wipes them.
 */
static struct curl_slist *
append_json_headers(struct curl_slist *headers, const char *json)
{
	void	   *root = epic_json_parse(json, strlen(json), NULL, 0);
	char	   *names = root ? epic_json_object_keys(root) : NULL;

	for (char *name = names; name && *name; name += strlen(name) + 1)
	{
		const void *v = epic_jansson_ops.member(root, name);
		char		buf[64];
		size_t		len;
		const char *val = v ? epic_jansson_ops.scalar(v, buf, sizeof(buf), &len) : NULL;
		char	   *line;

		if (val == NULL)
			continue;
		line = psprintf("%s: %.*s", name, (int) len, val);
		headers = curl_slist_append(headers, line);
		explicit_bzero(line, strlen(line));
		pfree(line);
	}
	free(names);
	if (root)
		epic_json_free(root);
	return headers;
}

/* Free a header list, wiping each header first (tokens, secret headers). */
static void
free_headers(struct curl_slist *headers)
{
	for (struct curl_slist *h = headers; h != NULL; h = h->next)
		if (h->data)
			explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
}

#define SETOPT(opt, val) \
	do { \
		if ((rc = curl_easy_setopt(curl, opt, val)) != CURLE_OK) \
			goto setopt_failed; \
	} while (0)

/*
 * Perform one request.  Returns true with resp filled (body palloc'd in the
 * current memory context) for any HTTP status.  A transport failure (DNS,
 * connect, TLS, timeout, reset) returns false with resp->xfer_error and
 * resp->xfer_detail set, for the caller to retry or to raise with
 * epic_http_raise_transport_error().  A query cancel and a response larger
 * than max_response_size raise an ERROR here.  Errors show req->display,
 * never the token.
 */
bool
epic_http_try(EpicHttpClient *client, const EpicHttpRequest *req, EpicHttpResponse *resp)
{
	CURL	   *curl = client->curl;
	CURLcode	rc;
	struct curl_slist *headers = NULL;
	char		errbuf[CURL_ERROR_SIZE];
	Transfer	t;
	char	   *auth_header = NULL;
	bool		post = (strcmp(req->method, "POST") == 0);

	memset(resp, 0, sizeof(*resp));
	initStringInfo(&resp->body);
	memset(&t, 0, sizeof(t));
	t.resp = resp;
	t.limit = Min((size_t) req->sopts->max_response_size, (size_t) MaxAllocSize - 2);
	errbuf[0] = '\0';

	if (!epic_url_is_https(req->url))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("refusing to send a request over a non-HTTPS URL"),
				 errcontext("FHIR request: %s %s", req->method, req->display)));

	curl_easy_reset(curl);
	SETOPT(CURLOPT_URL, req->url);
	SETOPT(CURLOPT_NOSIGNAL, 1L);
	SETOPT(CURLOPT_PROTOCOLS_STR, "https");
	SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
	SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
	SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
	if (req->sopts->ca_file)
		SETOPT(CURLOPT_CAINFO, req->sopts->ca_file);
	SETOPT(CURLOPT_CONNECTTIMEOUT, (long) req->sopts->connect_timeout);
	SETOPT(CURLOPT_TIMEOUT, (long) req->sopts->timeout);
	SETOPT(CURLOPT_ACCEPT_ENCODING, "");
	SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, &t);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, &t);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	SETOPT(CURLOPT_XFERINFOFUNCTION, progress_cb);
	SETOPT(CURLOPT_USERAGENT, "epic_fdw/0.1");

	headers = curl_slist_append(headers, "Expect:");
	if (req->accept)
	{
		char	   *h = psprintf("Accept: %s", req->accept);

		headers = curl_slist_append(headers, h);
		pfree(h);
	}
	if (req->client_id)
	{
		char	   *h = psprintf("Epic-Client-ID: %s", req->client_id);

		headers = curl_slist_append(headers, h);
		pfree(h);
	}
	for (int i = 0; i < (int) lengthof(req->extra_headers); i++)
		if (req->extra_headers[i] != NULL)
			headers = append_json_headers(headers, req->extra_headers[i]);
	if (req->bearer)
	{
		auth_header = psprintf("Authorization: Bearer %s", req->bearer);
		headers = curl_slist_append(headers, auth_header);
	}
	if (post)
	{
		headers = curl_slist_append(headers, "Content-Type: application/x-www-form-urlencoded");
		SETOPT(CURLOPT_POST, 1L);
		SETOPT(CURLOPT_POSTFIELDS, req->form_body ? req->form_body : "");
	}
	else
		SETOPT(CURLOPT_HTTPGET, 1L);
	SETOPT(CURLOPT_HTTPHEADER, headers);

	rc = curl_easy_perform(curl);

	/* forget every pointer into our memory before anything can throw */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	free_headers(headers);
	headers = NULL;
	if (auth_header)
	{
		explicit_bzero(auth_header, strlen(auth_header));
		pfree(auth_header);
	}

	{
		double		total = 0;

		curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &total);
		resp->elapsed = total;
	}
	resp->content_type = t.content_type;
	resp->www_authenticate = t.www_authenticate;
	resp->retry_after = t.retry_after;

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("FHIR request was interrupted"),
				 errcontext("FHIR request: %s %s", req->method, req->display)));
	}
	if (rc == CURLE_WRITE_ERROR && t.too_large)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("FHIR response exceeds max_response_size (%zu bytes)", t.limit),
				 errhint("Raise the server option \"max_response_size\", or lower \"page_size\"."),
				 errcontext("FHIR request: %s %s", req->method, req->display)));
	if (rc != CURLE_OK)
	{
		switch (rc)
		{
			case CURLE_OPERATION_TIMEDOUT:
				resp->xfer_error = EPIC_XFER_TIMEOUT;
				break;
			case CURLE_COULDNT_RESOLVE_HOST:
				resp->xfer_error = EPIC_XFER_DNS;
				break;
			case CURLE_COULDNT_CONNECT:
				resp->xfer_error = EPIC_XFER_CONNECT;
				break;
			case CURLE_PEER_FAILED_VERIFICATION:
			case CURLE_SSL_CONNECT_ERROR:
			case CURLE_SSL_CERTPROBLEM:
			case CURLE_SSL_CACERT_BADFILE:
				resp->xfer_error = EPIC_XFER_TLS;
				break;
			case CURLE_GOT_NOTHING:
			case CURLE_RECV_ERROR:
			case CURLE_SEND_ERROR:
			case CURLE_PARTIAL_FILE:
				resp->xfer_error = EPIC_XFER_RESET;
				break;
			default:
				resp->xfer_error = EPIC_XFER_OTHER;
		}
		resp->curl_code = (int) rc;
		strlcpy(resp->xfer_detail, errbuf[0] ? errbuf : curl_easy_strerror(rc),
				sizeof(resp->xfer_detail));
		return false;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
	return true;

setopt_failed:
	free_headers(headers);
	if (auth_header)
	{
		explicit_bzero(auth_header, strlen(auth_header));
		pfree(auth_header);
	}
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("could not configure libcurl: %s", curl_easy_strerror(rc))));
}

/* Raise the ERROR for a transport failure reported by epic_http_try(). */
void
epic_http_raise_transport_error(const EpicHttpRequest *req, const EpicHttpResponse *resp)
{
	const char *what;
	int			code = ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION;

	switch (resp->xfer_error)
	{
		case EPIC_XFER_TIMEOUT:
			what = "timed out";
			break;
		case EPIC_XFER_DNS:
			what = "could not resolve the host name";
			break;
		case EPIC_XFER_CONNECT:
			what = "could not connect";
			break;
		case EPIC_XFER_TLS:
			what = "TLS failure";
			break;
		case EPIC_XFER_RESET:
			what = "the connection was closed or reset";
			code = ERRCODE_CONNECTION_FAILURE;
			break;
		default:
			what = "transfer failed";
			code = ERRCODE_CONNECTION_FAILURE;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s failed: %s", req->what ? req->what : "FHIR request", what),
			 resp->attempts > 1 ?
			 errdetail("%s (after %d attempts)", resp->xfer_detail, resp->attempts) :
			 errdetail("%s", resp->xfer_detail),
			 resp->xfer_error == EPIC_XFER_TIMEOUT ?
			 errhint("The server options \"connect_timeout\" (%d s) and \"timeout\" (%d s) bound each request.",
					 req->sopts->connect_timeout, req->sopts->timeout) :
			 resp->curl_code == CURLE_PEER_FAILED_VERIFICATION ?
			 errhint("If the server's certificate comes from a private CA, name that CA's certificate in the server option \"ca_file\".") : 0,
			 errcontext("%s: %s %s", req->what ? req->what : "FHIR request", req->method,
						req->display)));
}

/* Perform one request; transport failures raise an ERROR (no retry). */
void
epic_http_perform(EpicHttpClient *client, const EpicHttpRequest *req, EpicHttpResponse *resp)
{
	if (!epic_http_try(client, req, resp))
		epic_http_raise_transport_error(req, resp);
}

/*
 * Seconds a Retry-After header asks for (delta-seconds or an HTTP-date), or
 * -1 if absent or unreadable.
 */
double
epic_http_retry_after(const char *value)
{
	char	   *end;
	long		secs;
	time_t		when;

	if (value == NULL || value[0] == '\0')
		return -1;
	secs = strtol(value, &end, 10);
	if (end != value && *end == '\0')
		return secs < 0 ? -1 : (double) secs;
	when = curl_getdate(value, NULL);
	if (when == (time_t) -1)
		return -1;
	return Max(0, (double) (when - time(NULL)));
}

/*
 * Do two absolute URLs share scheme, host and port?  (The bearer token may
 * only go to the FHIR base's origin.)
 */
bool
epic_url_same_origin(const char *a, const char *b)
{
	CURLU	   *ua,
			   *ub;
	bool		same = false;
	char	   *sa = NULL,
			   *sb = NULL,
			   *ha = NULL,
			   *hb = NULL,
			   *pa = NULL,
			   *pb = NULL;

	ensure_curl_global();
	ua = curl_url();
	ub = curl_url();
	if (ua && ub &&
		curl_url_set(ua, CURLUPART_URL, a, 0) == CURLUE_OK &&
		curl_url_set(ub, CURLUPART_URL, b, 0) == CURLUE_OK &&
		curl_url_get(ua, CURLUPART_SCHEME, &sa, 0) == CURLUE_OK &&
		curl_url_get(ub, CURLUPART_SCHEME, &sb, 0) == CURLUE_OK &&
		curl_url_get(ua, CURLUPART_HOST, &ha, 0) == CURLUE_OK &&
		curl_url_get(ub, CURLUPART_HOST, &hb, 0) == CURLUE_OK &&
		curl_url_get(ua, CURLUPART_PORT, &pa, CURLU_DEFAULT_PORT) == CURLUE_OK &&
		curl_url_get(ub, CURLUPART_PORT, &pb, CURLU_DEFAULT_PORT) == CURLUE_OK)
		same = pg_strcasecmp(sa, sb) == 0 && pg_strcasecmp(ha, hb) == 0 && strcmp(pa, pb) == 0;
	curl_free(sa);
	curl_free(sb);
	curl_free(ha);
	curl_free(hb);
	curl_free(pa);
	curl_free(pb);
	curl_url_cleanup(ua);
	curl_url_cleanup(ub);
	return same;
}
