/* Carrying a tree across an air gap on optical media (docs/media.md): a tree, or what it has beyond
 * an older snapshot, is split into numbered volumes that each fit one disc and can each be checked
 * on their own; `import` copies volumes into a tree, in any order and across several runs, and
 * publishes the snapshot once every blob it needs is there.
 *
 * A volume is a directory (or the ISO 9660 image of one):
 *   REGPRESS-VOLUME       the volume manifest (text, below)
 *   snapshot              the snapshot the set carries, exactly as in TREE/registry/snapshot
 *   snapshot.sig, release, release.sig   a signed set's signed files (tree.h), on every volume
 *   blobs/sha256/<hex>    whole blobs
 *   parts/sha256/<hex>    parts of blobs too large for one volume, named by their own digest */
#ifndef RP_MEDIA_H
#define RP_MEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "err.h"

#define MEDIA_MANIFEST "REGPRESS-VOLUME"
#define MEDIA_SNAPSHOT "snapshot"

/* The cost model of an ISO 9660 image with Rock Ridge and Joliet (xorriso -no-pad), measured and
 * rounded up: every file takes whole 2 KiB sectors plus MEDIA_FILE_META bytes of directory
 * records; an image takes MEDIA_FIXED bytes (system area, descriptors, path tables, directories)
 * plus a margin of a thousandth of the medium. */
#define MEDIA_SECTOR 2048u
#define MEDIA_FILE_META 1024u
#define MEDIA_FIXED (128u << 10)
/* ISO 9660 levels 1 and 2 hold files below 4 GiB: larger blobs are split into parts this size. */
#define MEDIA_MAX_FILE ((4ull << 30) - MEDIA_SECTOR)

/* "dvd", "dvd-dl", "bd", "bd-dl" (the recordable media's sizes), or bytes with an optional K, M or
 * G suffix (powers of 1024): "300K", "4480M", "4700372992". */
int media_parse_size(const char *s, uint64_t *bytes, struct rp_err *err);
/* What a file of size bytes takes on a volume. */
uint64_t media_file_cost(uint64_t size);

struct media_blob {
	char hex[RP_HEX_LEN + 1];
	uint64_t size;
};

/* One file on a volume: a whole blob, or the part [offset, offset + size) of one. */
struct media_item {
	char hex[RP_HEX_LEN + 1]; /* the blob */
	uint64_t blob_size;
	uint64_t offset, size;
	int split;			   /* a part: parts/sha256/<part_hex> */
	char part_hex[RP_HEX_LEN + 1]; /* the part's own digest ("" until hashed) */
	uint32_t volume;		   /* 1..nvolumes */
};

struct media_plan {
	uint64_t capacity;  /* bytes per medium */
	uint64_t budget;    /* bytes per volume for blobs and parts (their media_file_cost) */
	uint64_t part_size; /* size of every part but a blob's last */
	struct media_item *items; /* by volume, whole blobs first, then by digest and offset */
	size_t nitems;
	uint32_t nvolumes;
	uint32_t min_volumes; /* the total cost over the budget, rounded up: no plan has fewer */
	uint64_t *used;	      /* per volume (index volume - 1): cost of its items */
	uint64_t data_bytes;  /* sum of the items' sizes */
	size_t split_blobs;
};

/* Plan volumes for blobs (any order, duplicates allowed) on media of capacity bytes, each volume
 * also carrying the manifest and files that cost each_volume bytes (the snapshot and the signed
 * files, media_file_cost of each). Deterministic: the blobs are
 * placed first-fit in decreasing size (then digest) order; a blob above the budget or of 4 GiB
 * and more is cut into parts of part_size. Always at least one volume. */
int media_plan_make(const struct media_blob *blobs, size_t n, uint64_t capacity,
		    uint64_t each_volume, struct media_plan *plan, struct rp_err *err);
void media_plan_free(struct media_plan *plan);
/* Bytes of blobs carried over the bytes of media used: data_bytes / (nvolumes * capacity). */
double media_plan_fill(const struct media_plan *plan);

