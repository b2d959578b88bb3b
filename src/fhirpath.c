/*-------------------------------------------------------------------------
 *
 * fhirpath.c
 *		Parser and evaluator for the FHIRPath subset described in fhirpath.h.
 *
 * Pure C (malloc/free, no PostgreSQL, no JSON library): documents are read
 * through EpicJsonOps so the same code runs in the backend, in unit tests and
 * under a fuzzer.  Every allocation is checked; errors come back as text.
 *
 *-------------------------------------------------------------------------
 */
#include "fhirpath.h"
#include "fhir_types.h"

#include <ctype.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum FpKind
{
	FP_MEMBER,					/* name */
	FP_FUNC,					/* name(args) */
	FP_STRING,
	FP_NUMBER,
	FP_BOOL,
	FP_CONST,					/* %name */
	FP_THIS,					/* $this */
	FP_INDEX,					/* focus[index] or focus[args[0]] */
	FP_EQ,
	FP_NE,
	FP_AND,
	FP_OR,
	FP_LT,
	FP_GT,
	FP_LE,
	FP_GE,
	FP_ADD,
	FP_SUB,
	FP_MUL,
	FP_DIV,
	FP_CONCAT,					/* & */
	FP_UNION,					/* | */
	FP_NEG						/* unary minus of args[0] */
} FpKind;

typedef enum FpFunc
{
	FN_WHERE,
	FN_FIRST,
	FN_EXISTS,
	FN_EMPTY,
	FN_NOT,
	FN_GET_RESOURCE_KEY,
	FN_GET_REFERENCE_KEY,
	FN_EXTENSION,
	FN_OFTYPE,
	FN_JOIN,
	FN_LOW_BOUNDARY,
	FN_HIGH_BOUNDARY,
	FN_COUNT,
	FN_LAST,
	FN_DISTINCT,
	FN_IIF,
	FN_SELECT,
	FN_COMBINE,
	FN_IS,						/* is(Type) and the operator "x is Type" */
	FN_AS						/* as(Type) and the operator "x as Type" */
} FpFunc;

#define FP_MAX_ARGS 3

typedef struct FpNode FpNode;
struct FpNode
{
	FpKind		kind;
	FpNode	   *focus;			/* input producer; NULL = the context */
	char	   *name;			/* member / constant / function / literal */
	size_t		namelen;
	FpFunc		func;
	FpNode	   *args[FP_MAX_ARGS];	/* function args or binary operands */
	int			nargs;
	long		index;
	bool		boolval;
	const char *littype;		/* FP_STRING: "date"/"dateTime"/"time" or NULL;
								 * a type argument: "System"/"FHIR" when
								 * qualified */
	int			height;			/* 1 + height of the tallest child */
};

struct EpicFpExpr
{
	FpNode	   *root;
	char	   *text;			/* the source, for epic_fp_text */
	bool		plain_path;		/* only members */
};

/* ---------------------------------------------------------------------
 * Parser
 * ---------------------------------------------------------------------
 */
typedef struct FpParser
{
	const char *src;
	const char *p;
	char	   *errbuf;
	size_t		errlen;
	int		   *errpos;
	bool		failed;
	int			depth;			/* nesting of parse_or (parentheses, arguments) */
} FpParser;

#define FP_MAX_PARSE_DEPTH 100
#define FP_MAX_ITEMS 1000000		/* items of one collection */
#define FP_MAX_PUSHES 20000000	/* items produced by one evaluation */
#define FP_MAX_CHAIN 150		/* steps in one a.b.c[0].d... chain */
#define FP_MAX_TREE_HEIGHT 200		/* bounds free_node's and eval_node's recursion */

static FpNode *parse_or(FpParser *ps);
static FpNode *parse_postfix_on(FpParser *ps, FpNode *n);

static void
fp_fail(FpParser *ps, const char *at, const char *fmt, const char *arg)
{
	if (ps->failed)
		return;
	ps->failed = true;
	snprintf(ps->errbuf, ps->errlen, fmt, arg ? arg : "");
	if (ps->errpos)
		*ps->errpos = (int) (at - ps->src) + 1;
}

static void
free_node(FpNode *n)
{
	if (n == NULL)
		return;
	free_node(n->focus);
	for (int i = 0; i < n->nargs; i++)
		free_node(n->args[i]);
	free(n->name);
	free(n);
}

/*
 * Record n's height; fail the parse (false) past FP_MAX_TREE_HEIGHT, so that
 * no expression shape ("x or x or ...", chains inside parentheses or
 * arguments) makes free_node() or eval_node() recurse without bound.
 * The caller frees n on failure.
 */
static bool
set_height(FpParser *ps, FpNode *n)
{
	int			h = n->focus ? n->focus->height : 0;

	for (int i = 0; i < n->nargs; i++)
		if (n->args[i] != NULL && n->args[i]->height > h)
			h = n->args[i]->height;
	n->height = h + 1;
	if (n->height > FP_MAX_TREE_HEIGHT)
	{
		fp_fail(ps, ps->p, "expression nested too deeply%s", NULL);
		return false;
	}
	return true;
}

static FpNode *
new_node(FpParser *ps, FpKind kind)
{
	FpNode	   *n = calloc(1, sizeof(FpNode));

	if (n == NULL)
		fp_fail(ps, ps->p, "out of memory%s", NULL);
	else
		n->kind = kind;
	return n;
}

/*
 * A node of kind named name (len bytes, malloc'd: the node owns it), with
 * focus (may be NULL) as its input; on failure both are freed and NULL is
 * returned.
 */
static FpNode *
named_node(FpParser *ps, FpKind kind, char *name, size_t len, FpNode *focus)
{
	FpNode	   *n = new_node(ps, kind);

	if (n == NULL)
	{
		free(name);
		free_node(focus);
		return NULL;
	}
	n->name = name;
	n->namelen = len;
	n->focus = focus;
	return n;
}

static void
skip_ws(FpParser *ps)
{
	while (*ps->p && isspace((unsigned char) *ps->p))
		ps->p++;
}

static bool
is_ident_start(char c)
{
	return isalpha((unsigned char) c) || c == '_';
}

static bool
is_ident_char(char c)
{
	return isalnum((unsigned char) c) || c == '_';
}

/* Reads an identifier at ps->p; returns malloc'd copy or NULL. */
static char *
read_ident(FpParser *ps, size_t *len)
{
	const char *start = ps->p;
	char	   *s;

	if (*ps->p == '`')
	{
		const char *end = strchr(ps->p + 1, '`');

		if (end == NULL)
		{
			fp_fail(ps, start, "unterminated `identifier`%s", NULL);
			return NULL;
		}
		*len = (size_t) (end - start - 1);
		s = malloc(*len + 1);
		if (s == NULL)
		{
			fp_fail(ps, start, "out of memory%s", NULL);
			return NULL;
		}
		memcpy(s, start + 1, *len);
		s[*len] = '\0';
		ps->p = end + 1;
		return s;
	}
	if (!is_ident_start(*ps->p))
	{
		fp_fail(ps, start, "syntax error: expected a name%s", NULL);
		return NULL;
	}
	while (is_ident_char(*ps->p))
		ps->p++;
	*len = (size_t) (ps->p - start);
	s = malloc(*len + 1);
	if (s == NULL)
	{
		fp_fail(ps, start, "out of memory%s", NULL);
		return NULL;
	}
	memcpy(s, start, *len);
	s[*len] = '\0';
	return s;
}

static bool
keyword_at(FpParser *ps, const char *kw)
{
	size_t		n = strlen(kw);

	return strncmp(ps->p, kw, n) == 0 && !is_ident_char(ps->p[n]);
}

static const struct
{
	const char *name;
	FpFunc		func;
	int			min_args;
	int			max_args;
	bool		type_arg;		/* the argument is a bare type name */
}			fp_functions[] =
{
	{"where", FN_WHERE, 1, 1, false},
	{"first", FN_FIRST, 0, 0, false},
	{"exists", FN_EXISTS, 0, 1, false},
	{"empty", FN_EMPTY, 0, 0, false},
	{"not", FN_NOT, 0, 0, false},
	{"getResourceKey", FN_GET_RESOURCE_KEY, 0, 0, false},
	{"getReferenceKey", FN_GET_REFERENCE_KEY, 0, 1, true},
	{"extension", FN_EXTENSION, 1, 1, false},
	{"ofType", FN_OFTYPE, 1, 1, true},
	{"join", FN_JOIN, 0, 1, false},
	{"lowBoundary", FN_LOW_BOUNDARY, 0, 0, false},
	{"highBoundary", FN_HIGH_BOUNDARY, 0, 0, false},
	{"count", FN_COUNT, 0, 0, false},
	{"last", FN_LAST, 0, 0, false},
	{"distinct", FN_DISTINCT, 0, 0, false},
	{"iif", FN_IIF, 2, 3, false},
	{"select", FN_SELECT, 1, 1, false},
	{"combine", FN_COMBINE, 1, 1, false},
	{"is", FN_IS, 1, 1, true},
	{"as", FN_AS, 1, 1, true},
};

/*
 * typeSpecifier := identifier ('.' identifier)*: an FP_STRING node with the
 * last part as its name and "System" or "FHIR" as littype when it qualifies
 * the name (FHIR.Quantity, System.String).
 */
static FpNode *
parse_type_spec(FpParser *ps)
{
	size_t		tl;
	char	   *tn;
	const char *qual = NULL;
	FpNode	   *arg;
	const char *start;
	int			parts = 1;

	skip_ws(ps);
	start = ps->p;
	tn = read_ident(ps, &tl);
	while (tn != NULL && *ps->p == '.')
	{
		/* "x as Quantity.exists()": the invocation applies to (x as Quantity) */
		const char *q = ps->p + 1;

		while (is_ident_char(*q))
			q++;
		while (isspace((unsigned char) *q))
			q++;
		if (*q == '(')
			break;
		parts++;
		qual = strcmp(tn, "System") == 0 ? "System" :
			strcmp(tn, "FHIR") == 0 ? "FHIR" : NULL;
		free(tn);
		ps->p++;
		tn = read_ident(ps, &tl);
	}
	if (tn == NULL)
		return NULL;
	if (parts > 2 || (parts == 2 && qual == NULL))
	{
		fp_fail(ps, start, "unknown type namespace: only FHIR and System qualify a type name%s", NULL);
		free(tn);
		return NULL;
	}
	arg = named_node(ps, FP_STRING, tn, tl, NULL);
	if (arg != NULL)
		arg->littype = qual;
	return arg;
}

/* invocation := ident [ '(' args ')' ] ; focus is what it applies to */
static FpNode *
parse_invocation(FpParser *ps, FpNode *focus)
{
	const char *start = ps->p;
	size_t		len;
	char	   *name = read_ident(ps, &len);
	FpNode	   *n;

	if (name == NULL)
	{
		free_node(focus);
		return NULL;
	}
	skip_ws(ps);
	if (*ps->p != '(')
	{
		n = named_node(ps, FP_MEMBER, name, len, focus);
		if (n == NULL)
			return NULL;
		if (!set_height(ps, n))
		{
			free_node(n);
			return NULL;
		}
		return n;
	}

	/* function call */
	n = named_node(ps, FP_FUNC, name, len, focus);
	if (n == NULL)
		return NULL;
	{
		int			f = -1;

		for (size_t i = 0; i < sizeof(fp_functions) / sizeof(fp_functions[0]); i++)
			if (strcmp(fp_functions[i].name, name) == 0)
				f = (int) i;
		if (f < 0)
		{
			fp_fail(ps, start, "unsupported function \"%s\"", name);
			free_node(n);
			return NULL;
		}
		n->func = fp_functions[f].func;
		ps->p++;				/* '(' */
		skip_ws(ps);
		if (*ps->p != ')')
		{
			for (;;)
			{
				FpNode	   *arg;

				if (n->nargs >= FP_MAX_ARGS)
				{
					fp_fail(ps, ps->p, "too many arguments%s", NULL);
					free_node(n);
					return NULL;
				}
				/* getReferenceKey, ofType, is and as take a bare type name */
				if (fp_functions[f].type_arg)
				{
					arg = parse_type_spec(ps);
					if (arg == NULL)
					{
						free_node(n);
						return NULL;
					}
				}
				else
				{
					arg = parse_or(ps);
					if (arg == NULL)
					{
						free_node(n);
						return NULL;
					}
				}
				n->args[n->nargs++] = arg;
				skip_ws(ps);
				if (*ps->p == ',')
				{
					ps->p++;
					continue;
				}
				break;
			}
		}
		skip_ws(ps);
		if (*ps->p != ')')
		{
			fp_fail(ps, ps->p, "syntax error: expected \")\"%s", NULL);
			free_node(n);
			return NULL;
		}
		ps->p++;
		if (n->nargs < fp_functions[f].min_args || n->nargs > fp_functions[f].max_args)
		{
			fp_fail(ps, start, "wrong number of arguments for function \"%s\"", name);
			free_node(n);
			return NULL;
		}
	}
	if (!set_height(ps, n))
	{
		free_node(n);
		return NULL;
	}
	return n;
}


/* The value of 4 hex digits at p, or -1. */
static long
hex4(const char *p)
{
	long		v = 0;

	for (int i = 0; i < 4; i++)
	{
		char		h = p[i];

		if (h >= '0' && h <= '9')
			v = v * 16 + (h - '0');
		else if (h >= 'a' && h <= 'f')
			v = v * 16 + (h - 'a' + 10);
		else if (h >= 'A' && h <= 'F')
			v = v * 16 + (h - 'A' + 10);
		else
			return -1;
	}
	return v;
}

/* Code point cp (not a surrogate, <= 0x10FFFF) as UTF-8 in out; its length. */
static int
utf8_encode(long cp, char *out)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

