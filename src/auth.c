/*
 * auth.c - SMART Backend Services client authentication for epic_fdw
 *
 * Builds and signs the private_key_jwt client assertion (RS384 or ES384)
 * used in the OAuth 2.0 client_credentials grant, and parses the token
 * endpoint's response and the SMART discovery document.
 *
 * This file is deliberately independent of PostgreSQL: no postgres headers,
 * no palloc, no ereport.  It is unit-tested and fuzzed on its own
 * (test/unit).  It is the only file of the project that includes OpenSSL
 * headers.
 *
 * Conventions (see auth.h):
 *  - returned strings are malloc'd and owned by the caller (free());
 *  - errors are reported through (errbuf, errlen), PostgreSQL message style,
 *    and never contain the private key, the assertion or a token;
 *  - sensitive buffers owned here are OPENSSL_cleanse'd before free();
 *  - the OpenSSL error queue is cleared on every error path.
 */
#include "auth.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#define ES384_COORD_LEN 48		/* bytes in each of r and s for P-384 */
#define JTI_RANDOM_BYTES 32
#define MIN_RSA_BITS 2048
#define MAX_ASSERTION_LIFETIME 300

/* ---------------------------------------------------------------------- */
/* small helpers                                                           */
/* ---------------------------------------------------------------------- */

static void set_err(char *errbuf, size_t errlen, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

static void
set_err(char *errbuf, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/*
 * Short reason for the most recent OpenSSL error, then clear the queue.
 * The returned string is static (OpenSSL's string table) and contains no
 * caller data.
 */
static const char *
ossl_reason_and_clear(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown error";
}

static void
secure_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

static void
secure_free_str(char *s)
{
	if (s != NULL)
		secure_free(s, strlen(s));
}

static char *
dup_str(const char *s)
{
	size_t		n = strlen(s);
	char	   *r = malloc(n + 1);

	if (r != NULL)
		memcpy(r, s, n + 1);
	return r;
}

void
epic_secret_free(char *s)
{
	secure_free_str(s);
}

/* ---------------------------------------------------------------------- */
/* algorithm names                                                         */
/* ---------------------------------------------------------------------- */

int
epic_jwt_alg_parse(const char *name, EpicJwtAlg *out)
{
	if (name == NULL || out == NULL)
		return -1;
	if (strcmp(name, "RS384") == 0)
	{
		*out = EPIC_ALG_RS384;
		return 0;
	}
	if (strcmp(name, "ES384") == 0)
	{
		*out = EPIC_ALG_ES384;
		return 0;
	}
	return -1;
}

const char *
epic_jwt_alg_name(EpicJwtAlg alg)
{
	switch (alg)
	{
		case EPIC_ALG_RS384:
			return "RS384";
		case EPIC_ALG_ES384:
			return "ES384";
	}
	return "unknown";
}

/* ---------------------------------------------------------------------- */
/* base64url / form encoding                                               */
/* ---------------------------------------------------------------------- */

char *
epic_base64url_encode(const unsigned char *data, size_t len)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t		outlen;
	char	   *out;
	char	   *p;
	size_t		i;

	if (data == NULL && len > 0)
		return NULL;
	if (len / 3 >= (SIZE_MAX - 8) / 4)
		return NULL;
	outlen = (len / 3) * 4 + 4;
	out = malloc(outlen + 1);
	if (out == NULL)
		return NULL;

	p = out;
	for (i = 0; i + 2 < len; i += 3)
	{
		unsigned long v = ((unsigned long) data[i] << 16) |
			((unsigned long) data[i + 1] << 8) | data[i + 2];

		*p++ = tbl[(v >> 18) & 0x3f];
		*p++ = tbl[(v >> 12) & 0x3f];
		*p++ = tbl[(v >> 6) & 0x3f];
		*p++ = tbl[v & 0x3f];
	}
	if (len - i == 1)
	{
		unsigned long v = (unsigned long) data[i] << 16;

		*p++ = tbl[(v >> 18) & 0x3f];
		*p++ = tbl[(v >> 12) & 0x3f];
	}
	else if (len - i == 2)
	{
		unsigned long v = ((unsigned long) data[i] << 16) |
			((unsigned long) data[i + 1] << 8);

		*p++ = tbl[(v >> 18) & 0x3f];
		*p++ = tbl[(v >> 12) & 0x3f];
		*p++ = tbl[(v >> 6) & 0x3f];
	}
	*p = '\0';
	return out;
}

char *
epic_form_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t		n;
	char	   *out;
	char	   *p;

	if (s == NULL)
		return NULL;
	n = strlen(s);
	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(n * 3 + 1);
	if (out == NULL)
		return NULL;
	p = out;
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') ||
			c == '-' || c == '.' || c == '_' || c == '~')
			*p++ = (char) c;
		else
		{
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 0x0f];
		}
	}
	*p = '\0';
	return out;
}

