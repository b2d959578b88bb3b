/*-------------------------------------------------------------------------
 *
 * json_page.c
 *		A fast JSON parser for search pages (see json_page.h).
 *
 *-------------------------------------------------------------------------
 */
#include "json_page.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct JNode
{
	uint8_t		kind;			/* EpicJsonKind */
	uint32_t	n;				/* children; or bytes of a string/number */
	const char *s;				/* string (unescaped) or number text */
	struct JNode *kids;			/* members (objects) or items (arrays) */
	const char *key;			/* member name, when a member */
	uint32_t	keylen;
	const char *raw;			/* the value's text */
	uint32_t	rawlen;
} JNode;

typedef struct Block
{
	struct Block *next;
	size_t		used;
	size_t		size;
	char		data[];
} Block;

struct EpicJdoc
{
	char	   *src;			/* the copied text, NUL-terminated */
	size_t		len;
	Block	   *blocks;
	JNode		root;
};

typedef struct Parser
{
	EpicJdoc   *doc;
	const char *p;
	const char *end;
	JNode	   *stack;			/* children of open containers */
	size_t		nstack;
	size_t		capstack;
	char	   *errbuf;
	size_t		errlen;
	int			failed;
} Parser;

static void fail(Parser *ps, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
fail(Parser *ps, const char *fmt,...)
{
	va_list		ap;
	char		msg[200];

	if (ps->failed)
		return;
	ps->failed = 1;
	if (ps->errbuf == NULL || ps->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(ps->errbuf, ps->errlen, "%s at byte %zu", msg, (size_t) (ps->p - ps->doc->src));
}

static void *
arena_alloc(Parser *ps, size_t size)
{
	Block	   *b = ps->doc->blocks;

	size = (size + 7) & ~(size_t) 7;
	if (b == NULL || b->used + size > b->size)
	{
		size_t		bsize = size > 60000 ? size : 60000;

		b = malloc(sizeof(Block) + bsize);
		if (b == NULL)
		{
			fail(ps, "out of memory");
			return NULL;
		}
		b->next = ps->doc->blocks;
		b->used = 0;
		b->size = bsize;
		ps->doc->blocks = b;
	}
	b->used += size;
	return b->data + b->used - size;
}

static void
skip_ws(Parser *ps)
{
	while (ps->p < ps->end &&
		   (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
		ps->p++;
}

/* Length of the UTF-8 sequence at p (lead byte >= 0x80), or 0 if invalid. */
static int
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	int			n;
	uint32_t	cp;

	if (c >= 0xC2 && c <= 0xDF)
		n = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (end - p < n)
		return 0;
	for (int i = 1; i < n; i++)
	{
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	/* no overlong forms, no surrogates, nothing past U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
		(cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

static int
hex4(const char *p, uint32_t *out)
{
	uint32_t	v = 0;

	for (int i = 0; i < 4; i++)
	{
		char		c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t) (c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t) (c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t) (c - 'A' + 10);
		else
			return 0;
	}
	*out = v;
	return 1;
}

/*
 * A string starting at the opening quote: *s and *n: its value (pointing into
 * the text when it has no escapes, else into the arena).
 */
static int
parse_string(Parser *ps, const char **s, uint32_t *n)
{
	const char *start = ++ps->p;	/* after the quote */
	const char *q = start;
	int			escaped = 0;
	char	   *out;
	size_t		o = 0;

	/* first pass: find the end, validate */
	for (;;)
	{
		unsigned char c;

		if (q >= ps->end)
		{
			ps->p = q;
			fail(ps, "unterminated string");
			return 0;
		}
		c = (unsigned char) *q;
		if (c == '"')
			break;
		if (c < 0x20)
		{
			ps->p = q;
			fail(ps, "control character in a string");
			return 0;
		}
		if (c == '\\')
		{
			escaped = 1;
			if (q + 1 >= ps->end)
			{
				ps->p = q;
				fail(ps, "unterminated string");
				return 0;
			}
			q += (q[1] == 'u') ? 6 : 2;
			continue;
		}
		if (c >= 0x80)
		{
			int			l = utf8_len((const unsigned char *) q, (const unsigned char *) ps->end);

			if (l == 0)
			{
				ps->p = q;
				fail(ps, "invalid UTF-8 in a string");
				return 0;
			}
			q += l;
			continue;
		}
		q++;
	}
	if (q - start > (long) UINT32_MAX)
	{
		fail(ps, "string too long");
		return 0;
	}
	ps->p = q + 1;
	if (!escaped)
	{
		*s = start;
		*n = (uint32_t) (q - start);
		return 1;
	}

	/* second pass: unescape (never longer than the escaped text) */
	out = arena_alloc(ps, (size_t) (q - start) + 1);
	if (out == NULL)
		return 0;
	for (const char *r = start; r < q;)
	{
		uint32_t	cp;

		if (*r != '\\')
		{
			out[o++] = *r++;
			continue;
		}
		switch (r[1])
		{
			case '"':
			case '\\':
			case '/':
				out[o++] = r[1];
				r += 2;
				continue;
			case 'b':
				out[o++] = '\b';
				r += 2;
				continue;
			case 'f':
				out[o++] = '\f';
				r += 2;
				continue;
			case 'n':
				out[o++] = '\n';
				r += 2;
				continue;
			case 'r':
				out[o++] = '\r';
				r += 2;
				continue;
			case 't':
				out[o++] = '\t';
				r += 2;
				continue;
			case 'u':
				if (q - r < 6 || !hex4(r + 2, &cp))
				{
					ps->p = r;
					fail(ps, "invalid \\u escape");
					return 0;
				}
				r += 6;
				if (cp >= 0xD800 && cp <= 0xDBFF)
				{
					uint32_t	lo;

					if (q - r < 6 || r[0] != '\\' || r[1] != 'u' || !hex4(r + 2, &lo) ||
						lo < 0xDC00 || lo > 0xDFFF)
					{
						ps->p = r;
						fail(ps, "unpaired surrogate in a \\u escape");
						return 0;
					}
					cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
					r += 6;
				}
				else if (cp >= 0xDC00 && cp <= 0xDFFF)
				{
					ps->p = r;
					fail(ps, "unpaired surrogate in a \\u escape");
					return 0;
				}
				if (cp == 0)
				{
					ps->p = r;
					fail(ps, "\\u0000 in a string");
					return 0;
				}
				if (cp < 0x80)
					out[o++] = (char) cp;
				else if (cp < 0x800)
				{
					out[o++] = (char) (0xC0 | (cp >> 6));
					out[o++] = (char) (0x80 | (cp & 0x3F));
				}
				else if (cp < 0x10000)
				{
					out[o++] = (char) (0xE0 | (cp >> 12));
					out[o++] = (char) (0x80 | ((cp >> 6) & 0x3F));
					out[o++] = (char) (0x80 | (cp & 0x3F));
				}
				else
				{
					out[o++] = (char) (0xF0 | (cp >> 18));
					out[o++] = (char) (0x80 | ((cp >> 12) & 0x3F));
					out[o++] = (char) (0x80 | ((cp >> 6) & 0x3F));
					out[o++] = (char) (0x80 | (cp & 0x3F));
				}
				continue;
			default:
				ps->p = r;
				fail(ps, "invalid escape in a string");
				return 0;
		}
	}
	out[o] = '\0';
	*s = out;
	*n = (uint32_t) o;
	return 1;
}

static int
digits(Parser *ps)
{
	const char *start = ps->p;

	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
		ps->p++;
	return ps->p > start;
}

static void parse_value(Parser *ps, JNode *out, int depth);

/* Push a child onto the stack of open containers' children. */
static JNode *
push_child(Parser *ps)
{
	if (ps->nstack == ps->capstack)
	{
		size_t		cap = ps->capstack ? ps->capstack * 2 : 256;
		JNode	   *s = realloc(ps->stack, sizeof(JNode) * cap);

		if (s == NULL)
		{
			fail(ps, "out of memory");
			return NULL;
		}
		ps->stack = s;
		ps->capstack = cap;
	}
	memset(&ps->stack[ps->nstack], 0, sizeof(JNode));
	return &ps->stack[ps->nstack++];
}

/* Move the children pushed since base into the arena: out's kids. */
static void
close_container(Parser *ps, JNode *out, size_t base)
{
	size_t		n = ps->nstack - base;

	out->n = (uint32_t) n;
	out->kids = NULL;
	if (n > 0)
	{
		out->kids = arena_alloc(ps, sizeof(JNode) * n);
		if (out->kids != NULL)
			memcpy(out->kids, &ps->stack[base], sizeof(JNode) * n);
	}
	ps->nstack = base;
}

static void
parse_container(Parser *ps, JNode *out, int depth, int object)
{
	size_t		base = ps->nstack;
	char		close = object ? '}' : ']';

	if (depth >= EPIC_JDOC_MAX_DEPTH)
	{
		fail(ps, "JSON nested more than %d deep", EPIC_JDOC_MAX_DEPTH);
		return;
	}
	out->kind = object ? EPIC_JSON_OBJECT : EPIC_JSON_ARRAY;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == close)
	{
		ps->p++;
		close_container(ps, out, base);
		return;
	}
	for (;;)
	{
		JNode		child;

		memset(&child, 0, sizeof(child));
		skip_ws(ps);
		if (object)
		{
			if (ps->p >= ps->end || *ps->p != '"')
			{
				fail(ps, "expected a member name");
				return;
			}
			if (!parse_string(ps, &child.key, &child.keylen))
				return;
			skip_ws(ps);
			if (ps->p >= ps->end || *ps->p != ':')
			{
				fail(ps, "expected ':'");
				return;
			}
			ps->p++;
			skip_ws(ps);
		}
		parse_value(ps, &child, depth + 1);
		if (ps->failed)
			return;
		{
			JNode	   *slot = push_child(ps);

			if (slot == NULL)
				return;
			*slot = child;
		}
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',')
		{
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == close)
		{
			ps->p++;
			close_container(ps, out, base);
			return;
		}
		fail(ps, "expected ',' or '%c'", close);
		return;
	}
}

static int
literal(Parser *ps, const char *word, size_t n)
{
	if ((size_t) (ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
	{
		fail(ps, "invalid literal");
		return 0;
	}
	ps->p += n;
	return 1;
}

/* A value at ps->p (white space skipped); out's key is kept. */
static void
parse_value(Parser *ps, JNode *out, int depth)
{
	const char *start = ps->p;

	if (ps->p >= ps->end)
	{
		fail(ps, "unexpected end of JSON");
		return;
	}
	switch (*ps->p)
	{
		case '{':
			parse_container(ps, out, depth, 1);
			break;
		case '[':
			parse_container(ps, out, depth, 0);
			break;
		case '"':
			out->kind = EPIC_JSON_STRING;
			(void) parse_string(ps, &out->s, &out->n);
			break;
		case 't':
			out->kind = EPIC_JSON_TRUE;
			(void) literal(ps, "true", 4);
			break;
		case 'f':
			out->kind = EPIC_JSON_FALSE;
			(void) literal(ps, "false", 5);
			break;
		case 'n':
			out->kind = EPIC_JSON_NULL;
			(void) literal(ps, "null", 4);
			break;
		default:
			/* -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
			out->kind = EPIC_JSON_NUMBER;
			if (*ps->p == '-')
				ps->p++;
			if (ps->p < ps->end && *ps->p == '0')
				ps->p++;
			else if (ps->p >= ps->end || *ps->p < '1' || *ps->p > '9' || !digits(ps))
			{
				fail(ps, "invalid value");
				return;
			}
			if (ps->p < ps->end && *ps->p == '.')
			{
				ps->p++;
				if (!digits(ps))
				{
					fail(ps, "invalid number");
					return;
				}
			}
			if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E'))
			{
				ps->p++;
				if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
					ps->p++;
				if (!digits(ps))
				{
					fail(ps, "invalid number");
					return;
				}
			}
			out->s = start;
			out->n = (uint32_t) (ps->p - start);
			break;
	}
	out->raw = start;
	out->rawlen = (uint32_t) (ps->p - start);
}

EpicJdoc *
epic_jdoc_parse(const char *text, size_t len, char *errbuf, size_t errlen)
{
	EpicJdoc   *doc;
	Parser		ps;

	if (len > UINT32_MAX)
	{
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "JSON text larger than 4 GB");
		return NULL;
	}
	doc = calloc(1, sizeof(EpicJdoc));
	if (doc == NULL || (doc->src = malloc(len + 1)) == NULL)
	{
		free(doc);
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	memcpy(doc->src, text, len);
	doc->src[len] = '\0';
	doc->len = len;

	memset(&ps, 0, sizeof(ps));
	ps.doc = doc;
	ps.p = doc->src;
	ps.end = doc->src + len;
	ps.errbuf = errbuf;
	ps.errlen = errlen;
	skip_ws(&ps);
	parse_value(&ps, &doc->root, 0);
	if (!ps.failed)
	{
		skip_ws(&ps);
		if (ps.p != ps.end)
			fail(&ps, "text after the JSON value");
	}
	free(ps.stack);
	if (ps.failed)
	{
		epic_jdoc_free(doc);
		return NULL;
	}
	return doc;
}

const void *
epic_jdoc_root(const EpicJdoc *doc)
{
	return &doc->root;
}

void
epic_jdoc_free(EpicJdoc *doc)
{
	if (doc == NULL)
		return;
	while (doc->blocks)
	{
		Block	   *next = doc->blocks->next;

		free(doc->blocks);
		doc->blocks = next;
	}
	free(doc->src);
	free(doc);
}

void
epic_jdoc_raw(const void *node, const char **text, size_t *len)
{
	const JNode *n = node;

	*text = n->raw;
	*len = n->rawlen;
}

/* ---------------------------------------------------------------------
 * EpicJsonOps
 * ---------------------------------------------------------------------
 */
static EpicJsonKind
jd_kind(const void *node)
{
	return node ? (EpicJsonKind) ((const JNode *) node)->kind : EPIC_JSON_NULL;
}

static const void *
jd_member(const void *object, const char *name)
{
	const JNode *o = object;
	size_t		len;

	if (o == NULL || o->kind != EPIC_JSON_OBJECT)
		return NULL;
	len = strlen(name);
	/* the last of duplicate names wins */
	for (uint32_t i = o->n; i-- > 0;)
	{
		const JNode *m = &o->kids[i];

		if (m->keylen == len && memcmp(m->key, name, len) == 0)
			return m;
	}
	return NULL;
}

static size_t
jd_size(const void *array)
{
	const JNode *a = array;

	return (a != NULL && a->kind == EPIC_JSON_ARRAY) ? a->n : 0;
}

static const void *
jd_item(const void *array, size_t index)
{
	const JNode *a = array;

	if (a == NULL || a->kind != EPIC_JSON_ARRAY || index >= a->n)
		return NULL;
	return &a->kids[index];
}

static const char *
jd_scalar(const void *node, char *buf, size_t buflen, size_t *len)
{
	const JNode *n = node;

	(void) buf;					/* every text is in the document already */
	(void) buflen;
	if (n == NULL)
		return NULL;
	switch (n->kind)
	{
		case EPIC_JSON_STRING:
		case EPIC_JSON_NUMBER:
			*len = n->n;
			return n->s;
		case EPIC_JSON_TRUE:
			*len = 4;
			return "true";
		case EPIC_JSON_FALSE:
			*len = 5;
			return "false";
		default:
			return NULL;
	}
}

static bool
jd_member_at(const void *object, size_t i, const char **name, size_t *namelen,
			 const void **value)
{
	const JNode *o = object;

	if (o == NULL || o->kind != EPIC_JSON_OBJECT || i >= o->n)
		return false;
	*name = o->kids[i].key;
	*namelen = o->kids[i].keylen;
	*value = &o->kids[i];
	return true;
}

const EpicJsonOps epic_jdoc_ops = {
	jd_kind, jd_member, jd_size, jd_item, jd_scalar, jd_member_at
};
