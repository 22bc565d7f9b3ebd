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
	char *line;		      /* the record as the snapshot writes it, without the newline */
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
void snapshot_free(struct snapshot *s);
/* Fill r from its parts (r->line made from them, malloc'd like every string of r); checks the
 * names, the digest and the media type. kind SNAP_TAG takes tag and no size or media type. */
int snap_rec_make(struct snap_rec *r, enum snap_kind kind, const char *repo, const char *tag,
		  const char *hex, uint64_t size, const char *media_type, struct rp_err *err);
void snap_rec_clear(struct snap_rec *r);
/* Records in the snapshot's order (by their line, byte by byte). */
int snap_rec_cmp(const struct snap_rec *a, const struct snap_rec *b);

/* Two snapshots' records side by side (both in snapshot order): fn gets every record that is in
 * only one of them, old (with new NULL) or new (with old NULL). A retag is a removed and an added
 * tag line. fn returns 0 to go on, -1 to stop (returned). */
int snap_merge(const struct snapshot *old, const struct snapshot *new,
	       int (*fn)(void *ctx, const struct snap_rec *old, const struct snap_rec *new),
	       void *ctx);

/* What changed from one snapshot to another: tags added, removed and retagged (old and new
 * set), and blobs (layers, configs, manifests: each digest once, whatever its repositories)
 * added and removed, which is what a delta must carry. Pointers are into the two snapshots. */
struct snap_tag_change {
	const struct snap_rec *old, *new; /* NULL old: added; NULL new: removed */
};
struct snap_blob_change {
	const char *hex;
	uint64_t size;
};
struct snapshot_diff {
	struct snap_tag_change *tags_added, *tags_removed, *tags_changed;
	size_t ntags_added, ntags_removed, ntags_changed;
	struct snap_blob_change *blobs_added, *blobs_removed;
	size_t nblobs_added, nblobs_removed;
	uint64_t bytes_added, bytes_removed;
};
/* old may be empty (zeroed): then every blob of new is added. Lists come in snapshot order. */
int snapshot_diff(const struct snapshot *old, const struct snapshot *new, struct snapshot_diff *d,
		  struct rp_err *err);
void snapshot_diff_free(struct snapshot_diff *d);

#endif
