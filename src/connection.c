/*-------------------------------------------------------------------------
 *
 * connection.c
 *		Per-backend cache of HTTP clients and access tokens, keyed by user
 *		mapping, and the authenticated GET used by scans.
 *
 * An entry holds a libcurl handle (so TLS and keep-alive connections are
 * reused), the discovered token endpoint and the current bearer token.  The
 * token is reused by later queries until shortly before it expires; a 401
 * from the FHIR server drops it, fetches one new token and retries once.
 * Syscache callbacks on FOREIGNSERVEROID and USERMAPPINGOID invalidate the
 * entries of exactly the server or mapping that changed (as postgres_fdw's
 * connection.c does).
 *
 * An entry in use by an open scan (epic_acquire_connection, up to
 * epic_release_connection or the end of the transaction) never loses its
 * HTTP client: a scan may have transfers in flight on it (a prefetch, a
 * cursor between fetches).  An invalidation drops the token and the
 * discovered endpoint at once and marks the client stale; the client is
 * replaced when no scan uses it any more.  http.c frees a client only once
 * no transfer is attached to it, whatever the order of cleanup on abort.
 *
 *-------------------------------------------------------------------------
 */
#include "epic_fdw.h"

#include <math.h>
#include <sys/stat.h>
#include <time.h>

#include "access/xact.h"
#include "catalog/pg_user_mapping.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "common/pg_prng.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/wait_event.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "auth.h"

/* Retries: exponential backoff from EPIC_BACKOFF_BASE s, at most EPIC_BACKOFF_CAP s. */
#define EPIC_BACKOFF_BASE 0.5
#define EPIC_BACKOFF_CAP 8.0
/* A Retry-After longer than this (seconds) ends the retries. */
#define EPIC_MAX_RETRY_AFTER 60.0

/* The assertion's lifetime: SMART allows at most 5 minutes. */
#define ASSERTION_LIFETIME 240
/* Used when the token response has no expires_in. */
#define DEFAULT_TOKEN_LIFETIME 300
/* A longer expires_in is taken as this (seconds; one year). */
#define MAX_TOKEN_LIFETIME (366L * 24 * 3600)

struct EpicConnection
{
	Oid			umid;			/* hash key: user mapping OID */
	Oid			serverid;
	EpicHttpClient *http;		/* malloc'd */
	char	   *access_token;	/* malloc'd (auth.c), wiped on free */
	time_t		token_renew_at; /* get a new token from this time on */
	time_t		token_expires_at;	/* the token's end of life */
	int64		requests_before;	/* requests of replaced HTTP clients */
	char	   *token_url;		/* discovered endpoint, TopMemoryContext */
	uint32		server_hashvalue;
	uint32		mapping_hashvalue;
	bool		invalidated;	/* options changed: drop token and endpoint */
	bool		http_stale;		/* replace the client once unused */
	int			users;			/* open scans using the entry */
};

static HTAB *ConnectionHash = NULL;

static bool retry_wait(bool ok, const EpicHttpResponse *resp, int attempt, int max_retries,
					   double *wait);
static void backoff_sleep(EpicConnection *conn, double secs);

static void
drop_token(EpicConnection *entry)
{
	if (entry->access_token)
		epic_secret_free(entry->access_token);
	entry->access_token = NULL;
	entry->token_renew_at = 0;
	entry->token_expires_at = 0;
}

/* Free the entry's HTTP client (no scan uses it), keeping its count. */
static void
close_client(EpicConnection *entry)
{
	int			sockets;
	int64		requests;

	epic_http_client_counts(entry->http, &sockets, &requests);
	entry->requests_before += requests;
	epic_http_client_destroy(entry->http);
	entry->http = NULL;
	entry->http_stale = false;
}

/*
 * Forget what the changed options may have made wrong: the token and the
 * discovered endpoint.  The HTTP client goes too unless a scan uses it.
 */
static void
reset_entry(EpicConnection *entry)
{
	drop_token(entry);
	if (entry->token_url)
		pfree(entry->token_url);
	entry->token_url = NULL;
	entry->invalidated = false;
	if (entry->users > 0)
		entry->http_stale = true;
	else
		close_client(entry);
}

/*
 * At the end of a transaction no scan is open any more (a holdable cursor
 * has been materialized by then): every entry is unused, and stale clients
 * go (their transfers, if an abort left any, are freed with the portals'
 * memory; http.c frees the client after the last of them).
 */
static void
xact_callback(XactEvent event, void *arg)
{
	HASH_SEQ_STATUS scan;
	EpicConnection *entry;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
		event != XACT_EVENT_PARALLEL_COMMIT && event != XACT_EVENT_PARALLEL_ABORT &&
		event != XACT_EVENT_PREPARE)
		return;
	epic_progress_reset();
	hash_seq_init(&scan, ConnectionHash);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		entry->users = 0;
		if (entry->http_stale)
			close_client(entry);
	}
}

