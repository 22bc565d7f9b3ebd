/* The tree handle: the one way into a regpress tree (docs/tree-format.md), for readers and writers.
 *
 * A handle holds the tree's lock (shared for readers, exclusive for a writer), the tree's
 * directory opened once, and its snapshot as it was at open. Every file of the tree is reached
 * through it, relative to that directory, never through a symlink and never as anything but a
 * regular file or a directory (fsat.h): a tree with a symlink or a special file where a file is
 * expected is refused with one line naming it. Only code in layout/ knows the format's paths.
 *
 * A writer streams blobs into a staging area, records manifests, blobs and tags per repository,
 * and commits: the new state is published with one rename, or, if anything fails before that,
 * layout_close() discards everything and the tree is as it was. A commit writes only what
 * changed: the served view is double-buffered (FMT_SPARE, a copy of registry/ that the commit
 * brings to the new state and swaps in). */
#ifndef RP_TREE_H
#define RP_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "digest.h"
#include "err.h"
#include "snapshot.h"

struct layout_tree;
struct layout_blob;

/* The largest manifest or index a tree holds (and a build takes): containerd refuses larger. */
#define LAYOUT_MANIFEST_MAX (4u << 20)

enum layout_mode {
	LAYOUT_READ,  /* an existing tree, shared lock, nothing written (read-only media are fine) */
	LAYOUT_WRITE, /* created if missing, exclusive lock */
};

/* Called once when open has to wait for another writer's lock (for a "waiting" line). */
void layout_on_wait(void (*fn)(void *ctx, const char *tree), void *ctx);

int layout_open(const char *path, enum layout_mode mode, struct layout_tree **out,
		struct rp_err *err);
/* Abort anything not committed, restore the tree as it was, release the lock. NULL-safe. */
void layout_close(struct layout_tree *t);
const char *layout_path(const struct layout_tree *t);

/* ---- reading ---- */

/* A snapshot file, or the snapshot of the tree at path when it is a directory (read through a
 * handle); *text (when not NULL) gets the text, malloc'd. */
int layout_snapshot_load(const char *path, struct snapshot *out, char **text, struct rp_err *err);

/* The snapshot as of open (or the last commit): records, text and id ("" and empty if none). */
const struct snapshot *layout_snapshot(const struct layout_tree *t);
const char *layout_snapshot_text(const struct layout_tree *t, size_t *len);
const char *layout_snapshot_id(const struct layout_tree *t);
/* 1 if the tree has the blob as a regular file (committed, or staged by this writer). */
int layout_has_blob(const struct layout_tree *t, const char *hex);
/* Open a blob for reading: 0, 1 if absent, -1 (err) if it is not a regular file or unreadable. */
int layout_blob_open(const struct layout_tree *t, const char *hex, int *fd, uint64_t *size,
		     struct rp_err *err);
/* Read a whole blob of at most max bytes (NUL-terminated): 0, 1 if absent, -1 on error. */
int layout_blob_read(const struct layout_tree *t, const char *hex, size_t max, char **buf,
		     size_t *len, struct rp_err *err);
/* ---- signed releases ----
 * registry/snapshot.sig (a signify signature of registry/snapshot), registry/release (release.h)
 * and registry/release.sig (its signature). A commit that changes the snapshot drops both
 * signatures; the release file stays, naming the last signed release, which the next one
 * follows. */
enum layout_signed { LAYOUT_SNAPSHOT_SIG, LAYOUT_RELEASE, LAYOUT_RELEASE_SIG, LAYOUT_SIGNED_N };
struct layout_signed_files {
	const char *buf[LAYOUT_SIGNED_N]; /* NULL: not there */
	size_t len[LAYOUT_SIGNED_N];
};
#define LAYOUT_SIGNED_MAX 4096
/* "snapshot.sig", "release", "release.sig" */
const char *layout_signed_name(enum layout_signed f);
/* Read one: 0, 1 if absent, -1 on error. */
int layout_signed_read(const struct layout_tree *t, enum layout_signed f, char **buf, size_t *len,
		       struct rp_err *err);

/* ---- writing: blobs ---- */

/* A directory inside the writer's staging area for its own scratch files (same file system). */
const char *layout_scratch_dir(const struct layout_tree *t);
/* Create a new scratch file; its name (within the scratch area) goes to name. */
int layout_scratch_create(struct layout_tree *t, int *fd, char *name, size_t namesz,
			  struct rp_err *err);
/* Open the scratch file name for reading: 0, 1 if absent, -1. */
int layout_scratch_open(const struct layout_tree *t, const char *name, int *fd,
			struct rp_err *err);
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
/* Stage the scratch file name (layout_scratch_create), which the caller has checked hashes to
 * hex, by renaming it; its mode and time are fixed. A blob the tree already has is dropped. */
int layout_blob_adopt(struct layout_tree *t, const char *name, const char *hex,
		      struct rp_err *err);

/* ---- writing: the state ---- */

/* Record that repo serves manifest hex / blob hex, and that repo:tag points at manifest hex. */
int layout_add_manifest(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
			const char *media_type, struct rp_err *err);