static FpNode *
parse_string_literal(FpParser *ps)
{
	const char *start = ps->p;
	size_t		cap = 16,
				len = 0;
	char	   *s = malloc(cap);
	FpNode	   *n;

	if (s == NULL)
	{
		fp_fail(ps, start, "out of memory%s", NULL);
		return NULL;
	}
	ps->p++;					/* opening quote */
	for (;;)
	{
		char		c = *ps->p;
		char		utf8[4];
		int			nbytes = 0;

		if (c == '\0')
		{
			fp_fail(ps, start, "unterminated string literal%s", NULL);
			free(s);
			return NULL;
		}
		ps->p++;
		if (c == '\'')
			break;
		if (c == '\\' && *ps->p == 'u')
		{
			/* \uXXXX (a surrogate pair as two): the code point in UTF-8 */
			const char *esc = ps->p - 1;
			long		cp = hex4(ps->p + 1);

			if (cp >= 0xD800 && cp <= 0xDBFF && ps->p[5] == '\\' && ps->p[6] == 'u')
			{
				long		lo = hex4(ps->p + 7);

				if (lo >= 0xDC00 && lo <= 0xDFFF)
				{
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					ps->p += 6;
				}
			}
			if (cp < 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0)
			{
				fp_fail(ps, esc, "invalid \\u escape in a string literal%s", NULL);
				free(s);
				return NULL;
			}
			ps->p += 5;
			nbytes = utf8_encode(cp, utf8);
		}
		else if (c == '\\')
		{
			char		e = *ps->p;

			if (e == '\0')
				continue;
			ps->p++;
			switch (e)
			{
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				case 'r':
					c = '\r';
					break;
				case 'f':
					c = '\f';
					break;
				default:
					c = e;		/* \' \" \` \\ \/ */
			}
		}
		if (nbytes == 0)
			utf8[nbytes++] = c;
		if (len + (size_t) nbytes + 1 > cap)
		{
			char	   *ns = realloc(s, cap * 2);

			if (ns == NULL)
			{
				free(s);
				fp_fail(ps, start, "out of memory%s", NULL);
				return NULL;
			}
			s = ns;
			cap *= 2;
		}
		memcpy(s + len, utf8, (size_t) nbytes);
		len += (size_t) nbytes;
	}
	s[len] = '\0';
	n = new_node(ps, FP_STRING);
	if (n == NULL)
	{
		free(s);
		return NULL;
	}
	n->name = s;
	n->namelen = len;
	return n;
}

static bool
digits_at(const char *p, int n)
{
	for (int i = 0; i < n; i++)
		if (!isdigit((unsigned char) p[i]))
			return false;
	return true;
}

/*
 * Length of a time hh[:mm[:ss[.fff]]] at p, 0 if none.
 */
static size_t
scan_time(const char *p)
{
	const char *q = p;

	if (!digits_at(q, 2))
		return 0;
	q += 2;
	if (q[0] == ':' && digits_at(q + 1, 2))
	{
		q += 3;
		if (q[0] == ':' && digits_at(q + 1, 2))
		{
			q += 3;
			if (q[0] == '.' && isdigit((unsigned char) q[1]))
			{
				q++;
				while (isdigit((unsigned char) *q))
					q++;
			}
		}
	}
	return (size_t) (q - p);
}

/*
 * A date/time literal: @YYYY[-MM[-DD]][Thh[:mm[:ss[.fff]]][Z|(+|-)hh:mm]]
 * or @Thh[:mm[:ss[.fff]]].  Its value is its text without '@' (and without
 * 'T' for a time): a string that compares as a date.
 */
static FpNode *
parse_date_literal(FpParser *ps)
{
	const char *start = ps->p;
	const char *q = ps->p + 1;
	const char *vstart = q;
	const char *type = "date";
	FpNode	   *n;

	if (q[0] == 'T')
	{
		size_t		tl = scan_time(q + 1);

		if (tl == 0)
		{
			fp_fail(ps, start, "syntax error: invalid date/time literal%s", NULL);
			return NULL;
		}
		vstart = q + 1;
		q += 1 + tl;
		type = "time";
	}
	else
	{
		if (!digits_at(q, 4))
		{
			fp_fail(ps, start, "syntax error: invalid date/time literal%s", NULL);
			return NULL;
		}
		q += 4;
		if (q[0] == '-' && digits_at(q + 1, 2))
		{
			q += 3;
			if (q[0] == '-' && digits_at(q + 1, 2))
				q += 3;
		}
		if (q[0] == 'T')
		{
			q += 1 + scan_time(q + 1);
			type = "dateTime";
			if (q[0] == 'Z')
				q++;
			else if ((q[0] == '+' || q[0] == '-') && digits_at(q + 1, 2) &&
					 q[3] == ':' && digits_at(q + 4, 2))
				q += 6;
		}
	}
	if (is_ident_char(*q))
	{
		fp_fail(ps, start, "syntax error: invalid date/time literal%s", NULL);
		return NULL;
	}
	n = new_node(ps, FP_STRING);
	if (n == NULL)
		return NULL;
	n->namelen = (size_t) (q - vstart);
	n->name = malloc(n->namelen + 1);
	if (n->name == NULL)
	{
		free(n);
		fp_fail(ps, start, "out of memory%s", NULL);
		return NULL;
	}
	memcpy(n->name, vstart, n->namelen);
	n->name[n->namelen] = '\0';
	n->littype = type;
	ps->p = q;
	return n;
}

static FpNode *
parse_primary(FpParser *ps)
{
	skip_ws(ps);
	if (*ps->p == '\'')
		return parse_string_literal(ps);
	if (*ps->p == '@')
		return parse_date_literal(ps);
	if (isdigit((unsigned char) *ps->p))
	{
		const char *start = ps->p;
		FpNode	   *n;

		while (isdigit((unsigned char) *ps->p))
			ps->p++;
		if (*ps->p == '.' && isdigit((unsigned char) ps->p[1]))
		{
			ps->p++;
			while (isdigit((unsigned char) *ps->p))
				ps->p++;
		}
		n = new_node(ps, FP_NUMBER);
		if (n == NULL)
			return NULL;
		n->namelen = (size_t) (ps->p - start);
		n->name = malloc(n->namelen + 1);
		if (n->name == NULL)
		{
			free(n);
			fp_fail(ps, start, "out of memory%s", NULL);
			return NULL;
		}
		memcpy(n->name, start, n->namelen);
		n->name[n->namelen] = '\0';
		return n;
	}
	if (*ps->p == '%')
	{
		size_t		len;
		char	   *name;

		ps->p++;
		name = read_ident(ps, &len);
		if (name == NULL)
			return NULL;
		return named_node(ps, FP_CONST, name, len, NULL);
	}
	if (strncmp(ps->p, "$this", 5) == 0 && !is_ident_char(ps->p[5]))
	{
		ps->p += 5;
		return new_node(ps, FP_THIS);
	}
	if (*ps->p == '(')
	{
		FpNode	   *n;

		ps->p++;
		n = parse_or(ps);
		if (n == NULL)
			return NULL;
		skip_ws(ps);
		if (*ps->p != ')')
		{
			fp_fail(ps, ps->p, "syntax error: expected \")\"%s", NULL);
			free_node(n);
			return NULL;
		}
		ps->p++;
		return n;
	}
	if (keyword_at(ps, "true") || keyword_at(ps, "false"))
	{
		FpNode	   *n = new_node(ps, FP_BOOL);

		if (n == NULL)
			return NULL;
		n->boolval = (*ps->p == 't');
		ps->p += n->boolval ? 4 : 5;
		return n;
	}
	if (*ps->p == '\0')
	{
		fp_fail(ps, ps->p, "syntax error: unexpected end of expression%s", NULL);
		return NULL;
	}
	if (!is_ident_start(*ps->p) && *ps->p != '`')
	{
		char		tok[2] = {*ps->p, '\0'};

		fp_fail(ps, ps->p, "syntax error at \"%s\"", tok);
		return NULL;
	}
	return parse_invocation(ps, NULL);
}

static FpNode *
parse_postfix(FpParser *ps)
{
	return parse_postfix_on(ps, parse_primary(ps));
}

/* n followed by any number of .invocation and [index] */
static FpNode *
parse_postfix_on(FpParser *ps, FpNode *n)
{
	int			steps = 0;

	while (n != NULL)
	{
		/* bound the chain: nodes are freed and evaluated recursively */
		if (++steps > FP_MAX_CHAIN)
		{
			fp_fail(ps, ps->p, "expression has too many steps%s", NULL);
			free_node(n);
			return NULL;
		}
		skip_ws(ps);
		if (*ps->p == '.')
		{
			ps->p++;
			skip_ws(ps);
			n = parse_invocation(ps, n);
		}
		else if (*ps->p == '[')
		{
			FpNode	   *ix;
			FpNode	   *ixexpr = NULL;
			char	   *end;
			long		v = 0;

			ps->p++;
			skip_ws(ps);
			if (*ps->p == '%' || *ps->p == '(')
			{
				/* computed index: name[%index], name[(expr)] */
				ixexpr = parse_or(ps);
				if (ixexpr == NULL)
				{
					free_node(n);
					return NULL;
				}
			}
			else
			{
				/* a negative index is valid and selects nothing */
				v = strtol(ps->p, &end, 10);
				if (end == ps->p)
				{
					fp_fail(ps, ps->p, "syntax error: expected an integer index%s", NULL);
					free_node(n);
					return NULL;
				}
				ps->p = end;
			}
			skip_ws(ps);
			if (*ps->p != ']')
			{
				fp_fail(ps, ps->p, "syntax error: expected \"]\"%s", NULL);
				free_node(ixexpr);
				free_node(n);
				return NULL;
			}
			ps->p++;
			ix = new_node(ps, FP_INDEX);
			if (ix == NULL)
			{
				free_node(ixexpr);
				free_node(n);
				return NULL;
			}
			ix->focus = n;
			ix->index = v;
			if (ixexpr != NULL)
			{
				ix->args[0] = ixexpr;
				ix->nargs = 1;
			}
			n = ix;
			if (!set_height(ps, n))
			{
				free_node(n);
				return NULL;
			}
		}
		else
			break;
	}
	return n;
}

static FpNode *
make_binary(FpParser *ps, FpKind kind, FpNode *l, FpNode *r)
{
	FpNode	   *n;

	if (l == NULL || r == NULL)
	{
		free_node(l);
		free_node(r);
		return NULL;
	}
	n = new_node(ps, kind);
	if (n == NULL)
	{
		free_node(l);
		free_node(r);
		return NULL;
	}
	n->args[0] = l;
	n->args[1] = r;
	n->nargs = 2;
	if (!set_height(ps, n))
	{
		free_node(n);
		return NULL;
	}
	return n;
}

/*
 * unary := ('-' | '+')* postfix.  The signs are read in a loop (no
 * recursion) and fold into at most one FP_NEG node.
 */
static FpNode *
parse_unary(FpParser *ps)
{
	bool		neg = false;
	FpNode	   *operand,
			   *n;

	for (;;)
	{
		skip_ws(ps);
		if (*ps->p == '-')
			neg = !neg;
		else if (*ps->p != '+')
			break;
		ps->p++;
	}
	operand = parse_postfix(ps);
	if (operand == NULL || !neg)
		return operand;
	n = new_node(ps, FP_NEG);
	if (n == NULL)
	{
		free_node(operand);
		return NULL;
	}
	n->args[0] = operand;
	n->nargs = 1;
	if (!set_height(ps, n))
	{
		free_node(n);
		return NULL;
	}
	return n;
}

/* Binary operator levels, loosest last; each is left-associative. */
static FpNode *
parse_mul_on(FpParser *ps, FpNode *l)
{
	while (l != NULL)
	{
		FpKind		k;

		skip_ws(ps);
		if (*ps->p == '*')
			k = FP_MUL;
		else if (*ps->p == '/')
			k = FP_DIV;
		else
			break;
		ps->p++;
		l = make_binary(ps, k, l, parse_unary(ps));
	}
	return l;
}

static FpNode *
parse_mul(FpParser *ps)
{
	return parse_mul_on(ps, parse_unary(ps));
}

static FpNode *
parse_add_on(FpParser *ps, FpNode *l)
{
	while (l != NULL)
	{
		FpKind		k;

		skip_ws(ps);
		if (*ps->p == '+')
			k = FP_ADD;
		else if (*ps->p == '-')
			k = FP_SUB;
		else if (*ps->p == '&')
			k = FP_CONCAT;
		else
			break;
		ps->p++;
		l = make_binary(ps, k, l, parse_mul(ps));
	}
	return l;
}

static FpNode *
parse_add(FpParser *ps)
{
	return parse_add_on(ps, parse_mul(ps));
}

/*
 * type := additive (('is' | 'as') typeSpecifier)*: the same nodes as the
 * functions is(Type) and as(Type) with the left operand as their focus.
 */
static FpNode *
parse_type_op(FpParser *ps)
{
	FpNode	   *l = parse_add(ps);

	while (l != NULL)
	{
		bool		is;
		FpNode	   *n;
		FpNode	   *t;
		char	   *name;

		skip_ws(ps);
		if (keyword_at(ps, "is"))
			is = true;
		else if (keyword_at(ps, "as"))
			is = false;
		else
			break;
		ps->p += 2;
		t = parse_type_spec(ps);
		name = t ? strdup(is ? "is" : "as") : NULL;
		if (t != NULL && name == NULL)
			fp_fail(ps, ps->p, "out of memory%s", NULL);
		n = name ? named_node(ps, FP_FUNC, name, 2, l) : NULL;
		if (n == NULL)
		{
			if (name == NULL)
				free_node(l);
			free_node(t);
			return NULL;
		}
		n->func = is ? FN_IS : FN_AS;
		n->args[0] = t;
		n->nargs = 1;
		if (!set_height(ps, n))
		{
			free_node(n);
			return NULL;
		}
		/* as in FHIRPath's grammar, (x as T) is the left operand of what follows */
		l = parse_add_on(ps, parse_mul_on(ps, parse_postfix_on(ps, n)));
	}
	return l;
}

static FpNode *
parse_union(FpParser *ps)
{
	FpNode	   *l = parse_type_op(ps);

	while (l != NULL)
	{
		skip_ws(ps);
		if (*ps->p != '|')
			break;
		ps->p++;
		l = make_binary(ps, FP_UNION, l, parse_type_op(ps));
	}
	return l;
}

static FpNode *
parse_rel(FpParser *ps)
{
	FpNode	   *l = parse_union(ps);

	while (l != NULL)
	{
		FpKind		k;

		skip_ws(ps);
		if (ps->p[0] == '<' && ps->p[1] == '=')
			k = FP_LE;
		else if (ps->p[0] == '>' && ps->p[1] == '=')
			k = FP_GE;
		else if (ps->p[0] == '<')
			k = FP_LT;
		else if (ps->p[0] == '>')
			k = FP_GT;
		else
			break;
		ps->p += (k == FP_LE || k == FP_GE) ? 2 : 1;
		l = make_binary(ps, k, l, parse_union(ps));
	}
	return l;
}

static FpNode *
parse_cmp(FpParser *ps)
{
	FpNode	   *l = parse_rel(ps);

	while (l != NULL)
	{
		skip_ws(ps);
		if (*ps->p == '=')
		{
			ps->p++;
			l = make_binary(ps, FP_EQ, l, parse_rel(ps));
		}
		else if (ps->p[0] == '!' && ps->p[1] == '=')
		{
			ps->p += 2;
			l = make_binary(ps, FP_NE, l, parse_rel(ps));
		}
		else
			break;
	}
	return l;
}

