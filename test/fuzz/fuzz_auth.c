/*
 * fuzz_auth.c - libFuzzer target for the untrusted-input parsers of
 * src/auth.c: the OAuth token endpoint response and the SMART discovery
 * document.  No PostgreSQL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static volatile size_t sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *) data;
	char		errbuf[256];
	char	   *token,
			   *error,
			   *desc,
			   *endpoint;
	long		expires;
	int			rc;

	/* with every output */
	rc = epic_token_response_parse(body, size, &token, &expires, &error, &desc,
								   errbuf, sizeof(errbuf));
	if (rc == 0)
	{
		if (token == NULL || error != NULL || desc != NULL || expires < 0)
			abort();
		sink += strlen(token);
		epic_secret_free(token);
	}
	else if (rc == 1)
	{
		if (token != NULL || error == NULL)
			abort();
		sink += strlen(error) + (desc ? strlen(desc) : 0);
		free(error);
		free(desc);
	}
	else if (rc == -1)
	{
		if (token != NULL || error != NULL || desc != NULL)
			abort();
		sink += strnlen(errbuf, sizeof(errbuf));
	}
	else
		abort();

	/* without the optional outputs, and with a tiny error buffer */
	rc = epic_token_response_parse(body, size, &token, &expires, NULL, NULL, errbuf, 8);
	if (rc == 0)
		epic_secret_free(token);
	else if (token != NULL)
		abort();

	/* no error buffer at all */
	rc = epic_token_response_parse(body, size, &token, &expires, NULL, NULL, NULL, 0);
	if (rc == 0)
		epic_secret_free(token);

	endpoint = epic_smart_config_token_endpoint(body, size, errbuf, sizeof(errbuf));
	if (endpoint != NULL)
	{
		if (endpoint[0] == '\0')
			abort();
		sink += strlen(endpoint);
		free(endpoint);
	}
	endpoint = epic_smart_config_token_endpoint(body, size, NULL, 0);
	free(endpoint);
	return 0;
}
