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

#include <ctype.h>
#include <stdio.h>
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
	FP_INDEX,					/* focus[index] */
	FP_EQ,
	FP_NE,
	FP_AND,
	FP_OR
} FpKind;

typedef enum FpFunc
{
	FN_WHERE,
	FN_FIRST,
	FN_EXISTS,
	FN_EMPTY,
	FN_NOT,
	FN_GET_RESOURCE_KEY,
	FN_GET_REFERENCE_KEY
} FpFunc;

typedef struct FpNode FpNode;
struct FpNode
{
	FpKind		kind;
	FpNode	   *focus;			/* input producer; NULL = the context */
	char	   *name;			/* member / constant / function / literal */
	size_t		namelen;
	FpFunc		func;
	FpNode	   *args[2];		/* function args or binary operands */
	int			nargs;
	long		index;
	bool		boolval;
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
#define FP_MAX_CHAIN 150		/* steps in one a.b.c[0].d... chain */
#define FP_MAX_TREE_HEIGHT 200		/* bounds free_node's and eval_node's recursion */

static FpNode *parse_or(FpParser *ps);

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
		if (s)
		{
			memcpy(s, start + 1, *len);
			s[*len] = '\0';
		}
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
}			fp_functions[] =
{
	{"where", FN_WHERE, 1, 1},
	{"first", FN_FIRST, 0, 0},
	{"exists", FN_EXISTS, 0, 0},
	{"empty", FN_EMPTY, 0, 0},
	{"not", FN_NOT, 0, 0},
	{"getResourceKey", FN_GET_RESOURCE_KEY, 0, 0},
	{"getReferenceKey", FN_GET_REFERENCE_KEY, 0, 1},
};

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
		n = new_node(ps, FP_MEMBER);
		if (n == NULL)
		{
			free(name);
			free_node(focus);
			return NULL;
		}
		n->name = name;
		n->namelen = len;
		n->focus = focus;
		if (!set_height(ps, n))
		{
			free_node(n);
			return NULL;
		}
		return n;
	}

	/* function call */
	n = new_node(ps, FP_FUNC);
	if (n == NULL)
	{
		free(name);
		free_node(focus);
		return NULL;
	}
	n->name = name;
	n->namelen = len;
	n->focus = focus;
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

				if (n->nargs >= 2)
				{
					fp_fail(ps, ps->p, "too many arguments%s", NULL);
					free_node(n);
					return NULL;
				}
				/* getReferenceKey takes a bare type name */
				if (n->func == FN_GET_REFERENCE_KEY)
				{
					size_t		tl;
					char	   *tn;

					skip_ws(ps);
					tn = read_ident(ps, &tl);
					if (tn == NULL)
					{
						free_node(n);
						return NULL;
					}
					arg = new_node(ps, FP_STRING);
					if (arg == NULL)
					{
						free(tn);
						free_node(n);
						return NULL;
					}
					arg->name = tn;
					arg->namelen = tl;
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

		if (c == '\0')
		{
			fp_fail(ps, start, "unterminated string literal%s", NULL);
			free(s);
			return NULL;
		}
		ps->p++;
		if (c == '\'')
			break;
		if (c == '\\')
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
		if (len + 2 > cap)
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
		s[len++] = c;
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

static FpNode *
parse_primary(FpParser *ps)
{
	skip_ws(ps);
	if (*ps->p == '\'')
		return parse_string_literal(ps);
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
		FpNode	   *n;
		size_t		len;
		char	   *name;

		ps->p++;
		name = read_ident(ps, &len);
		if (name == NULL)
			return NULL;
		n = new_node(ps, FP_CONST);
		if (n == NULL)
		{
			free(name);
			return NULL;
		}
		n->name = name;
		n->namelen = len;
		return n;
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
	FpNode	   *n = parse_primary(ps);
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
			char	   *end;
			long		v;

			ps->p++;
			skip_ws(ps);
			v = strtol(ps->p, &end, 10);
			if (end == ps->p || v < 0)
			{
				fp_fail(ps, ps->p, "syntax error: expected a non-negative integer index%s", NULL);
				free_node(n);
				return NULL;
			}
			ps->p = end;
			skip_ws(ps);
			if (*ps->p != ']')
			{
				fp_fail(ps, ps->p, "syntax error: expected \"]\"%s", NULL);
				free_node(n);
				return NULL;
			}
			ps->p++;
			ix = new_node(ps, FP_INDEX);
			if (ix == NULL)
			{
				free_node(n);
				return NULL;
			}
			ix->focus = n;
			ix->index = v;
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

static FpNode *
parse_cmp(FpParser *ps)
{
	FpNode	   *l = parse_postfix(ps);

	if (l == NULL)
		return NULL;
	skip_ws(ps);
	if (*ps->p == '=')
	{
		ps->p++;
		return make_binary(ps, FP_EQ, l, parse_postfix(ps));
	}
	if (ps->p[0] == '!' && ps->p[1] == '=')
	{
		ps->p += 2;
		return make_binary(ps, FP_NE, l, parse_postfix(ps));
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
} FpEval;

#define FP_MAX_DEPTH 200

static bool
push_item(FpEval *ev, EpicFpResult *out, const EpicFpItem *item)
{
	if (out->count == out->capacity)
	{
		int			ncap = out->capacity ? out->capacity * 2 : 8;
		EpicFpItem *n = realloc(out->items, sizeof(EpicFpItem) * (size_t) ncap);

		if (n == NULL)
		{
			if (!ev->failed)
				snprintf(ev->errbuf, ev->errlen, "out of memory");
			ev->failed = true;
			return false;
		}
		out->items = n;
		out->capacity = ncap;
	}
	out->items[out->count++] = *item;
	return true;
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

static bool
items_equal(const EpicJsonOps *ops, const EpicFpItem *a, const EpicFpItem *b)
{
	FpCat		ca = item_cat(ops, a),
				cb = item_cat(ops, b);
	char		ba[64],
				bb[64];
	size_t		la,
				lb;
	const char *ta,
			   *tb;

	if (ca != cb || ca == CAT_OTHER)
		return false;
	ta = epic_fp_item_text(ops, a, ba, sizeof(ba), &la);
	tb = epic_fp_item_text(ops, b, bb, sizeof(bb), &lb);
	if (ta == NULL || tb == NULL)
		return false;
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

static void
add_member(FpEval *ev, EpicFpResult *out, const void *obj, const char *name)
{
	const void *v = ev->ops->member(obj, name);

	if (v == NULL)
		return;
	switch (ev->ops->kind(v))
	{
		case EPIC_JSON_NULL:
			return;
		case EPIC_JSON_ARRAY:
			{
				size_t		n = ev->ops->size(v);

				for (size_t i = 0; i < n; i++)
				{
					const void *it = ev->ops->item(v, i);

					if (it != NULL && ev->ops->kind(it) != EPIC_JSON_NULL)
						push_node(ev, out, it);
				}
				return;
			}
		default:
			push_node(ev, out, v);
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

static void
eval_function(FpEval *ev, const FpNode *n, const EpicFpItem *in, int nin,
			  EpicFpResult *out)
{
	switch (n->func)
	{
		case FN_WHERE:
			for (int i = 0; i < nin && !ev->failed; i++)
			{
				EpicFpResult r = {0};

				eval_node(ev, n->args[0], &in[i], 1, &r);
				if (singleton_bool(ev->ops, &r) == 1)
					push_item(ev, out, &in[i]);
				epic_fp_result_free(&r);
			}
			break;
		case FN_FIRST:
			if (nin > 0)
				push_item(ev, out, &in[0]);
			break;
		case FN_EXISTS:
			push_bool(ev, out, nin > 0);
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

static void
eval_node(FpEval *ev, const FpNode *n, const EpicFpItem *in, int nin,
		  EpicFpResult *out)
{
	EpicFpResult focus = {0};

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
					continue;

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
						push_node(ev, out, node);
						continue;
					}
				}
				add_member(ev, out, node, n->name);
			}
			break;
		case FP_FUNC:
			eval_function(ev, n, in, nin, out);
			break;
		case FP_STRING:
			push_string(ev, out, n->name, n->namelen);
			break;
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
			if (ev->env != NULL)
				for (int i = 0; i < ev->env->count; i++)
					if (strcmp(ev->env->names[i], n->name) == 0)
					{
						if (ev->env->values[i] != NULL)
							push_string(ev, out, ev->env->values[i],
										strlen(ev->env->values[i]));
						break;
					}
			break;
		case FP_THIS:
			for (int i = 0; i < nin; i++)
				push_item(ev, out, &in[i]);
			break;
		case FP_INDEX:
			if (n->index < nin)
				push_item(ev, out, &in[n->index]);
			break;
		case FP_EQ:
		case FP_NE:
			{
				EpicFpResult l = {0},
							r = {0};

				eval_node(ev, n->args[0], in, nin, &l);
				eval_node(ev, n->args[1], in, nin, &r);
				if (!ev->failed && l.count > 0 && r.count > 0)
				{
					bool		eq = (l.count == r.count);

					for (int i = 0; eq && i < l.count; i++)
						eq = items_equal(ev->ops, &l.items[i], &r.items[i]);
					push_bool(ev, out, n->kind == FP_EQ ? eq : !eq);
				}
				epic_fp_result_free(&l);
				epic_fp_result_free(&r);
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
				epic_fp_result_free(&l);
				epic_fp_result_free(&r);
				break;
			}
	}
	epic_fp_result_free(&focus);
	ev->depth--;
}

int
epic_fp_eval(const EpicFpExpr *expr, const EpicJsonOps *ops, const void *root,
			 const EpicFpEnv *env, EpicFpResult *out, char *errbuf, size_t errlen)
{
	FpEval		ev;
	EpicFpItem	ctx;

	memset(&ev, 0, sizeof(ev));
	ev.ops = ops;
	ev.root = root;
	ev.env = env;
	ev.errbuf = errbuf;
	ev.errlen = errlen;
	out->count = 0;

	memset(&ctx, 0, sizeof(ctx));
	ctx.kind = EPIC_FP_NODE;
	ctx.node = root;
	eval_node(&ev, expr->root, &ctx, root ? 1 : 0, out);
	if (ev.failed)
	{
		out->count = 0;
		return -1;
	}
	return 0;
}

void
epic_fp_result_free(EpicFpResult *res)
{
	free(res->items);
	res->items = NULL;
	res->count = res->capacity = 0;
}