static FpNode *
parse_and(FpParser *ps)
{
	FpNode	   *l = parse_cmp(ps);

	while (l != NULL)
	{
		skip_ws(ps);
		if (!keyword_at(ps, "and"))
			break;
		ps->p += 3;
		l = make_binary(ps, FP_AND, l, parse_cmp(ps));
	}
	return l;
}

static FpNode *
parse_or(FpParser *ps)
{
	FpNode	   *l;

	if (++ps->depth > FP_MAX_PARSE_DEPTH)
	{
		fp_fail(ps, ps->p, "expression nested too deeply%s", NULL);
		ps->depth--;
		return NULL;
	}
	l = parse_and(ps);

	while (l != NULL)
	{
		skip_ws(ps);
		if (!keyword_at(ps, "or"))
			break;
		ps->p += 2;
		l = make_binary(ps, FP_OR, l, parse_and(ps));
	}
	ps->depth--;
	return l;
}

static bool
only_members(const FpNode *n)
{
	for (; n != NULL; n = n->focus)
		if (n->kind != FP_MEMBER)
			return false;
	return true;
}

EpicFpExpr *
epic_fp_parse(const char *text, char *errbuf, size_t errlen, int *errpos)
{
	FpParser	ps;
	EpicFpExpr *e;

	memset(&ps, 0, sizeof(ps));
	ps.src = ps.p = text;
	ps.errbuf = errbuf;
	ps.errlen = errlen;
	ps.errpos = errpos;
	if (errpos)
		*errpos = 0;

	skip_ws(&ps);
	if (*ps.p == '\0')
	{
		fp_fail(&ps, ps.p, "empty expression%s", NULL);
		return NULL;
	}
	e = calloc(1, sizeof(EpicFpExpr));
	if (e == NULL)
	{
		fp_fail(&ps, ps.p, "out of memory%s", NULL);
		return NULL;
	}
	e->root = parse_or(&ps);
	if (e->root != NULL)
	{
		skip_ws(&ps);
		if (*ps.p != '\0')
		{
			char		tok[2] = {*ps.p, '\0'};

			fp_fail(&ps, ps.p, "syntax error at \"%s\"", tok);
		}
	}
	if (ps.failed || e->root == NULL)
	{
		free_node(e->root);
		free(e);
		return NULL;
	}
	e->text = strdup(text);
	if (e->text == NULL)
	{
		free_node(e->root);
		free(e);
		fp_fail(&ps, ps.p, "out of memory%s", NULL);
		return NULL;
	}
	e->plain_path = only_members(e->root);
	return e;
}

void
epic_fp_free(EpicFpExpr *expr)
{
	if (expr == NULL)
		return;
	free_node(expr->root);
	free(expr->text);
	free(expr);
}

const char *
epic_fp_text(const EpicFpExpr *expr)
{
	return expr->plain_path ? expr->text : NULL;
}

/* ---------------------------------------------------------------------
 * Evaluator
 * ---------------------------------------------------------------------
 */
typedef struct FpEval
{
	const EpicJsonOps *ops;
	const void *root;
	const EpicFpEnv *env;
	char	   *errbuf;
	size_t		errlen;
	bool		failed;
	int			depth;
	EpicFpResult *owner;		/* the final result: owns derived strings */
	long		pushes;			/* items produced so far (FP_MAX_PUSHES) */
	long		row_index;		/* %rowIndex */
	int			versions;		/* FHIR versions of the type table */
	/* the last element type looked up (items of one parent type repeat) */
	const char *memo_parent;
	const char *memo_name;
	const char *memo_type;
} FpEval;

#define FP_MAX_DEPTH 200

static void
eval_oom(FpEval *ev)
{
	if (!ev->failed)
		snprintf(ev->errbuf, ev->errlen, "out of memory");
	ev->failed = true;
}

/*
 * The item arrays of intermediate collections (an operand, a where()
 * criterion on one item, a function's input), kept for the next
 * collection instead of freed: a scan evaluates paths for every cell, and
 * malloc/free were about a tenth of its time.  Small blocks only; a pooled
 * block is an ordinary malloc'd one (whoever takes it may free it).
 */
static void free_owned(EpicFpResult *res);

#define FP_POOL_SIZE 64
#define FP_POOL_MAX_ITEMS 64
static struct
{
	EpicFpItem *items;
	int			capacity;
}			fp_pool[FP_POOL_SIZE];
static int	fp_npool;

/* Free an intermediate collection: its derived strings, and its block to the pool. */
static void
tmp_release(EpicFpResult *r)
{
	free_owned(r);
	if (r->items != NULL && r->capacity <= FP_POOL_MAX_ITEMS && fp_npool < FP_POOL_SIZE)
	{
		fp_pool[fp_npool].items = r->items;
		fp_pool[fp_npool].capacity = r->capacity;
		fp_npool++;
	}
	else
		free(r->items);
	r->items = NULL;
	r->count = r->capacity = 0;
}

static bool
push_item(FpEval *ev, EpicFpResult *out, const EpicFpItem *item)
{
	/* bound the work: collections can multiply (x.select(%resource.x)...) */
	if (out->count >= FP_MAX_ITEMS || ++ev->pushes > FP_MAX_PUSHES)
	{
		if (!ev->failed)
			snprintf(ev->errbuf, ev->errlen, "expression gives too many values (more than %d in a collection, or %d in all)",
					 FP_MAX_ITEMS, FP_MAX_PUSHES);
		ev->failed = true;
		return false;
	}
	if (out->capacity == 0 && fp_npool > 0)
	{
		/* a block an intermediate collection gave back (tmp_release) */
		fp_npool--;
		out->items = fp_pool[fp_npool].items;
		out->capacity = fp_pool[fp_npool].capacity;
	}
	if (out->count == out->capacity)
	{
		int			ncap = out->capacity ? out->capacity * 2 : 8;
		EpicFpItem *n = realloc(out->items, sizeof(EpicFpItem) * (size_t) ncap);

		if (n == NULL)
		{
			eval_oom(ev);
			return false;
		}
		out->items = n;
		out->capacity = ncap;
	}
	out->items[out->count++] = *item;
	return true;
}

/*
 * A new derived string of len bytes (+ NUL), owned by the final result
 * (ev->owner) so that it outlives the intermediate results it passes
 * through.  NULL (and ev->failed) when out of memory.
 */
static char *
own_string(FpEval *ev, size_t len)
{
	EpicFpResult *o = ev->owner;
	char	   *s;

	if (o->nowned == o->owned_capacity)
	{
		int			ncap = o->owned_capacity ? o->owned_capacity * 2 : 8;
		char	  **n = realloc(o->owned, sizeof(char *) * (size_t) ncap);

		if (n == NULL)
		{
			eval_oom(ev);
			return NULL;
		}
		o->owned = n;
		o->owned_capacity = ncap;
	}
	s = malloc(len + 1);
	if (s == NULL)
	{
		eval_oom(ev);
		return NULL;
	}
	s[len] = '\0';
	o->owned[o->nowned++] = s;
	return s;
}

static void
free_owned(EpicFpResult *res)
{
	for (int i = 0; i < res->nowned; i++)
		free(res->owned[i]);
	free(res->owned);
	res->owned = NULL;
	res->nowned = res->owned_capacity = 0;
}

/* Push a derived item (string or number) with a copy of text. */
static void
push_derived(FpEval *ev, EpicFpResult *out, EpicFpItemKind kind,
			 const char *text, size_t len, const char *type)
{
	char	   *s = own_string(ev, len);
	EpicFpItem	it;

	if (s == NULL)
		return;
	memcpy(s, text, len);
	memset(&it, 0, sizeof(it));
	it.kind = kind;
	it.str = s;
	it.len = len;
	it.type = type;
	push_item(ev, out, &it);
}

static void
push_node(FpEval *ev, EpicFpResult *out, const void *node)
{
	EpicFpItem	it;

	memset(&it, 0, sizeof(it));
	it.kind = EPIC_FP_NODE;
	it.node = node;
	push_item(ev, out, &it);
}

static void
push_bool(FpEval *ev, EpicFpResult *out, bool v)
{
	EpicFpItem	it;

	memset(&it, 0, sizeof(it));
	it.kind = EPIC_FP_BOOL;
	it.boolval = v;
	push_item(ev, out, &it);
}

static void
push_string(FpEval *ev, EpicFpResult *out, const char *s, size_t len)
{
	EpicFpItem	it;

	memset(&it, 0, sizeof(it));
	it.kind = EPIC_FP_STRING;
	it.str = s;
	it.len = len;
	push_item(ev, out, &it);
}

const char *
epic_fp_item_text(const EpicJsonOps *ops, const EpicFpItem *item,
				  char *buf, size_t buflen, size_t *len)
{
	switch (item->kind)
	{
		case EPIC_FP_NODE:
			return ops->scalar(item->node, buf, buflen, len);
		case EPIC_FP_STRING:
		case EPIC_FP_NUMBER:
			*len = item->len;
			return item->str;
		case EPIC_FP_BOOL:
			*len = item->boolval ? 4 : 5;
			return item->boolval ? "true" : "false";
	}
	return NULL;
}

/* Scalar category of an item for comparisons. */
typedef enum
{
	CAT_OTHER,
	CAT_STRING,
	CAT_NUMBER,
	CAT_BOOL
} FpCat;

static FpCat
item_cat(const EpicJsonOps *ops, const EpicFpItem *it)
{
	switch (it->kind)
	{
		case EPIC_FP_STRING:
			return CAT_STRING;
		case EPIC_FP_NUMBER:
			return CAT_NUMBER;
		case EPIC_FP_BOOL:
			return CAT_BOOL;
		case EPIC_FP_NODE:
			switch (ops->kind(it->node))
			{
				case EPIC_JSON_STRING:
					return CAT_STRING;
				case EPIC_JSON_NUMBER:
					return CAT_NUMBER;
				case EPIC_JSON_TRUE:
				case EPIC_JSON_FALSE:
					return CAT_BOOL;
				default:
					return CAT_OTHER;
			}
	}
	return CAT_OTHER;
}

static bool type_name_eq(const char *a, size_t alen, const char *b);

/* 'd' date, 'D' dateTime (or instant), 't' time, 0: type t is none of these */
static int
temporal_kind(const char *t)
{
	if (t == NULL)
		return 0;
	if (strncmp(t, "System.", 7) == 0)
		t += 7;
	if (type_name_eq(t, strlen(t), "date"))
		return 'd';
	if (type_name_eq(t, strlen(t), "dateTime") || type_name_eq(t, strlen(t), "instant"))
		return 'D';
	if (type_name_eq(t, strlen(t), "time"))
		return 't';
	return 0;
}

/*
 * A date, dateTime or time value.  prec: 1 year, 2 month, 3 day, 4 hour,
 * 5 minute, 6 second (milliseconds are part of the second, as FHIRPath
 * compares them).
 */
typedef struct FpTemporal
{
	int			kind;			/* 'd', 'D', 't' */
	int			prec;
	int			y,
				mo,
				d,
				h,
				mi,
				msec;			/* seconds * 1000 + milliseconds */
	bool		tz;
	int			tzmin;			/* offset east of UTC, minutes */
} FpTemporal;

static bool digits_at(const char *p, int n);

/* hh[:mm[:ss[.f...]]] at t[*pos..len): into tm (prec 4..6) */
static bool
parse_time_part(const char *t, size_t len, size_t *pos, FpTemporal *tm)
{
	size_t		p = *pos;

	if (p + 2 > len || !digits_at(t + p, 2))
		return false;
	tm->h = (t[p] - '0') * 10 + (t[p + 1] - '0');
	tm->prec = 4;
	p += 2;
	if (p + 3 <= len && t[p] == ':' && digits_at(t + p + 1, 2))
	{
		tm->mi = (t[p + 1] - '0') * 10 + (t[p + 2] - '0');
		tm->prec = 5;
		p += 3;
		if (p + 3 <= len && t[p] == ':' && digits_at(t + p + 1, 2))
		{
			tm->msec = ((t[p + 1] - '0') * 10 + (t[p + 2] - '0')) * 1000;
			tm->prec = 6;
			p += 3;
			if (p + 1 < len && t[p] == '.' && digits_at(t + p + 1, 1))
			{
				int			scale = 100;

				for (p++; p < len && digits_at(t + p, 1); p++, scale /= 10)
					tm->msec += (t[p] - '0') * scale;
			}
		}
	}
	if (tm->h > 23 || tm->mi > 59 || tm->msec >= 61000)
		return false;
	*pos = p;
	return true;
}

/* Parse a date/dateTime/time (hint: its kind when known, else 0). */
static bool
parse_temporal(const char *t, size_t len, int hint, FpTemporal *tm)
{
	size_t		p = 0;

	memset(tm, 0, sizeof(*tm));
	if (hint == 't' || (hint == 0 && len >= 3 && t[2] == ':'))
	{
		tm->kind = 't';
		return parse_time_part(t, len, &p, tm) && p == len;
	}
	if (len < 4 || !digits_at(t, 4))
		return false;
	tm->y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + (t[2] - '0') * 10 + (t[3] - '0');
	tm->mo = tm->d = 1;
	tm->prec = 1;
	p = 4;
	if (p + 3 <= len && t[p] == '-' && digits_at(t + p + 1, 2))
	{
		tm->mo = (t[p + 1] - '0') * 10 + (t[p + 2] - '0');
		tm->prec = 2;
		p += 3;
		if (p + 3 <= len && t[p] == '-' && digits_at(t + p + 1, 2))
		{
			tm->d = (t[p + 1] - '0') * 10 + (t[p + 2] - '0');
			tm->prec = 3;
			p += 3;
		}
	}
	if (tm->mo < 1 || tm->mo > 12 || tm->d < 1 || tm->d > 31)
		return false;
	tm->kind = (hint == 'D' || (p < len && t[p] == 'T')) ? 'D' : 'd';
	if (p < len && t[p] == 'T')
	{
		p++;
		if (p < len && tm->prec == 3 && !parse_time_part(t, len, &p, tm))
			return false;
	}
	if (p < len && tm->prec >= 4)
	{
		if (t[p] == 'Z' && p + 1 == len)
		{
			tm->tz = true;
			p++;
		}
		else if ((t[p] == '+' || t[p] == '-') && p + 6 == len && digits_at(t + p + 1, 2) &&
				 t[p + 3] == ':' && digits_at(t + p + 4, 2))
		{
			tm->tz = true;
			tm->tzmin = ((t[p + 1] - '0') * 10 + (t[p + 2] - '0')) * 60 +
				(t[p + 4] - '0') * 10 + (t[p + 5] - '0');
			if (t[p] == '-')
				tm->tzmin = -tm->tzmin;
			p += 6;
		}
	}
	return p == len;
}

/* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm) */
static long
days_from_civil(long y, int m, int d)
{
	long		era,
				yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(long z, int *y, int *m, int *d)
{
	long		era,
				doe,
				yoe,
				doy,
				mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = (int) (yoe + era * 400 + (*m <= 2));
}

/* A dateTime with a time, in UTC (no time zone: taken as UTC) */
static void
temporal_utc(FpTemporal *tm)
{
	long		min;

	if (tm->kind != 'D' || tm->prec < 4 || tm->tzmin == 0)
		return;
	min = days_from_civil(tm->y, tm->mo, tm->d) * 1440 + tm->h * 60 + tm->mi - tm->tzmin;
	civil_from_days(min >= 0 ? min / 1440 : -((-min + 1439) / 1440), &tm->y, &tm->mo, &tm->d);
	min -= days_from_civil(tm->y, tm->mo, tm->d) * 1440;
	tm->h = (int) (min / 60);
	tm->mi = (int) (min % 60);
	tm->tzmin = 0;
}

/*
 * Order of two temporal values, FHIRPath style: component by component from
 * the year (the hour for times) down to the coarser precision of the two.
 * 1 with *cmp set; 0 when they agree as far as both go but their precisions
 * differ (FHIRPath: empty); -1 when not comparable (a time and a date).
 */
static int
temporal_cmp(FpTemporal a, FpTemporal b, int *cmp)
{
	int			va[6],
				vb[6],
				prec;

	if ((a.kind == 't') != (b.kind == 't'))
		return -1;
	temporal_utc(&a);
	temporal_utc(&b);
	va[0] = a.y, va[1] = a.mo, va[2] = a.d, va[3] = a.h, va[4] = a.mi, va[5] = a.msec;
	vb[0] = b.y, vb[1] = b.mo, vb[2] = b.d, vb[3] = b.h, vb[4] = b.mi, vb[5] = b.msec;
	prec = a.prec < b.prec ? a.prec : b.prec;
	if (prec > 6)
		prec = 6;
	for (int i = a.kind == 't' ? 3 : 0; i < prec; i++)
		if (va[i] != vb[i])
		{
			*cmp = va[i] < vb[i] ? -1 : 1;
			return 1;
		}
	if (a.prec != b.prec)
		return 0;
	*cmp = 0;
	return 1;
}

/* Strings that look like dates/times (elements of unknown type). */
static bool
date_like(const char *s, size_t len)
{
	return (len >= 4 && digits_at(s, 4) && (len == 4 || s[4] == '-')) ||
		(len >= 5 && digits_at(s, 2) && s[2] == ':');
}

/*
 * Is the item a date, dateTime or time (into *tm)?  Typed items by their
 * type; a JSON string of unknown type when it looks like one.
 */
static bool
item_temporal(const EpicJsonOps *ops, const EpicFpItem *it, FpTemporal *tm)
{
	int			hint = temporal_kind(it->type);
	char		buf[64];
	size_t		len;
	const char *t;

	if (it->noval)
		return false;
	if (hint == 0 && !(it->type == NULL && it->kind == EPIC_FP_NODE &&
					   ops->kind(it->node) == EPIC_JSON_STRING))
		return false;
	t = epic_fp_item_text(ops, it, buf, sizeof(buf), &len);
	if (t == NULL || (hint == 0 && !date_like(t, len)))
		return false;
	return parse_temporal(t, len, hint, tm);
}

/* Structural equality of two JSON values (numbers by value). */
static bool
json_equal(const EpicJsonOps *ops, const void *a, const void *b, int depth)
{
	EpicJsonKind ka = ops->kind(a),
				kb = ops->kind(b);

	if (a == b)
		return true;
	if (ka != kb || depth > 100)
		return false;
	switch (ka)
	{
		case EPIC_JSON_OBJECT:
			{
				const char *name;
				size_t		nl,
							na = 0,
							nb = 0;
				const void *va,
						   *vb;

				if (ops->member_at == NULL)
					return false;
				while (ops->member_at(b, nb, &name, &nl, &vb))
					nb++;
				for (; ops->member_at(a, na, &name, &nl, &va); na++)
				{
					char		key[256];

					if (nl >= sizeof(key))
						return false;
					memcpy(key, name, nl);
					key[nl] = '\0';
					vb = ops->member(b, key);
					if (vb == NULL || !json_equal(ops, va, vb, depth + 1))
						return false;
				}
				return na == nb;
			}
		case EPIC_JSON_ARRAY:
			{
				size_t		n = ops->size(a);

				if (n != ops->size(b))
					return false;
				for (size_t i = 0; i < n; i++)
					if (!json_equal(ops, ops->item(a, i), ops->item(b, i), depth + 1))
						return false;
				return true;
			}
		case EPIC_JSON_STRING:
		case EPIC_JSON_NUMBER:
			{
				char		ba[64],
							bb[64];
				size_t		la,
							lb;
				const char *ta = ops->scalar(a, ba, sizeof(ba), &la);
				const char *tb = ops->scalar(b, bb, sizeof(bb), &lb);

				if (ta == NULL || tb == NULL)
					return false;
				if (ka == EPIC_JSON_NUMBER && la < sizeof(ba) && lb < sizeof(bb))
				{
					char		na[64],
								nb[64];

					memcpy(na, ta, la);
					na[la] = '\0';
					memcpy(nb, tb, lb);
					nb[lb] = '\0';
					return strtod(na, NULL) == strtod(nb, NULL);
				}
				return la == lb && memcmp(ta, tb, la) == 0;
			}
		default:
			return true;		/* null, true, false: the kind says it all */
	}
}

/*
 * FHIRPath equality of two items: 1 equal, 0 not, -1 unknown (dates of
 * different precisions that agree as far as both go).  Dates are not
 * strings; complex values are equal when all their elements are.
 */
static int
items_equal3(const EpicJsonOps *ops, const EpicFpItem *a, const EpicFpItem *b)
{
	FpCat		ca,
				cb;
	char		ba[64],
				bb[64];
	size_t		la,
				lb;
	const char *ta,
			   *tb;
	FpTemporal	xa,
				xb;
	bool		tma,
				tmb;

	if (a->kind == EPIC_FP_NODE && b->kind == EPIC_FP_NODE && a->node == b->node &&
		a->noval == b->noval)
		return 1;
	if (a->noval || b->noval)
		return 0;
	tma = item_temporal(ops, a, &xa);
	tmb = item_temporal(ops, b, &xb);
	if (tma && tmb)
	{
		int			c,
					r = temporal_cmp(xa, xb, &c);

		return r == 1 ? c == 0 : r == 0 ? -1 : 0;
	}
	if (tma || tmb)
		return 0;
	ca = item_cat(ops, a);
	cb = item_cat(ops, b);
	if (ca == CAT_OTHER && cb == CAT_OTHER && a->kind == EPIC_FP_NODE && b->kind == EPIC_FP_NODE)
		return json_equal(ops, a->node, b->node, 0);
	if (ca != cb || ca == CAT_OTHER)
		return 0;
	ta = epic_fp_item_text(ops, a, ba, sizeof(ba), &la);
	tb = epic_fp_item_text(ops, b, bb, sizeof(bb), &lb);
	if (ta == NULL || tb == NULL)
		return 0;
	if (ca == CAT_NUMBER)
	{
		char		na[64],
					nb[64];

		if (la >= sizeof(na) || lb >= sizeof(nb))
			return la == lb && memcmp(ta, tb, la) == 0;
		memcpy(na, ta, la);
		na[la] = '\0';
		memcpy(nb, tb, lb);
		nb[lb] = '\0';
		return strtod(na, NULL) == strtod(nb, NULL);
	}
	return la == lb && memcmp(ta, tb, la) == 0;
}

static bool
items_equal(const EpicJsonOps *ops, const EpicFpItem *a, const EpicFpItem *b)
{
	return items_equal3(ops, a, b) == 1;
}

/* Singleton boolean value: 1 true, 0 false, -1 empty/not boolean. */
static int
singleton_bool(const EpicJsonOps *ops, const EpicFpResult *r)
{
	if (r->count != 1)
		return -1;
	if (r->items[0].kind == EPIC_FP_BOOL)
		return r->items[0].boolval ? 1 : 0;
	if (r->items[0].kind == EPIC_FP_NODE)
	{
		EpicJsonKind k = ops->kind(r->items[0].node);

		if (k == EPIC_JSON_TRUE)
			return 1;
		if (k == EPIC_JSON_FALSE)
			return 0;
	}
	/* FHIRPath: a single non-boolean item counts as true */
	return 1;
}

static void eval_node(FpEval *ev, const FpNode *n, const EpicFpItem *in, int nin,
					  EpicFpResult *out);

/*
 * Type suffixes of FHIR choice elements (value[x], deceased[x], ...), as
 * they appear in member names: valueString, valueQuantity, ...
 */
static const char *const fp_choice_types[] =
{
	"Boolean", "Integer", "String", "Decimal", "Uri", "Url", "Canonical",
	"Base64Binary", "Instant", "Date", "DateTime", "Time", "Code", "Oid",
	"Id", "Markdown", "UnsignedInt", "PositiveInt", "Uuid", "Integer64",
	"Quantity", "CodeableConcept", "Coding", "Reference", "Period", "Range",
	"Ratio", "RatioRange", "SampledData", "Attachment", "Identifier",
	"HumanName", "Address", "ContactPoint", "Timing", "Age", "Count",
	"Distance", "Duration", "Money", "Annotation", "Signature",
	"CodeableReference", "ContactDetail", "Contributor", "DataRequirement",
	"Expression", "ParameterDefinition", "RelatedArtifact",
	"TriggerDefinition", "UsageContext", "Dosage", "Meta", "Availability",
	"ExtendedContactDetail", "VirtualServiceDetail", "MonetaryComponent",
};

static const char *fp_canonical_type(const char *name, size_t len);

/* The type of a resource (an object with a known resourceType), else NULL. */
static const char *
resource_type(FpEval *ev, const void *node)
{
	const void *rt;
	char		buf[64];
	size_t		len;
	const char *t;

	if (node == NULL || ev->ops->kind(node) != EPIC_JSON_OBJECT)
		return NULL;
	rt = ev->ops->member(node, "resourceType");
	if (rt == NULL || ev->ops->kind(rt) != EPIC_JSON_STRING)
		return NULL;
	t = ev->ops->scalar(rt, buf, sizeof(buf), &len);
	if (t == NULL)
		return NULL;

	/*
	 * Every evaluation on a resource starts here: remember the last name
	 * looked up (rows of a scan are mostly of one type).
	 */
	{
		static char last[64];
		static size_t last_len;
		static int	last_versions;
		static const char *last_type;

		if (len == last_len && ev->versions == last_versions && last_len > 0 &&
			memcmp(t, last, len) == 0)
			return last_type;
		last_type = epic_fhir_type_name(t, len, ev->versions);
		if (len < sizeof(last))
		{
			memcpy(last, t, len);
			last_len = len;
			last_versions = ev->versions;
		}
		else
			last_len = 0;
		return last_type;
	}
}

/* Push one item of an element: a value (node, or NULL) and its extension element. */
static void
push_element(FpEval *ev, EpicFpResult *out, const void *v, const void *ext, const char *type)
{
	EpicFpItem	it;

	if (v != NULL && ev->ops->kind(v) == EPIC_JSON_NULL)
		v = NULL;
	if (ext != NULL && ev->ops->kind(ext) != EPIC_JSON_OBJECT)
		ext = NULL;
	if (v == NULL && ext == NULL)
		return;
	memset(&it, 0, sizeof(it));
	it.kind = EPIC_FP_NODE;
	it.node = v ? v : ext;
	it.ext = ext;
	it.noval = (v == NULL);
	/* a resource (contained, Bundle.entry.resource): its own type */
	it.type = type;
	if (v != NULL && (type == NULL || (type[0] == 'R' && strcmp(type, "Resource") == 0) ||
					  (type[0] == 'D' && strcmp(type, "DomainResource") == 0)))
	{
		const char *rt = resource_type(ev, v);

		if (rt != NULL)
			it.type = rt;
	}
	push_item(ev, out, &it);
}

/*
 * Push a member's value: arrays flatten, nulls vanish.  ext is the
 * primitive's extension element ("_given" for "given"), or NULL: its
 * entries pair with the values by position, and an entry without a value
 * is an element of its own (a primitive with an extension and no value).
 */
static void
add_value(FpEval *ev, EpicFpResult *out, const void *v, const void *ext, const char *type)
{
	bool		varr = v != NULL && ev->ops->kind(v) == EPIC_JSON_ARRAY;
	bool		earr = ext != NULL && ev->ops->kind(ext) == EPIC_JSON_ARRAY;

	if (!varr && !earr)
	{
		push_element(ev, out, v, ext, type);
		return;
	}
	{
		size_t		nv = varr ? ev->ops->size(v) : (v != NULL),
					ne = earr ? ev->ops->size(ext) : (ext != NULL),
					n = nv > ne ? nv : ne;

		for (size_t i = 0; i < n && !ev->failed; i++)
			push_element(ev, out,
						 i < nv ? (varr ? ev->ops->item(v, i) : v) : NULL,
						 i < ne ? (earr ? ev->ops->item(ext, i) : ext) : NULL,
						 type);
	}
}

/* obj's member "_name" (a primitive's extensions), or NULL */
static const void *
primitive_ext(FpEval *ev, const void *obj, const char *name, size_t nl)
{
	char		uname[130];

	if (nl == 0 || nl + 2 > sizeof(uname) || name[0] == '_')
		return NULL;
	uname[0] = '_';
	memcpy(uname + 1, name, nl + 1);
	/* the member is the document's, not uname's: cppcheck cannot tell */
	/* cppcheck-suppress returnDanglingLifetime */
	return ev->ops->member(obj, uname);
}

/*
 * epic_fhir_type_known, remembered per type (a static string of the table:
 * its address) and versions: asked for every absent member.
 */
static bool
fp_type_known(FpEval *ev, const char *ptype)
{
	static struct
	{
		const char *type;
		int			versions;
		bool		known;
	}			cache[64];
	unsigned	h;

	if (ptype == NULL)
		return false;
	h = ((unsigned) ((size_t) ptype >> 3) * 31u + (unsigned) ev->versions) % 64u;
	if (cache[h].type != ptype || cache[h].versions != ev->versions)
	{
		cache[h].known = epic_fhir_type_known(ptype, ev->versions);
		cache[h].type = ptype;
		cache[h].versions = ev->versions;
	}
	return cache[h].known;
}

/* The type of a choice element's value from its member name (valueQuantity). */
static const char *
choice_type(FpEval *ev, const char *ptype, const char *key, size_t kl, const char *suffix)
{
	const char *t = epic_fhir_element_type(ptype, key, kl, ev->versions);

	return t ? t : fp_canonical_type(suffix, strlen(suffix));
}

/*
 * epic_fhir_element_type, remembered: the last answer in ev, and a small
 * process-wide cache keyed by the parent type (a static string of the
 * table: its address), the versions and the element name (its text).
 */
#define FP_TYPE_CACHE 512
static struct
{
	const char *parent;
	int			versions;
	char		name[48];
	const char *type;
}			fp_type_cache[FP_TYPE_CACHE];

static const char *
element_type(FpEval *ev, const char *ptype, const char *name, size_t nl)
{
	unsigned	h;

	if (ev->memo_name == name && ev->memo_parent == ptype && ptype != NULL)
		return ev->memo_type;
	if (ptype == NULL || nl >= sizeof(fp_type_cache[0].name))
		return epic_fhir_element_type(ptype, name, nl, ev->versions);
	h = (unsigned) ((size_t) ptype >> 3) * 31u + (unsigned) ev->versions;
	for (size_t i = 0; i < nl; i++)
		h = h * 31u + (unsigned char) name[i];
	h %= FP_TYPE_CACHE;
	if (fp_type_cache[h].parent != ptype || fp_type_cache[h].versions != ev->versions ||
		strcmp(fp_type_cache[h].name, name) != 0)
	{
		fp_type_cache[h].parent = ptype;
		fp_type_cache[h].versions = ev->versions;
		memcpy(fp_type_cache[h].name, name, nl + 1);
		fp_type_cache[h].type = epic_fhir_element_type(ptype, name, nl, ev->versions);
	}
	ev->memo_parent = ptype;
	ev->memo_name = name;
	ev->memo_type = fp_type_cache[h].type;
	return ev->memo_type;
}

static void
add_member(FpEval *ev, EpicFpResult *out, const void *obj, const char *ptype, const char *name,
		   size_t nl)
{
	const void *v = NULL;
	const void *ext = NULL;

	if (ev->ops->member_at != NULL && nl > 0 && name[0] != '_')
	{
		/* the member and its primitive extension "_name" in one pass (the last duplicate wins) */
		const char *key;
		size_t		kl;
		const void *mv;

		for (size_t m = 0; ev->ops->member_at(obj, m, &key, &kl, &mv); m++)
		{
			if (kl == nl && key[0] == name[0] && memcmp(key, name, nl) == 0)
				v = mv;
			else if (kl == nl + 1 && key[0] == '_' && key[1] == name[0] &&
					 memcmp(key + 1, name, nl) == 0)
				ext = mv;
		}
	}
	else
	{
		v = ev->ops->member(obj, name);
		ext = primitive_ext(ev, obj, name, nl);
	}

	if (v != NULL || ext != NULL)
	{
		add_value(ev, out, v, ext, element_type(ev, ptype, name, nl));
		return;
	}

	/*
	 * A choice element: "value" names whichever value[x] member exists.  Only
	 * one may exist, so the first found is the answer.  When the parent's
	 * type is known, only its choice elements (Immunization's doseQuantity is
	 * no "dose").
	 */
	if (nl == 0 || nl > 64 || !islower((unsigned char) name[0]))
		return;
	if (ptype != NULL && fp_type_known(ev, ptype) &&
		!epic_fhir_is_choice(ptype, name, nl, ev->versions))
		return;
	if (ev->ops->member_at != NULL)
	{
		const char *key;
		size_t		kl;

		/* one pass over the members: name + a known type name */
		for (size_t m = 0; ev->ops->member_at(obj, m, &key, &kl, &v); m++)
		{
			if (kl <= nl || memcmp(key, name, nl) != 0 || !isupper((unsigned char) key[nl]))
				continue;
			for (size_t i = 0; i < sizeof(fp_choice_types) / sizeof(fp_choice_types[0]); i++)
				if (strlen(fp_choice_types[i]) == kl - nl &&
					memcmp(fp_choice_types[i], key + nl, kl - nl) == 0)
				{
					char		full[128];

					memcpy(full, key, kl);
					full[kl] = '\0';
					add_value(ev, out, v, primitive_ext(ev, obj, full, kl),
							  choice_type(ev, ptype, key, kl, fp_choice_types[i]));
					return;
				}
		}
		return;
	}
	for (size_t i = 0; i < sizeof(fp_choice_types) / sizeof(fp_choice_types[0]); i++)
	{
		char		full[128];
		int			fl = snprintf(full, sizeof(full), "%s%s", name, fp_choice_types[i]);

		v = ev->ops->member(obj, full);
		if (v != NULL)
		{
			add_value(ev, out, v, primitive_ext(ev, obj, full, (size_t) fl),
					  choice_type(ev, ptype, full, (size_t) fl, fp_choice_types[i]));
			return;
		}
	}
}

/* The id from a Reference's "reference": [base/]Type/id[/_history/v] */
static void
reference_key(FpEval *ev, EpicFpResult *out, const void *ref, const char *type)
{
	const void *r = ev->ops->member(ref, "reference");
	char		buf[64];
	size_t		len;
	const char *s;
	const char *end,
			   *slash,
			   *tstart;

	if (r == NULL || ev->ops->kind(r) != EPIC_JSON_STRING)
		return;
	s = ev->ops->scalar(r, buf, sizeof(buf), &len);
	if (s == NULL || len == 0 || s[0] == '#')
		return;
	end = s + len;
	/* drop a /_history/version suffix */
	for (const char *p = s; p + 10 <= end; p++)
		if (memcmp(p, "/_history/", 10) == 0)
		{
			end = p;
			break;
		}
	slash = NULL;
	for (const char *p = end; p > s; p--)
		if (p[-1] == '/')
		{
			slash = p - 1;
			break;
		}
	if (slash == NULL || slash + 1 >= end)
		return;
	tstart = slash;
	while (tstart > s && tstart[-1] != '/')
		tstart--;
	if (type != NULL)
	{
		size_t		tl = strlen(type);

		if ((size_t) (slash - tstart) != tl || memcmp(tstart, type, tl) != 0)
			return;
	}
	push_string(ev, out, slash + 1, (size_t) (end - slash - 1));
}

/* Type names equal, ignoring the case of the first letter (String/string). */
static bool
type_name_eq(const char *a, size_t alen, const char *b)
{
	size_t		bl = strlen(b);

	return alen == bl && alen > 0 &&
		tolower((unsigned char) a[0]) == tolower((unsigned char) b[0]) &&
		memcmp(a + 1, b + 1, alen - 1) == 0;
}

static bool
is_integral_text(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
			return false;
	return true;
}

/*
 * Whether item is of FHIR/System type want (ofType).  Items from a choice
 * element and date literals know their type; otherwise it is inferred from
 * the JSON value: a resource by its resourceType, a JSON string matches any
 * string-valued primitive type, a number integer/decimal-like types, a
 * boolean "boolean".  Other objects' types are unknown: they never match.
 */
/* System type names (FHIRPath's own types; unqualified names of FHIR types win) */
static bool
fp_system_type(const char *name)
{
	static const char *const names[] = {
		"String", "Integer", "Decimal", "Boolean", "Date", "DateTime", "Time", "Long",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* The System type of a FHIR primitive type (code -> String), or NULL. */
static const char *
fp_fhir_system_type(const char *t)
{
	static const struct
	{
		const char *fhir;
		const char *sys;
	}			map[] = {
		{"string", "String"}, {"boolean", "Boolean"}, {"integer", "Integer"},
		{"decimal", "Decimal"}, {"date", "Date"}, {"dateTime", "DateTime"},
		{"instant", "DateTime"}, {"time", "Time"}, {"integer64", "Long"},
		{"uri", "String"}, {"base64Binary", "String"}, {"xhtml", "String"},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].fhir, t) == 0)
			return map[i].sys;
	return NULL;
}

static bool
item_is_type(FpEval *ev, const EpicFpItem *it, const char *want, const char *qual,
			 bool strict_system)
{
	static const char *const stringish[] = {
		"string", "code", "uri", "url", "canonical", "id", "oid", "uuid",
		"markdown", "base64Binary", "date", "dateTime", "instant", "time",
	};
	static const char *const intish[] = {
		"integer", "unsignedInt", "positiveInt", "integer64",
	};
	FpCat		cat = item_cat(ev->ops, it);
	bool		want_system = qual ? strcmp(qual, "System") == 0 : fp_system_type(want);
	const char *sys = NULL;

	/*
	 * is/as (strict_system): an element of a resource is of a FHIR type, never
	 * of a System one (FHIR.code is no System.String); ofType() also takes a
	 * FHIR primitive for its System type (gender.ofType(String)).
	 */
	if (strict_system && want_system && it->kind == EPIC_FP_NODE &&
		(it->type == NULL || strncmp(it->type, "System.", 7) != 0))
		return false;

	if (it->type != NULL && strncmp(it->type, "System.", 7) == 0)
		sys = it->type + 7;
	else if (it->type != NULL)
	{
		/* a FHIR type or one of its ancestors (Age is a Quantity, code a string) */
		const char *t = it->type;

		for (int depth = 0; t != NULL && depth < 8; depth++)
		{
			if (!want_system && strcmp(t, want) == 0)
				return true;
			if (sys == NULL)
				sys = fp_fhir_system_type(t);
			/* a BackboneElement's type is its path */
			t = strchr(t, '.') ? "BackboneElement" : epic_fhir_parent_type(t, ev->versions);
		}
	}
	else if (it->kind != EPIC_FP_NODE)
	{
		/* computed values and literals are of System types */
		char		buf[64];
		size_t		len;
		const char *t = epic_fp_item_text(ev->ops, it, buf, sizeof(buf), &len);

		sys = cat == CAT_STRING ? "String" : cat == CAT_BOOL ? "Boolean" :
			cat == CAT_NUMBER ? (t != NULL && is_integral_text(t, len) ? "Integer" : "Decimal") : NULL;
	}
	if (sys != NULL || it->type != NULL)
		return want_system && sys != NULL && strcmp(sys, want) == 0;

	/* an element of unknown type: by its JSON value */
	if (cat == CAT_BOOL)
		return type_name_eq("boolean", 7, want);
	if (cat == CAT_STRING)
	{
		for (size_t i = 0; i < sizeof(stringish) / sizeof(stringish[0]); i++)
			if (type_name_eq(stringish[i], strlen(stringish[i]), want))
				return true;
		return false;
	}
	if (cat == CAT_NUMBER)
	{
		char		buf[64];
		size_t		len;
		const char *t = epic_fp_item_text(ev->ops, it, buf, sizeof(buf), &len);

		if (type_name_eq("decimal", 7, want))
			return true;
		if (t == NULL || !is_integral_text(t, len))
			return false;
		for (size_t i = 0; i < sizeof(intish) / sizeof(intish[0]); i++)
			if (type_name_eq(intish[i], strlen(intish[i]), want))
				return true;
		return false;
	}
	if (it->kind == EPIC_FP_NODE && ev->ops->kind(it->node) == EPIC_JSON_OBJECT)
	{
		const void *rt = ev->ops->member(it->node, "resourceType");
		char		buf[64];
		size_t		len;
		const char *t = (rt != NULL && ev->ops->kind(rt) == EPIC_JSON_STRING) ?
			ev->ops->scalar(rt, buf, sizeof(buf), &len) : NULL;

		return t != NULL && len == strlen(want) && memcmp(t, want, len) == 0;
	}
	return false;
}

/* Numeric value of an item that is a number; false otherwise. */
static bool
item_number(const EpicJsonOps *ops, const EpicFpItem *it, double *d, bool *integral)
{
	char		buf[64],
				num[64];
	size_t		len;
	const char *t;
	char	   *end;

	if (item_cat(ops, it) != CAT_NUMBER)
		return false;
	t = epic_fp_item_text(ops, it, buf, sizeof(buf), &len);
	if (t == NULL || len == 0 || len >= sizeof(num))
		return false;
	memcpy(num, t, len);
	num[len] = '\0';
	*d = strtod(num, &end);
	if (*end != '\0')
		return false;
	*integral = is_integral_text(num, len);
	return true;
}

/* Push a computed number; integral results print without a fraction. */
static void
push_number(FpEval *ev, EpicFpResult *out, double v, bool integral)
{
	char		buf[64];
	int			n;

	if (!isfinite(v))
		return;					/* e.g. division by zero: empty */
	if (integral && v < 9007199254740992.0 && v > -9007199254740992.0)
		n = snprintf(buf, sizeof(buf), "%.0f", v);
	else
	{
		n = snprintf(buf, sizeof(buf), "%.15g", v);
		if (n > 0 && (size_t) n + 2 < sizeof(buf) && strpbrk(buf, ".en") == NULL)
		{
			/* keep a decimal a decimal: 6 -> 6.0 */
			buf[n++] = '.';
			buf[n++] = '0';
			buf[n] = '\0';
		}
	}
	if (n > 0 && (size_t) n < sizeof(buf))
		push_derived(ev, out, EPIC_FP_NUMBER, buf, (size_t) n, NULL);
}

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
month_days(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return (m == 2 && is_leap(y)) ? 29 : days[m - 1];
}

static int
two_digits(const char *p)
{
	return (p[0] - '0') * 10 + (p[1] - '0');
}

/*
 * lowBoundary()/highBoundary() of a (partial) time "hh[:mm[:ss[.fff]]]"
 * into buf: to the millisecond.  Seconds with a fraction are already at
 * millisecond precision (10:00:00.5 is 10:00:00.500 both ways, as
 * fhirpath.js has it).  Returns the length, 0 if t is not a time.
 * *used is how much of t was consumed.
 */
static size_t
time_boundary(const char *t, size_t len, bool high, char *buf, size_t *used)
{
	size_t		tl = scan_time(t);
	int			hh,
				mm,
				ss;
	char		frac[4];
	size_t		i;

	if (tl == 0 || tl > len)
		return 0;
	hh = two_digits(t);
	mm = tl >= 5 ? two_digits(t + 3) : (high ? 59 : 0);
	ss = tl >= 8 ? two_digits(t + 6) : (high ? 59 : 0);
	if (hh > 23 || mm > 59 || ss > 60)
		return 0;
	for (i = 0; i < 3; i++)
		frac[i] = (tl > 9 + i) ? t[9 + i] : (high && tl < 9 ? '9' : '0');
	frac[3] = '\0';
	*used = tl;
	return (size_t) snprintf(buf, 32, "%02d:%02d:%02d.%s", hh, mm, ss, frac);
}

/*
 * lowBoundary()/highBoundary() of a date, a dateTime or a time (FHIRPath
 * build: the least/greatest value at the type's full precision).  kind is
 * what the item is known to be: 'd' date, 'D' dateTime, 't' time, 0 unknown
 * (then a 'T' makes a dateTime, "hh:" a time, anything else a date).
 *   date      "YYYY[-MM[-DD]]" -> "YYYY-MM-DD"
 *   dateTime  "YYYY[-MM[-DD]][Thh[:mm[:ss[.fff]]]][tz]" ->
 *             "YYYY-MM-DDThh:mm:ss.fff" and the time zone: the input's, else
 *             the extreme one (+14:00 for the low boundary, -12:00 for the
 *             high one), as the value could be in any zone
 *   time      "hh[:mm[:ss[.fff]]]" -> "hh:mm:ss.fff"
 * Returns the length written to buf (>= 64 bytes), 0 if t is not such a
 * value.
 */
static size_t
date_boundary(const char *t, size_t len, bool high, int kind, char *buf)
{
	int			y,
				m,
				d;
	size_t		pos,
				n,
				used;

	if (kind == 't' || (kind == 0 && len >= 3 && t[2] == ':'))
	{
		used = 0;
		n = time_boundary(t, len, high, buf, &used);
		return used == len ? n : 0;
	}
	if (len < 4 || !digits_at(t, 4))
		return 0;
	y = (t[0] - '0') * 1000 + (t[1] - '0') * 100 + (t[2] - '0') * 10 + (t[3] - '0');
	pos = 4;
	m = high ? 12 : 1;
	d = -1;
	if (pos < len && t[pos] == '-')
	{
		if (pos + 3 > len || !digits_at(t + pos + 1, 2))
			return 0;
		m = two_digits(t + pos + 1);
		pos += 3;
		if (pos < len && t[pos] == '-')
		{
			if (pos + 3 > len || !digits_at(t + pos + 1, 2))
				return 0;
			d = two_digits(t + pos + 1);
			pos += 3;
		}
	}
	if (m < 1 || m > 12)
		return 0;
	if (d < 0)
		d = high ? month_days(y, m) : 1;
	else if (d < 1 || d > month_days(y, m))
		return 0;
	n = (size_t) snprintf(buf, 64, "%04d-%02d-%02d", y, m, d);
	if (pos == len && kind != 'D')
		return n;				/* a date */
	if (pos < len && t[pos] != 'T')
		return 0;
	if (pos < len)
		pos++;
	buf[n++] = 'T';
	if (pos == len)
	{
		/* no time ("2020-01-01", "2020-01-01T"): the whole day */
		n += (size_t) snprintf(buf + n, 64 - n, "%s", high ? "23:59:59.999" : "00:00:00.000");
	}
	else
	{
		size_t		tn = time_boundary(t + pos, len - pos, high, buf + n, &used);

		if (tn == 0)
			return 0;
		n += tn;
		pos += used;
	}
	/* time zone: Z or +hh:mm / -hh:mm, kept; none: the extreme one */
	if (pos < len)
	{
		size_t		tzl = len - pos;

		if (!((tzl == 1 && t[pos] == 'Z') ||
			  (tzl == 6 && (t[pos] == '+' || t[pos] == '-') && digits_at(t + pos + 1, 2) &&
			   t[pos + 3] == ':' && digits_at(t + pos + 4, 2))))
			return 0;
		memcpy(buf + n, t + pos, tzl);
		n += tzl;
	}
	else
	{
		memcpy(buf + n, high ? "-12:00" : "+14:00", 6);
		n += 6;
	}
	buf[n] = '\0';
	return n;
}

/*
 * lowBoundary()/highBoundary() of a decimal: half a unit of its last digit
 * down/up, with one more digit (1.587 -> 1.5865 / 1.5875; 7 -> 6.5 / 7.5,
 * as fhirpath.js: an integer converts to a decimal of precision 0).
 */
static void
push_number_boundary(FpEval *ev, EpicFpResult *out, const EpicFpItem *it, bool high)
{
	char		tb[64],
				buf[80];
	size_t		len;
	const char *t = epic_fp_item_text(ev->ops, it, tb, sizeof(tb), &len);
	const char *dot;
	double		v;
	bool		integral;
	int			prec,
				n;

	if (t == NULL || !item_number(ev->ops, it, &v, &integral))
		return;
	if (memchr(t, 'e', len) || memchr(t, 'E', len))
		return;
	/* an integer is a decimal without decimal places: 7 -> 6.5 / 7.5 */
	dot = memchr(t, '.', len);
	prec = dot ? (int) (len - (size_t) (dot - t) - 1) : 0;
	if (prec > 15)
		prec = 15;
	{
		double		half = 0.5;

		for (int i = 0; i < prec; i++)
			half /= 10.0;
		v += high ? half : -half;
	}
	n = snprintf(buf, sizeof(buf), "%.*f", prec + 1, v);
	if (n > 0 && (size_t) n < sizeof(buf))
		push_derived(ev, out, EPIC_FP_NUMBER, buf, (size_t) n, NULL);
}

/*
 * Append items of src to out that are not already in out from position
 * from on (distinct / union: out may hold earlier results, e.g. of select()
 * on other items, which do not count).
 */
static void
push_distinct(FpEval *ev, EpicFpResult *out, int from, const EpicFpItem *src, int n)
{
	for (int i = 0; i < n && !ev->failed; i++)
	{
		bool		dup = false;

		for (int j = from; j < out->count && !dup; j++)
			dup = items_equal(ev->ops, &out->items[j], &src[i]);
		if (!dup)
			push_item(ev, out, &src[i]);
	}
}

/* Text of the single item of r (NULL when r is not one scalar). */
static const char *
singleton_text(FpEval *ev, const EpicFpResult *r, char *buf, size_t *len)
{
	if (r->count != 1)
		return NULL;
	return epic_fp_item_text(ev->ops, &r->items[0], buf, 64, len);
}

/* Index of name in env, or -1. */
static int
fp_env_index(const EpicFpEnv *env, const char *name)
{
	if (env == NULL)
		return -1;
	for (int i = 0; i < env->count; i++)
		if (strcmp(env->names[i], name) == 0)
			return i;
	return -1;
}

/* %resource and %rootResource: the resource the evaluation started from */
static bool
fp_resource_constant(const char *name)
{
	return strcmp(name, "resource") == 0 || strcmp(name, "rootResource") == 0;
}

/* the constants every evaluation has: those, and %rowIndex */
static bool
fp_builtin_constant(const char *name)
{
	return fp_resource_constant(name) || strcmp(name, "rowIndex") == 0;
}

static void
eval_function(FpEval *ev, const FpNode *n, const EpicFpItem *in, int nin,
			  const EpicFpItem *ctx, int nctx, EpicFpResult *out)
{
	switch (n->func)
	{
		case FN_IIF:
			{
				/* criterion and results are evaluated on the input */
				EpicFpResult r = {0};

				eval_node(ev, n->args[0], in, nin, &r);
				if (singleton_bool(ev->ops, &r) == 1)
					eval_node(ev, n->args[1], in, nin, out);
				else if (n->nargs > 2)
					eval_node(ev, n->args[2], in, nin, out);
				tmp_release(&r);
				break;
			}
		case FN_SELECT:
			for (int i = 0; i < nin && !ev->failed; i++)
				eval_node(ev, n->args[0], &in[i], 1, out);
			break;
		case FN_COMBINE:
			/* the input, then the argument (evaluated on the context) */
			for (int i = 0; i < nin; i++)
				push_item(ev, out, &in[i]);
			eval_node(ev, n->args[0], ctx, nctx, out);
			break;
		case FN_WHERE:
			for (int i = 0; i < nin && !ev->failed; i++)
			{
				EpicFpResult r = {0};

				eval_node(ev, n->args[0], &in[i], 1, &r);
				if (singleton_bool(ev->ops, &r) == 1)
					push_item(ev, out, &in[i]);
				tmp_release(&r);
			}
			break;
		case FN_FIRST:
			if (nin > 0)
				push_item(ev, out, &in[0]);
			break;
		case FN_EXISTS:
			if (n->nargs == 0)
			{
				push_bool(ev, out, nin > 0);
				break;
			}
			{
				bool		any = false;

				/* exists(criteria) = where(criteria).exists() */
				for (int i = 0; i < nin && !ev->failed && !any; i++)
				{
					EpicFpResult r = {0};

					eval_node(ev, n->args[0], &in[i], 1, &r);
					any = (singleton_bool(ev->ops, &r) == 1);
					tmp_release(&r);
				}
				if (!ev->failed)
					push_bool(ev, out, any);
				break;
			}
		case FN_LAST:
			if (nin > 0)
				push_item(ev, out, &in[nin - 1]);
			break;
		case FN_COUNT:
			push_number(ev, out, (double) nin, true);
			break;
		case FN_DISTINCT:
			push_distinct(ev, out, out->count, in, nin);
			break;
		case FN_EXTENSION:
			/* extension(url) = extension.where(url = $url) */
			for (int i = 0; i < nin && !ev->failed; i++)
			{
				EpicFpResult u = {0};
				char		ub[64];
				size_t		ul = 0;
				const char *url;
				const void *ext;
				const void *obj;

				if (in[i].kind != EPIC_FP_NODE)
					continue;
				/* a primitive's extensions are in its "_name" element */
				obj = ev->ops->kind(in[i].node) == EPIC_JSON_OBJECT ? in[i].node : in[i].ext;
				if (obj == NULL)
					continue;
				ext = ev->ops->member(obj, "extension");
				if (ext == NULL || ev->ops->kind(ext) != EPIC_JSON_ARRAY)
					continue;
				eval_node(ev, n->args[0], &in[i], 1, &u);
				url = singleton_text(ev, &u, ub, &ul);
				if (url != NULL)
				{
					size_t		ne = ev->ops->size(ext);

					for (size_t k = 0; k < ne; k++)
					{
						const void *e = ev->ops->item(ext, k);
						const void *eu;
						char		eb[64];
						size_t		el;
						const char *et;

						if (e == NULL || ev->ops->kind(e) != EPIC_JSON_OBJECT)
							continue;
						eu = ev->ops->member(e, "url");
						if (eu == NULL || ev->ops->kind(eu) != EPIC_JSON_STRING)
							continue;
						et = ev->ops->scalar(eu, eb, sizeof(eb), &el);
						if (et != NULL && el == ul && memcmp(et, url, ul) == 0)
							push_element(ev, out, e, NULL, "Extension");
					}
				}
				tmp_release(&u);
			}
			break;
		case FN_OFTYPE:
			for (int i = 0; i < nin; i++)
				if (item_is_type(ev, &in[i], n->args[0]->name, n->args[0]->littype, false))
					push_item(ev, out, &in[i]);
			break;
		case FN_IS:
		case FN_AS:
			/* of one item: FHIRPath raises an error for several */
			if (nin > 1)
			{
				if (!ev->failed)
					snprintf(ev->errbuf, ev->errlen,
							 "\"%s %s\" needs a single item on its left, got %d",
							 n->func == FN_IS ? "is" : "as", n->args[0]->name, nin);
				ev->failed = true;
			}
			else if (nin == 1 && n->func == FN_IS)
				push_bool(ev, out, item_is_type(ev, &in[0], n->args[0]->name,
												n->args[0]->littype, true));
			else if (nin == 1 &&
					 item_is_type(ev, &in[0], n->args[0]->name, n->args[0]->littype, true))
				push_item(ev, out, &in[0]);
			break;
		case FN_JOIN:
			{
				EpicFpResult sepr = {0};
				char		sb[64];
				size_t		sl = 0;
				const char *sep = "";
				size_t		total = 0;
				char	   *s;

				if (n->nargs > 0)
				{
					eval_node(ev, n->args[0], in, nin, &sepr);
					sep = singleton_text(ev, &sepr, sb, &sl);
					if (sep == NULL)
					{
						sep = "";
						sl = 0;
					}
				}
				/* two passes: size, then copy (number texts use a buffer) */
				for (int pass = 0; pass < 2 && !ev->failed; pass++)
				{
					size_t		pos = 0;
					bool		firstitem = true;

					s = NULL;
					if (pass == 1)
					{
						EpicFpItem	it;

						s = own_string(ev, total);
						if (s == NULL)
							break;
						memset(&it, 0, sizeof(it));
						it.kind = EPIC_FP_STRING;
						it.str = s;
						it.len = total;
						push_item(ev, out, &it);
					}
					for (int i = 0; i < nin; i++)
					{
						char		ib[64];
						size_t		il;
						const char *t = epic_fp_item_text(ev->ops, &in[i], ib, sizeof(ib), &il);

						if (t == NULL)
							continue;
						if (!firstitem)
						{
							if (s)
								memcpy(s + pos, sep, sl);
							pos += sl;
						}
						firstitem = false;
						if (s)
							memcpy(s + pos, t, il);
						pos += il;
					}
					total = pos;
				}
				tmp_release(&sepr);
				break;
			}
		case FN_LOW_BOUNDARY:
		case FN_HIGH_BOUNDARY:
			for (int i = 0; i < nin; i++)
			{
				bool		high = (n->func == FN_HIGH_BOUNDARY);
				FpCat		cat = item_cat(ev->ops, &in[i]);

				if (cat == CAT_NUMBER)
					push_number_boundary(ev, out, &in[i], high);
				else if (cat == CAT_STRING)
				{
					char		tb[64],
								txt[64],
								buf[64];
					size_t		tl,
								bl;
					const char *t = epic_fp_item_text(ev->ops, &in[i], tb, sizeof(tb), &tl);

					if (t == NULL || tl > 40)
						continue;
					/* NUL-terminated copy: the scanners stop at a non-digit */
					memcpy(txt, t, tl);
					txt[tl] = '\0';
					bl = date_boundary(txt, tl, high, temporal_kind(in[i].type), buf);
					if (bl > 0)
						push_derived(ev, out, EPIC_FP_STRING, buf, bl, in[i].type);
				}
			}
			break;
		case FN_EMPTY:
			push_bool(ev, out, nin == 0);
			break;
		case FN_NOT:
			{
				EpicFpResult r = {0};
				int			b;

				r.items = (EpicFpItem *) in;
				r.count = nin;
				b = singleton_bool(ev->ops, &r);
				if (b >= 0)
					push_bool(ev, out, !b);
				break;
			}
		case FN_GET_RESOURCE_KEY:
			for (int i = 0; i < nin; i++)
				if (in[i].kind == EPIC_FP_NODE &&
					ev->ops->kind(in[i].node) == EPIC_JSON_OBJECT)
				{
					const void *id = ev->ops->member(in[i].node, "id");

					if (id != NULL && ev->ops->kind(id) == EPIC_JSON_STRING)
						push_node(ev, out, id);
				}
			break;
		case FN_GET_REFERENCE_KEY:
			for (int i = 0; i < nin; i++)
				if (in[i].kind == EPIC_FP_NODE &&
					ev->ops->kind(in[i].node) == EPIC_JSON_OBJECT)
					reference_key(ev, out, in[i].node,
								  n->nargs > 0 ? n->args[0]->name : NULL);
			break;
	}
}

/*
 * Order of two singletons: <0, 0, >0, or false when not comparable
 * (different types, booleans, a date and a string, or dates of different
 * precision that agree as far as both go, e.g. 2020 vs 2020-01:
 * FHIRPath's empty result).
 */
static bool
compare_items(FpEval *ev, const EpicFpItem *a, const EpicFpItem *b, int *cmp)
{
	FpCat		ca = item_cat(ev->ops, a),
				cb = item_cat(ev->ops, b);
	FpTemporal	xa,
				xb;
	bool		tma = item_temporal(ev->ops, a, &xa),
				tmb = item_temporal(ev->ops, b, &xb);

	if (tma || tmb)
		return tma && tmb && temporal_cmp(xa, xb, cmp) == 1;
	if (ca == CAT_NUMBER && cb == CAT_NUMBER)
	{
		double		x,
					y;
		bool		ix,
					iy;

		if (!item_number(ev->ops, a, &x, &ix) || !item_number(ev->ops, b, &y, &iy))
			return false;
		*cmp = (x > y) - (x < y);
		return true;
	}
	if (ca == CAT_STRING && cb == CAT_STRING)
	{
		char		ba[64],
					bb[64];
		size_t		la,
					lb,
					m;
		const char *ta = epic_fp_item_text(ev->ops, a, ba, sizeof(ba), &la);
		const char *tb = epic_fp_item_text(ev->ops, b, bb, sizeof(bb), &lb);
		int			c;

		if (ta == NULL || tb == NULL)
			return false;
		m = la < lb ? la : lb;
		c = memcmp(ta, tb, m);
		*cmp = c != 0 ? c : (la > lb) - (la < lb);
		return true;
	}
	return false;
}

/* Drop primitives without a value: operators see them as empty. */
static void
drop_noval(EpicFpResult *r)
{
	int			keep = 0;

	for (int i = 0; i < r->count; i++)
		if (!r->items[i].noval)
			r->items[keep++] = r->items[i];
	r->count = keep;
}

static void
eval_binary(FpEval *ev, FpKind kind, EpicFpResult *l, EpicFpResult *r,
			EpicFpResult *out)
{
	if (kind != FP_UNION)
	{
		drop_noval(l);
		drop_noval(r);
	}
	switch (kind)
	{
		case FP_UNION:
			{
				int			from = out->count;

				push_distinct(ev, out, from, l->items, l->count);
				push_distinct(ev, out, from, r->items, r->count);
			}
			return;
		case FP_CONCAT:
			{
				/* & : strings, an empty operand counting as '' */
				char		ba[64],
							bb[64];
				size_t		la = 0,
							lb = 0;
				const char *ta = l->count == 0 ? "" : singleton_text(ev, l, ba, &la);
				const char *tb = r->count == 0 ? "" : singleton_text(ev, r, bb, &lb);
				char	   *s;
				EpicFpItem	it;

				if (ta == NULL || tb == NULL || (s = own_string(ev, la + lb)) == NULL)
					return;
				memcpy(s, ta, la);
				memcpy(s + la, tb, lb);
				memset(&it, 0, sizeof(it));
				it.kind = EPIC_FP_STRING;
				it.str = s;
				it.len = la + lb;
				push_item(ev, out, &it);
				return;
			}
		default:
			break;
	}
	if (l->count != 1 || r->count != 1)
		return;					/* empty (or, leniently, a multi-item operand) */

	switch (kind)
	{
		case FP_LT:
		case FP_GT:
		case FP_LE:
		case FP_GE:
			{
				int			c;

				if (!compare_items(ev, &l->items[0], &r->items[0], &c))
					return;
				push_bool(ev, out,
						  kind == FP_LT ? c < 0 : kind == FP_GT ? c > 0 :
						  kind == FP_LE ? c <= 0 : c >= 0);
				return;
			}
		case FP_ADD:
			if (item_cat(ev->ops, &l->items[0]) == CAT_STRING &&
				item_cat(ev->ops, &r->items[0]) == CAT_STRING)
			{
				eval_binary(ev, FP_CONCAT, l, r, out);
				return;
			}
			/* FALLTHROUGH */
		case FP_SUB:
		case FP_MUL:
		case FP_DIV:
			{
				double		x,
							y,
							v;
				bool		ix,
							iy;

				if (!item_number(ev->ops, &l->items[0], &x, &ix) ||
					!item_number(ev->ops, &r->items[0], &y, &iy))
					return;
				if (kind == FP_ADD)
					v = x + y;
				else if (kind == FP_SUB)
					v = x - y;
				else if (kind == FP_MUL)
					v = x * y;
				else
				{
					if (y == 0)
						return;	/* division by zero: empty */
					v = x / y;
					ix = iy = false;	/* / always gives a decimal */
				}
				push_number(ev, out, v, ix && iy);
				return;
			}
		default:
			return;
	}
}

static void
eval_node(FpEval *ev, const FpNode *n, const EpicFpItem *in, int nin,
		  EpicFpResult *out)
{
	EpicFpResult focus = {0};
	const EpicFpItem *ctx = in;		/* before focus: for computed indexes */
	int			nctx = nin;

	if (ev->failed)
		return;
	if (++ev->depth > FP_MAX_DEPTH)
	{
		snprintf(ev->errbuf, ev->errlen, "expression nested too deeply");
		ev->failed = true;
		ev->depth--;
		return;
	}
	if (n->focus != NULL)
	{
		eval_node(ev, n->focus, in, nin, &focus);
		in = focus.items;
		nin = focus.count;
	}

	switch (n->kind)
	{
		case FP_MEMBER:
			for (int i = 0; i < nin; i++)
			{
				const void *node;

				if (in[i].kind != EPIC_FP_NODE)
					continue;
				node = in[i].node;
				if (ev->ops->kind(node) != EPIC_JSON_OBJECT)
				{
					/* a primitive's elements (id, extension) are in its "_name" */
					if (in[i].ext != NULL)
						add_member(ev, out, in[i].ext, in[i].type, n->name, n->namelen);
					continue;
				}

				/*
				 * A leading type name ("Patient.name") selects the context
				 * resource itself when its resourceType matches.
				 */
				if (n->focus == NULL && isupper((unsigned char) n->name[0]))
				{
					const void *rt = ev->ops->member(node, "resourceType");
					char		buf[64];
					size_t		len;
					const char *s = rt ? ev->ops->scalar(rt, buf, sizeof(buf), &len) : NULL;

					if (s != NULL && len == n->namelen && memcmp(s, n->name, len) == 0)
					{
						push_item(ev, out, &in[i]);
						continue;
					}
				}
				add_member(ev, out, node, in[i].type, n->name, n->namelen);
			}
			break;
		case FP_FUNC:
			eval_function(ev, n, in, nin, ctx, nctx, out);
			break;
		case FP_STRING:
			{
				EpicFpItem	it;

				memset(&it, 0, sizeof(it));
				it.kind = EPIC_FP_STRING;
				it.str = n->name;
				it.len = n->namelen;
				/* a literal is of a System type (@2020 is no FHIR date) */
				it.type = n->littype == NULL ? NULL :
					strcmp(n->littype, "date") == 0 ? "System.Date" :
					strcmp(n->littype, "time") == 0 ? "System.Time" : "System.DateTime";
				push_item(ev, out, &it);
				break;
			}
		case FP_NUMBER:
			{
				EpicFpItem	it;

				memset(&it, 0, sizeof(it));
				it.kind = EPIC_FP_NUMBER;
				it.str = n->name;
				it.len = n->namelen;
				push_item(ev, out, &it);
				break;
			}
		case FP_BOOL:
			push_bool(ev, out, n->boolval);
			break;
		case FP_CONST:
			{
				int			i = fp_env_index(ev->env, n->name);

				if (i >= 0)
				{
					const char *v = ev->env->values[i];
					EpicFpItemKind k = ev->env->kinds ? ev->env->kinds[i] : EPIC_FP_STRING;

					if (v == NULL)
						break;
					if (k == EPIC_FP_BOOL)
						push_bool(ev, out, strcmp(v, "true") == 0);
					else if (k == EPIC_FP_NUMBER)
					{
						EpicFpItem	it;

						memset(&it, 0, sizeof(it));
						it.kind = EPIC_FP_NUMBER;
						it.str = v;
						it.len = strlen(v);
						push_item(ev, out, &it);
					}
					else
					{
						EpicFpItem	it;

						memset(&it, 0, sizeof(it));
						it.kind = EPIC_FP_STRING;
						it.str = v;
						it.len = strlen(v);
						it.type = ev->env->types ? ev->env->types[i] : NULL;
						push_item(ev, out, &it);
					}
				}
				else if (fp_resource_constant(n->name))
				{
					if (ev->root != NULL)
						push_node(ev, out, ev->root);
				}
				else if (strcmp(n->name, "rowIndex") == 0)
					push_number(ev, out, (double) ev->row_index, true);
				break;
			}
		case FP_THIS:
			for (int i = 0; i < nin; i++)
				push_item(ev, out, &in[i]);
			break;
		case FP_INDEX:
			if (n->nargs > 0)
			{
				/* computed index: a single integer (or integer text, %const) */
				EpicFpResult ix = {0};
				char		ib[64],
							num[64];
				size_t		il;
				const char *t;

				eval_node(ev, n->args[0], ctx, nctx, &ix);
				t = singleton_text(ev, &ix, ib, &il);
				if (t != NULL && il > 0 && il < sizeof(num) &&
					(ix.items[0].kind != EPIC_FP_BOOL))
				{
					char	   *end;
					long		v;

					memcpy(num, t, il);
					num[il] = '\0';
					v = strtol(num, &end, 10);
					if (*end == '\0' && v >= 0 && v < nin)
						push_item(ev, out, &in[v]);
				}
				tmp_release(&ix);
			}
			else if (n->index >= 0 && n->index < nin)
				push_item(ev, out, &in[n->index]);
			break;
		case FP_NEG:
			{
				EpicFpResult r = {0};
				double		v;
				bool		integral;

				eval_node(ev, n->args[0], in, nin, &r);
				if (r.count == 1 && item_number(ev->ops, &r.items[0], &v, &integral))
				{
					char		tb[64];
					size_t		tl;
					const char *t = epic_fp_item_text(ev->ops, &r.items[0], tb, sizeof(tb), &tl);

					/* flip the sign textually: keeps the literal's precision */
					if (t != NULL && tl > 0 && t[0] == '-')
						push_derived(ev, out, EPIC_FP_NUMBER, t + 1, tl - 1, NULL);
					else if (t != NULL && tl > 0 && tl < sizeof(tb) - 1)
					{
						char		nb[80];

						nb[0] = '-';
						memcpy(nb + 1, t, tl);
						push_derived(ev, out, EPIC_FP_NUMBER, nb, tl + 1, NULL);
					}
				}
				tmp_release(&r);
				break;
			}
		case FP_LT:
		case FP_GT:
		case FP_LE:
		case FP_GE:
		case FP_ADD:
		case FP_SUB:
		case FP_MUL:
		case FP_DIV:
		case FP_CONCAT:
		case FP_UNION:
			{
				EpicFpResult l = {0},
							r = {0};

				eval_node(ev, n->args[0], in, nin, &l);
				eval_node(ev, n->args[1], in, nin, &r);
				if (!ev->failed)
					eval_binary(ev, n->kind, &l, &r, out);
				tmp_release(&l);
				tmp_release(&r);
				break;
			}
		case FP_EQ:
		case FP_NE:
			{
				EpicFpResult l = {0},
							r = {0};

				eval_node(ev, n->args[0], in, nin, &l);
				eval_node(ev, n->args[1], in, nin, &r);
				/* a primitive without a value equals nothing (as fhirpath.js has it) */
				if (!ev->failed && l.count > 0 && r.count > 0)
				{
					/* 1 equal, 0 not, -1 unknown (empty) */
					int			eq = (l.count == r.count);

					for (int i = 0; eq != 0 && i < l.count; i++)
					{
						int			e = items_equal3(ev->ops, &l.items[i], &r.items[i]);

						if (e <= 0)
							eq = e;
					}
					if (eq >= 0)
						push_bool(ev, out, n->kind == FP_EQ ? eq == 1 : eq == 0);
				}
				tmp_release(&l);
				tmp_release(&r);
				break;
			}
		case FP_AND:
		case FP_OR:
			{
				EpicFpResult l = {0},
							r = {0};
				int			a,
							b;

				eval_node(ev, n->args[0], in, nin, &l);
				eval_node(ev, n->args[1], in, nin, &r);
				a = singleton_bool(ev->ops, &l);
				b = singleton_bool(ev->ops, &r);
				if (n->kind == FP_AND)
				{
					if (a == 0 || b == 0)
						push_bool(ev, out, false);
					else if (a == 1 && b == 1)
						push_bool(ev, out, true);
				}
				else
				{
					if (a == 1 || b == 1)
						push_bool(ev, out, true);
					else if (a == 0 && b == 0)
						push_bool(ev, out, false);
				}
				tmp_release(&l);
				tmp_release(&r);
				break;
			}
	}
	tmp_release(&focus);
	ev->depth--;
}

int
epic_fp_eval(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
			 const EpicFpEnv *env, EpicFpResult *out, char *errbuf, size_t errlen)
{
	return epic_fp_eval_in(expr, ops, root, root, env, out, errbuf, errlen);
}

int
epic_fp_eval_in(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
				const void *focus, const EpicFpEnv *env, EpicFpResult *out,
				char *errbuf, size_t errlen)
{
	return epic_fp_eval_row(expr, ops, root, focus, env, 0, out, errbuf, errlen);
}

int
epic_fp_eval_row(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
				 const void *focus, const EpicFpEnv *env, long row_index,
				 EpicFpResult *out, char *errbuf, size_t errlen)
{
	return epic_fp_eval_full(expr, ops, root, focus, NULL, env, row_index, EPIC_FHIR_ANY, out,
							 errbuf, errlen);
}

int
epic_fp_eval_full(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
				  const void *focus, const char *focus_type, const EpicFpEnv *env,
				  long row_index, int fhir_versions, EpicFpResult *out,
				  char *errbuf, size_t errlen)
{
	FpEval		ev;
	EpicFpItem	ctx;

	memset(&ev, 0, sizeof(ev));
	ev.versions = (fhir_versions & EPIC_FHIR_ANY) ? (fhir_versions & EPIC_FHIR_ANY) : EPIC_FHIR_ANY;
	ev.row_index = row_index;
	ev.ops = ops;
	ev.root = root;
	ev.env = env;
	ev.errbuf = errbuf;
	ev.errlen = errlen;
	ev.owner = out;
	out->count = 0;
	free_owned(out);

	memset(&ctx, 0, sizeof(ctx));
	ctx.kind = EPIC_FP_NODE;
	ctx.node = focus;
	ctx.type = focus ? resource_type(&ev, focus) : NULL;
	if (ctx.type == NULL)
		ctx.type = focus_type;
	eval_node(&ev, expr->root, &ctx, focus ? 1 : 0, out);
	if (ev.failed)
	{
		out->count = 0;
		free_owned(out);
		return -1;
	}
	/* primitives without a value (only an extension) are no result */
	drop_noval(out);
	return 0;
}

void
epic_fp_result_free(EpicFpResult *res)
{
	free_owned(res);
	free(res->items);
	res->items = NULL;
	res->count = res->capacity = 0;
}

static const char *
undefined_constant(const FpNode *n, const EpicFpEnv *env)
{
	const char *r = NULL;

	if (n == NULL)
		return NULL;
	if (n->kind == FP_CONST && fp_env_index(env, n->name) < 0 &&
		!fp_builtin_constant(n->name))
		return n->name;
	r = undefined_constant(n->focus, env);
	for (int i = 0; r == NULL && i < n->nargs; i++)
		r = undefined_constant(n->args[i], env);
	return r;
}

const char *
epic_fp_undefined_constant(const EpicFpExpr *expr, const EpicFpEnv *env)
{
	return undefined_constant(expr->root, env);
}

static bool
uses_constant(const FpNode *n, const char *name)
{
	if (n == NULL)
		return false;
	if (n->kind == FP_CONST && strcmp(n->name, name) == 0)
		return true;
	if (uses_constant(n->focus, name))
		return true;
	for (int i = 0; i < n->nargs; i++)
		if (uses_constant(n->args[i], name))
			return true;
	return false;
}

bool
epic_fp_uses_constant(const EpicFpExpr *expr, const char *name)
{
	return uses_constant(expr->root, name);
}

/* ---------------------------------------------------------------------
 * Static types
 *
 * The type an expression's items have whatever the resource, where the
 * expression alone decides it: literals, operators and functions, %constants,
 * ofType(X), choice elements named with their type (valueQuantity), and the
 * elements of FHIR types from the type table (Quantity.value is a decimal;
 * with a resource as the context, Patient.active a boolean).
 * ---------------------------------------------------------------------
 */

/* names of choice elements ([x]) in STU3 and R4 resources and datatypes */
static const char *const fp_choice_prefixes[] = {
	"value", "effective", "onset", "abatement", "deceased", "multipleBirth",
	"occurrence", "performed", "medication", "born", "asNeeded", "serviced",
	"answer", "defaultValue", "rate", "dose", "timing", "collected",
	"reported", "allowed",
};

static bool
fp_is_numeric_type(const char *t)
{
	return t != NULL && (strcmp(t, "integer") == 0 || strcmp(t, "decimal") == 0 ||
						 strcmp(t, "positiveInt") == 0 || strcmp(t, "unsignedInt") == 0 ||
						 strcmp(t, "integer64") == 0);
}

static bool
fp_is_string_type(const char *t)
{
	static const char *const s[] = {
		"string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown",
	};

	for (size_t i = 0; t != NULL && i < sizeof(s) / sizeof(s[0]); i++)
		if (strcmp(t, s[i]) == 0)
			return true;
	return false;
}

static const char *const fp_primitive_types[] = {
	"boolean", "integer", "string", "decimal", "uri", "url", "canonical",
	"base64Binary", "instant", "date", "dateTime", "time", "code", "oid", "id",
	"markdown", "unsignedInt", "positiveInt", "uuid", "integer64",
};

/*
 * A type name as written (ofType(String), System.Integer, a choice suffix
 * "DateTime") -> the FHIR type name from the tables above, or NULL.
 */
static const char *
fp_canonical_type(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(fp_primitive_types) / sizeof(fp_primitive_types[0]); i++)
		if (type_name_eq(name, len, fp_primitive_types[i]))
			return fp_primitive_types[i];
	for (size_t i = 0; i < sizeof(fp_choice_types) / sizeof(fp_choice_types[0]); i++)
		if (strlen(fp_choice_types[i]) == len && memcmp(fp_choice_types[i], name, len) == 0)
			return fp_choice_types[i];
	return NULL;
}

