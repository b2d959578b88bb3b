/*-------------------------------------------------------------------------
 *
 * http.c
 *		HTTPS transfers with libcurl: the only file that includes curl.h.
 *
 * One client per cached connection (connection.c owns it): a curl multi
 * handle, whose connection cache keeps TLS connections alive across pages,
 * queries and concurrent transfers, and a few reusable easy handles.
 * Every transfer goes through the multi handle: epic_http_try() starts one
 * and waits for it; epic_http_start() starts one in the background (the
 * next page while this one is read, or a batch of searches at once), and
 * any later wait or poll on the client drives it along.
 *
 * HTTPS only, peer and host name always verified, redirects never followed.
 * Cancellation follows the libcurl-safe pattern: the progress callback only
 * reports that an interrupt is pending; after curl returns,
 * CHECK_FOR_INTERRUPTS() raises the real error.  A transfer lives in a
 * memory context with a reset callback that detaches it from the multi
 * handle, so an error anywhere (or the end of a scan) stops it and no
 * callback ever writes into freed memory.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <limits.h>

#include <curl/curl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#define EPIC_IDLE_HANDLES 16

/*
 * A client is freed only when no transfer is attached to its multi handle:
 * epic_http_client_destroy() of a client with attached transfers marks it
 * doomed, and the last transfer to detach (when its memory context goes,
 * e.g. during an abort, after the cache already dropped the client) frees
 * it.  So no transfer ever touches a freed multi handle.
 */
struct EpicHttpClient
{
	CURLM	   *multi;
	CURL	   *idle[EPIC_IDLE_HANDLES];	/* reusable easy handles */
	int			nidle;
	int			attached;		/* transfers in the multi handle */
	bool		doomed;			/* destroy requested while attached > 0 */
	int			sockets;		/* open TCP connections (socket callbacks) */
	int64		requests;		/* transfers started */
};

#ifdef EPIC_FAULT_INJECTION
/*
 * Test builds only (scripts/asan.sh): epic_fdw.fault_alloc_fail_after = N
 * makes the Nth allocation inside a libcurl callback fail from then on (0:
 * off), to show that an allocation failure there fails the transfer cleanly.
 */
static int	fault_alloc_fail_after = 0;
static int	fault_alloc_count = 0;
static int	fault_multi_fail_after = 0;
static int	fault_multi_count = 0;

