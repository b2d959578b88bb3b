/*
 * catalog_columns.h - the built-in column definitions of src/catalog.c,
 * without PostgreSQL.
 *
 * src/catalog.c describes its columns with designated initializers
 * (.name, .sql_type, .combine, .search_param, .search_type, .sources[].path,
 * .sources[].mode).  This header gives a PostgreSQL-free struct with the same
 * field names and the constants those initializers use, then includes the
 * block copied verbatim from catalog.c by extract_catalog.sh (catalog_defs.inc,
 * generated into the build directory by scripts/fuzz.sh).  If catalog.c gains
 * a field or a constant, this file fails to compile: add it here.
 */
#ifndef FUZZ_CATALOG_COLUMNS_H
#define FUZZ_CATALOG_COLUMNS_H

#include <stddef.h>

/* SQL types, as in catalog/pg_type_d.h (values do not matter here) */
enum
{
	BOOLOID = 16, TEXTOID = 25, JSONOID = 114, DATEOID = 1082,
	TIMESTAMPTZOID = 1184, TEXTARRAYOID = 1009, JSONBOID = 3802
};

/* as in src/epic_fdw.h */
typedef enum EpicSearchType
{
	EPIC_SP_NONE = 0, EPIC_SP_TOKEN, EPIC_SP_STRING, EPIC_SP_STRING_WORD,
	EPIC_SP_DATE, EPIC_SP_DATETIME, EPIC_SP_REFERENCE, EPIC_SP_SPECIAL_ID,
	EPIC_SP_MRN
} EpicSearchType;

typedef enum EpicCombine
{
	EPIC_COMBINE_FIRST = 0, EPIC_COMBINE_JOIN_SPACE, EPIC_COMBINE_ARRAY,
	EPIC_COMBINE_RESOURCE
} EpicCombine;

typedef enum EpicSourceMode
{
	EPIC_SRC_VALUE = 0, EPIC_SRC_PRESENT, EPIC_SRC_HUMANNAME
} EpicSourceMode;

#define EPIC_MAX_SOURCES 4

typedef struct EpicColumnSource
{
	const char *path;
	EpicSourceMode mode;
} EpicColumnSource;

typedef struct EpicColumnDef
{
	const char *name;
	unsigned int sql_type;
	EpicColumnSource sources[EPIC_MAX_SOURCES];
	EpicCombine combine;
	const char *search_param;
	EpicSearchType search_type;
} EpicColumnDef;

#include "catalog_defs.inc"

#define FUZZ_NCOLS(a) ((int) (sizeof(a) / sizeof((a)[0])))

#endif
