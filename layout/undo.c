/* The undo log of a commit: what it changed outside the staging area before its publishing
 * rename (blobs and cache entries moved in, files of the spare view replaced or moved aside,
 * directories made or touched), taken back newest first if the commit fails there, so a failed
 * write leaves the tree byte-identical. Taking back only renames, unlinks and sets times: it
 * needs no free space, so it works when a full disk is what failed. */
#include "tree_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

enum undo_kind { UNDO_UNLINK, UNDO_RMDIR, UNDO_RMTREE, UNDO_TIMES, UNDO_RENAME };

struct undo {
	enum undo_kind kind;
	char *rel;		  /* relative to the tree */
	char *from;		  /* UNDO_RENAME: where the file is now (rel is where it goes back) */
	struct timespec times[2]; /* UNDO_TIMES: atime and mtime to put back */
};

static struct undo *push(struct layout_tree *t, enum undo_kind kind, const char *rel,
			 struct rp_err *err)
{
	struct undo *u;

	if (t->nundo == t->undocap) {
		size_t cap = t->undocap ? t->undocap * 2 : 64;

		u = realloc(t->undo, cap * sizeof(*u));
		if (!u) {
			rp_errf(err, "out of memory");
			return NULL;
		}
		t->undo = u;
		t->undocap = cap;
	}
	u = &t->undo[t->nundo];
	memset(u, 0, sizeof(*u));
	u->kind = kind;
	u->rel = strdup(rel);
	if (!u->rel) {
		rp_errf(err, "out of memory");
		return NULL;
	}
	t->nundo++;
	return u;
}

int undo_push_unlink(struct layout_tree *t, const char *rel, struct rp_err *err)
{
	return push(t, UNDO_UNLINK, rel, err) ? 0 : -1;
}

int undo_push_rmdir(struct layout_tree *t, const char *rel, struct rp_err *err)
{
	return push(t, UNDO_RMDIR, rel, err) ? 0 : -1;
}

int undo_push_rmtree(struct layout_tree *t, const char *rel, struct rp_err *err)
{
	return push(t, UNDO_RMTREE, rel, err) ? 0 : -1;
}

/* Remember the times of directory rel, unless they are remembered already. */
int undo_push_times(struct layout_tree *t, const char *rel, struct rp_err *err)
{
	struct undo *u;
	struct stat st;
	size_t i;

	for (i = 0; i < t->nundo; i++)
		if (t->undo[i].kind == UNDO_TIMES &&
		    !strcmp(t->undo[i].rel, rel))
			return 0;
	if (fsat_type(&t->root, rel, &st, err) < 0)
		return -1;
	if (!(u = push(t, UNDO_TIMES, rel, err)))
		return -1;
	u->times[0] = st.st_atim;
	u->times[1] = st.st_mtim;
	return 0;
}

int undo_move_aside(struct layout_tree *t, const char *rel, struct rp_err *err)
{
	char aside[64];
	struct undo *u;

	snprintf(aside, sizeof(aside), FMT_STAGING "/aside/%lu", t->next_tmp++);
	if (fsat_mkdirs(&t->root, FMT_STAGING "/aside", err) < 0 ||
	    fsat_rename(&t->root, rel, &t->root, aside, err) < 0)
		return -1;
	if (!(u = push(t, UNDO_RENAME, rel, err)) || !(u->from = strdup(aside)))
		return rp_errf(err, "out of memory");
	return 0;
}

int undo_prepare_dir(struct layout_tree *t, const char *rel, struct rp_err *err)
{
	char parent[4096], *slash;
	int r = fsat_type(&t->root, rel, NULL, err);

	if (r < 0)
		return -1;
	if (r == FSAT_DIR)
		return undo_push_times(t, rel, err);
	if (r != FSAT_ABSENT)
		return rp_errf(err, "'%s/%s': not a directory", t->root.path, rel);
	snprintf(parent, sizeof(parent), "%s", rel);
	slash = strrchr(parent, '/');
	if (slash) {
		*slash = '\0';
		if (undo_prepare_dir(t, parent, err) < 0)
			return -1;
	} else if (undo_push_times(t, "", err) < 0) {
		return -1;
	}
	if (fsat_mkdirs(&t->root, rel, err) < 0)
		return -1;
	return undo_push_rmdir(t, rel, err);
}

int undo_rename_in(struct layout_tree *t, const struct fsat_dir *from_dir, const char *from,
		   const char *rel, struct rp_err *err)
{
	int r = fsat_type(&t->root, rel, NULL, err);

	if (r < 0)
		return -1;
	if (r == FSAT_ABSENT && undo_push_unlink(t, rel, err) < 0)
		return -1;
	if (r != FSAT_ABSENT && r != FSAT_FILE)
		return rp_errf(err, "'%s/%s': not a regular file", t->root.path, rel);
	return fsat_rename(from_dir, from, &t->root, rel, err);
}

void undo_clear(struct layout_tree *t)
{
	size_t i;

	for (i = 0; i < t->nundo; i++) {
		free(t->undo[i].rel);
		free(t->undo[i].from);
	}
	free(t->undo);
	t->undo = NULL;
	t->nundo = t->undocap = 0;
}

void undo_run(struct layout_tree *t)
{
	size_t i;

	for (i = t->nundo; i-- > 0;) {
		struct undo *u = &t->undo[i];

		if (u->kind == UNDO_UNLINK) {
			fsat_unlink(&t->root, u->rel, NULL);
		} else if (u->kind == UNDO_RMDIR) {
			fsat_rmdir(&t->root, u->rel, NULL);
		} else if (u->kind == UNDO_RMTREE) {
			fsat_rmtree(&t->root, u->rel, NULL);
		} else if (u->kind == UNDO_RENAME) {
			fsat_rename(&t->root, u->from, &t->root, u->rel, NULL);
		} else if (!u->rel[0]) {
			futimens(t->root.fd, u->times);
		} else {
			struct fsat_dir d;

			if (fsat_subdir(&t->root, u->rel, 0, &d, NULL) == 0) {
				futimens(d.fd, u->times);
				fsat_close(&d);
			}
		}
	}
	undo_clear(t);
}
