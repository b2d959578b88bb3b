/*
 * test_auth.c - unit tests for src/auth.c (outside PostgreSQL)
 *
 * Keys are generated at test time with EVP_PKEY_Q_keygen, so no files are
 * needed.  Optional tier: if EPIC_SHARED_DIR is set and
 * $EPIC_SHARED_DIR/reference/rs384-vector/vector.json exists, the published
 * RS384 vector is reproduced byte for byte.
 *
 * Output: "ok N - ..." / "not ok N - ..." lines and a final
 * "N passed, N failed, N skipped" line; exit status 1 on any failure.
 * The test itself uses OpenSSL only to create keys and verify signatures.
 */
#include "auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

static int	n_test,
			n_pass,
			n_fail,
			n_skip;

static void
check(int cond, const char *fmt,...)
{
	va_list		ap;

	n_test++;
	if (cond)
		n_pass++;
	else
		n_fail++;
	printf("%sok %d - ", cond ? "" : "not ", n_test);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void
skip(const char *why)
{
	n_test++;
	n_skip++;
	printf("ok %d # SKIP %s\n", n_test, why);
}

/* ---------------------------------------------------------------- keys */

typedef enum
{
	FMT_PKCS8,
	FMT_TRADITIONAL,			/* PKCS#1 RSA / SEC1 EC */
} KeyFmt;

static char *
bio_to_str(BIO *bio)
{
	char	   *data;
	long		n = BIO_get_mem_data(bio, &data);
	char	   *s = malloc((size_t) n + 1);

	memcpy(s, data, (size_t) n);
	s[n] = '\0';
	return s;
}

static char *
key_pem(EVP_PKEY *pkey, KeyFmt fmt)
{
	BIO		   *bio = BIO_new(BIO_s_mem());
	char	   *s;
	int			ok;

	if (fmt == FMT_PKCS8)
		ok = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
	else
		ok = PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0,
												  NULL, NULL);
	if (!ok)
	{
		fprintf(stderr, "cannot write key\n");
		exit(2);
	}
	s = bio_to_str(bio);
	BIO_free(bio);
	return s;
}

static char *
key_pem_encrypted(EVP_PKEY *pkey)
{
	BIO		   *bio = BIO_new(BIO_s_mem());
	char	   *s;

	PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), "pw", 2,
								  NULL, NULL);
	s = bio_to_str(bio);
	BIO_free(bio);
	return s;
}

/* "-----BEGIN EC PARAMETERS-----" block followed by a SEC1 key */
static char *
key_pem_with_params(EVP_PKEY *pkey)
{
	BIO		   *bio = BIO_new(BIO_s_mem());
	char	   *s;

	PEM_write_bio_Parameters(bio, pkey);
	PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL);
	s = bio_to_str(bio);
	BIO_free(bio);
	return s;
}

static EVP_PKEY *
gen_rsa(size_t bits)
{
	EVP_PKEY   *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);

	if (!k)
	{
		fprintf(stderr, "RSA keygen failed\n");
		exit(2);
	}
	return k;
}

static EVP_PKEY *
gen_ec(const char *curve)
{
	EVP_PKEY   *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);

	if (!k)
	{
		fprintf(stderr, "EC keygen failed\n");
		exit(2);
	}
	return k;
}

/*
 * True if errbuf contains any 12-character run of the PEM's base64 body
 * lines (i.e. leaks key material).
 */
static int
leaks_pem(const char *errbuf, const char *pem)
{
	const char *line = pem;

	while (*line)
	{
		const char *eol = strchr(line, '\n');
		size_t		len = eol ? (size_t) (eol - line) : strlen(line);

		if (len >= 12 && strncmp(line, "-----", 5) != 0 &&
			memchr(line, ':', len) == NULL)
		{
			for (size_t i = 0; i + 12 <= len; i++)
			{
				char		win[13];

				memcpy(win, line + i, 12);
				win[12] = '\0';
				if (strstr(errbuf, win))
					return 1;
			}
		}
		if (!eol)
			break;
		line = eol + 1;
	}
	return 0;
}

/* ------------------------------------------------------- base64url decode */

