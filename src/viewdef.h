/*-------------------------------------------------------------------------
 *
 * viewdef.h
 *		SQL on FHIR v2 ViewDefinitions: compile one, and turn a resource into
 *		the view's rows.
 *
 * Pure C over EpicJsonOps, like fhirpath.h: no PostgreSQL, no JSON library,
 * so it is unit-tested and fuzzed outside the server.  Everything is
 * malloc'd; nothing here longjmps.
 *
 * A compiled view is a tree of selections.  Selection 0 is the root (the
 * resource itself); the ViewDefinition's select[] are its children.  Each
 * column belongs to one selection and has one output slot; the columns of
 * the second and later unionAll branches share the slots of the first.
 *
 * A row is an array of cells, one per slot: the column instance that fills
 * it and the node (the resource, or a forEach item) its path is evaluated
 * on; a NULL node is an SQL NULL (forEachOrNull without items).  Columns
 * are evaluated only when asked (epic_view_cell), so a query pays only for
 * the columns it reads; forEach/repeat paths and where[] are always
 * evaluated, since they decide which rows exist.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EPIC_VIEWDEF_H
#define EPIC_VIEWDEF_H

#include "fhirpath.h"

typedef enum EpicViewSelectKind
{
	EPIC_VIEW_PLAIN = 0,		/* the parent's node */
	EPIC_VIEW_FOREACH,			/* one row per item; none without items */
	EPIC_VIEW_FOREACH_OR_NULL,	/* the same, one row of NULLs without items */
	EPIC_VIEW_REPEAT			/* items of every depth of the paths */
} EpicViewSelectKind;

typedef struct EpicViewColumn
{
	char	   *name;
	char	   *path;
	EpicFpExpr *expr;
	char	   *type;			/* FHIR type name, or NULL */
	bool		collection;
	bool		first_only;		/* not strict: take the first item (path option
								 * columns, the dotted-path first cut) */
	char	   *search_param;	/* tag epic_fdw/search_param: "name:type" */
	char	   *ansi_type;		/* tag ansi/type, or NULL */
	char	   *description;
	int			select;			/* owning selection */
	int			slot;			/* output position */
	bool		resource_level; /* evaluated once per resource (no forEach,
								 * repeat or unionAll above it) */
	bool		uses_row_index; /* the path mentions %rowIndex */
} EpicViewColumn;

typedef struct EpicViewSelect
{
	EpicViewSelectKind kind;
	char	   *iter_path;		/* forEach / forEachOrNull */
	EpicFpExpr *iter;
	EpicFpExpr **repeat;
	int			nrepeat;
	int		   *cols;			/* column indexes */
	int			ncols;
	int		   *children;		/* nested select[] (cross-joined) */
	int			nchildren;
	int		   *unions;			/* unionAll[] branches (concatenated) */
	int			nunions;
	int			parent;			/* -1 for the root */
	int			first_slot;		/* slots of this subtree: first_slot .. +nslots */
	int			nslots;

	/*
	 * FHIR type of the nodes its columns are evaluated on (the resource, a
	 * forEach's items: "HumanName", "Patient.contact"), NULL when unknown (a
	 * repeat's); a static string of the type table.  Set by
	 * epic_view_set_fhir_versions.
	 */
	const char *item_type;
} EpicViewSelect;

typedef struct EpicView
{
	char	   *name;			/* ViewDefinition.name, or NULL */
	char	   *resource;
	EpicFpExpr **where;
	char	  **where_path;
	int			nwhere;
	/* constants: the evaluation environment */
	EpicFpEnv	env;
	char	  **const_names;
	char	  **const_values;
	EpicFpItemKind *const_kinds;
	const char **const_types;	/* static FHIR type names */
	int			nconst;
	/* extension urn:epic_fdw:required-search-param values */
	char	  **required;
	int			nrequired;
	EpicViewSelect *selects;
	int			nselects;
	EpicViewColumn *columns;
	int			ncolumns;
	int		   *slot_column;	/* slot -> its first column instance */
	int			nslots;
	/* FHIR version(s) of the element types: 1 STU3, 2 R4, 3 either */
	int			fhir_versions;
} EpicView;

