/* The volume manifest REGPRESS-VOLUME (docs/media.md): every file of a volume set with its
 * digest, the set's snapshot and base, and the volume's own number. Internal to media/. */
#ifndef RP_VOLFILE_H
#define RP_VOLFILE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "media.h"
#include "tree.h"

#define VOLFILE_MAX (64u << 20)
/* Upper bounds of the manifest's lines, for the planner's cost of the manifest itself: the
 * header with its file lines, and one blob or part line. */
#define VOLFILE_HEADER_MAX 1024u
#define VOLFILE_ITEM_LINE_MAX 256u

/* A signed file every volume carries at its top (tree.h, "signed releases"): listed with its
 * digest in a manifest of version 2. */
struct volfile_signed {
	int present;
	char hex[RP_HEX_LEN + 1];
	uint64_t size;
};

struct volfile {
	char snapshot_id[RP_HEX_LEN + 1];
	uint64_t snapshot_len;
	char base_id[RP_HEX_LEN + 1];
	uint32_t nvolumes, volume;
	uint64_t capacity;
	struct volfile_signed files[LAYOUT_SIGNED_N]; /* by enum layout_signed */
	struct media_item *items;
	size_t nitems;
	char set_id[RP_HEX_LEN + 1];
	char *text; /* the whole file */
	size_t len, shared_len; /* the lines before "volume": the same on every volume of the set */
};

void volfile_free(struct volfile *m);
/* The shared part of the manifest (malloc'd, *lenp bytes). */
char *volfile_shared(const char *snapshot_id, uint64_t snapshot_len, const char *base_id,
		     uint32_t nvolumes, uint64_t capacity, const struct volfile_signed *files,
		     const struct media_item *items, size_t nitems, size_t *lenp);
/* Parse and check text (taken over by m, even on failure); name for messages. */
int volfile_parse(char *text, size_t len, const char *name, struct volfile *m,
		  struct rp_err *err);
/* The manifest's order of items: by volume, whole blobs before parts, then by digest and
 * offset; and the order by digest and offset alone. */
int volfile_cmp_item(const void *a, const void *b);
int volfile_cmp_blob_offset(const void *a, const void *b);
/* Where an item is in a volume: blobs/sha256/<hex> or parts/sha256/<part hex>. */
void volfile_item_rel(const struct media_item *it, char *rel, size_t sz);

#endif
