/* What the files of media/ share: volumes being read, volumes given as ISO images, xorriso.
 * Internal to media/. */
#ifndef RP_MEDIA_INT_H
#define RP_MEDIA_INT_H

#include <stddef.h>

#include "err.h"
#include "fsat.h"
#include "media.h"
#include "release.h"
#include "volfile.h"

/* "a/b", malloc'd (NULL if out of memory). */
char *media_path2(const char *a, const char *b);

/* A volume being read: its directory (opened so that nothing in it is reached through a
 * symlink, fsat.h), its manifest and its snapshot, checked against each other. */
struct volume {
	char *path;	    /* for messages */
	struct fsat_dir dir; /* fd -1 for the import area's copy (read through the tree handle) */
	struct volfile m;
	char *snapshot;	    /* the text, NUL-terminated */
	size_t snapshot_len;
	/* The signed files the manifest lists, read and checked (NULL: not carried). Not kept in
	 * the import area: every volume of the set carries them. */
	char *signed_buf[LAYOUT_SIGNED_N];
	size_t signed_len[LAYOUT_SIGNED_N];
};

int volume_open(const char *path, struct volume *v, struct rp_err *err);
/* A volume from its two texts (taken over, even on failure), named name. */
int volume_from_texts(const char *name, char *manifest, size_t mlen, char *snapshot,
		      size_t slen, struct volume *v, struct rp_err *err);
void volume_free(struct volume *v);
void volume_info(const struct volume *v, struct media_volume_info *info);
/* Open an item of the volume for reading, checking its size; name gets "VOLUME/REL". */
int volume_open_item(const struct volume *v, const struct media_item *it, int *fd, char *name,
		     size_t namesz, struct rp_err *err);

/* trust.c: the set's signatures checked against the trusted keys (none: not required), and
 * its release (has_release 0 when it carries none, or when it is not signed and keys are
 * given). */
int volume_trust(const struct volume *v, const struct media_trust *trust, int *signed_ok,
		 struct release *rel, int *has_release, struct rp_err *err);

/* The volumes as directories: each ISO image among paths extracted into its own directory under
 * $TMPDIR (extracted[i] is NULL for a directory). Progress counts the images' bytes. */
struct volume_dirs {
	size_t n;
	const char **dirs;
	char **extracted;
};
int volume_dirs_open(const char *const *paths, size_t n, media_progress_fn progress, void *ctx,
		     struct volume_dirs *vd, struct rp_err *err);
void volume_dirs_free(struct volume_dirs *vd);
/* A failure while reading the extracted directories: name the images instead. */
void volume_dirs_err(const struct volume_dirs *vd, const char *const *paths, struct rp_err *err);

/* Write the ISO 9660 image of dir to iso with xorriso (named final in messages; xorriso's output
 * goes to log). */
int media_make_iso(const char *dir, const char *iso, const char *final, const char *volid,
		   const char *log, struct rp_err *err);

#endif