/* The FHIR name of a System type (String -> string), for SQL typing */
static const char *
fp_system_to_fhir(const char *sys)
{
	static const char *const names[][2] = {
		{"String", "string"}, {"Boolean", "boolean"}, {"Integer", "integer"},
		{"Decimal", "decimal"}, {"Date", "date"}, {"DateTime", "dateTime"}, {"Time", "time"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i][0], sys) == 0)
			return names[i][1];
	return NULL;
}

/*
 * The FHIR versions static typing reads the element table in: both (R4's
 * answer, else STU3's), except while epic_fp_check_members tries each.
 */
static int	fp_static_versions = EPIC_FHIR_ANY;

/*
 * The type of element name of a value of type t (a type name, a
 * BackboneElement's path, or NULL when unknown), or NULL: from the FHIR type
 * table (fhir_types.h; STU3's or R4's), else a choice element named with
 * its type (valueQuantity, onsetDateTime).
 */
static const char *
fp_member_type(const char *t, const char *name)
{
	size_t		nl = strlen(name);
	const char *r = epic_fhir_element_type(t, name, nl, fp_static_versions);

	if (r != NULL)
		return strncmp(r, "System.", 7) == 0 ? fp_system_to_fhir(r + 7) : r;
	for (size_t i = 0; i < sizeof(fp_choice_prefixes) / sizeof(fp_choice_prefixes[0]); i++)
	{
		size_t		pl = strlen(fp_choice_prefixes[i]);

		if (nl > pl && memcmp(name, fp_choice_prefixes[i], pl) == 0 &&
			isupper((unsigned char) name[pl]))
			return fp_canonical_type(name + pl, nl - pl);
	}
	return NULL;
}