void
epic_http_define_fault_gucs(void)
{
	DefineCustomIntVariable("epic_fdw.fault_alloc_fail_after",
							"Test builds: fail the Nth allocation inside libcurl callbacks.",
							NULL, &fault_alloc_fail_after, 0, 0, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("epic_fdw.fault_multi_fail_after",
							"Test builds: the Nth curl_multi_perform call reports a failure.",
							NULL, &fault_multi_fail_after, 0, 0, INT_MAX,
							PGC_USERSET, 0, NULL, NULL, NULL);
}
#endif

/*
 * Allocate inside a libcurl callback: NULL on failure, never an ERROR (a
 * longjmp out of libcurl would leave the multi handle unusable).
 */
static void *
cb_alloc(MemoryContext cxt, Size size)
{
#ifdef EPIC_FAULT_INJECTION
	if (fault_alloc_fail_after > 0 && ++fault_alloc_count >= fault_alloc_fail_after)
	{
		fault_alloc_count = 0;
		return NULL;
	}
#endif
	return MemoryContextAllocExtended(cxt, size, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
}

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
	c = calloc(1, sizeof(EpicHttpClient));
	if (c == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	c->multi = curl_multi_init();
	if (c->multi == NULL)
	{
		free(c);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	}
	return c;
}

/* Free the client now (no transfer is attached). */
static void
client_free(EpicHttpClient *client)
{
	for (int i = 0; i < client->nidle; i++)
		curl_easy_cleanup(client->idle[i]);
	if (client->multi)
		curl_multi_cleanup(client->multi);
	free(client);
}

/* Open connections and requests made, for epic_fdw_get_connections(). */
void
epic_http_client_counts(EpicHttpClient *client, int *sockets, int64 *requests)
{
	*sockets = client ? client->sockets : 0;
	*requests = client ? client->requests : 0;
}

/* Socket callbacks: count the client's open connections (never raise). */
static curl_socket_t
open_socket_cb(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
	EpicHttpClient *c = clientp;
	curl_socket_t s = socket(addr->family, addr->socktype, addr->protocol);

	if (s != CURL_SOCKET_BAD)
		c->sockets++;
	return s;
}

static int
close_socket_cb(void *clientp, curl_socket_t item)
{
	EpicHttpClient *c = clientp;

	c->sockets--;
	return close(item);
}

/*
 * Destroy a client: now if no transfer is attached, else when the last one
 * detaches (see struct EpicHttpClient).  Never raises.
 */
void
epic_http_client_destroy(EpicHttpClient *client)
{
	if (client == NULL)
		return;
	if (client->attached > 0)
	{
		client->doomed = true;
		return;
	}
	client_free(client);
}

/* State shared with the callbacks of one transfer. */
typedef struct Transfer
{
	EpicHttpResponse *resp;
	MemoryContext cxt;			/* where the response lives */
	size_t		limit;			/* max_response_size */
	bool		too_large;
	bool		out_of_memory;	/* an allocation in a callback failed */
	char	   *content_type;
	char	   *www_authenticate;
	char	   *retry_after;
	char	   *content_location;
	char	   *x_progress;
	/* a sink file (Bulk Data downloads): see sink_write() */
	bool		sink;
	bool		sink_started;
	int			sink_fd;
	int			sink_errno;
	CURL	   *easy;
} Transfer;

/* One transfer through the client's multi handle (palloc'd in its context). */
struct EpicHttpXfer
{
	EpicHttpClient *client;
	CURL	   *easy;			/* NULL once finished or detached */
	bool		done;
	CURLcode	result;
	Transfer	t;
	struct curl_slist *headers;
	char	   *auth_header;
	char	   *post_body;		/* the POST body (a token form: wiped) */
	char		errbuf[CURL_ERROR_SIZE];
	char	   *method;
	char	   *display;
	char	   *what;
	MemoryContextCallback cb;
};

/*
 * A 2xx body of a request with a sink goes to the sink file (truncated when
 * the body starts, so that a retried download starts over); any other body
 * (an error's OperationOutcome) to resp->body.  Returns false on a write
 * failure (errno kept for epic_http_finish).  No ereport, no palloc.
 */
static bool
sink_write(Transfer *t, const char *ptr, size_t n, bool *done)
{
	long		code = 0;

	*done = false;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code < 200 || code >= 300)
		return true;
	if (!t->sink_started)
	{
		t->sink_started = true;
		if (ftruncate(t->sink_fd, 0) != 0 || lseek(t->sink_fd, 0, SEEK_SET) < 0)
		{
			t->sink_errno = errno;
			return false;
		}
	}
	while (n > 0)
	{
		ssize_t		w = write(t->sink_fd, ptr, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
		{
			t->sink_errno = w < 0 ? errno : ENOSPC;
			return false;
		}
		ptr += w;
		n -= w;
		t->resp->sink_bytes += w;
	}
	*done = true;
	return true;
}

/*
 * Append the received bytes to the body.  Never raises: an allocation
 * failure or a body over the limit returns 0, which makes libcurl fail the
 * transfer (epic_http_finish reports why).
 */
static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	Transfer   *t = userdata;
	StringInfo	body = &t->resp->body;
	size_t		n = size * nmemb;

	if (t->sink)
	{
		bool		done;

		if (!sink_write(t, ptr, n, &done))
			return 0;			/* aborts the transfer */
		if (done)
			return n;
	}
	if ((size_t) body->len + n > t->limit)
	{
		t->too_large = true;
		return 0;				/* aborts the transfer */
	}
	if ((size_t) body->len + n + 1 > (size_t) body->maxlen)
	{
		size_t		newlen = Max((size_t) body->maxlen, 1024);
		char	   *grown;

		while (newlen < (size_t) body->len + n + 1)
			newlen *= 2;
		newlen = Min(newlen, t->limit + 1);
		grown = cb_alloc(t->cxt, newlen);
		if (grown == NULL)
		{
			t->out_of_memory = true;
			return 0;
		}
		memcpy(grown, body->data, body->len + 1);
		pfree(body->data);
		body->data = grown;
		body->maxlen = (int) newlen;
	}
	memcpy(body->data + body->len, ptr, n);
	body->len += (int) n;
	body->data[body->len] = '\0';
	return n;
}

/* A body nobody reads (epic_http_delete_quiet). */
static size_t
discard_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	return size * nmemb;
}

/*
 * Copy the value of "Name: value\r\n" if the header is name.  Never raises:
 * an allocation failure sets t->out_of_memory.
 */
