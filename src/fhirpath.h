/*-------------------------------------------------------------------------
 *
 * fhirpath.h
 *		A small FHIRPath evaluator over an abstract JSON-access interface.
 *
 * This header and fhirpath.c use only the C library: no PostgreSQL, no JSON
 * library.  That keeps the evaluator testable and fuzzable outside the
 * server, and lets the page representation change without touching it.
 *
 * Supported subset (grows with the project):
 *   navigation     name.name (arrays flatten automatically), expr[n],
 *                  expr[%constant]; choice elements: "value" resolves to
 *                  whichever valueString / valueQuantity / ... member exists
 *   literals       'string', integers, decimals, true, false, %constant,
 *                  @2020-01-01, @2020-01-01T10:00:00Z, @T10:00 (kept as
 *                  their text: strings that compare as dates)
 *   operators      by precedence: unary -/+;  * /;  + - &;  is as;  |;
 *                  < > <= >=;  = !=;  and;  or;  ( )
 *   functions      where(cond), first(), last(), exists([cond]), empty(),
 *                  not(), count(), distinct(), extension(url), ofType(Type),
 *                  is(Type), as(Type),
 *                  join([sep]), lowBoundary(), highBoundary(),
 *                  getResourceKey(), getReferenceKey([Type]),
 *                  iif(cond, then[, else]), select(expr), combine(other)
 *
 * Items carry their FHIR type from the resource down (fhir_types.h: the
 * STU3/R4 element-type table), for ofType(), comparisons (dates are no
 * strings; dates/times by value and precision) and boundaries.  The README's
 * FHIRPath section is the full description; test/fhirpath_oracle compares
 * the evaluator with fhirpath.js.
 *
 * Lenient where FHIRPath would raise an error: comparison and arithmetic
 * on a collection of more than one item, or on mismatched types, give an
 * empty result; so does division by zero.  is/as on several items raise the
 * error FHIRPath specifies.
 *
 *-------------------------------------------------------------------------
 */
#ifndef EPIC_FHIRPATH_H
#define EPIC_FHIRPATH_H

#include <stdbool.h>
#include <stddef.h>

typedef enum EpicJsonKind
{
	EPIC_JSON_NULL = 0,
	EPIC_JSON_OBJECT,
	EPIC_JSON_ARRAY,
	EPIC_JSON_STRING,
	EPIC_JSON_NUMBER,
	EPIC_JSON_TRUE,
	EPIC_JSON_FALSE
} EpicJsonKind;

/*
 * Read access to a parsed JSON document.  Nodes are opaque pointers owned by
 * the document; the evaluator never frees or modifies them.
 */
typedef struct EpicJsonOps
{
	EpicJsonKind (*kind) (const void *node);
	/* member of an object, or NULL when absent */
	const void *(*member) (const void *object, const char *name);
	size_t		(*size) (const void *array);
	const void *(*item) (const void *array, size_t index);

	/*
	 * Text of a scalar: strings return their own bytes (not necessarily
	 * NUL-terminated: use *len), numbers are formatted into buf (buflen >=
	 * 64), booleans give "true"/"false".  NULL for objects, arrays and null.
	 */
	const char *(*scalar) (const void *node, char *buf, size_t buflen, size_t *len);

	/*
	 * Optional (may be NULL): the i-th member of an object (its name, not
	 * NUL-terminated, and its value); false past the last.  Choice elements
	 * ("value" for valueQuantity...) are found in one pass with it, else by
	 * trying each type name.
	 */
	bool		(*member_at) (const void *object, size_t i, const char **name, size_t *namelen,
							  const void **value);
} EpicJsonOps;

/* One item of a FHIRPath collection. */
typedef enum EpicFpItemKind
{
	EPIC_FP_NODE = 0,			/* a JSON node of the document */
	EPIC_FP_STRING,				/* a derived string (points into the document
								 * or into the expression text) */
	EPIC_FP_BOOL,				/* a computed boolean */
	EPIC_FP_NUMBER				/* a numeric literal */
} EpicFpItemKind;

typedef struct EpicFpItem
{
	EpicFpItemKind kind;
	const void *node;			/* EPIC_FP_NODE */
	const char *str;			/* EPIC_FP_STRING / EPIC_FP_NUMBER text */
	size_t		len;
	bool		boolval;		/* EPIC_FP_BOOL */

	/*
	 * FHIR type when known, else NULL: from the FHIR type table
	 * (fhir_types.h) for elements of a resource ("date" for
	 * Patient.birthDate, "HumanName", a BackboneElement's path
	 * "Patient.contact"), the choice element's type ("Quantity", "string"
	 * for valueString), "date"/"dateTime"/"time" for date literals.  Used by
	 * ofType(), comparisons and boundaries.  A static string.
	 */
	const char *type;

	/*
	 * A primitive's extension element ("_birthDate": {"extension": [...]})
	 * or NULL.  noval: the primitive has only that (no value); node is then
	 * the extension element.  Such items exist only inside an evaluation
	 * (exists(), count(), extension()): results never hold them.
	 */
	const void *ext;
	bool		noval;
} EpicFpItem;

/*
 * A collection: a growable array, malloc'd.  Reuse it across evaluations.
 *
 * Strings computed during an evaluation (join(), +, count(), boundaries,
 * negated numbers...) are malloc'd and owned by the result the evaluation
 * filled: "owned" lists them.  They stay valid until that result is passed
 * to epic_fp_eval() again (which frees them when it resets the result) or
 * to epic_fp_result_free().  Items that point elsewhere point into the
 * document or the compiled expression, as before.  Zero-initialise a new
 * result ({0}).
 */