static const char *
fp_same_type(const char *a, const char *b)
{
	return (a != NULL && b != NULL && strcmp(a, b) == 0) ? a : NULL;
}

/*
 * The type of arithmetic on a and b: decimal, or NULL; integer64 for
 * integers (the sum or product of two 32-bit integers can pass 32 bits).
 */
static const char *
fp_numeric_result(const char *a, const char *b, bool division)
{
	if (!fp_is_numeric_type(a) || !fp_is_numeric_type(b))
		return NULL;
	if (division || strcmp(a, "decimal") == 0 || strcmp(b, "decimal") == 0)
		return "decimal";
	return "integer64";
}

static const char *
static_type(const FpNode *n, const char *ctx, const EpicFpEnv *env)
{
	const char *ft;

	if (n == NULL)
		return ctx;
	switch (n->kind)
	{
		case FP_STRING:
			return n->littype ? n->littype : "string";
		case FP_NUMBER:
			return is_integral_text(n->name, n->namelen) ? "integer" : "decimal";
		case FP_BOOL:
			return "boolean";
		case FP_CONST:
			{
				int			i = fp_env_index(env, n->name);

				if (i >= 0)
				{
					EpicFpItemKind k = env->kinds ? env->kinds[i] : EPIC_FP_STRING;
					const char *v = env->values[i];

					if (v == NULL)
						return NULL;
					if (k == EPIC_FP_BOOL)
						return "boolean";
					if (k == EPIC_FP_NUMBER)
						return is_integral_text(v, strlen(v)) ? "integer" : "decimal";
					if (env->types && env->types[i])
						return env->types[i];
					return "string";
				}
				return strcmp(n->name, "rowIndex") == 0 ? "integer" : NULL;
			}
		case FP_THIS:
			return ctx;
		case FP_MEMBER:
			ft = n->focus ? static_type(n->focus, ctx, env) : ctx;
			return fp_member_type(ft, n->name);
		case FP_INDEX:
			return static_type(n->focus, ctx, env);
		case FP_EQ:
		case FP_NE:
		case FP_AND:
		case FP_OR:
		case FP_LT:
		case FP_GT:
		case FP_LE:
		case FP_GE:
			return "boolean";
		case FP_ADD:
			{
				const char *a = static_type(n->args[0], ctx, env);
				const char *b = static_type(n->args[1], ctx, env);

				if (fp_is_string_type(a) && fp_is_string_type(b))
					return "string";
				return fp_numeric_result(a, b, false);
			}
		case FP_SUB:
		case FP_MUL:
		case FP_DIV:
			return fp_numeric_result(static_type(n->args[0], ctx, env),
									 static_type(n->args[1], ctx, env),
									 n->kind == FP_DIV);
		case FP_CONCAT:
			return "string";
		case FP_UNION:
			return fp_same_type(static_type(n->args[0], ctx, env),
								static_type(n->args[1], ctx, env));
		case FP_NEG:
			ft = static_type(n->args[0], ctx, env);
			return fp_is_numeric_type(ft) ? ft : NULL;
		case FP_FUNC:
			break;
	}

	/* functions */
	ft = n->focus ? static_type(n->focus, ctx, env) : ctx;
	switch (n->func)
	{
		case FN_WHERE:
		case FN_FIRST:
		case FN_LAST:
		case FN_DISTINCT:
			return ft;
		case FN_EXISTS:
		case FN_EMPTY:
		case FN_NOT:
			return "boolean";
		case FN_COUNT:
			return "integer";
		case FN_JOIN:
		case FN_GET_RESOURCE_KEY:
		case FN_GET_REFERENCE_KEY:
			return "string";
		case FN_EXTENSION:
			return "Extension";
		case FN_OFTYPE:
		case FN_AS:
			return (n->nargs == 1 && n->args[0]->kind == FP_STRING)
				? fp_canonical_type(n->args[0]->name, n->args[0]->namelen) : NULL;
		case FN_IS:
			return "boolean";
		case FN_LOW_BOUNDARY:
		case FN_HIGH_BOUNDARY:
			return (ft != NULL && strcmp(ft, "decimal") == 0) ? ft : NULL;
		case FN_IIF:
			if (n->nargs < 3)
				return static_type(n->args[1], ft, env);
			return fp_same_type(static_type(n->args[1], ft, env),
								static_type(n->args[2], ft, env));
		case FN_SELECT:
			return static_type(n->args[0], ft, env);
		case FN_COMBINE:
			return fp_same_type(ft, static_type(n->args[0], ctx, env));
	}
	return NULL;
}