static unsigned char *
b64url_decode(const char *s, size_t *outlen)
{
	size_t		n = strlen(s);
	unsigned char *out = malloc(n * 3 / 4 + 3);
	unsigned long acc = 0;
	int			bits = 0;
	size_t		o = 0;

	for (size_t i = 0; i < n; i++)
	{
		int			v;
		char		c = s[i];

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '-')
			v = 62;
		else if (c == '_')
			v = 63;
		else
		{
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (unsigned long) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (unsigned char) ((acc >> bits) & 0xff);
		}
	}
	*outlen = o;
	out[o] = '\0';
	return out;
}

/* split a JWT into its three segments (malloc'd copies); 0 on success */
static int
split_jwt(const char *jwt, char **h, char **p, char **s)
{
	const char *d1 = strchr(jwt, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;

	*h = *p = *s = NULL;
	if (!d1 || !d2 || strchr(d2 + 1, '.'))
		return -1;
	*h = strndup(jwt, (size_t) (d1 - jwt));
	*p = strndup(d1 + 1, (size_t) (d2 - d1 - 1));
	*s = strdup(d2 + 1);
	return 0;
}

static json_t *
decode_json_segment(const char *seg)
{
	size_t		n;
	unsigned char *raw = b64url_decode(seg, &n);
	json_t	   *j;

	if (!raw)
		return NULL;
	j = json_loadb((const char *) raw, n, 0, NULL);
	free(raw);
	return j;
}

static const char *
jstr(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* ------------------------------------------------------------- verify */

static int
verify_sig(EVP_PKEY *pkey, const unsigned char *sig, size_t siglen,
		   const char *msg)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int			ok;

	ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha384(), NULL, pkey) == 1 &&
		EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *) msg,
						 strlen(msg)) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

/* verify a base64url RS384 signature */
static int
verify_rs384(EVP_PKEY *pkey, const char *sig_b64, const char *msg)
{
	size_t		n;
	unsigned char *sig = b64url_decode(sig_b64, &n);
	int			ok;

	if (!sig)
		return 0;
	ok = verify_sig(pkey, sig, n, msg);
	free(sig);
	return ok;
}

/* verify a base64url r||s ES384 signature; *rawlen gets decoded length */
static int
verify_es384(EVP_PKEY *pkey, const char *sig_b64, const char *msg,
			 size_t *rawlen)
{
	size_t		n;
	unsigned char *raw = b64url_decode(sig_b64, &n);
	ECDSA_SIG  *es;
	BIGNUM	   *r,
			   *s;
	unsigned char *der = NULL;
	int			derlen;
	int			ok;

	*rawlen = raw ? n : 0;
	if (!raw || n != 96)
	{
		free(raw);
		return 0;
	}
	r = BN_bin2bn(raw, 48, NULL);
	s = BN_bin2bn(raw + 48, 48, NULL);
	es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, r, s);
	derlen = i2d_ECDSA_SIG(es, &der);
	ok = derlen > 0 && verify_sig(pkey, der, (size_t) derlen, msg);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	free(raw);
	return ok;
}

/* -------------------------------------------------------------- tests */

static void
test_alg(void)
{
	EpicJwtAlg	a;

	check(epic_jwt_alg_parse("RS384", &a) == 0 && a == EPIC_ALG_RS384,
		  "alg parse RS384");
	check(epic_jwt_alg_parse("ES384", &a) == 0 && a == EPIC_ALG_ES384,
		  "alg parse ES384");
	check(epic_jwt_alg_parse("rs384", &a) == -1, "alg parse is case-sensitive");
	check(epic_jwt_alg_parse("RS256", &a) == -1, "alg parse rejects RS256");
	check(epic_jwt_alg_parse(NULL, &a) == -1, "alg parse rejects NULL");
	check(strcmp(epic_jwt_alg_name(EPIC_ALG_RS384), "RS384") == 0 &&
		  strcmp(epic_jwt_alg_name(EPIC_ALG_ES384), "ES384") == 0,
		  "alg names");
}

static void
test_base64url(void)
{
	static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *exp[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE",
	"Zm9vYmFy"};
	static const unsigned char bin[] = {0xfb, 0xff, 0xbf, 0xfe};

	for (int i = 0; i < 7; i++)
	{
		char	   *o = epic_base64url_encode((const unsigned char *) in[i],
											  strlen(in[i]));

		check(o && strcmp(o, exp[i]) == 0, "base64url(\"%s\") = \"%s\" (got \"%s\")",
			  in[i], exp[i], o ? o : "(null)");
		free(o);
	}
	{
		char	   *o = epic_base64url_encode(bin, sizeof(bin));

		/* standard base64 would be "+/+//g==" */
		check(o && strcmp(o, "-_-__g") == 0,
			  "base64url binary uses '-' and '_' and no padding (got \"%s\")",
			  o ? o : "(null)");
		free(o);
	}
	{
		char	   *o = epic_base64url_encode(NULL, 0);

		check(o && o[0] == '\0', "base64url(NULL, 0) is empty string");
		free(o);
	}
}

