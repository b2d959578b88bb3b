/*-------------------------------------------------------------------------
 *
 * json_jansson.h
 *		JSON documents for the rest of the project: parse, free, dump, and
 *		read through EpicJsonOps.  Nodes are opaque (const void *).
 *
 *-------------------------------------------------------------------------
 */
#ifndef EPIC_JSON_JANSSON_H
#define EPIC_JSON_JANSSON_H

#include <stddef.h>

#include "fhirpath.h"

extern const EpicJsonOps epic_jansson_ops;

/* Parse len bytes; returns the root (free with epic_json_free) or NULL with errbuf set. */
extern void *epic_json_parse(const char *text, size_t len, char *errbuf, size_t errlen);
extern void epic_json_free(void *root);

/* Compact JSON text of node, malloc'd (free with free()); NULL on failure. */
extern char *epic_json_dump(const void *node);

/* Member names of an object, NUL-separated, ending with "", malloc'd. */
extern char *epic_json_object_keys(const void *node);

#endif