/* ---------------------------------------------------------------------- */
/* keys                                                                    */
/* ---------------------------------------------------------------------- */

/* Never prompt for a pass phrase: encrypted keys are not supported. */
static int
no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	(void) buf;
	(void) size;
	(void) rwflag;
	(void) u;
	return -1;
}

/*
 * Parse pem into an EVP_PKEY and check it suits alg.  Returns the key
 * (caller frees with EVP_PKEY_free) or NULL with errbuf set and the OpenSSL
 * error queue cleared.
 */
static EVP_PKEY *
load_checked_key(EpicJwtAlg alg, const char *pem, char *errbuf, size_t errlen)
{
	BIO		   *bio;
	EVP_PKEY   *pkey;
	int			id;

	ERR_clear_error();

	if (alg != EPIC_ALG_RS384 && alg != EPIC_ALG_ES384)
	{
		set_err(errbuf, errlen, "unsupported signing algorithm");
		return NULL;
	}
	if (pem == NULL || pem[0] == '\0')
	{
		set_err(errbuf, errlen, "private key is empty");
		return NULL;
	}
	if (strstr(pem, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL ||
		strstr(pem, "Proc-Type: 4,ENCRYPTED") != NULL)
	{
		set_err(errbuf, errlen, "encrypted private keys are not supported");
		return NULL;
	}

	if (strstr(pem, "PRIVATE KEY-----") == NULL)
	{
		set_err(errbuf, errlen,
				"could not parse private key: no PEM private key block found");
		return NULL;
	}

	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
	{
		set_err(errbuf, errlen, "could not parse private key: %s",
				ossl_reason_and_clear());
		return NULL;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase_cb, NULL);
	BIO_free(bio);
	if (pkey == NULL)
	{
		set_err(errbuf, errlen, "could not parse private key: %s",
				ossl_reason_and_clear());
		return NULL;
	}

	id = EVP_PKEY_get_base_id(pkey);
	if (alg == EPIC_ALG_RS384)
	{
		if (id == EVP_PKEY_EC)
		{
			set_err(errbuf, errlen,
					"private key is an EC key but algorithm is RS384");
			goto fail;
		}
		if (id != EVP_PKEY_RSA)
		{
			set_err(errbuf, errlen,
					"private key type %s cannot be used with algorithm RS384",
					id == EVP_PKEY_RSA_PSS ? "RSA-PSS" :
					(EVP_PKEY_get0_type_name(pkey) ?
					 EVP_PKEY_get0_type_name(pkey) : "unknown"));
			goto fail;
		}
		if (EVP_PKEY_get_bits(pkey) < MIN_RSA_BITS)
		{
			set_err(errbuf, errlen,
					"RSA key must be at least %d bits (key has %d)",
					MIN_RSA_BITS, EVP_PKEY_get_bits(pkey));
			goto fail;
		}
	}
	else
	{
		char		group[64];
		size_t		glen = 0;

		if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS)
		{
			set_err(errbuf, errlen,
					"private key is an RSA key but algorithm is ES384");
			goto fail;
		}
		if (id != EVP_PKEY_EC)
		{
			set_err(errbuf, errlen,
					"private key type %s cannot be used with algorithm ES384",
					EVP_PKEY_get0_type_name(pkey) ?
					EVP_PKEY_get0_type_name(pkey) : "unknown");
			goto fail;
		}
		if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
											group, sizeof(group), &glen))
		{
			ERR_clear_error();
			set_err(errbuf, errlen,
					"EC key must be on curve P-384 (key has no named curve)");
			goto fail;
		}
		if (strcmp(group, "secp384r1") != 0 && strcmp(group, "P-384") != 0)
		{
			set_err(errbuf, errlen,
					"EC key must be on curve P-384 (key is on %s)", group);
			goto fail;
		}
	}
	return pkey;

fail:
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return NULL;
}

