/* The tree writer: the only code that writes into a regpress tree (docs/tree-format.md).
 *
 * A writer opens the tree (taking its lock), streams blobs into a staging area, records manifests,
 * blobs and tags per repository, and commits: the new state is published with one rename, or, if
 * anything fails before that, layout_close() discards everything and the tree is as it was. */
#ifndef RP_TREE_H
#define RP_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

struct layout_tree;
struct layout_blob;

/* Open (creating if need be) the tree at path for writing; blocks while another writer holds it. */
int layout_open(const char *path, struct layout_tree **out, struct rp_err *err);
/* Abort anything not committed, restore the tree as it was, release the lock. NULL-safe. */
void layout_close(struct layout_tree *t);
const char *layout_path(const struct layout_tree *t);
/* A directory inside the tree's staging area for scratch files (same file system as the tree). */
const char *layout_scratch_dir(const struct layout_tree *t);

/* Stream a blob in; its digest is computed as it is written. */
int layout_blob_new(struct layout_tree *t, struct layout_blob **out, struct rp_err *err);
int layout_blob_write(struct layout_blob *b, const void *buf, size_t len, struct rp_err *err);
/* Finish and stage the blob (a blob the tree already has is dropped); frees b. */
int layout_blob_finish(struct layout_blob *b, char hex[RP_HEX_LEN + 1], uint64_t *size,
		       struct rp_err *err);
void layout_blob_free(struct layout_blob *b);
/* For a caller that already hashes exactly the bytes it writes (an uncompressed layer, whose
 * diff_id is its digest): b hashes nothing, and layout_blob_finish takes hex from the caller. */
void layout_blob_hashed_by_caller(struct layout_blob *b);
/* Stage a small blob held in memory. */
int layout_put_blob(struct layout_tree *t, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		    struct rp_err *err);
/* Stage a file the caller has checked to hash to hex, by renaming it (so it must be on the tree's
 * file system, e.g. under layout_scratch_dir()); its mode and time are fixed. A blob the tree
 * already has is dropped (the file is removed). */
int layout_blob_adopt(struct layout_tree *t, const char *path, const char *hex,
		      struct rp_err *err);
/* 1 if the tree has the blob (committed or staged). */
int layout_has_blob(const struct layout_tree *t, const char *hex);
/* Path of a committed or staged blob, malloc'd; NULL if absent. */
char *layout_blob_path(const struct layout_tree *t, const char *hex);

/* Record that repo serves manifest hex / blob hex, and that repo:tag points at manifest hex. */
int layout_add_manifest(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
			const char *media_type, struct rp_err *err);
int layout_add_blob(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		    const char *media_type, struct rp_err *err);
/* Record that an index in repo names manifest hex, which the tree deliberately does not hold. */
int layout_add_missing(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		       const char *media_type, struct rp_err *err);
int layout_set_tag(struct layout_tree *t, const char *repo, const char *tag, const char *hex,
		   struct rp_err *err);

/* Publish atomically. After success the tree holds the new state; layout_close() still required. */
int layout_commit(struct layout_tree *t, struct rp_err *err);
/* sha256 of the snapshot the last commit wrote (or the tree had at open), "" if none. */
const char *layout_snapshot_id(const struct layout_tree *t);

/* Remove repo:tag (tag set) or the manifest repo@sha256:hex (hex set) with its tags, and forget
 * what only it kept in the repository; commit to publish. */
int layout_untag(struct layout_tree *t, const char *repo, const char *tag, const char *hex,
		 struct rp_err *err);
/* Delete blob files that the tree's current state does not use (no commit needed). */
int layout_gc(struct layout_tree *t, uint64_t *files, uint64_t *bytes, struct rp_err *err);

/* The build cache (TREE/cache/NS/KEY, one short line): facts that save work on a later build, such
 * as which blob a layer compressed to. Not part of the snapshot, not served, safe to delete.
 * get: 0 and val set, -1 if absent; put: staged, written by layout_commit. */
int layout_cache_get(const struct layout_tree *t, const char *ns, const char *key, char *val,
		     size_t valsz);
int layout_cache_put(struct layout_tree *t, const char *ns, const char *key, const char *val,
		     struct rp_err *err);

/* Replace the whole state with a snapshot's (import): the blobs it names must be in the tree or
 * staged by commit time. */
int layout_set_state(struct layout_tree *t, const char *snapshot_text, struct rp_err *err);

/* Store a detached signature of the current snapshot as registry/snapshot.sig. */
int layout_put_signature(struct layout_tree *t, const char *sig, size_t len, struct rp_err *err);

#endif
