/* A release: what the release team signs besides the snapshot (registry/release), so that an
 * enclave can tell a newer release from an older one and never go back (../shared/notes/trust.md:
 * a number that only grows, as TUF's metadata versions). The snapshot id stays a function of the
 * content alone; the release names it.
 *
 *   regpress-release 1
 *   release <N>                     1, 2, 3...: only grows
 *   snapshot sha256:<snapshot id>   what this release is
 *   follows sha256:<snapshot id>    the snapshot of the release it follows, or "follows none"
 *   date <YYYY-MM-DDTHH:MM:SSZ>     when it was signed (shown, never compared) */
#ifndef RP_RELEASE_H
#define RP_RELEASE_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

#define RELEASE_MAX 4096

struct release {
	uint64_t number;
	char snapshot[RP_HEX_LEN + 1];
	char follows[RP_HEX_LEN + 1]; /* "" for none */
	char date[32];
};

/* Parse and check the canonical form; name for messages. */
int release_parse(const char *text, size_t len, const char *name, struct release *r,
		  struct rp_err *err);
/* The text of r (malloc'd); NULL if out of memory. */
char *release_text(const struct release *r, size_t *len);

#endif
