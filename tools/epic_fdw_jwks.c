/*
 * epic_fdw_jwks — print the JWK Set for PEM keys, as epic_fdw_public_jwks()
 * does in SQL, so the document to host at the jku URL can be made without a
 * database: epic_fdw_jwks [--kid KID] KEY.pem [MORE.pem ...]
 * The first key may be private (only its public half is printed) and takes
 * --kid; the others get their RFC 7638 thumbprint as kid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > 1 << 20)
	{
		if (f)
			fclose(f);
		return NULL;
	}
	rewind(f);
	buf = calloc(1, (size_t) n + 1);
	if (buf && fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

int
main(int argc, char **argv)
{
	const char *kid = NULL;
	int			i = 1;
	int			first = 1;

	if (argc > 2 && strcmp(argv[1], "--kid") == 0)
	{
		kid = argv[2];
		i = 3;
	}
	if (i >= argc)
	{
		fprintf(stderr, "usage: %s [--kid KID] KEY.pem [MORE.pem ...]\n", argv[0]);
		return 2;
	}
	printf("{\"keys\":[");
	for (; i < argc; i++)
	{
		char		errbuf[256];
		char	   *pem = read_file(argv[i]);
		char	   *jwk;

		if (pem == NULL)
		{
			fprintf(stderr, "epic_fdw_jwks: cannot read %s\n", argv[i]);
			return 1;
		}
		jwk = epic_jwk_from_pem(pem, first ? kid : NULL, errbuf, sizeof(errbuf));
		epic_secret_free(pem);
		if (jwk == NULL)
		{
			fprintf(stderr, "epic_fdw_jwks: %s: %s\n", argv[i], errbuf);
			return 1;
		}
		printf("%s%s", first ? "" : ",", jwk);
		free(jwk);
		first = 0;
	}
	printf("]}\n");
	return 0;
}