int
epic_key_check(EpicJwtAlg alg, const char *pem, char *errbuf, size_t errlen)
{
	EVP_PKEY   *pkey = load_checked_key(alg, pem, errbuf, errlen);

	if (pkey == NULL)
		return -1;
	EVP_PKEY_free(pkey);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* signing                                                                 */
/* ---------------------------------------------------------------------- */

/*
 * Convert a DER ECDSA-Sig-Value into the fixed-length r||s JWS form.
 * raw must have room for 2 * ES384_COORD_LEN bytes.  Returns 0 / -1.
 */
static int
ecdsa_der_to_raw(const unsigned char *der, size_t derlen, unsigned char *raw)
{
	const unsigned char *p = der;
	ECDSA_SIG  *sig;
	const BIGNUM *r = NULL;
	const BIGNUM *s = NULL;
	int			ok = -1;

	if (derlen > LONG_MAX)
		return -1;
	sig = d2i_ECDSA_SIG(NULL, &p, (long) derlen);
	if (sig == NULL)
		return -1;
	if (p != der + derlen)
		goto done;
	ECDSA_SIG_get0(sig, &r, &s);
	if (r == NULL || s == NULL ||
		BN_num_bytes(r) > ES384_COORD_LEN || BN_num_bytes(s) > ES384_COORD_LEN)
		goto done;
	if (BN_bn2binpad(r, raw, ES384_COORD_LEN) != ES384_COORD_LEN ||
		BN_bn2binpad(s, raw + ES384_COORD_LEN, ES384_COORD_LEN) != ES384_COORD_LEN)
		goto done;
	ok = 0;
done:
	ECDSA_SIG_free(sig);
	return ok;
}

char *
epic_jws_sign(EpicJwtAlg alg, const char *pem, const char *signing_input,
			  char *errbuf, size_t errlen)
{
	EVP_PKEY   *pkey = NULL;
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *sig = NULL;
	size_t		siglen = 0;
	size_t		sigcap = 0;
	unsigned char raw[2 * ES384_COORD_LEN];
	char	   *result = NULL;

	if (signing_input == NULL)
	{
		set_err(errbuf, errlen, "nothing to sign");
		return NULL;
	}

	pkey = load_checked_key(alg, pem, errbuf, errlen);
	if (pkey == NULL)
		return NULL;

	mctx = EVP_MD_CTX_new();
	if (mctx == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	if (EVP_DigestSignInit(mctx, &pctx, EVP_sha384(), NULL, pkey) != 1)
	{
		set_err(errbuf, errlen, "could not initialize %s signing: %s",
				epic_jwt_alg_name(alg), ossl_reason_and_clear());
		goto done;
	}
	if (alg == EPIC_ALG_RS384 &&
		EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
	{
		set_err(errbuf, errlen, "could not set RSA padding: %s",
				ossl_reason_and_clear());
		goto done;
	}
	if (EVP_DigestSign(mctx, NULL, &sigcap,
					   (const unsigned char *) signing_input,
					   strlen(signing_input)) != 1 || sigcap == 0)
	{
		set_err(errbuf, errlen, "could not sign assertion: %s",
				ossl_reason_and_clear());
		goto done;
	}
	sig = malloc(sigcap);
	if (sig == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	siglen = sigcap;
	if (EVP_DigestSign(mctx, sig, &siglen,
					   (const unsigned char *) signing_input,
					   strlen(signing_input)) != 1)
	{
		set_err(errbuf, errlen, "could not sign assertion: %s",
				ossl_reason_and_clear());
		goto done;
	}

	if (alg == EPIC_ALG_ES384)
	{
		if (ecdsa_der_to_raw(sig, siglen, raw) != 0)
		{
			set_err(errbuf, errlen,
					"could not convert ECDSA signature to JWS form: %s",
					ossl_reason_and_clear());
			goto done;
		}
		result = epic_base64url_encode(raw, sizeof(raw));
	}
	else
		result = epic_base64url_encode(sig, siglen);
	if (result == NULL)
		set_err(errbuf, errlen, "out of memory");

done:
	OPENSSL_cleanse(raw, sizeof(raw));
	secure_free(sig, sigcap);
	EVP_MD_CTX_free(mctx);		/* also frees pctx */
	EVP_PKEY_free(pkey);
	if (result == NULL)
		ERR_clear_error();
	return result;
}

/* ---------------------------------------------------------------------- */
/* assertion                                                               */
/* ---------------------------------------------------------------------- */

/* json_object_set_new with a string; returns 0 or -1 (invalid UTF-8/OOM) */
static int
obj_set_str(json_t *obj, const char *key, const char *val)
{
	json_t	   *s = json_string(val);

	if (s == NULL)
		return -1;
	return json_object_set_new(obj, key, s) == 0 ? 0 : -1;
}

/*
 * An empty JSON object.  Never call jansson's json_object() from code loaded
 * into PostgreSQL: the postgres executable exports an SQL function of the
 * same name, and the dynamic linker binds our call to it.  json_pack()
 * builds the object inside libjansson, where the name cannot be interposed.
 */
static json_t *
new_json_object(void)
{
	return json_pack("{}");
}

/* json_dumps(JSON_COMPACT) then base64url; the JSON text is cleansed */
static char *
json_to_b64(const json_t *obj)
{
	char	   *txt = json_dumps(obj, JSON_COMPACT);
	char	   *b64;

	if (txt == NULL)
		return NULL;
	b64 = epic_base64url_encode((const unsigned char *) txt, strlen(txt));
	secure_free_str(txt);
	return b64;
}

char *
epic_jwt_build_assertion(EpicJwtAlg alg, const char *pem,
						 const char *kid, const char *jku,
						 const char *client_id, const char *aud,
						 long long now, int lifetime,
						 char **jti_out,
						 char *errbuf, size_t errlen)
{
	unsigned char rnd[JTI_RANDOM_BYTES];
	char	   *jti = NULL;
	json_t	   *hdr = NULL;
	json_t	   *claims = NULL;
	char	   *hdr_b64 = NULL;
	char	   *claims_b64 = NULL;
	char	   *signing_input = NULL;
	char	   *sig = NULL;
	char	   *jwt = NULL;
	size_t		hlen,
				clen,
				slen;

	if (jti_out != NULL)
		*jti_out = NULL;
	ERR_clear_error();

	if (client_id == NULL || client_id[0] == '\0')
	{
		set_err(errbuf, errlen, "client_id must not be empty");
		return NULL;
	}
	if (aud == NULL || aud[0] == '\0')
	{
		set_err(errbuf, errlen, "assertion audience must not be empty");
		return NULL;
	}
	if (lifetime <= 0 || lifetime > MAX_ASSERTION_LIFETIME)
	{
		set_err(errbuf, errlen,
				"assertion lifetime must be between 1 and %d seconds",
				MAX_ASSERTION_LIFETIME);
		return NULL;
	}
	if (now < 0 || now > LLONG_MAX - lifetime)
	{
		set_err(errbuf, errlen, "current time is out of range");
		return NULL;
	}

	/* check the key first so configuration errors are reported clearly */
	if (epic_key_check(alg, pem, errbuf, errlen) != 0)
		return NULL;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
	{
		set_err(errbuf, errlen, "could not generate random jti: %s",
				ossl_reason_and_clear());
		OPENSSL_cleanse(rnd, sizeof(rnd));
		return NULL;
	}
	jti = epic_base64url_encode(rnd, sizeof(rnd));
	OPENSSL_cleanse(rnd, sizeof(rnd));
	if (jti == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}

	hdr = new_json_object();
	claims = new_json_object();
	if (hdr == NULL || claims == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	/* jansson keeps insertion order, so the header reads alg, typ, kid, jku */
	if (obj_set_str(hdr, "alg", epic_jwt_alg_name(alg)) != 0 ||
		obj_set_str(hdr, "typ", "JWT") != 0)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	if (kid != NULL && kid[0] != '\0' && obj_set_str(hdr, "kid", kid) != 0)
	{
		set_err(errbuf, errlen, "key id is not valid UTF-8");
		goto done;
	}
	if (jku != NULL && jku[0] != '\0' && obj_set_str(hdr, "jku", jku) != 0)
	{
		set_err(errbuf, errlen, "jku is not valid UTF-8");
		goto done;
	}
	if (obj_set_str(claims, "iss", client_id) != 0 ||
		obj_set_str(claims, "sub", client_id) != 0)
	{
		set_err(errbuf, errlen, "client_id is not valid UTF-8");
		goto done;
	}
	if (obj_set_str(claims, "aud", aud) != 0)
	{
		set_err(errbuf, errlen, "assertion audience is not valid UTF-8");
		goto done;
	}
	if (json_object_set_new(claims, "exp",
							json_integer((json_int_t) (now + lifetime))) != 0 ||
		obj_set_str(claims, "jti", jti) != 0)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}

	hdr_b64 = json_to_b64(hdr);
	claims_b64 = json_to_b64(claims);
	if (hdr_b64 == NULL || claims_b64 == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}

	hlen = strlen(hdr_b64);
	clen = strlen(claims_b64);
	signing_input = malloc(hlen + 1 + clen + 1);
	if (signing_input == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	memcpy(signing_input, hdr_b64, hlen);
	signing_input[hlen] = '.';
	memcpy(signing_input + hlen + 1, claims_b64, clen + 1);

	sig = epic_jws_sign(alg, pem, signing_input, errbuf, errlen);
	if (sig == NULL)
		goto done;

	slen = strlen(sig);
	jwt = malloc(hlen + 1 + clen + 1 + slen + 1);
	if (jwt == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	memcpy(jwt, signing_input, hlen + 1 + clen);
	jwt[hlen + 1 + clen] = '.';
	memcpy(jwt + hlen + 1 + clen + 1, sig, slen + 1);

	if (jti_out != NULL)
	{
		*jti_out = jti;
		jti = NULL;
	}

done:
	json_decref(hdr);
	json_decref(claims);
	free(hdr_b64);
	secure_free_str(claims_b64);
	secure_free_str(signing_input);
	secure_free_str(sig);
	free(jti);
	if (jwt == NULL)
		ERR_clear_error();
	return jwt;
}

/* ---------------------------------------------------------------------- */
/* token endpoint response / discovery                                     */
/* ---------------------------------------------------------------------- */

/*
 * Parse len bytes of JSON.  Returns the root or NULL.  jansson's error text
 * can quote the input ("... near 'xyz'"), so only the position is reported.
 */
static json_t *
load_json(const char *body, size_t len, const char *what,
		  char *errbuf, size_t errlen)
{
	json_error_t jerr;
	json_t	   *root;

	if (body == NULL || len == 0)
	{
		set_err(errbuf, errlen, "%s is empty", what);
		return NULL;
	}
	root = json_loadb(body, len, 0, &jerr);
	if (root == NULL)
	{
		set_err(errbuf, errlen, "%s is not valid JSON (line %d, column %d)",
				what, jerr.line, jerr.column);
		return NULL;
	}
	return root;
}

/* true if s is 1..limit printable ASCII chars without quotes/backslashes */
static int
is_quotable(const char *s, size_t limit)
{
	size_t		n = 0;

	for (; *s; s++, n++)
	{
		unsigned char c = (unsigned char) *s;

		if (n >= limit || c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return 0;
	}
	return n > 0;
}

/* an access token goes into an HTTP header: visible ASCII only */
static int
is_valid_token_chars(const char *s)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c <= 0x20 || c >= 0x7f)
			return 0;
	}
	return 1;
}

int
epic_token_response_parse(const char *body, size_t len,
						  char **access_token, long *expires_in,
						  char **error, char **error_description,
						  char *errbuf, size_t errlen)
{
	json_t	   *root;
	json_t	   *at;
	json_t	   *tt;
	json_t	   *ei;
	json_t	   *err;
	int			ret = -1;
	const char *ttype;

	if (access_token != NULL)
		*access_token = NULL;
	if (expires_in != NULL)
		*expires_in = 0;
	if (error != NULL)
		*error = NULL;
	if (error_description != NULL)
		*error_description = NULL;
	if (access_token == NULL || expires_in == NULL)
	{
		set_err(errbuf, errlen, "invalid arguments to token response parser");
		return -1;
	}

	root = load_json(body, len, "token response", errbuf, errlen);
	if (root == NULL)
		return -1;
	if (!json_is_object(root))
	{
		set_err(errbuf, errlen, "token response is not a JSON object");
		goto done;
	}

	at = json_object_get(root, "access_token");
	err = json_object_get(root, "error");

	/* RFC 6749 section 5.2 error response */
	if (!json_is_string(at) && json_is_string(err))
	{
		json_t	   *desc = json_object_get(root, "error_description");
		char	   *e = NULL;
		char	   *d = NULL;

		e = dup_str(json_string_value(err));
		if (json_is_string(desc))
			d = dup_str(json_string_value(desc));
		if (e == NULL || (json_is_string(desc) && d == NULL))
		{
			free(e);
			free(d);
			set_err(errbuf, errlen, "out of memory");
			goto done;
		}
		if (error != NULL)
			*error = e;
		else
			free(e);
		if (error_description != NULL)
			*error_description = d;
		else
			free(d);
		ret = 1;
		goto done;
	}

	if (at == NULL)
	{
		set_err(errbuf, errlen, "token response has no access_token");
		goto done;
	}
	if (!json_is_string(at))
	{
		set_err(errbuf, errlen, "token response access_token is not a string");
		goto done;
	}
	if (json_string_length(at) == 0)
	{
		set_err(errbuf, errlen, "token response has an empty access_token");
		goto done;
	}
	if (json_string_length(at) != strlen(json_string_value(at)) ||
		!is_valid_token_chars(json_string_value(at)))
	{
		set_err(errbuf, errlen,
				"token response access_token contains invalid characters");
		goto done;
	}

	tt = json_object_get(root, "token_type");
	if (tt == NULL)
	{
		set_err(errbuf, errlen, "token response has no token_type");
		goto done;
	}
	if (!json_is_string(tt))
	{
		set_err(errbuf, errlen, "token response token_type is not a string");
		goto done;
	}
	ttype = json_string_value(tt);
	if (strcasecmp(ttype, "bearer") != 0 ||
		json_string_length(tt) != strlen(ttype))
	{
		if (is_quotable(ttype, 32))
			set_err(errbuf, errlen,
					"token response has unsupported token_type \"%s\"", ttype);
		else
			set_err(errbuf, errlen,
					"token response has unsupported token_type");
		goto done;
	}

	ei = json_object_get(root, "expires_in");
	if (json_is_integer(ei) && json_integer_value(ei) > 0)
	{
		json_int_t	v = json_integer_value(ei);

		*expires_in = v > LONG_MAX ? LONG_MAX : (long) v;
	}

	*access_token = dup_str(json_string_value(at));
	if (*access_token == NULL)
	{
		*expires_in = 0;
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	ret = 0;

done:
	json_decref(root);
	return ret;
}

char *
epic_smart_config_token_endpoint(const char *body, size_t len,
								 char *errbuf, size_t errlen)
{
	json_t	   *root;
	json_t	   *te;
	char	   *result = NULL;

	root = load_json(body, len, "smart-configuration", errbuf, errlen);
	if (root == NULL)
		return NULL;
	if (!json_is_object(root))
	{
		set_err(errbuf, errlen, "smart-configuration is not a JSON object");
		goto done;
	}
	te = json_object_get(root, "token_endpoint");
	if (te == NULL)
	{
		set_err(errbuf, errlen, "smart-configuration has no token_endpoint");
		goto done;
	}
	if (!json_is_string(te) || json_string_length(te) == 0 ||
		json_string_length(te) != strlen(json_string_value(te)))
	{
		set_err(errbuf, errlen,
				"smart-configuration token_endpoint is not a non-empty string");
		goto done;
	}
	result = dup_str(json_string_value(te));
	if (result == NULL)
		set_err(errbuf, errlen, "out of memory");

done:
	json_decref(root);
	return result;
}

/* ---------------------------------------------------------------------- */
/* JWK Sets                                                                */
/* ---------------------------------------------------------------------- */

/* base64url of a big number, left-padded with zeros to width bytes (0: minimal) */
static char *
bn_b64(const BIGNUM *bn, int width)
{
	int			n = BN_num_bytes(bn);
	int			len = (width > 0) ? width : n;
	unsigned char *buf;
	char	   *out;

	if (n > len || len <= 0)
		return NULL;
	buf = calloc(1, (size_t) len);
	if (buf == NULL)
		return NULL;
	if (BN_bn2binpad(bn, buf, len) != len)
	{
		free(buf);
		return NULL;
	}
	out = epic_base64url_encode(buf, (size_t) len);
	free(buf);
	return out;
}

/* An EVP_PKEY from PEM text: a private key, or a public key if that fails. */
static EVP_PKEY *
load_any_key(const char *pem, char *errbuf, size_t errlen)
{
	BIO		   *bio;
	EVP_PKEY   *pkey = NULL;

	ERR_clear_error();
	if (pem == NULL || pem[0] == '\0')
	{
		set_err(errbuf, errlen, "key is empty");
		return NULL;
	}
	if (strstr(pem, "ENCRYPTED") != NULL)
	{
		set_err(errbuf, errlen, "encrypted private keys are not supported");
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		return NULL;
	}
	if (strstr(pem, "PRIVATE KEY-----") != NULL)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase_cb, NULL);
	else
		pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (pkey == NULL)
		set_err(errbuf, errlen, "could not parse PEM key: %s", ossl_reason_and_clear());
	return pkey;
}

/*
 * The public JWK (RFC 7517) of a PEM key (private or public; RSA or EC
 * P-384), as compact JSON text, malloc'd: kty, kid, alg, use, and n/e or
 * crv/x/y.  kid is the given one, or else the key's RFC 7638 thumbprint
 * (base64url SHA-256 of the required members in lexicographic order).  NULL
 * with errbuf set on error; never includes private key material.
 */
char *
epic_jwk_from_pem(const char *pem, const char *kid, char *errbuf, size_t errlen)
{
	EVP_PKEY   *pkey = load_any_key(pem, errbuf, errlen);
	int			id;
	char	   *a = NULL,
			   *b = NULL;
	char	   *canon = NULL;
	char	   *thumb = NULL;
	char	   *out = NULL;
	json_t	   *jwk = NULL;
	const char *alg;

	if (pkey == NULL)
		return NULL;
	id = EVP_PKEY_get_base_id(pkey);
	if (id == EVP_PKEY_RSA)
	{
		BIGNUM	   *n = NULL,
				   *e = NULL;

		if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) ||
			!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e))
		{
			BN_free(n);
			BN_free(e);
			set_err(errbuf, errlen, "could not read the RSA key: %s", ossl_reason_and_clear());
			goto done;
		}
		a = bn_b64(n, 0);
		b = bn_b64(e, 0);
		BN_free(n);
		BN_free(e);
		if (a == NULL || b == NULL)
		{
			set_err(errbuf, errlen, "out of memory");
			goto done;
		}
		alg = "RS384";
		canon = malloc(strlen(a) + strlen(b) + 64);
		if (canon)
			sprintf(canon, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", b, a);
		jwk = json_pack("{s:s, s:s, s:s}", "kty", "RSA", "n", a, "e", b);
	}
	else if (id == EVP_PKEY_EC)
	{
		char		group[64];
		size_t		glen = 0;
		BIGNUM	   *x = NULL,
				   *y = NULL;

		if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
											sizeof(group), &glen) ||
			(strcmp(group, "secp384r1") != 0 && strcmp(group, "P-384") != 0))
		{
			ERR_clear_error();
			set_err(errbuf, errlen, "EC key must be on curve P-384");
			goto done;
		}
		if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
			!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
		{
			BN_free(x);
			BN_free(y);
			set_err(errbuf, errlen, "could not read the EC key: %s", ossl_reason_and_clear());
			goto done;
		}
		a = bn_b64(x, 48);
		b = bn_b64(y, 48);
		BN_free(x);
		BN_free(y);
		if (a == NULL || b == NULL)
		{
			set_err(errbuf, errlen, "out of memory");
			goto done;
		}
		alg = "ES384";
		canon = malloc(strlen(a) + strlen(b) + 64);
		if (canon)
			sprintf(canon, "{\"crv\":\"P-384\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", a, b);
		jwk = json_pack("{s:s, s:s, s:s, s:s}", "kty", "EC", "crv", "P-384", "x", a, "y", b);
	}
	else
	{
		set_err(errbuf, errlen, "key type %s is not supported (use RSA or EC P-384)",
				EVP_PKEY_get0_type_name(pkey) ? EVP_PKEY_get0_type_name(pkey) : "unknown");
		goto done;
	}
	if (canon == NULL || jwk == NULL)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	if (kid == NULL || kid[0] == '\0')
	{
		unsigned char md[32];
		unsigned int mdlen = 0;

		if (!EVP_Digest(canon, strlen(canon), md, &mdlen, EVP_sha256(), NULL))
		{
			set_err(errbuf, errlen, "could not hash the key: %s", ossl_reason_and_clear());
			goto done;
		}
		thumb = epic_base64url_encode(md, mdlen);
		kid = thumb;
	}
	if (kid == NULL || obj_set_str(jwk, "kid", kid) != 0 || obj_set_str(jwk, "alg", alg) != 0 ||
		obj_set_str(jwk, "use", "sig") != 0)
	{
		set_err(errbuf, errlen, "out of memory");
		goto done;
	}
	out = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	if (out == NULL)
		set_err(errbuf, errlen, "out of memory");
done:
	json_decref(jwk);
	free(a);
	free(b);
	free(canon);
	free(thumb);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return out;
}