typedef struct EpicViewCell
{
	int			column;			/* column instance, -1 when unset */
	int			index;			/* %rowIndex of node */
	const void *node;			/* NULL: no node (see epic_view_cell_null) */
} EpicViewCell;

/* The rows of one resource; reuse across resources (zero-initialise). */
typedef struct EpicViewRows
{
	int			nrows;
	int			width;
	EpicViewCell *cells;		/* nrows * width */
	int			capacity;		/* in cells */
} EpicViewRows;

/*
 * Compile a ViewDefinition document (a JSON object read through ops).
 * extra_env (may be NULL) adds constants every path may use, e.g.
 * %mrn_system; the view's own constants come first.  Returns NULL with a
 * message in errbuf on an invalid definition; *errpos is the 1-based
 * position inside the offending path when the error is a FHIRPath parse
 * error, else 0.
 */
extern EpicView *epic_view_compile(const EpicJsonOps *ops, const void *doc,
								   const EpicFpEnv *extra_env,
								   char *errbuf, size_t errlen, int *errpos);

/* An empty view of a resource type, for tables built from column options. */
extern EpicView *epic_view_new(const char *resource, const EpicFpEnv *extra_env);

/*
 * Add a column to the root selection: returns its index, or -1 (errbuf) on
 * a parse error or a duplicate name.
 */
extern int	epic_view_add_column(EpicView *view, const char *name, const char *path,
								 const char *type, bool collection, bool first_only,
								 char *errbuf, size_t errlen, int *errpos);

extern void epic_view_free(EpicView *view);

/*
 * The FHIR version(s) whose element types the view's paths are typed and
 * evaluated in (as for epic_fp_eval_full: 1 STU3, 2 R4, 3 either, R4's type
 * where both define an element).  A compiled view has those its
 * ViewDefinition's fhirVersion names (3.0.x STU3; 4.x and later R4), else 3;
 * a foreign table's are its server's fhir_version.
 */
extern void epic_view_set_fhir_versions(EpicView *view, int fhir_versions);

/* Slot of a column name, or -1. */
extern int	epic_view_slot(const EpicView *view, const char *name);

/*
 * The rows of one resource: 0 rows when a where[] is false.  Returns 0, or
 * -1 with errbuf set (a where[] path that is not boolean, a forEach that
 * yields values that are not elements, out of memory).
 */
extern int	epic_view_rows(const EpicView *view, const EpicJsonOps *ops, const void *resource,
						   EpicViewRows *rows, char *errbuf, size_t errlen);
extern void epic_view_rows_free(EpicViewRows *rows);

/*
 * Is the cell SQL NULL whatever the resource?  True when no column fills it,
 * or when it has no node (a forEachOrNull without items) and its path does
 * not use %rowIndex (that one is evaluated on an empty focus, giving 0).
 */
extern bool epic_view_cell_null(const EpicView *view, const EpicViewCell *cell);

/*
 * Evaluate the column filling cell on resource; res is empty for a NULL
 * cell.  Returns 0 or -1 (errbuf).
 */
extern int	epic_view_cell(const EpicView *view, const EpicJsonOps *ops, const void *resource,
						   const EpicViewCell *cell, EpicFpResult *res,
						   char *errbuf, size_t errlen);

/*
 * The JSON kind a value of a FHIR primitive type has (EPIC_JSON_TRUE for
 * boolean, EPIC_JSON_NUMBER, EPIC_JSON_STRING); EPIC_JSON_NULL for NULL or
 * a complex type: any kind.
 */
extern EpicJsonKind epic_view_type_json_kind(const char *fhir_type);

/* The SQL type name for a FHIR type (NULL: untyped) per the documented table. */
extern const char *epic_view_sql_type(const char *fhir_type, bool collection);

/*
 * The SQL type of a column: that of its FHIR type; for an untyped column,
 * that of the boolean or numeric type its path always gives
 * (epic_fp_static_type: "id.exists()" is boolean), else text.
 */
extern const char *epic_view_column_sql_type(const EpicView *view, const EpicViewColumn *col);

/* Every path of the view checked against the FHIR type table (see viewdef.c). */
extern int	epic_view_check_members(const EpicView *view, char *errbuf, size_t errlen);

#endif							/* EPIC_VIEWDEF_H */