int layout_add_blob(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		    const char *media_type, struct rp_err *err);
/* Record that an index in repo names manifest hex, which the tree deliberately does not hold. */
int layout_add_missing(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		       const char *media_type, struct rp_err *err);
/* Set repo:tag to manifest hex (a retag replaces what it named). */
int layout_set_tag(struct layout_tree *t, const char *repo, const char *tag, const char *hex,
		   struct rp_err *err);
/* The manifest repo:tag names in the state being written, NULL if none. */
const char *layout_tag_target(const struct layout_tree *t, const char *repo, const char *tag);

/* Remove repo:tag (tag set) or the manifest repo@sha256:hex (hex set) with its tags, and forget
 * what only it kept in the repository; commit to publish. */
int layout_untag(struct layout_tree *t, const char *repo, const char *tag, const char *hex,
		 struct rp_err *err);
/* Replace the whole state with a snapshot's (import): the blobs it names must be in the tree or
 * staged by commit time. */
int layout_set_state(struct layout_tree *t, const char *snapshot_text, struct rp_err *err);

/* The build cache (TREE/cache/NS/KEY, one short line): facts that save work on a later build, such
 * as which blob a layer compressed to. Not part of the snapshot, not served, safe to delete.
 * get: 0 and val set, -1 if absent; put: staged, written by layout_commit. */
int layout_cache_get(const struct layout_tree *t, const char *ns, const char *key, char *val,
		     size_t valsz);
int layout_cache_put(struct layout_tree *t, const char *ns, const char *key, const char *val,
		     struct rp_err *err);

/* ---- the import area ----
 * Verified files of an unfinished import (FMT_IMPORT), kept between runs until the set's
 * snapshot can be published; laid out like a volume: REGPRESS-VOLUME, snapshot, blobs/sha256/<hex>,
 * parts/sha256/<hex> (media/ knows that layout; layout/ only keeps the files). Writers only. */

/* Its path, for messages. */
void layout_hold_name(const struct layout_tree *t, char *buf, size_t bufsz);
/* Read one of its files (name: "REGPRESS-VOLUME", "snapshot"): 0, 1 if absent, -1. */
int layout_hold_read(const struct layout_tree *t, const char *name, size_t max, char **buf,
		     size_t *len, struct rp_err *err);
/* Open a kept file for reading: 0, 1 if absent, -1 (not a regular file, unreadable). */
int layout_hold_open(const struct layout_tree *t, const char *rel, int *fd, struct rp_err *err);
/* Start the area afresh with its two metadata files: the snapshot first, the manifest last, so
 * that a manifest there always comes with its snapshot. */
int layout_hold_start(struct layout_tree *t, const char *manifest_name, const void *manifest,
		      size_t mlen, const char *snapshot_name, const void *snapshot, size_t slen,
		      struct rp_err *err);
/* Move the scratch file name into the area as rel (its directories made). */
int layout_hold_take(struct layout_tree *t, const char *name, const char *rel,
		     struct rp_err *err);
/* Link (or copy) the kept file rel into the scratch area, where it can be adopted as a blob
 * while the area stays whole; its scratch name goes to name. */
int layout_hold_link(struct layout_tree *t, const char *rel, char *name, size_t namesz,
		     struct rp_err *err);
/* Flush the area and fix its times (after takes); remove it (after the publish). */
int layout_hold_seal(struct layout_tree *t, struct rp_err *err);
int layout_hold_clear(struct layout_tree *t, struct rp_err *err);

/* ---- publishing ---- */

struct layout_commit_result {
	int changed;		/* the snapshot id changed (a new state was published) */
	int signature_dropped;	/* the tree was signed, and the signature no longer matched */
	uint64_t last_release;	/* then: the release the tree still names (0: none) */
	uint64_t blobs_removed; /* blob files this commit alone made unused, deleted */
};
/* Publish atomically; res may be NULL. After success the tree holds the new state;
 * layout_close() still required. Blobs staged but not used by the new state are not published;
 * blobs the old state used and the new one does not are deleted after the publishing rename. */
int layout_commit(struct layout_tree *t, struct layout_commit_result *res, struct rp_err *err);
/* Delete blob files that the tree's current state does not use (no commit needed). */
int layout_gc(struct layout_tree *t, uint64_t *files, uint64_t *bytes, struct rp_err *err);
/* Replace the signed files of the current snapshot now (snapshot --sign): each written whole or
 * removed (buf NULL), in registry/ and its spare. */
int layout_put_signed(struct layout_tree *t, const struct layout_signed_files *f,
		      struct rp_err *err);
/* Sign the current snapshot (snapshot --sign): registry/snapshot.sig, and a release (release.h)
 * numbered number, or by default the tree's last release + 1 (the same number when that release
 * is of this snapshot), following the last release's snapshot, dated when; with its signature.
 * A number below the last release's is refused. out gets the release. */
struct release;
int layout_sign(struct layout_tree *t, const char *seckey, const char *passphrase,
		uint64_t number, time_t when, struct release *out, struct rp_err *err);
/* The signed files of the state the next commit publishes (import): they go into the new view
 * before its publishing rename, so a release is published with its signatures or not at all. */
int layout_stage_signed(struct layout_tree *t, const struct layout_signed_files *f,
			struct rp_err *err);

#endif