static void
test_form_encode(void)
{
	struct
	{
		const char *in,
				   *out;
	}			c[] = {
		{"", ""},
		{"AZaz09-._~", "AZaz09-._~"},
		{"client_credentials", "client_credentials"},
		{"urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
		"urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"},
		{"a b+c&d=e/f?", "a%20b%2Bc%26d%3De%2Ff%3F"},
		{"system/Patient.rs system/Observation.rs",
		"system%2FPatient.rs%20system%2FObservation.rs"},
		{"\xc3\xa9\x01\xff", "%C3%A9%01%FF"},
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
	{
		char	   *o = epic_form_encode(c[i].in);

		check(o && strcmp(o, c[i].out) == 0, "form encode case %zu (got \"%s\")",
			  i, o ? o : "(null)");
		free(o);
	}
	check(epic_form_encode(NULL) == NULL, "form encode NULL -> NULL");
}

static void
test_key_check(EVP_PKEY *rsa2048, EVP_PKEY *ec384)
{
	char		err[256];
	EVP_PKEY   *rsa1024 = gen_rsa(1024);
	EVP_PKEY   *ec256 = gen_ec("P-256");
	char	   *rsa8 = key_pem(rsa2048, FMT_PKCS8);
	char	   *rsa1 = key_pem(rsa2048, FMT_TRADITIONAL);
	char	   *ec8 = key_pem(ec384, FMT_PKCS8);
	char	   *ec1 = key_pem(ec384, FMT_TRADITIONAL);
	char	   *ecp = key_pem_with_params(ec384);
	char	   *small = key_pem(rsa1024, FMT_PKCS8);
	char	   *p256 = key_pem(ec256, FMT_TRADITIONAL);
	char	   *enc = key_pem_encrypted(rsa2048);
	const char *garbage = "this is not a key";
	const char *fakepem =
		"-----BEGIN PRIVATE KEY-----\n"
		"TUlJRXZRSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NCS2N3Z2dTakFnRUFBb0lC\n"
		"QVFDN1ZKVFV0OVVzOGNLakVPMkJ2NUtYSndMc3hROG5wYmJwZmxtNTJqeG1lQXFC\n"
		"-----END PRIVATE KEY-----\n";
	const char *pub =
		"-----BEGIN PUBLIC KEY-----\n"
		"MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEqp0p5EeuY9ly7PWTqS1LJBkPDlkEnDmN\n"
		"-----END PUBLIC KEY-----\n";

	check(epic_key_check(EPIC_ALG_RS384, rsa8, err, sizeof err) == 0,
		  "key check: RSA-2048 PKCS#8 ok for RS384");
	check(epic_key_check(EPIC_ALG_RS384, rsa1, err, sizeof err) == 0,
		  "key check: RSA-2048 PKCS#1 ok for RS384");
	check(strstr(rsa1, "BEGIN RSA PRIVATE KEY") != NULL,
		  "  (PKCS#1 key really is \"RSA PRIVATE KEY\")");
	check(epic_key_check(EPIC_ALG_ES384, ec8, err, sizeof err) == 0,
		  "key check: P-384 PKCS#8 ok for ES384");
	check(epic_key_check(EPIC_ALG_ES384, ec1, err, sizeof err) == 0,
		  "key check: P-384 SEC1 ok for ES384");
	check(strstr(ec1, "BEGIN EC PRIVATE KEY") != NULL,
		  "  (SEC1 key really is \"EC PRIVATE KEY\")");
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_ES384, ecp, err, sizeof err) == 0,
		  "key check: EC PARAMETERS + EC PRIVATE KEY ok for ES384 (%s)", err);

	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_RS384, ec8, err, sizeof err) == -1 &&
		  strcmp(err, "private key is an EC key but algorithm is RS384") == 0 &&
		  !leaks_pem(err, ec8),
		  "key check: EC key rejected for RS384 (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_ES384, rsa8, err, sizeof err) == -1 &&
		  strcmp(err, "private key is an RSA key but algorithm is ES384") == 0 &&
		  !leaks_pem(err, rsa8),
		  "key check: RSA key rejected for ES384 (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_ES384, p256, err, sizeof err) == -1 &&
		  strstr(err, "EC key must be on curve P-384") == err &&
		  !leaks_pem(err, p256),
		  "key check: P-256 key rejected for ES384 (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_RS384, small, err, sizeof err) == -1 &&
		  strstr(err, "at least 2048 bits") != NULL && !leaks_pem(err, small),
		  "key check: RSA-1024 rejected for RS384 (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_RS384, garbage, err, sizeof err) == -1 &&
		  strstr(err, "could not parse private key: ") == err &&
		  strstr(err, "not a key") == NULL,
		  "key check: garbage text rejected (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_RS384, fakepem, err, sizeof err) == -1 &&
		  strstr(err, "could not parse private key: ") == err &&
		  !leaks_pem(err, fakepem),
		  "key check: PEM with bad body rejected without quoting it (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_ES384, pub, err, sizeof err) == -1 &&
		  strstr(err, "could not parse private key") == err &&
		  !leaks_pem(err, pub),
		  "key check: public key rejected (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_RS384, enc, err, sizeof err) == -1 &&
		  strcmp(err, "encrypted private keys are not supported") == 0 &&
		  !leaks_pem(err, enc),
		  "key check: encrypted key rejected without prompting (%s)", err);
	err[0] = '\0';
	check(epic_key_check(EPIC_ALG_RS384, "", err, sizeof err) == -1 &&
		  epic_key_check(EPIC_ALG_RS384, NULL, err, sizeof err) == -1,
		  "key check: empty / NULL rejected (%s)", err);
	check(ERR_peek_error() == 0, "key check: OpenSSL error queue left empty");
	check(epic_key_check(EPIC_ALG_RS384, garbage, NULL, 0) == -1,
		  "key check: NULL errbuf tolerated");
	{
		char		tiny[8];

		check(epic_key_check(EPIC_ALG_RS384, ec8, tiny, sizeof tiny) == -1 &&
			  strlen(tiny) == sizeof tiny - 1,
			  "key check: short errbuf truncated safely");
	}

	free(rsa8);
	free(rsa1);
	free(ec8);
	free(ec1);
	free(ecp);
	free(small);
	free(p256);
	free(enc);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(ec256);
}

