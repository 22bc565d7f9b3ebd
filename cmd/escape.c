/* Text that came from the input (tar entry names, RepoTags, labels, platforms), made safe to
 * print: bytes that are not well-formed UTF-8, and every byte of a code point a terminal acts on,
 * are shown as \xNN, so a hostile name can neither split a one-line message or a table row nor
 * drive the terminal. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* The length of the well-formed UTF-8 sequence at p (1 to 4 bytes) and its code point, or 0:
 * overlong forms (C0 9B is ESC), surrogates and code points past U+10FFFF are not well formed.
 * p is NUL-terminated, and a NUL is never a continuation byte, so no read passes the end. */
static int utf8_seq(const unsigned char *p, unsigned *cp)
{
	int n = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : (p[0] & 0xf0) == 0xe0 ? 3
		: p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	int i;

	*cp = n == 1 ? p[0] : n == 2 ? p[0] & 0x1fu : n == 3 ? p[0] & 0x0fu : p[0] & 0x07u;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && (*cp < 0x800 || (*cp >= 0xd800 && *cp <= 0xdfff))) ||
	    (n == 4 && (*cp < 0x10000 || *cp > 0x10ffff)))
		return 0;
	return n;
}

/* Code points a terminal acts on, or that change how the line reads: C0 controls and DEL, C1
 * controls (U+009B is CSI, as the raw byte 0x9b is to a terminal that is not in UTF-8), the line
 * and paragraph separators, and the bidirectional overrides and isolates. */
static int shown_escaped(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

char *cmd_safe_text(const char *s, size_t *width)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out = malloc(strlen(s) * 4 + 1), *o = out;
	size_t w = 0;

	while (out && *p) {
		unsigned cp;
		int i, n = utf8_seq(p, &cp);

		if (n == 0 || shown_escaped(cp)) {
			for (i = 0; i < (n ? n : 1); i++, w += 4)
				o += sprintf(o, "\\x%02x", *p++);
			continue;
		}
		memcpy(o, p, (size_t)n);
		o += n;
		p += n;
		w++;
	}
	if (out)
		*o = '\0';
	if (width)
		*width = w;
	return out;
}

