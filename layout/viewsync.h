/* The spare view (FMT_SPARE): see viewsync.c. Internal to layout/. */
#ifndef RP_VIEWSYNC_H
#define RP_VIEWSYNC_H

#include <stddef.h>

#include "err.h"
#include "snapshot.h"
#include "tree.h"

struct layout_tree;

/* 1 if the spare holds exactly the view of the tree's current state. */
int spare_valid(const struct layout_tree *t);
/* Bring a valid spare (the view of old) to the view of new (text, len) with the signed files
 * sig: only the files that differ are written. undoable: every change goes to the commit's undo
 * log. */
int spare_sync(struct layout_tree *t, const struct snapshot *old, const struct snapshot *new,
	       const char *text, size_t len, const struct layout_signed_files *sig, int undoable,
	       struct rp_err *err);
/* Replace the spare by the complete view of s, with the signed files sig. */
int spare_write_full(struct layout_tree *t, const struct snapshot *s, const char *text,
		     size_t len, const struct layout_signed_files *sig, int undoable,
		     struct rp_err *err);

#endif