static void
test_sign(EVP_PKEY *rsa, EVP_PKEY *ec)
{
	char		err[256] = "";
	char	   *rpem = key_pem(rsa, FMT_TRADITIONAL);
	char	   *epem = key_pem(ec, FMT_PKCS8);
	const char *msg = "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJ4In0";
	char	   *s1,
			   *s2;
	size_t		rawlen = 0;

	s1 = epic_jws_sign(EPIC_ALG_RS384, rpem, msg, err, sizeof err);
	check(s1 && verify_rs384(rsa, s1, msg), "RS384 sign verifies with public key (%s)", err);
	check(s1 && strlen(s1) == 342, "RS384 signature of 2048-bit key is 342 base64url chars");
	s2 = epic_jws_sign(EPIC_ALG_RS384, rpem, msg, err, sizeof err);
	check(s1 && s2 && strcmp(s1, s2) == 0, "RS384 signing is deterministic");
	check(s1 && !verify_rs384(rsa, s1, "eyJhbGciOiJSUzM4NCJ9.eyJpc3MiOiJ5In0"),
		  "RS384 signature does not verify for other input");
	free(s1);
	free(s2);

	/* ECDSA: repeat to exercise short r / s (left padding) now and then */
	{
		int			all_ok = 1,
					all96 = 1;

		for (int i = 0; i < 40; i++)
		{
			s1 = epic_jws_sign(EPIC_ALG_ES384, epem, msg, err, sizeof err);
			if (!s1 || !verify_es384(ec, s1, msg, &rawlen))
				all_ok = 0;
			if (rawlen != 96 || !s1 || strlen(s1) != 128)
				all96 = 0;
			free(s1);
		}
		check(all_ok, "ES384 r||s signatures convert back to DER and verify (40 runs) (%s)", err);
		check(all96, "ES384 signatures decode to exactly 96 bytes (128 chars)");
	}

	err[0] = '\0';
	s1 = epic_jws_sign(EPIC_ALG_ES384, rpem, msg, err, sizeof err);
	check(s1 == NULL && strstr(err, "RSA key but algorithm is ES384") && !leaks_pem(err, rpem),
		  "sign: RSA key with ES384 refused (%s)", err);
	err[0] = '\0';
	s1 = epic_jws_sign(EPIC_ALG_RS384, "nope", msg, err, sizeof err);
	check(s1 == NULL && strstr(err, "could not parse private key") == err,
		  "sign: bad key refused (%s)", err);
	check(ERR_peek_error() == 0, "sign: OpenSSL error queue left empty");

	free(rpem);
	free(epem);
}