/* Syscache callback: mark entries of the changed server or mapping. */
static void
inval_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	EpicConnection *entry;

	hash_seq_init(&scan, ConnectionHash);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (hashvalue == 0 ||
			(cacheid == FOREIGNSERVEROID && entry->server_hashvalue == hashvalue) ||
			(cacheid == USERMAPPINGOID && entry->mapping_hashvalue == hashvalue))
		{
			/* the token goes at once (the mapping may never be used again) */
			entry->invalidated = true;
			drop_token(entry);
		}
	}
}

/*
 * The cached connection for a user mapping (created on first use).  Entries
 * live for the backend's lifetime in CacheMemoryContext.
 */
EpicConnection *
epic_get_connection(UserMapping *um, ForeignServer *server)
{
	EpicConnection *entry;
	bool		found;

	if (ConnectionHash == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(EpicConnection);
		ctl.hcxt = CacheMemoryContext;
		ConnectionHash = hash_create("epic_fdw connections", 8, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		CacheRegisterSyscacheCallback(FOREIGNSERVEROID, inval_callback, (Datum) 0);
		CacheRegisterSyscacheCallback(USERMAPPINGOID, inval_callback, (Datum) 0);
		RegisterXactCallback(xact_callback, NULL);
	}

	entry = hash_search(ConnectionHash, &um->umid, HASH_ENTER, &found);
	if (!found)
	{
		entry->http = NULL;
		entry->access_token = NULL;
		entry->token_url = NULL;
		entry->token_renew_at = 0;
		entry->invalidated = false;
		entry->http_stale = false;
		entry->users = 0;
		entry->token_expires_at = 0;
		entry->requests_before = 0;
	}
	if (entry->invalidated)
		reset_entry(entry);
	if (entry->http_stale && entry->users == 0)
		close_client(entry);
	if (entry->http == NULL)
	{
		entry->serverid = server->serverid;
		entry->server_hashvalue =
			GetSysCacheHashValue1(FOREIGNSERVEROID, ObjectIdGetDatum(server->serverid));
		entry->mapping_hashvalue =
			GetSysCacheHashValue1(USERMAPPINGOID, ObjectIdGetDatum(um->umid));
		entry->http = epic_http_client_create();
	}
	return entry;
}

/*
 * The connection for a scan: as epic_get_connection, and its HTTP client
 * stays in place until epic_release_connection (or the transaction's end).
 */
EpicConnection *
epic_acquire_connection(UserMapping *um, ForeignServer *server)
{
	EpicConnection *entry = epic_get_connection(um, server);

	entry->users++;
	return entry;
}

void
epic_release_connection(EpicConnection *conn)
{
	if (conn != NULL && conn->users > 0)
		conn->users--;
}

/* Read the PEM key of a mapping (palloc'd; the caller wipes and frees it). */
char *
epic_read_private_key(const EpicUserOptions *uopts)
{
	FILE	   *f;
	StringInfoData buf;
	char		chunk[4096];
	size_t		n;

	if (uopts->private_key)
		return pstrdup(uopts->private_key);

	f = AllocateFile(uopts->private_key_file, "r");
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open private key file \"%s\": %m", uopts->private_key_file),
				 errhint("The file must be readable by the database server's operating system user.")));
	initStringInfo(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
	{
		if (buf.len + n > 1024 * 1024)
		{
			FreeFile(f);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("private key file \"%s\" is too large", uopts->private_key_file)));
		}
		appendBinaryStringInfo(&buf, chunk, (int) n);
	}
	explicit_bzero(chunk, sizeof(chunk));
	if (ferror(f))
	{
		int			save_errno = errno;

		FreeFile(f);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not read private key file \"%s\": %m", uopts->private_key_file)));
	}
	FreeFile(f);
	return buf.data;
}

/* Resolve a token endpoint from smart-configuration against the FHIR base. */
static char *
resolve_url(const char *base, const char *ref)
{
	const char *p;

	if (pg_strncasecmp(ref, "https://", 8) == 0 || pg_strncasecmp(ref, "http://", 7) == 0)
		return pstrdup(ref);
	if (ref[0] == '/')
	{
		/* origin of base + absolute path */
		p = strchr(base + 8, '/');
		return psprintf("%.*s%s", p ? (int) (p - base) : (int) strlen(base), base, ref);
	}
	return psprintf("%s%s", base, ref);
}

