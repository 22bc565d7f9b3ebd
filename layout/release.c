#include "release.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *release_text(const struct release *r, size_t *len)
{
	char *s = NULL;
	int n = asprintf(&s, "regpress-release 1\nrelease %" PRIu64 "\nsnapshot sha256:%s\n"
			 "follows %s%s\ndate %s\n", r->number, r->snapshot,
			 r->follows[0] ? "sha256:" : "none", r->follows, r->date);

	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return s;
}

static int digest_field(const char *s, char out[RP_HEX_LEN + 1])
{
	const char *hex;

	if (!rp_digest_parse(s, &hex))
		return -1;
	memcpy(out, hex, RP_HEX_LEN + 1);
	return 0;
}

int release_parse(const char *text, size_t len, const char *name, struct release *r,
		  struct rp_err *err)
{
	char buf[RELEASE_MAX + 1], num[32], snap[80], follows[80], date[40], *again;
	size_t alen;
	int n = 0;

	memset(r, 0, sizeof(*r));
	if (len > RELEASE_MAX || memchr(text, '\0', len))
		goto bad;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (sscanf(buf, "regpress-release 1\nrelease %19[0-9]\nsnapshot %79s\nfollows %79s\n"
		   "date %39s\n%n", num, snap, follows, date, &n) != 4 || (size_t)n != len)
		goto bad;
	if ((num[0] == '0') || digest_field(snap, r->snapshot) < 0 ||
	    (strcmp(follows, "none") && digest_field(follows, r->follows) < 0) ||
	    strlen(date) >= sizeof(r->date))
		goto bad;
	r->number = strtoull(num, NULL, 10);
	snprintf(r->date, sizeof(r->date), "%s", date);
	/* Canonical: written back, the same bytes (so a signature covers exactly these fields). */
	again = release_text(r, &alen);
	if (!again)
		return rp_errf(err, "out of memory");
	n = alen == len && !memcmp(again, text, len);
	free(again);
	if (n && r->number > 0)
		return 0;
bad:
	return rp_errf(err, "'%s': not a regpress release (version 1)", name);
}