typedef struct EpicFpResult
{
	EpicFpItem *items;
	int			count;
	int			capacity;
	char	  **owned;			/* derived strings; freed with the result */
	int			nowned;
	int			owned_capacity;
} EpicFpResult;

/*
 * Values of %constants, as text.  kinds (optional; NULL means every value is
 * a string) gives each value's nature: EPIC_FP_STRING, EPIC_FP_NUMBER (the
 * text of an integer or decimal) or EPIC_FP_BOOL ("true"/"false"); types
 * (optional) its FHIR type (a valueDate constant is a date, not a string).
 * %resource and %rootResource name the evaluation's root unless env defines
 * them; %rowIndex is the integer given to epic_fp_eval_row (else 0).
 */
typedef struct EpicFpEnv
{
	int			count;
	const char *const *names;
	const char *const *values;
	const EpicFpItemKind *kinds;
	/* optional: each value's FHIR type ("date", "code", ...) or NULL */
	const char *const *types;
} EpicFpEnv;

typedef struct EpicFpExpr EpicFpExpr;	/* compiled expression; malloc'd */

/*
 * Compile text.  Returns NULL on error, with a message in errbuf and the
 * 1-based character position of the problem in *errpos.  Free the result
 * with epic_fp_free().
 */
extern EpicFpExpr *epic_fp_parse(const char *text, char *errbuf, size_t errlen, int *errpos);
extern void epic_fp_free(EpicFpExpr *expr);

/*
 * Evaluate expr with root as the context (a resource).  out is reset and
 * filled; its items point into the document, the expression and out's own
 * derived strings, so they are valid while all three are (see EpicFpResult).  Returns 0, or -1 on an evaluation error (e.g. out of
 * memory) with errbuf set.
 */
extern int	epic_fp_eval(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
						 const EpicFpEnv *env, EpicFpResult *out, char *errbuf, size_t errlen);
/*
 * The same with focus as the context ($this) and root as %resource (a
 * forEach item of a ViewDefinition and the resource it came from).
 */
extern int	epic_fp_eval_in(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
							const void *focus, const EpicFpEnv *env, EpicFpResult *out,
							char *errbuf, size_t errlen);
/*
 * The same with %rowIndex = row_index (epic_fp_eval_in: 0).  A NULL focus is
 * an empty context.
 */
extern int	epic_fp_eval_row(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
							 const void *focus, const EpicFpEnv *env, long row_index,
							 EpicFpResult *out, char *errbuf, size_t errlen);
/*
 * The same with the FHIR version(s) whose element types apply (1 STU3, 2 R4,
 * 3 either: R4's type where both define an element; the functions above use
 * 3) and the FHIR type of focus when it is not a resource (a forEach item:
 * "HumanName", "Patient.contact"; NULL when unknown).  focus_type must be a
 * string that lives as long as the process (a literal, or one the type table
 * or epic_fp_static_type_versions returned): element types are cached by its
 * address.
 */
extern int	epic_fp_eval_full(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
							  const void *focus, const char *focus_type, const EpicFpEnv *env,
							  long row_index, int fhir_versions, EpicFpResult *out,
							  char *errbuf, size_t errlen);
/* Frees res's items and derived strings; res is left empty and reusable. */
extern void epic_fp_result_free(EpicFpResult *res);

/*
 * The text of an item (string, number, boolean); NULL for objects/arrays.
 * buf must hold at least 64 bytes.
 */
extern const char *epic_fp_item_text(const EpicJsonOps *ops, const EpicFpItem *item,
									 char *buf, size_t buflen, size_t *len);

/* The first %constant expr names that env does not define, or NULL. */
extern const char *epic_fp_undefined_constant(const EpicFpExpr *expr, const EpicFpEnv *env);

/* Does expr mention %name anywhere? */
extern bool epic_fp_uses_constant(const EpicFpExpr *expr, const char *name);

/*
 * Are all the member names of expr, evaluated on nodes of FHIR type
 * context_type, elements the FHIR type table knows for their context (STU3
 * or R4)?  False with a message ("FHIR type HumanName has no element
 * \"givne\"") at the first that is not; names of unknown types pass.
 */
extern bool epic_fp_check_members(const EpicFpExpr *expr, const EpicFpEnv *env,
								  const char *context_type, char *errbuf, size_t errlen);

/*
 * The FHIR type every item of expr has whatever the resource ("boolean",
 * "decimal", "Quantity", ...), when the expression alone decides it: from
 * literals, operators, functions, env's constants, ofType()/as, choice
 * elements named with their type (valueQuantity) and the elements of FHIR
 * datatypes (the type table).  NULL when unknown (e.g. an element of a
 * resource whose type is not given: see epic_fp_static_type_versions).
 */
extern const char *epic_fp_static_type(const EpicFpExpr *expr, const EpicFpEnv *env);
/*
 * The same for expr evaluated on a value of FHIR type context_type (a
 * resource type such as "Patient", a BackboneElement's path, a datatype),
 * its elements typed by the FHIR type table in the version(s) fhir_versions
 * (as for epic_fp_eval_full).  Returns a static string, or context_type
 * itself.
 */
extern const char *epic_fp_static_type_versions(const EpicFpExpr *expr, const EpicFpEnv *env,
												const char *context_type, int fhir_versions);

/* If expr is a plain member path ("a.b.c") return it, else NULL (for pushdown). */
extern const char *epic_fp_text(const EpicFpExpr *expr);

#endif							/* EPIC_FHIRPATH_H */
