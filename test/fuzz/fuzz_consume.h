/*
 * fuzz_consume.h - shared by the jansson-based fuzz targets: read every
 * item of a FHIRPath result the way a column conversion would, touching
 * every byte of its text (so ASan sees a wrong length) or dumping a node.
 */
#ifndef EPIC_FUZZ_CONSUME_H
#define EPIC_FUZZ_CONSUME_H

#include <stdlib.h>
#include <string.h>

#include "fhirpath.h"
#include "json_jansson.h"

static volatile size_t sink;

static void
consume(const EpicFpResult *res)
{
	for (int i = 0; i < res->count; i++)
	{
		char		buf[64];
		size_t		len = 0;
		const char *s = epic_fp_item_text(&epic_jansson_ops, &res->items[i], buf,
										  sizeof(buf), &len);

		if (s != NULL)
		{
			size_t		h = 0;

			for (size_t k = 0; k < len; k++)
				h = h * 31 + (unsigned char) s[k];
			sink += h;
		}
		else if (res->items[i].kind == EPIC_FP_NODE)
		{
			char	   *dump = epic_json_dump(res->items[i].node);

			if (dump != NULL)
				sink += strlen(dump);
			free(dump);
		}
		else
			abort();			/* a computed scalar always has a text */
	}
}

#endif							/* EPIC_FUZZ_CONSUME_H */