/* Discover the token endpoint from {fhir_url}.well-known/smart-configuration. */
static char *
discover_token_url(EpicConnection *conn, const EpicServerOptions *sopts, EpicScanStats *stats)
{
	EpicHttpRequest req;
	EpicHttpResponse resp;
	char	   *url = psprintf("%s.well-known/smart-configuration", sopts->fhir_url);
	char		errbuf[256];
	char	   *found;
	char	   *result;

	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.display = url;
	req.what = "token endpoint discovery";
	req.accept = "application/json";
	req.sopts = sopts;
	epic_http_perform(conn->http, &req, &resp);
	if (stats)
	{
		stats->requests++;
		stats->bytes += resp.body.len;
		stats->wait_time += resp.elapsed;
	}
	if (resp.status != 200)
		ereport(ERROR,
				(errcode(epic_http_status_errcode(resp.status)),
				 errmsg("could not discover the token endpoint: HTTP status %ld", resp.status),
				 resp.status == 404 ?
				 errhint("Check the server option \"fhir_url\": it must be the FHIR base URL, "
						 "under which .well-known/smart-configuration is published "
						 "(or set \"token_url\" if the server publishes none).") :
				 errhint("Set the server option \"token_url\"."),
				 errcontext("FHIR request: GET %s", url)));
	found = epic_smart_config_token_endpoint(resp.body.data, resp.body.len, errbuf, sizeof(errbuf));
	if (found == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("could not discover the token endpoint: %s", errbuf),
				 errhint("Set the server option \"token_url\"."),
				 errcontext("FHIR request: GET %s", url)));
	result = resolve_url(sopts->fhir_url, found);
	free(found);
	if (!epic_url_is_https(result))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("discovered token endpoint is not an https:// URL: \"%s\"", result),
				 errhint("Set the server option \"token_url\" to the https:// token endpoint.")));
	return MemoryContextStrdup(TopMemoryContext, result);
}

/*
 * Get a new access token: sign a client assertion, POST it to the token
 * endpoint, keep the token in the entry.  The key, the assertion and the
 * token never appear in an error.
 */
/*
 * The credential rule: a key is used only where no non-superuser can have
 * chosen where its assertion, or the token got with it, goes.
 *
 * - A private_key_file (a key only a superuser can set up, and a mapping a
 *   non-superuser cannot alter) is used only on a server owned by a
 *   superuser: the server's owner can change fhir_url and token_url.
 * - On a server owned by a non-superuser only the owner's own mapping is
 *   used (an inline private_key: the owner's own key).  The owner can alter
 *   every mapping of the server (client_id, jku) and re-point the server, so
 *   another user's key would be theirs to redirect.
 *
 * Checked before every token request: changing a server's endpoints or
 * owner invalidates the cached token, so the next use comes here again.
 */
static void
check_credential_route(UserMapping *um, const EpicUserOptions *uopts)
{
	ForeignServer *server = GetForeignServer(um->serverid);

	if (superuser_arg(server->owner))
		return;
	if (uopts->private_key_file != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the private_key_file of a user mapping is used only on a server owned by a superuser"),
				 errdetail("Server \"%s\" is owned by role \"%s\", which can change where the key's assertion and tokens are sent.",
						   server->servername, GetUserNameFromId(server->owner, false)),
				 errhint("Make a superuser the owner of the server, or give the mapping the user's own key as \"private_key\".")));
	if (um->userid != server->owner)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("on a server owned by a non-superuser only the owner's own user mapping is used"),
				 errdetail("Server \"%s\" is owned by role \"%s\", which can alter this mapping's client_id and jku and the server's endpoints.",
						   server->servername, GetUserNameFromId(server->owner, false)),
				 errhint("Make a superuser the owner of the server.")));
}

