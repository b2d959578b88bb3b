/*
 * auth.h - SMART Backend Services authentication helpers for epic_fdw
 *
 * Pure C (no PostgreSQL, no OpenSSL or jansson types) so that the
 * implementation in auth.c can be unit-tested and fuzzed outside the server.
 *
 * Memory: every char * returned by these functions is allocated with
 * malloc() and owned by the caller, who releases it with free() (or with
 * epic_secret_free() for secrets such as assertions and access tokens).
 *
 * Errors: functions that can fail take a caller-provided buffer
 * (errbuf, errlen) and write a PostgreSQL-style message into it (lower case,
 * no trailing period).  Messages never contain key material, the signed
 * assertion or a token.  errbuf may be NULL / errlen 0 if the caller does not
 * want the message.
 */
#ifndef EPIC_FDW_AUTH_H
#define EPIC_FDW_AUTH_H

#include <stddef.h>

typedef enum EpicJwtAlg
{
	EPIC_ALG_RS384,
	EPIC_ALG_ES384
} EpicJwtAlg;

/*
 * Parse an algorithm name ("RS384" or "ES384", exact and case-sensitive).
 * Returns 0 and sets *out on success, -1 for an unknown (or NULL) name.
 */
extern int	epic_jwt_alg_parse(const char *name, EpicJwtAlg *out);

/* Name of alg ("RS384"/"ES384"); static string, never NULL ("unknown"). */
extern const char *epic_jwt_alg_name(EpicJwtAlg alg);

/*
 * Check that pem (NUL-terminated, unencrypted PEM text: PKCS#8
 * "PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY" or SEC1 "EC PRIVATE KEY") is a
 * private key usable with alg: RSA of at least 2048 bits for RS384, EC on
 * P-384 (secp384r1) for ES384.
 * Returns 0 if usable, -1 with a message in errbuf otherwise.
 */
extern int	epic_key_check(EpicJwtAlg alg, const char *pem,
						   char *errbuf, size_t errlen);

/*
 * Sign signing_input (the ASCII "header_b64.payload_b64") with the key in pem
 * (checked as by epic_key_check) and return the base64url (unpadded) JWS
 * signature.  RS384: RSASSA-PKCS1-v1_5 with SHA-384 (deterministic).
 * ES384: ECDSA P-384 with SHA-384, encoded as the 96-byte r||s JWS form.
 * Returns a malloc'd string (caller frees), or NULL with errbuf set.
 */
extern char *epic_jws_sign(EpicJwtAlg alg, const char *pem,
						   const char *signing_input,
						   char *errbuf, size_t errlen);

/*
 * Build a complete signed client-assertion JWT
 *   header: {"alg":..., "typ":"JWT", "kid":kid, "jku":jku}
 *           (kid / jku omitted when NULL or empty)
 *   claims: {"iss":client_id, "sub":client_id, "aud":aud,
 *            "exp":now+lifetime, "jti":<43-char base64url of 32 CSPRNG bytes>}
 * client_id and aud must be non-empty UTF-8; lifetime must be 1..300.
 * Returns the malloc'd JWT (a short-lived credential: release it with
 * epic_secret_free()), or NULL with errbuf set.  If jti_out is non-NULL it
 * receives a malloc'd copy of the jti (caller frees; NULL on error).
 */
extern char *epic_jwt_build_assertion(EpicJwtAlg alg, const char *pem,
									  const char *kid, const char *jku,
									  const char *client_id, const char *aud,
									  long long now, int lifetime,
									  char **jti_out,
									  char *errbuf, size_t errlen);

/*
 * base64url (RFC 4648 section 5) without padding.  Returns a malloc'd
 * NUL-terminated string (caller frees), or NULL if out of memory or
 * data is NULL with len > 0.
 */
extern char *epic_base64url_encode(const unsigned char *data, size_t len);

/*
 * Parse an OAuth 2.0 token endpoint response body (JSON; len bytes, need not
 * be NUL-terminated).
 *  0: success (object with a string access_token and token_type "bearer",
 *     compared case-insensitively).  *access_token is malloc'd (caller frees,
 *     preferably with epic_secret_free()); *expires_in is the lifetime in
 *     seconds, or 0 if absent or not a positive integer ("unknown").
 *  1: an RFC 6749 section 5.2 error object.  *error is malloc'd and
 *     *error_description is malloc'd or NULL (caller frees both).  These are
 *     raw server text: treat as untrusted when logging.
 * -1: anything else; errbuf describes the problem without quoting token
 *     values.
 * All output pointers are set to NULL / 0 first; error and
 * error_description may be NULL if the caller does not want them.
 */
extern int	epic_token_response_parse(const char *body, size_t len,
									  char **access_token, long *expires_in,
									  char **error, char **error_description,
									  char *errbuf, size_t errlen);

/*
 * Parse a SMART discovery document (.well-known/smart-configuration) and
 * return its token_endpoint as a malloc'd string (caller frees), or NULL with
 * errbuf set.  The value is returned as given: resolving a relative URL
 * against the FHIR base is the caller's job.
 */
extern char *epic_smart_config_token_endpoint(const char *body, size_t len,
											  char *errbuf, size_t errlen);

/*
 * Percent-encode s for an application/x-www-form-urlencoded value: unreserved
 * characters A-Z a-z 0-9 - . _ ~ are kept, every other byte becomes %XX
 * (upper-case hex).  Returns a malloc'd string (caller frees), or NULL if s is
 * NULL or out of memory.
 */
extern char *epic_form_encode(const char *s);

/*
 * Overwrite a NUL-terminated secret (assertion, access token) with zeros
 * and free() it.  NULL is allowed.
 */
extern void epic_secret_free(char *s);

/*
 * The public JWK of a PEM key (private or public; RSA, or EC on P-384), as
 * compact JSON with sorted members, malloc'd: kty, kid, alg (RS384/ES384),
 * use "sig", and n/e or crv/x/y.  kid defaults to the RFC 7638 thumbprint.
 * NULL with errbuf set on error.
 */
extern char *epic_jwk_from_pem(const char *pem, const char *kid, char *errbuf, size_t errlen);

#endif							/* EPIC_FDW_AUTH_H */
