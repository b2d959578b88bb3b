/*
 * bench/transfer.c: the transfer limit of a Bulk Data export's files, for
 * bench/bulk.py.  Downloads every URL read from standard input (one a line)
 * with libcurl's multi interface, at most CONCURRENCY in flight, over TLS
 * verified with CA_FILE, and throws the bodies away.  Prints
 * "<bytes> <milliseconds>" and exits non-zero if any transfer failed or
 * answered other than 200.
 *
 * With "follow URL" instead of CONCURRENCY it is the transfer limit of a
 * search: it GETs URL and then each page's next link, one keep-alive
 * connection, the bearer token of $BENCH_TOKEN, the next link found by a
 * string search on the raw bytes (no JSON parsing).
 *
 *   gcc -O2 -o transfer bench/transfer.c -lcurl
 *   ./transfer CA_FILE CONCURRENCY < urls
 *   BENCH_TOKEN=... ./transfer CA_FILE follow URL
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

static size_t total = 0;

static size_t
discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	total += size * nmemb;
	return size * nmemb;
}

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void
add(CURLM *multi, const char *url, const char *ca)
{
	CURL	   *e = curl_easy_init();

	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CAINFO, ca);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *) url);
	curl_multi_add_handle(multi, e);
}

/* a page's body, for the next link */
static char *page = NULL;
static size_t page_len = 0,
			page_cap = 0;

static size_t
keep(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	size_t		n = size * nmemb;

	if (page_len + n + 1 > page_cap)
	{
		page_cap = (page_len + n + 1) * 2;
		page = realloc(page, page_cap);
	}
	memcpy(page + page_len, ptr, n);
	page_len += n;
	page[page_len] = '\0';
	total += n;
	return n;
}

/* The next link of the page in `page` (malloc'd), or NULL. */
static char *
next_link(void)
{
	char	   *p = page ? strstr(page, "\"next\"") : NULL;
	char	   *end;

	if (p == NULL || (p = strstr(p, "\"url\"")) == NULL)
		return NULL;
	p = strchr(p + 5, '"');
	if (p == NULL || (end = strchr(p + 1, '"')) == NULL)
		return NULL;
	return strndup(p + 1, end - p - 1);
}

static int
follow(const char *ca, const char *start)
{
	CURL	   *e = curl_easy_init();
	struct curl_slist *h = NULL;
	char		auth[4096];
	char	   *url = strdup(start);
	double		t0 = now_ms();
	int			pages = 0;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", getenv("BENCH_TOKEN") ? getenv("BENCH_TOKEN") : "");
	h = curl_slist_append(h, auth);
	h = curl_slist_append(h, "Accept: application/fhir+json");
	curl_easy_setopt(e, CURLOPT_CAINFO, ca);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, keep);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	while (url != NULL)
	{
		long		status = 0;

		page_len = 0;
		curl_easy_setopt(e, CURLOPT_URL, url);
		if (curl_easy_perform(e) != CURLE_OK ||
			curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK || status != 200)
		{
			fprintf(stderr, "transfer: %s failed (HTTP %ld)\n", url, status);
			return 1;
		}
		pages++;
		free(url);
		url = next_link();
	}
	printf("%zu %.1f %d\n", total, now_ms() - t0, pages);
	return 0;
}

int
main(int argc, char **argv)
{
	char	  **urls = NULL;
	size_t		n = 0,
				cap = 0,
				next = 0;
	char		line[8192];
	int			limit,
				running = 0,
				failed = 0;
	CURLM	   *multi;
	double		t0;

	if (argc == 4 && strcmp(argv[2], "follow") == 0)
	{
		curl_global_init(CURL_GLOBAL_ALL);
		return follow(argv[1], argv[3]);
	}
	if (argc != 3)
	{
		fprintf(stderr, "usage: %s CA_FILE CONCURRENCY < urls\n       %s CA_FILE follow URL\n",
				argv[0], argv[0]);
		return 2;
	}
	limit = atoi(argv[2]);
	while (fgets(line, sizeof(line), stdin))
	{
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 64;
			urls = realloc(urls, cap * sizeof(char *));
		}
		urls[n++] = strdup(line);
	}
	curl_global_init(CURL_GLOBAL_ALL);
	multi = curl_multi_init();
	t0 = now_ms();
	while (next < n && (int) next < limit)
		add(multi, urls[next++], argv[1]);
	do
	{
		CURLMsg    *msg;
		int			left;

		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			long		status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result != CURLE_OK || status != 200)
				failed++;
			curl_multi_remove_handle(multi, msg->easy_handle);
			curl_easy_cleanup(msg->easy_handle);
			if (next < n)
				add(multi, urls[next++], argv[1]);
		}
		curl_multi_perform(multi, &running);
		if (running > 0 || next < n)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	} while (running > 0 || next < n);
	printf("%zu %.1f\n", total, now_ms() - t0);
	curl_multi_cleanup(multi);
	return failed ? 1 : 0;
}