static void
fetch_token(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
			const EpicUserOptions *uopts, EpicScanStats *stats)
{
	const char *token_url;
	EpicJwtAlg	alg;
	char	   *pem;
	char	   *assertion;
	char	   *enc_assertion;
	char		errbuf[256];
	StringInfoData form;
	EpicHttpRequest req;
	EpicHttpResponse resp;
	char	   *token = NULL;
	long		expires_in = 0;
	char	   *oauth_error = NULL;
	char	   *oauth_desc = NULL;
	int			rc;

	drop_token(conn);
	check_credential_route(um, uopts);
	if (sopts->token_url)
		token_url = sopts->token_url;
	else
	{
		if (conn->token_url == NULL)
			conn->token_url = discover_token_url(conn, sopts, stats);
		token_url = conn->token_url;
	}

	if (epic_jwt_alg_parse(uopts->algorithm, &alg) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"algorithm\": \"%s\"", uopts->algorithm)));

	/* a fresh assertion (new jti) for every attempt: a jti is never reused */
	for (int attempt = 0;; attempt++)
	{
		bool		ok;
		double		wait;

		pem = epic_read_private_key(uopts);
		assertion = epic_jwt_build_assertion(alg, pem, uopts->key_id, uopts->jku,
											 uopts->client_id, token_url,
											 (long long) time(NULL), ASSERTION_LIFETIME,
											 NULL, errbuf, sizeof(errbuf));
		explicit_bzero(pem, strlen(pem));
		pfree(pem);
		if (assertion == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("could not sign the client assertion: %s", errbuf),
					 errhint("Check the user mapping options \"private_key_file\"/\"private_key\" and \"algorithm\".")));

		enc_assertion = epic_form_encode(assertion);
		epic_secret_free(assertion);
		if (enc_assertion == NULL)
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));

		initStringInfo(&form);
		appendStringInfoString(&form,
							   "grant_type=client_credentials"
							   "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
							   "&client_assertion=");
		appendStringInfoString(&form, enc_assertion);
		epic_secret_free(enc_assertion);
		if (sopts->scope)
		{
			char	   *sc = epic_form_encode(sopts->scope);

			appendStringInfo(&form, "&scope=%s", sc ? sc : "");
			free(sc);
		}

		memset(&req, 0, sizeof(req));
		req.method = "POST";
		req.url = token_url;
		req.display = token_url;
		req.what = "token request";
		req.form_body = form.data;
		req.accept = "application/json";
		req.sopts = sopts;

		PG_TRY();
		{
			ok = epic_http_try(conn->http, &req, &resp);
		}
		PG_FINALLY();
		{
			explicit_bzero(form.data, form.len);
		}
		PG_END_TRY();
		pfree(form.data);
		resp.attempts = attempt + 1;

		if (stats)
		{
			stats->requests++;
			stats->token_requests++;
			stats->bytes += resp.body.len;
			stats->wait_time += resp.elapsed;
		}
		if (!retry_wait(ok, &resp, attempt, sopts->max_retries, &wait))
			break;
		backoff_sleep(conn, wait);
	}
	if (resp.xfer_error != EPIC_XFER_OK)
		epic_http_raise_transport_error(&req, &resp);

	rc = epic_token_response_parse(resp.body.data, resp.body.len, &token, &expires_in,
								   &oauth_error, &oauth_desc, errbuf, sizeof(errbuf));
	explicit_bzero(resp.body.data, resp.body.len);
	if (rc == 0 && resp.status == 200)
	{
		time_t		now = time(NULL);
		long		lifetime = expires_in > 0 ? expires_in : DEFAULT_TOKEN_LIFETIME;
		long		margin;

		/* no overflow of now + lifetime: a year is longer than any token */
		lifetime = Min(lifetime, MAX_TOKEN_LIFETIME);
		margin = Min(60, lifetime / 10);

		conn->access_token = token;
		conn->token_renew_at = now + lifetime - margin;
		conn->token_expires_at = now + lifetime;
		return;
	}
	if (token)
		epic_secret_free(token);
	if (rc == 1)
	{
		char	   *e = pstrdup(oauth_error);
		char	   *d = oauth_desc ? pstrdup(oauth_desc) : NULL;

		free(oauth_error);
		free(oauth_desc);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("token request was rejected: %s", e),
				 d ? errdetail("%s", d) : errdetail("The authorization server answered HTTP %ld without an error_description.", resp.status),
				 errhint("Check the user mapping (client_id, key, key_id, algorithm) and the server's token_url and scope."),
				 errcontext("token request: POST %s", token_url)));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("token request failed with HTTP status %ld", resp.status),
			 rc < 0 ? errdetail("%s", errbuf) : 0,
			 errcontext("token request: POST %s", token_url)));
}

/*
 * Should a failed attempt be retried?  Returns true with *wait (seconds) set
 * for transport failures that are safe to retry (refused, reset, DNS) and
 * for HTTP 429/500/502/503/504, while retries remain.  Timeouts are not
 * retried, so a request never takes much longer than its timeout.
 * Retry-After (seconds or an HTTP-date) is honoured; one longer than
 * EPIC_MAX_RETRY_AFTER ends the retries at once.
 */