const char *
epic_fp_static_type(const EpicFpExpr *expr, const EpicFpEnv *env)
{
	return static_type(expr->root, NULL, env);
}

const char *
epic_fp_static_type_versions(const EpicFpExpr *expr, const EpicFpEnv *env,
							 const char *context_type, int fhir_versions)
{
	const char *t;

	fp_static_versions = (fhir_versions & EPIC_FHIR_ANY) ? (fhir_versions & EPIC_FHIR_ANY) :
		EPIC_FHIR_ANY;
	t = static_type(expr->root, context_type, env);
	fp_static_versions = EPIC_FHIR_ANY;
	return t;
}

/* ---------------------------------------------------------------------
 * Member names checked against the FHIR type table
 * ---------------------------------------------------------------------
 */

/*
 * May a value of FHIR type t have a member called name?  Unknown types
 * (NULL, a type the table does not define) accept every name: only what the
 * table rules out is refused.
 */
static bool
fp_member_known(const char *t, const char *name)
{
	size_t		nl = strlen(name);

	if (t == NULL || !epic_fhir_type_known(t, fp_static_versions))
		return true;
	if (strcmp(t, name) == 0)
		return true;			/* Patient.name from a Patient */
	if (fp_member_type(t, name) != NULL)
		return true;
	return epic_fhir_is_choice(t, name, nl, fp_static_versions);
}