static void
check_assertion(EpicJwtAlg alg, EVP_PKEY *pkey, const char *pem)
{
	const char *an = epic_jwt_alg_name(alg);
	char		err[256] = "";
	char	   *jti = NULL;
	char	   *jti2 = NULL;
	char	   *jwt,
			   *jwt2;
	char	   *h = NULL,
			   *p = NULL,
			   *s = NULL;
	json_t	   *hj = NULL,
			   *pj = NULL;
	const char *aud = "https://fhir.example.org/oauth2/token";
	const char *cid = "d45049c3-3441-40ef-ab4d-b9cd86a17225";
	long long	now = 1700000000LL;

	jwt = epic_jwt_build_assertion(alg, pem, "key-1", "https://app.example.org/jwks.json",
								   cid, aud, now, 300, &jti, err, sizeof err);
	check(jwt != NULL, "%s assertion built (%s)", an, err);
	if (!jwt)
		return;
	check(split_jwt(jwt, &h, &p, &s) == 0, "%s assertion has 3 segments", an);
	hj = h ? decode_json_segment(h) : NULL;
	pj = p ? decode_json_segment(p) : NULL;
	check(hj && json_object_size(hj) == 4 &&
		  jstr(hj, "alg") && strcmp(jstr(hj, "alg"), an) == 0 &&
		  jstr(hj, "typ") && strcmp(jstr(hj, "typ"), "JWT") == 0 &&
		  jstr(hj, "kid") && strcmp(jstr(hj, "kid"), "key-1") == 0 &&
		  jstr(hj, "jku") && strcmp(jstr(hj, "jku"), "https://app.example.org/jwks.json") == 0,
		  "%s header has alg/typ/kid/jku", an);
	check(pj && json_object_size(pj) == 5 &&
		  jstr(pj, "iss") && strcmp(jstr(pj, "iss"), cid) == 0 &&
		  jstr(pj, "sub") && strcmp(jstr(pj, "sub"), cid) == 0 &&
		  jstr(pj, "aud") && strcmp(jstr(pj, "aud"), aud) == 0 &&
		  json_is_integer(json_object_get(pj, "exp")) &&
		  json_integer_value(json_object_get(pj, "exp")) == now + 300,
		  "%s claims iss=sub=client_id, aud, exp=now+lifetime", an);
	check(pj && jstr(pj, "jti") && strlen(jstr(pj, "jti")) == 43 &&
		  strspn(jstr(pj, "jti"), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43,
		  "%s jti is 43 base64url chars", an);
	check(jti && pj && jstr(pj, "jti") && strcmp(jti, jstr(pj, "jti")) == 0,
		  "%s jti_out matches the claim", an);
	if (h && p && s)
	{
		char	   *si = malloc(strlen(h) + strlen(p) + 2);
		size_t		rawlen;

		sprintf(si, "%s.%s", h, p);
		if (alg == EPIC_ALG_RS384)
			check(verify_rs384(pkey, s, si), "%s assertion signature verifies", an);
		else
			check(verify_es384(pkey, s, si, &rawlen), "%s assertion signature verifies", an);
		free(si);
	}

	jwt2 = epic_jwt_build_assertion(alg, pem, "key-1", NULL, cid, aud, now, 60,
									&jti2, err, sizeof err);
	check(jwt2 && jti && jti2 && strcmp(jti, jti2) != 0,
		  "%s two assertions have different jti", an);
	json_decref(hj);
	hj = NULL;
	free(h);
	free(p);
	free(s);
	h = p = s = NULL;
	if (jwt2 && split_jwt(jwt2, &h, &p, &s) == 0)
		hj = decode_json_segment(h);
	check(hj && json_object_size(hj) == 3 && json_object_get(hj, "jku") == NULL &&
		  jstr(hj, "kid") != NULL,
		  "%s header omits jku when NULL", an);

	json_decref(hj);
	json_decref(pj);
	free(h);
	free(p);
	free(s);
	epic_secret_free(jwt);
	epic_secret_free(jwt2);
	free(jti);
	free(jti2);
}

static void
test_assertion(EVP_PKEY *rsa, EVP_PKEY *ec)
{
	char	   *rpem = key_pem(rsa, FMT_PKCS8);
	char	   *epem = key_pem(ec, FMT_TRADITIONAL);
	char		err[256];
	char	   *jti = (char *) "x";
	char	   *jwt;

	check_assertion(EPIC_ALG_RS384, rsa, rpem);
	check_assertion(EPIC_ALG_ES384, ec, epem);

	/* kid / jku both empty -> header is just alg, typ */
	jwt = epic_jwt_build_assertion(EPIC_ALG_ES384, epem, "", NULL, "c", "a",
								   1, 10, NULL, err, sizeof err);
	{
		char	   *h,
				   *p,
				   *s;
		json_t	   *hj = NULL;

		if (jwt && split_jwt(jwt, &h, &p, &s) == 0)
		{
			hj = decode_json_segment(h);
			free(h);
			free(p);
			free(s);
		}
		check(hj && json_object_size(hj) == 2, "assertion header omits empty kid");
		json_decref(hj);
	}
	free(jwt);

	err[0] = '\0';
	jwt = epic_jwt_build_assertion(EPIC_ALG_RS384, epem, "k", NULL, "c", "a",
								   1, 60, &jti, err, sizeof err);
	check(jwt == NULL && jti == NULL &&
		  strcmp(err, "private key is an EC key but algorithm is RS384") == 0,
		  "assertion: key/alg mismatch fails and clears jti_out (%s)", err);
	err[0] = '\0';
	jwt = epic_jwt_build_assertion(EPIC_ALG_RS384, rpem, "k", NULL, "", "a",
								   1, 60, NULL, err, sizeof err);
	check(jwt == NULL && strstr(err, "client_id"), "assertion: empty client_id refused (%s)", err);
	err[0] = '\0';
	jwt = epic_jwt_build_assertion(EPIC_ALG_RS384, rpem, "k", NULL, "c", "a",
								   1, 301, NULL, err, sizeof err);
	check(jwt == NULL && strstr(err, "lifetime"), "assertion: lifetime 301 refused (%s)", err);
	err[0] = '\0';
	jwt = epic_jwt_build_assertion(EPIC_ALG_RS384, rpem, "k", NULL, "c\xff", "a",
								   1, 60, NULL, err, sizeof err);
	check(jwt == NULL && strstr(err, "UTF-8"), "assertion: invalid UTF-8 refused (%s)", err);

	/* JSON escaping of awkward characters */
	jwt = epic_jwt_build_assertion(EPIC_ALG_ES384, epem, "k\"\\", NULL,
								   "c\"lient\n", "https://x/y?a=b&c=\xc3\xa9",
								   1, 60, NULL, err, sizeof err);
	{
		char	   *h = NULL,
				   *p = NULL,
				   *s = NULL;
		json_t	   *hj = NULL,
				   *pj = NULL;

		if (jwt && split_jwt(jwt, &h, &p, &s) == 0)
		{
			hj = decode_json_segment(h);
			pj = decode_json_segment(p);
		}
		check(hj && pj && strcmp(jstr(hj, "kid"), "k\"\\") == 0 &&
			  strcmp(jstr(pj, "iss"), "c\"lient\n") == 0 &&
			  strcmp(jstr(pj, "aud"), "https://x/y?a=b&c=\xc3\xa9") == 0,
			  "assertion: special characters round-trip through JSON");
		json_decref(hj);
		json_decref(pj);
		free(h);
		free(p);
		free(s);
	}
	free(jwt);

	free(rpem);
	free(epem);
}

static void
test_token_response(void)
{
	char		err[256];
	char	   *at,
			   *e,
			   *d;
	long		ei;
	int			rc;

#define PARSE(str) \
	(err[0] = '\0', epic_token_response_parse((str), strlen(str), &at, &ei, &e, &d, err, sizeof err))

	rc = PARSE("{\"access_token\":\"abc.DEF-123\",\"token_type\":\"Bearer\",\"expires_in\":3600,\"scope\":\"system/Patient.read\"}");
	check(rc == 0 && at && strcmp(at, "abc.DEF-123") == 0 && ei == 3600 && !e && !d,
		  "token: success with Bearer");
	free(at);
	rc = PARSE("{\"access_token\":\"tok\",\"token_type\":\"bearer\",\"expires_in\":300}");
	check(rc == 0 && at && strcmp(at, "tok") == 0 && ei == 300, "token: success with bearer");
	free(at);
	rc = PARSE("{\"access_token\":\"tok\",\"token_type\":\"BEARER\"}");
	check(rc == 0 && at && ei == 0, "token: missing expires_in -> 0");
	free(at);
	rc = PARSE("{\"access_token\":\"tok\",\"token_type\":\"bearer\",\"expires_in\":\"3600\"}");
	check(rc == 0 && at && ei == 0, "token: string expires_in -> 0");
	free(at);
	rc = PARSE("{\"access_token\":\"tok\",\"token_type\":\"bearer\",\"expires_in\":-5}");
	check(rc == 0 && at && ei == 0, "token: negative expires_in -> 0");
	free(at);

	rc = PARSE("{\"error\":\"invalid_client\",\"error_description\":\"bad signature\"}");
	check(rc == 1 && e && strcmp(e, "invalid_client") == 0 && d &&
		  strcmp(d, "bad signature") == 0 && !at,
		  "token: error object with description");
	free(e);
	free(d);
	rc = PARSE("{\"error\":\"invalid_grant\"}");
	check(rc == 1 && e && strcmp(e, "invalid_grant") == 0 && d == NULL,
		  "token: error object without description");
	free(e);
	rc = epic_token_response_parse("{\"error\":\"invalid_scope\"}", 25, &at, &ei,
								   NULL, NULL, err, sizeof err);
	check(rc == 1, "token: error object with NULL error outputs");

	rc = PARSE("<html>502 Bad Gateway</html>");
	check(rc == -1 && strstr(err, "token response is not valid JSON") == err &&
		  !strstr(err, "Gateway") && !at,
		  "token: non-JSON (%s)", err);
	rc = PARSE("{\"access_token\": secret-value-here");
	check(rc == -1 && strstr(err, "not valid JSON") && !strstr(err, "secret"),
		  "token: broken JSON does not quote body (%s)", err);
	rc = PARSE("");
	check(rc == -1 && strstr(err, "empty"), "token: empty body (%s)", err);
	rc = PARSE("[\"access_token\"]");
	check(rc == -1 && strcmp(err, "token response is not a JSON object") == 0,
		  "token: array (%s)", err);
	rc = PARSE("{\"token_type\":\"bearer\"}");
	check(rc == -1 && strcmp(err, "token response has no access_token") == 0,
		  "token: missing access_token (%s)", err);
	rc = PARSE("{\"access_token\":\"s3cr3t\",\"token_type\":\"mac\"}");
	check(rc == -1 && strcmp(err, "token response has unsupported token_type \"mac\"") == 0 &&
		  !strstr(err, "s3cr3t") && !at,
		  "token: token_type mac (%s)", err);
	rc = PARSE("{\"access_token\":\"s3cr3t\"}");
	check(rc == -1 && strcmp(err, "token response has no token_type") == 0,
		  "token: missing token_type (%s)", err);
	rc = PARSE("{\"access_token\":42,\"token_type\":\"bearer\"}");
	check(rc == -1 && strstr(err, "not a string"), "token: numeric access_token (%s)", err);
	rc = PARSE("{\"access_token\":\"a\\r\\nX-Evil: 1\",\"token_type\":\"bearer\"}");
	check(rc == -1 && strstr(err, "invalid characters") && !strstr(err, "Evil"),
		  "token: CR/LF in access_token refused (%s)", err);
	rc = PARSE("{\"access_token\":\"a\\u0000b\",\"token_type\":\"bearer\"}");
	check(rc == -1 && !at, "token: NUL in access_token refused (%s)", err);
	rc = PARSE("{\"access_token\":\"tok\",\"token_type\":\"x\\ny\"}");
	check(rc == -1 && strcmp(err, "token response has unsupported token_type") == 0,
		  "token: odd token_type not quoted (%s)", err);
	{
		/* not NUL-terminated: only the first len bytes are parsed */
		const char	buf[] = "{\"access_token\":\"t\",\"token_type\":\"bearer\"}GARBAGE";

		rc = epic_token_response_parse(buf, sizeof(buf) - 1 - 7, &at, &ei, &e, &d,
									   err, sizeof err);
		check(rc == 0 && at && strcmp(at, "t") == 0, "token: honours len");
		free(at);
	}
#undef PARSE
}

static void
test_smart_config(void)
{
	char		err[256];
	const char *ok = "{\"token_endpoint\":\"https://fhir.example.org/oauth2/token\","
		"\"token_endpoint_auth_methods_supported\":[\"private_key_jwt\"]}";
	char	   *te;

	te = epic_smart_config_token_endpoint(ok, strlen(ok), err, sizeof err);
	check(te && strcmp(te, "https://fhir.example.org/oauth2/token") == 0,
		  "smart-configuration token_endpoint");
	free(te);
	te = epic_smart_config_token_endpoint("{\"issuer\":\"x\"}", 14, err, sizeof err);
	check(!te && strcmp(err, "smart-configuration has no token_endpoint") == 0,
		  "smart-configuration missing token_endpoint (%s)", err);
	te = epic_smart_config_token_endpoint("{\"token_endpoint\":5}", 20, err, sizeof err);
	check(!te && strstr(err, "not a non-empty string"),
		  "smart-configuration non-string token_endpoint (%s)", err);
	te = epic_smart_config_token_endpoint("nope", 4, err, sizeof err);
	check(!te && strstr(err, "smart-configuration is not valid JSON") == err,
		  "smart-configuration not JSON (%s)", err);
	te = epic_smart_config_token_endpoint("[]", 2, err, sizeof err);
	check(!te && strstr(err, "not a JSON object"),
		  "smart-configuration array (%s)", err);
}

static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
test_reference_vector(void)
{
	const char *dir = getenv("EPIC_SHARED_DIR");
	char		vpath[4096],
				kpath[4096];
	struct stat st;
	json_t	   *v;
	char	   *pem;
	const char *hs,
			   *ps,
			   *expected;
	char		err[256] = "";

	if (!dir || !*dir)
	{
		skip("RS384 reference vector: EPIC_SHARED_DIR not set");
		return;
	}
	snprintf(vpath, sizeof vpath, "%s/reference/rs384-vector/vector.json", dir);
	snprintf(kpath, sizeof kpath, "%s/reference/rs384-vector/private.pem", dir);
	if (stat(vpath, &st) != 0)
	{
		skip("RS384 reference vector: vector.json not found");
		return;
	}
	v = json_load_file(vpath, 0, NULL);
	pem = read_file(kpath);
	hs = jstr(v, "header_segment");
	ps = jstr(v, "payload_segment");
	expected = jstr(v, "expected_jwt");
	check(v && pem && hs && ps && expected, "RS384 reference vector loaded");
	if (v && pem && hs && ps && expected)
	{
		char	   *si = malloc(strlen(hs) + strlen(ps) + 2);
		char	   *sig,
				   *jwt = NULL;

		sprintf(si, "%s.%s", hs, ps);
		check(epic_key_check(EPIC_ALG_RS384, pem, err, sizeof err) == 0,
			  "RS384 reference key accepted (%s)", err);
		sig = epic_jws_sign(EPIC_ALG_RS384, pem, si, err, sizeof err);
		if (sig)
		{
			jwt = malloc(strlen(si) + strlen(sig) + 2);
			sprintf(jwt, "%s.%s", si, sig);
		}
		check(jwt && strcmp(jwt, expected) == 0,
			  "RS384 reference vector reproduced byte for byte (%s)", err);
		free(sig);
		free(jwt);
		free(si);
	}
	json_decref(v);
	free(pem);
}

int
main(void)
{
	EVP_PKEY   *rsa = gen_rsa(2048);
	EVP_PKEY   *ec = gen_ec("P-384");

	test_alg();
	test_base64url();
	test_form_encode();
	test_key_check(rsa, ec);
	test_sign(rsa, ec);
	test_assertion(rsa, ec);
	test_token_response();
	test_smart_config();
	test_reference_vector();

	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);

	printf("%d passed, %d failed, %d skipped\n", n_pass, n_fail, n_skip);
	return n_fail ? 1 : 0;
}
