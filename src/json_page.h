/*-------------------------------------------------------------------------
 *
 * json_page.h
 *		A fast JSON parser for search pages: one pass, one copy of the text,
 *		nodes in an arena, read through EpicJsonOps.
 *
 * Why not jansson for pages: a page is hundreds of kilobytes of JSON of
 * which a query reads a few fields, and jansson's per-node malloc and
 * hash tables made parsing most of a full scan's time.  Here a page costs
 * one copy of its text and a few arena blocks.  Strings without escapes
 * point into the copy; numbers keep the text the server sent (15.70 stays
 * 15.70); every value knows its span in the text, so a resource becomes
 * jsonb (or json, or text) straight from the bytes the server sent.
 *
 * Pure C, no PostgreSQL: unit-tested and fuzzed outside the server.
 * Strict RFC 8259: UTF-8 is validated, \u escapes must be valid (and not
 * U+0000, which PostgreSQL text cannot hold), nesting is bounded.  For
 * duplicate member names the last one wins, as in jansson.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EPIC_JSON_PAGE_H
#define EPIC_JSON_PAGE_H

#include <stddef.h>

#include "fhirpath.h"

typedef struct EpicJdoc EpicJdoc;	/* malloc'd; free with epic_jdoc_free */

/* Parse len bytes (copied); NULL with a message in errbuf on invalid JSON. */
extern EpicJdoc *epic_jdoc_parse(const char *text, size_t len, char *errbuf, size_t errlen);
extern const void *epic_jdoc_root(const EpicJdoc *doc);
extern void epic_jdoc_free(EpicJdoc *doc);

/* The text of a value as it appears in the parsed JSON. */
extern void epic_jdoc_raw(const void *node, const char **text, size_t *len);

extern const EpicJsonOps epic_jdoc_ops;

#define EPIC_JDOC_MAX_DEPTH 512

#endif							/* EPIC_JSON_PAGE_H */