static bool
header_value(Transfer *t, const char *line, size_t len, const char *name, char **out)
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
	*out = cb_alloc(t->cxt, end - v + 1);
	if (*out == NULL)
	{
		t->out_of_memory = true;
		return true;
	}
	memcpy(*out, v, end - v);
	(*out)[end - v] = '\0';
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
		if (t->content_location)
			pfree(t->content_location);
		if (t->x_progress)
			pfree(t->x_progress);
		t->content_type = t->www_authenticate = t->retry_after = NULL;
		t->content_location = t->x_progress = NULL;
		return n;
	}
	if (!header_value(t, buffer, n, "Content-Type", &t->content_type) &&
		!header_value(t, buffer, n, "WWW-Authenticate", &t->www_authenticate) &&
		!header_value(t, buffer, n, "Content-Location", &t->content_location) &&
		!header_value(t, buffer, n, "X-Progress", &t->x_progress))
		(void) header_value(t, buffer, n, "Retry-After", &t->retry_after);
	return t->out_of_memory ? 0 : n;	/* 0 fails the transfer */
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
/*
 * Add one header line to x->headers; an allocation failure raises an ERROR
 * (x->headers stays valid and is wiped and freed with the transfer).
 */
static void
add_header(EpicHttpXfer *x, const char *line)
{
	struct curl_slist *l;

	/* defence in depth (the validator refuses such options): one line each */
	if (strpbrk(line, "\r\n") != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("refusing to send a request header that contains a line break"),
				 errhint("Check the options \"accept\", \"client_id\" and \"headers\".")));
	l = curl_slist_append(x->headers, line);

	if (l == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not add a header to a FHIR request.")));
	x->headers = l;
}

static void
append_json_headers(EpicHttpXfer *x, const char *json)
{
	void	   *root = epic_json_parse(json, strlen(json), NULL, 0);
	char	   *names = NULL;

	if (root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not read the \"headers\" option")));
	/* the jansson tree and the names are malloc'd: freed on error too */
	PG_TRY();
	{
		names = epic_json_object_keys(root);
		if (names == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		for (char *name = names; *name; name += strlen(name) + 1)
		{
			const void *v = epic_jansson_ops.member(root, name);
			char		buf[64];
			size_t		len;
			const char *val = v ? epic_jansson_ops.scalar(v, buf, sizeof(buf), &len) : NULL;
			char	   *line;

			if (val == NULL)
				continue;
			line = psprintf("%s: %.*s", name, (int) len, val);
			add_header(x, line);
			explicit_bzero(line, strlen(line));
			pfree(line);
		}
	}
	PG_FINALLY();
	{
		free(names);
		epic_json_free(root);
	}
	PG_END_TRY();
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

/* Wipe and free what a transfer owns besides its response. */
static void
xfer_release(EpicHttpXfer *x)
{
	free_headers(x->headers);
	x->headers = NULL;
	if (x->post_body)
	{
		explicit_bzero(x->post_body, strlen(x->post_body));
		pfree(x->post_body);
		x->post_body = NULL;
	}
	if (x->auth_header)
	{
		explicit_bzero(x->auth_header, strlen(x->auth_header));
		pfree(x->auth_header);
		x->auth_header = NULL;
	}
}

/* Take the easy handle out of the multi handle; keep it for reuse. */
static void
xfer_detach(EpicHttpXfer *x)
{
	EpicHttpClient *c = x->client;
	CURL	   *curl = x->easy;

	if (curl == NULL)
		return;
	x->easy = NULL;
	(void) curl_multi_remove_handle(c->multi, curl);
	c->attached--;
	/* forget every pointer into our memory */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, NULL);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, NULL);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, NULL);
	curl_easy_setopt(curl, CURLOPT_PRIVATE, NULL);
	if (c->nidle < EPIC_IDLE_HANDLES && !c->doomed)
		c->idle[c->nidle++] = curl;
	else
		curl_easy_cleanup(curl);
	/* the cache dropped this client while we were attached: last one out */
	if (c->doomed && c->attached == 0)
		client_free(c);
}

/* Memory context reset callback: an unfinished transfer stops here. */
static void
xfer_reset_cb(void *arg)
{
	EpicHttpXfer *x = arg;

	xfer_detach(x);
	xfer_release(x);
}

/*
 * A failed multi call leaves the transfers in an unknown state: an ERROR,
 * whose cleanup (memory context resets) detaches them.
 */
static void
multi_failed(const char *call, CURLMcode mrc)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("libcurl failed: %s: %s", call, curl_multi_strerror(mrc))));
}