/* Progress: bytes read so far and in all; called often, the caller rate-limits. */
typedef void (*media_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct media_opts {
	uint64_t capacity;
	const char *since; /* a snapshot file or a tree: carry only the blobs it lacks (a delta) */
	uint32_t only;	   /* write only this volume (1-based), 0 for all */
	int iso;	   /* write VOLUME.iso images (xorriso) instead of directories */
	media_progress_fn progress;
	void *ctx;
};

struct media_result {
	struct media_plan plan;
	char snapshot_id[RP_HEX_LEN + 1];
	char base_id[RP_HEX_LEN + 1]; /* "" for a full set */
	char set_id[RP_HEX_LEN + 1];
	char **paths; /* per volume: what was written (NULL if not, with --only) */
	uint64_t *files; /* per volume: files it carries (blobs and parts) */
};

/* Write the volumes of tree (read through its handle, under a shared lock) into outdir as
 * volume-NN or volume-NN.iso.
 * Existing files are never replaced; on failure nothing written by this call is left. */
int media_write(const char *tree, const char *outdir, const struct media_opts *opts,
		struct media_result *res, struct rp_err *err);
void media_result_free(struct media_result *res);

/* Whom a set must come from (docs/media.md, "Trust"). */
struct media_trust {
	const char *const *pubkeys; /* signify public key files, any one of them; none: a set need
				     * not be signed (its release still counts against rollback) */
	size_t npubkeys;
	int allow_downgrade; /* import a release older than the tree's (or the same number with
			      * other content) */
	int allow_unsigned;  /* import a set without a release over a tree that holds one */
};

/* What a volume says about itself. */
struct media_volume_info {
	uint32_t volume, nvolumes;
	char snapshot_id[RP_HEX_LEN + 1];
	char base_id[RP_HEX_LEN + 1];
	char set_id[RP_HEX_LEN + 1];
	uint64_t files, bytes;
	int signed_ok;	  /* its signatures were checked against the trusted keys, and are good */
	uint64_t release; /* the release it carries (0: none) */
};

/* Check one volume on its own: its manifest, its snapshot, the size and digest of every file it
 * carries, and nothing else in it; with trusted keys, its signatures. Writes nothing but, for a
 * volume given as an ISO image file, the image extracted into a directory under $TMPDIR that is
 * removed before returning. */
int media_check(const char *voldir, const struct media_trust *trust, media_progress_fn progress,
		void *ctx, struct media_volume_info *info, struct rp_err *err);

struct media_import_result {
	uint32_t nvolumes;
	uint32_t *imported; /* volume numbers read by this call, sorted */
	size_t nimported;
	uint32_t *missing; /* volumes still needed (carrying something the tree lacks), sorted */
	size_t nmissing;
	int published;	   /* the snapshot was published by this call */
	int already;	   /* the tree was already at the set's snapshot: nothing done */
	char snapshot_id[RP_HEX_LEN + 1];
	char base_id[RP_HEX_LEN + 1];
	uint64_t files_copied, bytes_copied;
	int signed_ok;		 /* the set's signatures were checked and are good */
	uint64_t release;	 /* the set's release (0: none) */
	uint64_t replaced;	 /* --allow-downgrade: the tree's newer release, now replaced */
	char replaced_id[RP_HEX_LEN + 1]; /* and its snapshot */
	int signatures_added;	 /* the tree was at the set's snapshot and took its signed files */
};

/* Verify the volumes (all of them, before the tree is changed: all or nothing), copy into tree what
 * it lacks, and publish the set's snapshot, with its signed files, when every blob it needs is
 * there; until then keep the verified files in the tree's import area (tree.h) for later calls.
 * A delta set needs the tree at its base snapshot. A set signed by none of the trusted keys, or
 * older than the tree's release, is refused before anything is written (struct media_trust).
 * A volume is a directory or an ISO image file, extracted as media_check says. */
int media_import(const char *tree, const char *const *volumes, size_t n,
		 const struct media_trust *trust, media_progress_fn progress, void *ctx,
		 struct media_import_result *res, struct rp_err *err);
void media_import_result_free(struct media_import_result *res);

#endif
