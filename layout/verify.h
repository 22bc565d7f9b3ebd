/* Checking a tree against its own snapshot: every derived file must be exactly what the snapshot
 * implies, every blob must hash to its name, every manifest must parse and find what it references,
 * nothing may be extra, and modes must be the fixed ones. Reads only: read-only media are fine. */
#ifndef RP_VERIFY_H
#define RP_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum verify_level { VERIFY_WARNING, VERIFY_PROBLEM };

struct verify_opts {
	int quick;	       /* sizes and structure only, no hashing of blobs */
	const char *pubkey;    /* if set: registry/snapshot.sig must verify, and release.sig when there
			* is a release; nothing may be extra */
	/* Each finding, naming the file (path includes the tree). */
	void (*report)(void *ctx, enum verify_level level, const char *path, const char *what);
	/* Bytes hashed so far and in all; called often, the caller rate-limits. May be NULL. */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *ctx;
};

struct verify_result {
	size_t problems, warnings;
	uint64_t blobs, bytes;
	char snapshot_id[65];
	int signed_ok;	  /* snapshot.sig was checked and is good */
	uint64_t release; /* the number in registry/release (0: none) */
	int release_ok;	  /* release.sig was checked and is good, and the release is of this snapshot */
};

/* -1 only when the tree cannot be checked at all (err says why); problems go to opts->report. */
int layout_verify(const char *tree, const struct verify_opts *opts, struct verify_result *res,
		  struct rp_err *err);

#endif