static void collect_done(EpicHttpClient *c);

/* Drive the client's transfers without blocking; record finished ones. */
static void
multi_perform(EpicHttpClient *c)
{
	int			running;
	CURLMcode	mrc = curl_multi_perform(c->multi, &running);

#ifdef EPIC_FAULT_INJECTION
	if (fault_multi_fail_after > 0 && ++fault_multi_count >= fault_multi_fail_after)
	{
		fault_multi_count = 0;
		mrc = CURLM_OUT_OF_MEMORY;
	}
#endif
	if (mrc != CURLM_OK)
		multi_failed("curl_multi_perform", mrc);
	collect_done(c);
}

/* Record finished transfers (non-blocking). */
static void
collect_done(EpicHttpClient *c)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(c->multi, &left)) != NULL)
	{
		EpicHttpXfer *x = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &x);
		if (x != NULL && x->easy == msg->easy_handle)
		{
			x->done = true;
			x->result = msg->data.result;
		}
	}
}

/*
 * Start a request in the background.  The response (resp, and its body
 * and headers) lives in the current memory context; resetting or deleting
 * that context stops the transfer.  Finish it with epic_http_finish() after
 * epic_http_wait() says it is done.  Raises an ERROR for a non-HTTPS URL.
 */
EpicHttpXfer *
epic_http_start(EpicHttpClient *client, const EpicHttpRequest *req, EpicHttpResponse *resp)
{
	EpicHttpXfer *x = palloc0(sizeof(EpicHttpXfer));
	CURL	   *curl;
	CURLcode	rc;
	CURLMcode	mrc;
	bool		post = (strcmp(req->method, "POST") == 0);

	if (!epic_url_is_https(req->url))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("refusing to send a request over a non-HTTPS URL"),
				 errhint("epic_fdw sends tokens only over https://: check the server options \"fhir_url\" and \"token_url\"."),
				 errcontext("FHIR request: %s %s", req->method, req->display)));

	memset(resp, 0, sizeof(*resp));
	initStringInfo(&resp->body);
	x->client = client;
	x->t.resp = resp;
	x->t.cxt = CurrentMemoryContext;
	x->t.limit = Min((size_t) req->sopts->max_response_size, (size_t) MaxAllocSize - 2);
	x->method = pstrdup(req->method);
	x->display = pstrdup(req->display);
	x->what = req->what ? pstrdup(req->what) : NULL;

	if (client->nidle > 0)
	{
		curl = client->idle[--client->nidle];
		curl_easy_reset(curl);
	}
	else if ((curl = curl_easy_init()) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OUT_OF_MEMORY),
				 errmsg("could not create a libcurl handle")));
	x->easy = curl;
	x->t.easy = curl;
	x->t.sink = req->sink;
	x->t.sink_fd = req->sink_fd;
	x->cb.func = xfer_reset_cb;
	x->cb.arg = x;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &x->cb);

	SETOPT(CURLOPT_PRIVATE, (char *) x);
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
	SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
	SETOPT(CURLOPT_WRITEFUNCTION, write_cb);
	SETOPT(CURLOPT_WRITEDATA, &x->t);
	SETOPT(CURLOPT_HEADERFUNCTION, header_cb);
	SETOPT(CURLOPT_HEADERDATA, &x->t);
	SETOPT(CURLOPT_NOPROGRESS, 0L);
	SETOPT(CURLOPT_XFERINFOFUNCTION, progress_cb);
	SETOPT(CURLOPT_USERAGENT, "epic_fdw/0.2");
	SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
	SETOPT(CURLOPT_OPENSOCKETDATA, client);
	SETOPT(CURLOPT_CLOSESOCKETFUNCTION, close_socket_cb);
	SETOPT(CURLOPT_CLOSESOCKETDATA, client);

	add_header(x, "Expect:");
	if (req->accept)
	{
		char	   *h = psprintf("Accept: %s", req->accept);

		add_header(x, h);
		pfree(h);
	}
	if (req->client_id)
	{
		char	   *h = psprintf("Epic-Client-ID: %s", req->client_id);

		add_header(x, h);
		pfree(h);
	}
	for (int i = 0; i < (int) lengthof(req->extra_headers); i++)
		if (req->extra_headers[i] != NULL)
			append_json_headers(x, req->extra_headers[i]);
	if (req->prefer)
	{
		char	   *h = psprintf("Prefer: %s", req->prefer);

		add_header(x, h);
		pfree(h);
	}
	if (req->bearer)
	{
		x->auth_header = psprintf("Authorization: Bearer %s", req->bearer);
		add_header(x, x->auth_header);
	}
	if (post)
	{
		add_header(x, "Content-Type: application/x-www-form-urlencoded");
		SETOPT(CURLOPT_POST, 1L);
		/*
		 * Our own copy of the body (a token form holds the client
		 * assertion): curl reads it in place, and xfer_release wipes it.
		 */
		x->post_body = pstrdup(req->form_body ? req->form_body : "");
		SETOPT(CURLOPT_POSTFIELDSIZE, (long) strlen(x->post_body));
		SETOPT(CURLOPT_POSTFIELDS, x->post_body);
	}
	else
		SETOPT(CURLOPT_HTTPGET, 1L);
	SETOPT(CURLOPT_HTTPHEADER, x->headers);

	mrc = curl_multi_add_handle(client->multi, curl);
	if (mrc != CURLM_OK)
	{
		/* not attached: give the handle back without removing it */
		x->easy = NULL;
		curl_easy_cleanup(curl);
		xfer_release(x);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not start a transfer: %s", curl_multi_strerror(mrc))));
	}
	client->attached++;
	client->requests++;
	/* get it going (connect, send) without waiting */
	multi_perform(client);
	return x;