static bool
retry_wait(bool ok, const EpicHttpResponse *resp, int attempt, int max_retries, double *wait)
{
	double		backoff;

	*wait = 0;
	if (attempt >= max_retries)
		return false;
	if (!ok)
	{
		if (resp->xfer_error != EPIC_XFER_CONNECT && resp->xfer_error != EPIC_XFER_RESET &&
			resp->xfer_error != EPIC_XFER_DNS)
			return false;
	}
	else if (resp->status != 429 && resp->status != 500 && resp->status != 502 &&
			 resp->status != 503 && resp->status != 504)
		return false;

	/* exponential backoff with jitter: base * 2^attempt * [0.5, 1) */
	backoff = Min(EPIC_BACKOFF_CAP, EPIC_BACKOFF_BASE * pow(2.0, attempt));
	backoff *= 0.5 + 0.5 * pg_prng_double(&pg_global_prng_state);
	*wait = backoff;
	if (ok && resp->retry_after)
	{
		double		ra = epic_http_retry_after(resp->retry_after);

		if (ra > EPIC_MAX_RETRY_AFTER)
			return false;
		if (ra >= 0)
			*wait = ra;
	}
	return true;
}

/* Sleep for secs, waking for interrupts (query cancel, shutdown). */
void
epic_backoff_sleep(double secs)
{
	TimestampTz end = GetCurrentTimestamp() + (TimestampTz) (secs * USECS_PER_SEC);

	for (;;)
	{
		long		ms;
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		if (now >= end)
			break;
		ms = (long) ((end - now) / 1000) + 1;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * Sleep for secs before a retry, waking for interrupts (query cancel,
 * shutdown).  The connection's other transfers (the rest of a concurrent
 * batch, a prefetch) are driven meanwhile, so their timeouts do not run out
 * while nobody reads them.
 */
static void
backoff_sleep(EpicConnection *conn, double secs)
{
	epic_http_sleep(conn->http, secs);
}

/*
 * One audit line per FHIR request (GUC epic_fdw.audit_log): who, which
 * table, which search parameters (values only with audit_log_values), the
 * outcome, bytes and duration.  Never the token.
 */
static void
audit(const char *table, const char *display, bool ok, const EpicHttpResponse *resp)
{
	char	   *request = epic_audit_log_values ? pstrdup(display) : epic_redact_query(display);

	ereport(LOG,
			(errmsg("epic_fdw audit: user=%s table=%s request=\"GET %s\" status=%s bytes=%d duration_ms=%.0f",
					GetUserNameFromId(GetUserId(), true) ? GetUserNameFromId(GetUserId(), true) : "?",
					table ? table : "-", request,
					ok ? psprintf("%ld", resp->status) :
					resp->xfer_error == EPIC_XFER_OK ? "abandoned" : "transport-error",
					resp->body.len, resp->elapsed * 1000.0),
			 errhidestmt(true),
			 errhidecontext(true)));
	pfree(request);
}

/*
 * Authenticated GET of a FHIR URL.  Gets a token first if there is no
 * usable one; on 401 gets one fresh token and retries once; retries
 * transient failures (see retry_wait) up to the server's max_retries.
 * Returns the response whatever its status (the caller decides what a
 * status means); a transport failure that is not retried, or is still
 * failing after the retries, raises an ERROR.
 */
/* The request for a FHIR GET of url with the connection's current token. */
static void
fhir_request(EpicConnection *conn, const EpicServerOptions *sopts, const EpicUserOptions *uopts,
			 const EpicFhirCall *call, const char *url, const char *display,
			 EpicHttpRequest *req)
{
	memset(req, 0, sizeof(*req));
	req->method = "GET";
	req->url = url;
	req->display = display;
	req->bearer = conn->access_token;
	req->accept = sopts->accept;
	if (sopts->send_client_id)
		req->client_id = uopts->client_id;	/* Epic-Client-ID, as Epic recommends */
	req->extra_headers[0] = sopts->headers;
	req->extra_headers[1] = uopts->headers;
	req->sopts = sopts;
	if (call != NULL)
	{
		/* Bulk Data: another Accept, Prefer, no token for pre-signed URLs, a sink */
		if (call->accept)
			req->accept = call->accept;
		req->prefer = call->prefer;
		if (call->no_token)
		{
			req->bearer = NULL;
			req->extra_headers[1] = NULL;	/* the mapping's secret headers too */
		}
		req->sink = call->sink;
		req->sink_fd = call->sink_fd;
	}
}

/* Count and audit one finished request. */
static void
account(EpicScanStats *stats, const char *display, bool ok, EpicHttpResponse *resp)
{
	if (stats)
	{
		stats->requests++;
		stats->bytes += resp->body.len;
		stats->wait_time += resp->elapsed;
	}
	if (epic_audit_log)
		audit(stats ? stats->table : NULL, display, ok, resp);
	epic_progress_request(stats);
}

/*
 * The retry loop of a FHIR GET, from attempt number `attempt` on (earlier
 * attempts were made by a concurrent batch or a prefetch).
 */
static void
fhir_get_from(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
			  const EpicFhirCall *call, const char *url, const char *display,
			  EpicHttpResponse *resp, EpicScanStats *stats, int attempt, bool refreshed)
{
	EpicHttpRequest req;
	EpicUserOptions uopts;

	epic_get_user_options(um, &uopts);

	for (int tries = attempt + 1;; tries++)
	{
		bool		ok;
		double		wait;

		if (conn->access_token == NULL || time(NULL) >= conn->token_renew_at)
			fetch_token(conn, um, sopts, &uopts, stats);

		fhir_request(conn, sopts, &uopts, call, url, display, &req);
		ok = epic_http_try(conn->http, &req, resp);
		resp->attempts = tries;
		account(stats, display, ok, resp);
		if (ok && resp->status == 401 && !refreshed && (call == NULL || !call->no_token))
		{
			/* token expired or revoked: one fresh token, one retry */
			refreshed = true;
			drop_token(conn);
			pfree(resp->body.data);
			continue;
		}
		if (!retry_wait(ok, resp, attempt, sopts->max_retries, &wait))
		{
			if (!ok)
				epic_http_raise_transport_error(&req, resp);
			return;
		}
		attempt++;
		if (ok)
			pfree(resp->body.data);
		backoff_sleep(conn, wait);
	}
}

void
epic_fhir_get(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
			  const char *url, const char *display,
			  EpicHttpResponse *resp, EpicScanStats *stats)
{
	fhir_get_from(conn, um, sopts, NULL, url, display, resp, stats, 0, false);
}

/*
 * A FHIR request other than a search page (Bulk Data kick-off, status,
 * files: see EpicFhirCall), with epic_fhir_get()'s token handling and
 * retries.
 */
void
epic_fhir_call(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
			   const EpicFhirCall *call, const char *url, const char *display,
			   EpicHttpResponse *resp, EpicScanStats *stats)
{
	fhir_get_from(conn, um, sopts, call, url, display, resp, stats, 0, false);
}

/*
 * A response of a background transfer (prefetch or batch) is final unless
 * it asks for what fhir_get_from() does: a new token (401) or a retry
 * (429, 5xx, a dropped connection).  Then the request goes on there, after
 * the wait the response asks for.
 */
static void
settle(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
	   const EpicFhirCall *call, const char *url, const char *display, bool ok,
	   EpicHttpResponse *resp, EpicScanStats *stats)
{
	double		wait;

	resp->attempts = 1;
	account(stats, display, ok, resp);
	if (ok && resp->status == 401 && (call == NULL || !call->no_token))
	{
		drop_token(conn);
		pfree(resp->body.data);
		fhir_get_from(conn, um, sopts, call, url, display, resp, stats, 0, true);
		return;
	}
	if (!retry_wait(ok, resp, 0, sopts->max_retries, &wait))
	{
		if (!ok)
		{
			EpicHttpRequest req;
			EpicUserOptions uopts;

			epic_get_user_options(um, &uopts);
			fhir_request(conn, sopts, &uopts, call, url, display, &req);
			epic_http_raise_transport_error(&req, resp);
		}
		return;
	}
	if (ok)
		pfree(resp->body.data);
	backoff_sleep(conn, wait);
	fhir_get_from(conn, um, sopts, call, url, display, resp, stats, 1, false);
}

struct EpicFhirAsync
{
	EpicHttpXfer *xfer;
	EpicHttpResponse resp;
	char	   *url;
	char	   *display;
	EpicFhirCall call;			/* how it was asked (Bulk Data) */
	bool		has_call;
};

/*
 * Start a FHIR GET in the background (the next page, while this one is
 * read).  Everything lives in the current memory context; deleting it stops
 * the transfer.  NULL when no valid token is at hand (the request is then
 * made by epic_fhir_finish).
 */
EpicFhirAsync *
epic_fhir_start(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
				const char *url, const char *display)
{
	return epic_fhir_start_call(conn, um, sopts, NULL, url, display);
}

/* epic_fhir_start() of a request described by call (NULL: a search page). */
EpicFhirAsync *
epic_fhir_start_call(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
					 const EpicFhirCall *call, const char *url, const char *display)
{
	EpicFhirAsync *a;
	EpicHttpRequest req;
	EpicUserOptions uopts;

	if (conn->access_token == NULL || time(NULL) >= conn->token_renew_at)
		return NULL;
	epic_get_user_options(um, &uopts);
	a = palloc0(sizeof(EpicFhirAsync));
	a->url = pstrdup(url);
	a->display = pstrdup(display);
	if (call != NULL)
	{
		a->call = *call;
		a->has_call = true;
	}
	fhir_request(conn, sopts, &uopts, a->has_call ? &a->call : NULL, a->url, a->display, &req);
	a->xfer = epic_http_start(conn->http, &req, &a->resp);
	return a;
}

/*
 * A started GET that will not be read (a cursor closed, a LIMIT met, a
 * rescan): it counts as a request, and the audit log records it as
 * "abandoned".  The caller then deletes the memory context, which stops
 * the transfer.
 */
void
epic_fhir_abandon(EpicFhirAsync *a, EpicScanStats *stats)
{
	EpicHttpResponse empty;

	if (a == NULL)
		return;
	memset(&empty, 0, sizeof(empty));
	if (stats)
		stats->requests++;
	if (epic_audit_log)
		audit(stats ? stats->table : NULL, a->display, false, &empty);
}

/* Let background transfers progress (cheap; call now and then). */
void
epic_fhir_poll(EpicConnection *conn)
{
	epic_http_poll(conn->http);
}

/*
 * The response of a started GET (waiting for it), retried like
 * epic_fhir_get() when it has to be.  a may be NULL: then url is fetched now.
 */
void
epic_fhir_finish(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
				 EpicFhirAsync *a, const char *url, const char *display,
				 EpicHttpResponse *resp, EpicScanStats *stats)
{
	bool		ok;
	const EpicFhirCall *call;

	if (a != NULL && strcmp(a->url, url) != 0)
	{
		/* fetched ahead for another page: stop it, and count it */
		epic_http_abort(a->xfer);
		epic_fhir_abandon(a, stats);
		a = NULL;
	}
	if (a == NULL)
	{
		epic_fhir_get(conn, um, sopts, url, display, resp, stats);
		return;
	}
	call = a->has_call ? &a->call : NULL;
	epic_http_wait(conn->http, &a->xfer, 1, false);
	ok = epic_http_finish(a->xfer);
	if (!ok && a->resp.xfer_error == EPIC_XFER_TIMEOUT)
	{
		/*
		 * The timeout counts from the start, and nobody waited for this
		 * transfer while the previous page was read (a cursor may pause for
		 * long): ask again now, as a request of its own.
		 */
		epic_fhir_abandon(a, stats);
		fhir_get_from(conn, um, sopts, call, url, display, resp, stats, 0, false);
		return;
	}
	*resp = a->resp;
	settle(conn, um, sopts, call, a->url, a->display, ok, resp, stats);
}

/*
 * GET n URLs with up to the server's max_concurrency in flight; resps[i]
 * gets URL i's response (in the current memory context), retried as
 * epic_fhir_get() would.  A response other than 200 stops the transfers
 * still running and raises its error: one failed search fails the batch.
 */
void
epic_fhir_get_many(EpicConnection *conn, UserMapping *um, const EpicServerOptions *sopts,
				   int n, char **urls, char **displays, EpicHttpResponse *resps,
				   EpicScanStats *stats)
{
	EpicUserOptions uopts;
	EpicHttpXfer **xfers = palloc0(sizeof(EpicHttpXfer *) * Max(1, n));
	int8	   *deferred = palloc0(sizeof(int8) * Max(1, n));	/* 1: ok, 2: failed */
	int			ndeferred = 0;
	int			next = 0;
	int			done = 0;
	int			inflight = 0;
	int			limit = Max(1, sopts->max_concurrency);

	epic_get_user_options(um, &uopts);
	while (done < n)
	{
		/*
		 * Members that must wait (Retry-After, backoff) or get a new token
		 * are settled once no other transfer is running: a sleep while
		 * others are attached would let their timeouts run out undriven.
		 */
		if (inflight == 0 && next == n && ndeferred > 0)
		{
			for (int i = 0; i < n; i++)
			{
				if (deferred[i] == 0)
					continue;
				settle(conn, um, sopts, NULL, urls[i], displays[i], deferred[i] == 1, &resps[i], stats);
				deferred[i] = 0;
				ndeferred--;
				done++;
				if (resps[i].status != 200)
					epic_raise_http_error(&resps[i], displays[i], "FHIR search");
			}
			continue;
		}
		/* fill the window */
		while (next < n && inflight < limit)
		{
			EpicHttpRequest req;

			if (conn->access_token == NULL || time(NULL) >= conn->token_renew_at)
				fetch_token(conn, um, sopts, &uopts, stats);
			fhir_request(conn, sopts, &uopts, NULL, urls[next], displays[next], &req);
			xfers[next] = epic_http_start(conn->http, &req, &resps[next]);
			next++;
			inflight++;
		}
		/* wait for one, and settle every finished one */
		if (inflight == 0)
			continue;
		{
			EpicHttpXfer **running = palloc(sizeof(EpicHttpXfer *) * inflight);
			int			k = 0;

			for (int i = 0; i < next; i++)
				if (xfers[i] != NULL)
					running[k++] = xfers[i];
			epic_http_wait(conn->http, running, k, true);
			pfree(running);
		}
		for (int i = 0; i < next; i++)
		{
			bool		ok;

			if (xfers[i] == NULL || !epic_http_done(xfers[i]))
				continue;
			ok = epic_http_finish(xfers[i]);
			xfers[i] = NULL;
			inflight--;
			if (inflight > 0 || next < n)
			{
				double		wait;

				if ((ok && resps[i].status == 401) ||
					retry_wait(ok, &resps[i], 0, sopts->max_retries, &wait))
				{
					deferred[i] = ok ? 1 : 2;
					ndeferred++;
					continue;
				}
			}
			done++;
			settle(conn, um, sopts, NULL, urls[i], displays[i], ok, &resps[i], stats);
			if (resps[i].status != 200)
			{
				/* stop the others first: this error ends the query */
				for (int j = 0; j < next; j++)
					if (xfers[j] != NULL)
					{
						EpicHttpResponse empty;

						epic_http_abort(xfers[j]);
						memset(&empty, 0, sizeof(empty));
						if (stats)
							stats->requests++;
						if (epic_audit_log)
							audit(stats ? stats->table : NULL, displays[j], false, &empty);
					}
				epic_raise_http_error(&resps[i], displays[i], "FHIR search");
			}
		}
	}
	pfree(xfers);
	pfree(deferred);
}

/* The connection's HTTP client (for diagnostics). */
EpicHttpClient *
epic_connection_http(EpicConnection *conn)
{
	return conn->http;
}

/* The token endpoint: the server option, or discovered (and cached). */
const char *
epic_connection_token_url(EpicConnection *conn, const EpicServerOptions *sopts,
						  EpicScanStats *stats)
{
	if (sopts->token_url)
		return sopts->token_url;
	if (conn->token_url == NULL)
		conn->token_url = discover_token_url(conn, sopts, stats);
	return conn->token_url;
}

/* Get a new access token for the mapping now (for diagnostics). */
void
epic_connection_new_token(EpicConnection *conn, UserMapping *um,
						  const EpicServerOptions *sopts, EpicScanStats *stats)
{
	EpicUserOptions uopts;

	epic_get_user_options(um, &uopts);
	fetch_token(conn, um, sopts, &uopts, stats);
}

/*
 * The cached connections of this backend (palloc'd array; the count is
 * returned).
 */
int
epic_connection_list(EpicConnectionInfo **out)
{
	HASH_SEQ_STATUS scan;
	EpicConnection *entry;
	int			n = 0;

	*out = NULL;
	if (ConnectionHash == NULL)
		return 0;
	*out = palloc0(sizeof(EpicConnectionInfo) * Max(1, hash_get_num_entries(ConnectionHash)));
	hash_seq_init(&scan, ConnectionHash);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		EpicConnectionInfo *info = &(*out)[n++];
		int64		requests;

		info->serverid = entry->serverid;
		info->umid = entry->umid;
		info->valid = !entry->invalidated && !entry->http_stale;
		info->in_use = entry->users > 0;
		info->token_expires_at = entry->access_token ? entry->token_expires_at : 0;
		epic_http_client_counts(entry->http, &info->connections, &requests);
		info->requests = entry->requests_before + requests;
	}
	return n;
}

