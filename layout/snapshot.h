/* The snapshot: a tree's whole state as canonical text (docs/tree-format.md "Snapshot"). */
#ifndef RP_SNAPSHOT_H
#define RP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

#define SNAPSHOT_HEADER "regpress-snapshot 1"
#define SNAPSHOT_MAX (256u << 20)

/* SNAP_MISSING: a manifest an index names that the tree deliberately lacks (the input did not
 * carry it); kept so the index keeps its digest, and so verify knows the gap is intended. */
enum snap_kind { SNAP_BLOB, SNAP_MANIFEST, SNAP_MISSING, SNAP_TAG };

struct snap_rec {
	enum snap_kind kind;
	char *repo;
	char *tag;		      /* SNAP_TAG only */
	char hex[RP_HEX_LEN + 1];     /* the blob, the manifest, or the manifest a tag names */
	uint64_t size;		      /* not for SNAP_TAG */
	char *media_type;	      /* not for SNAP_TAG */
};

struct snapshot {
	struct snap_rec *v;
	size_t n;
	char id[RP_HEX_LEN + 1]; /* sha256 of the text */
};

/* Parse and validate (header, fields, names, digests, sorted and unique). name is for messages. */
int snapshot_parse(const char *text, size_t len, const char *name, struct snapshot *out,
		   struct rp_err *err);
/* Read a snapshot file, or the snapshot of the tree at path when path is a directory. */
int snapshot_load(const char *path, struct snapshot *out, char **text, struct rp_err *err);
void snapshot_free(struct snapshot *s);
/* The manifest record of repo with digest hex, or NULL (records must be sorted, as parsed). */
const struct snap_rec *snapshot_find_manifest(const struct snapshot *s, const char *repo,
					      const char *hex);

#endif