setopt_failed:
	/* not attached yet */
	x->easy = NULL;
	curl_easy_cleanup(curl);
	xfer_release(x);
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("could not configure libcurl: %s", curl_easy_strerror(rc))));
	return NULL;				/* keep the compiler quiet */
}

/* Is the transfer finished (or stopped)? */
bool
epic_http_done(const EpicHttpXfer *x)
{
	return x->done || x->easy == NULL;
}

/* Drive every transfer of the client a little, without blocking. */
void
epic_http_poll(EpicHttpClient *client)
{
	multi_perform(client);
}

/*
 * Wait until xfers[0..n-1] are all done (any = false) or one of them is
 * (any = true), driving every transfer of the client.  A query cancel is
 * raised here (the transfers stop with their memory contexts).
 */
void
epic_http_wait(EpicHttpClient *client, EpicHttpXfer **xfers, int n, bool any)
{
	for (;;)
	{
		int			ndone = 0;
		CURLMcode	mrc;

		multi_perform(client);
		for (int i = 0; i < n; i++)
			if (xfers[i] == NULL || epic_http_done(xfers[i]))
				ndone++;
		if (ndone == n || (any && ndone > 0))
			return;
		if (InterruptPending)
			CHECK_FOR_INTERRUPTS();
		epic_progress_waiting(client->attached);
		/* waiting on the network: PostgreSQL 15's extension wait event */
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		mrc = curl_multi_poll(client->multi, NULL, 0, 100, NULL);
		pgstat_report_wait_end();
		if (mrc != CURLM_OK)
			multi_failed("curl_multi_poll", mrc);
	}
}

/*
 * Sleep for secs while driving every transfer of the client (they keep
 * receiving), waking for interrupts: a query cancel is raised here.
 */
void
epic_http_sleep(EpicHttpClient *client, double secs)
{
	TimestampTz end = GetCurrentTimestamp() + (TimestampTz) (secs * USECS_PER_SEC);

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		ms;
		CURLMcode	mrc;

		CHECK_FOR_INTERRUPTS();
		if (now >= end)
			break;
		ms = Min((long) ((end - now) / 1000) + 1, 100);
		multi_perform(client);
		pgstat_report_wait_start(PG_WAIT_EXTENSION);
		mrc = curl_multi_poll(client->multi, NULL, 0, (int) ms, NULL);
		pgstat_report_wait_end();
		if (mrc != CURLM_OK)
			multi_failed("curl_multi_poll", mrc);
	}
}

/*
 * Complete a transfer epic_http_wait() reported done: true with resp filled
 * for any HTTP status; false for a transport failure (DNS, connect, TLS,
 * timeout, reset) with resp->xfer_error and resp->xfer_detail set.  A query
 * cancel and a response larger than max_response_size raise an ERROR.
 */