/*
 * Walk n, evaluated on nodes of type ctx: false with errbuf set at the first
 * member its static context type cannot have.
 */
static bool
check_members(const FpNode *n, const char *ctx, const EpicFpEnv *env, int depth,
			  char *errbuf, size_t errlen)
{
	const char *ft;

	if (n == NULL || depth > 200)
		return true;
	if (n->focus != NULL && !check_members(n->focus, ctx, env, depth + 1, errbuf, errlen))
		return false;
	ft = n->focus != NULL ? static_type(n->focus, ctx, env) : ctx;
	if (n->kind == FP_MEMBER)
	{
		/*
		 * One view may serve STU3 and R4 ((requester.display |
		 * requester.agent.display) reads either shape): a name passes if it
		 * is an element of its context in either version's typing.
		 */
		bool		known = false;

		for (int v = EPIC_FHIR_STU3; v <= EPIC_FHIR_R4 && !known; v++)
		{
			const char *vt;

			fp_static_versions = v;
			vt = n->focus != NULL ? static_type(n->focus, ctx, env) : ctx;
			known = fp_member_known(vt, n->name);
		}
		fp_static_versions = EPIC_FHIR_ANY;
		if (!known)
		{
			snprintf(errbuf, errlen, "FHIR type %s has no element \"%s\"", ft, n->name);
			return false;
		}
		return true;
	}
	if (n->kind == FP_FUNC)
	{
		/* type names and URLs, not paths */
		if (n->func == FN_OFTYPE || n->func == FN_GET_REFERENCE_KEY || n->func == FN_EXTENSION ||
			n->func == FN_IS || n->func == FN_AS)
			return true;
		for (int i = 0; i < n->nargs; i++)
		{
			/* combine's argument is read from the invocation's context */
			const char *actx = n->func == FN_COMBINE ? ctx : ft;

			if (!check_members(n->args[i], actx, env, depth + 1, errbuf, errlen))
				return false;
		}
		return true;
	}
	for (int i = 0; i < n->nargs; i++)
		if (!check_members(n->args[i], ctx, env, depth + 1, errbuf, errlen))
			return false;
	return true;
}

bool
epic_fp_check_members(const EpicFpExpr *expr, const EpicFpEnv *env, const char *context_type,
					  char *errbuf, size_t errlen)
{
	return check_members(expr->root, context_type, env, 0, errbuf, errlen);
}
