/*
 * bench/transfer.c: the transfer limit of a Bulk Data export's files, for
 * bench/bulk.py.  Downloads every URL read from standard input (one a line)
 * with libcurl's multi interface, at most CONCURRENCY in flight, over TLS
 * verified with CA_FILE, and throws the bodies away.  Prints
 * "<bytes> <milliseconds>" and exits non-zero if any transfer failed or
 * answered other than 200.
 *
 *   gcc -O2 -o transfer bench/transfer.c -lcurl
 *   ./transfer CA_FILE CONCURRENCY < urls
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

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s CA_FILE CONCURRENCY < urls\n", argv[0]);
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