bool
epic_http_finish(EpicHttpXfer *x)
{
	EpicHttpResponse *resp = x->t.resp;
	CURLcode	rc = x->result;
	double		total = 0;
	CURL	   *curl = x->easy;

	if (curl == NULL && !x->done)
		elog(ERROR, "epic_fdw: a stopped transfer was finished");
	if (curl != NULL)
	{
		curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME, &total);
		resp->elapsed = total;
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
	}
	xfer_detach(x);
	xfer_release(x);
	resp->content_type = x->t.content_type;
	resp->www_authenticate = x->t.www_authenticate;
	resp->retry_after = x->t.retry_after;
	resp->content_location = x->t.content_location;
	resp->x_progress = x->t.x_progress;

	if (rc == CURLE_ABORTED_BY_CALLBACK)
	{
		CHECK_FOR_INTERRUPTS();
		ereport(ERROR,
				(errcode(ERRCODE_QUERY_CANCELED),
				 errmsg("FHIR request was interrupted"),
				 errcontext("FHIR request: %s %s", x->method, x->display)));
	}
	if (x->t.out_of_memory)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while receiving a FHIR response"),
				 errcontext("FHIR request: %s %s", x->method, x->display)));
	if (rc == CURLE_WRITE_ERROR && x->t.sink_errno != 0)
	{
		errno = x->t.sink_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write a temporary file for a Bulk Data file: %m"),
				 errcontext("FHIR request: %s %s", x->method, x->display)));
	}
	if (rc == CURLE_WRITE_ERROR && x->t.too_large)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("FHIR response exceeds max_response_size (%zu bytes)", x->t.limit),
				 errhint("Raise the server option \"max_response_size\", or lower \"page_size\"."),
				 errcontext("FHIR request: %s %s", x->method, x->display)));
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
		strlcpy(resp->xfer_detail, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc),
				sizeof(resp->xfer_detail));
		resp->status = 0;
		return false;
	}
	return true;
}

/* Stop a transfer (it may be running); its response is left empty. */
void
epic_http_abort(EpicHttpXfer *x)
{
	if (x == NULL)
		return;
	xfer_detach(x);
	xfer_release(x);
	x->done = true;
	x->result = CURLE_ABORTED_BY_CALLBACK;
}

/*
 * Perform one request and wait for it: see epic_http_finish() for the
 * result.  The response lives in the current memory context.
 */
bool
epic_http_try(EpicHttpClient *client, const EpicHttpRequest *req, EpicHttpResponse *resp)
{
	EpicHttpXfer *x = epic_http_start(client, req, resp);
	bool		ok = false;

	/*
	 * A cancel (or any error) while waiting: stop the transfer now.  Its
	 * memory context may outlive the error (a caught error, as in
	 * epic_fdw_check), and resp may be on the caller's stack.
	 */
	PG_TRY();
	{
		epic_http_wait(client, &x, 1, false);
		ok = epic_http_finish(x);
	}
	PG_CATCH();
	{
		epic_http_abort(x);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return ok;
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

/* ------------------------------------------------------------------------
 * Bulk Data clean-up (bulk.c): DELETE of an export's status URL
 * ------------------------------------------------------------------------
 */

/*
 * Send DELETE url with its own easy handle, waiting at most timeout_ms:
 * the HTTP status, or 0 when the request failed.  Runs during transaction
 * abort (a cancelled or failed bulk scan), so it never raises an ERROR and
 * allocates only with malloc (curl's own); the bearer header is wiped.
 */
long
epic_http_delete_quiet(const char *url, const char *bearer, const char *ca_file, long timeout_ms)
{
	CURL	   *curl;
	struct curl_slist *headers = NULL;
	char	   *auth = NULL;
	long		status = 0;

	if (!curl_ready || url == NULL || !epic_url_is_https(url))
		return 0;
	curl = curl_easy_init();
	if (curl == NULL)
		return 0;
	headers = curl_slist_append(headers, "Accept: application/fhir+json");
	if (bearer != NULL)
	{
		size_t		len = strlen(bearer) + 32;

		auth = malloc(len);
		if (auth != NULL)
		{
			snprintf(auth, len, "Authorization: Bearer %s", bearer);
			headers = curl_slist_append(headers, auth);
		}
	}
	if (curl_easy_setopt(curl, CURLOPT_URL, url) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https") == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
		(ca_file == NULL || curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file) == CURLE_OK) &&
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE") == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_NOBODY, 0L) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_cb) == CURLE_OK &&
		curl_easy_setopt(curl, CURLOPT_USERAGENT, "epic_fdw/0.3") == CURLE_OK &&
		curl_easy_perform(curl) == CURLE_OK)
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);
	for (struct curl_slist *h = headers; h != NULL; h = h->next)
		if (h->data)
			explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(headers);
	if (auth != NULL)
	{
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	return status;
}