/*
 * Close the cached connections of a server (InvalidOid: of every server):
 * their HTTP clients (and TCP connections) and tokens.  One in use by an
 * open scan is skipped with a WARNING, as postgres_fdw does.  True if any
 * was closed.
 */
bool
epic_connection_disconnect(Oid serverid)
{
	HASH_SEQ_STATUS scan;
	EpicConnection *entry;
	bool		closed = false;

	if (ConnectionHash == NULL)
		return false;
	hash_seq_init(&scan, ConnectionHash);
	while ((entry = hash_seq_search(&scan)) != NULL)
	{
		if (OidIsValid(serverid) && entry->serverid != serverid)
			continue;
		if (entry->http == NULL && entry->access_token == NULL)
			continue;
		if (entry->users > 0)
		{
			ForeignServer *server = GetForeignServerExtended(entry->serverid, FSV_MISSING_OK);

			ereport(WARNING,
					(errmsg("cannot close the connection to server \"%s\" because it is still in use",
							server ? server->servername : "?")));
			continue;
		}
		drop_token(entry);
		if (entry->token_url)
			pfree(entry->token_url);
		entry->token_url = NULL;
		close_client(entry);
		closed = true;
	}
	return closed;
}

/*
 * The connection's current access token (for bulk.c's DELETE during abort,
 * which must not fetch one), or NULL.
 */
const char *
epic_connection_token(EpicConnection *conn)
{
	return conn->access_token;
}
