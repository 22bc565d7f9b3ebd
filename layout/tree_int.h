/* The tree handle's insides, shared by the files that implement it (tree.c: opening, locking,
 * reading; blobstore.c: staging blobs; commit.c: publishing; prune.c: untag and gc; cache.c: the
 * build cache; hold.c: the import area). Nothing outside layout/ includes this. */
#ifndef RP_TREE_INT_H
#define RP_TREE_INT_H

#include <jansson.h>
#include <time.h>

#include "format.h"
#include "fsat.h"
#include "state.h"
#include "tree.h"

struct undo;

struct layout_tree {
	struct fsat_dir root;	/* the tree; holds the flock */
	enum layout_mode mode;
	int created;		/* levels of the path the writer made (removed again if unused) */
	struct timespec root_mtime;
	/* The state as opened (or last committed). */
	char *text;
	size_t text_len;
	struct snapshot snap;
	/* Writers only. */
	struct state st;	/* the state being written */
	int st_stale;		/* the last commit took its records: rebuild from snap first */
	int staging_open;	/* FMT_STAGING and its subdirectories exist */
	struct fsat_dir staging, staged, scratch; /* .regpress-tmp, its blobs/ and scratch/ */
	char *scratch_path;
	struct fsat_dir blobs;	/* blobs/sha256 (fd -1 while the tree has none) */
	unsigned long next_tmp;
	json_t *cache_new;	/* "ns/key" -> "value", written at commit */
	/* What a commit changed outside the staging area before its publishing rename: undone if
	 * it fails there. */
	struct undo *undo;
	size_t nundo, undocap;
	int published;
	/* The signed files the next commit publishes with its state (layout_stage_signed), owned. */
	struct layout_signed_files *stage_signed;
};

/* signed.c. A struct layout_signed_files that is "owned" has malloc'd buffers. */
void signed_files_free(struct layout_signed_files *s);
/* Read view's (FMT_VIEW or FMT_SPARE) signed files into s (owned). */
int signed_files_read(const struct layout_tree *t, const char *view,
		      struct layout_signed_files *s, struct rp_err *err);
/* What a commit that changes the state puts into the new view (owned): the staged files
 * (import), or else the live view's release alone: it names the last signed release, which the
 * next one follows, and the signatures no longer match. */
int signed_files_for_commit(const struct layout_tree *t, struct layout_signed_files *s,
			    struct rp_err *err);
/* Make the live view's (and a valid spare's) signed files those of f, now. */
int signed_put_live(struct layout_tree *t, const struct layout_signed_files *f,
		    struct rp_err *err);

/* tree.c */
int tree_require_writer(const struct layout_tree *t, struct rp_err *err);
/* The state ready for changes (after a commit it is made again from the published one). */
int tree_state(struct layout_tree *t, struct rp_err *err);
int tree_open_blobs(struct layout_tree *t, int create, struct rp_err *err);
/* Put staged index.json-<id> and oci-layout-<id> in place (after the publishing rename). */
int tree_install_derived(struct layout_tree *t, const char *id, struct rp_err *err);

/* blobstore.c */
/* Where blob hex is: 1 committed, 2 staged, 0 neither; -1 (err) if it is there but not a
 * regular file. */
int blob_where(const struct layout_tree *t, const char *hex, struct rp_err *err);

/* undo.c: the undo log of a commit before its publishing rename (paths relative to the tree) */
int undo_push_unlink(struct layout_tree *t, const char *rel, struct rp_err *err); /* made it */
int undo_push_rmdir(struct layout_tree *t, const char *rel, struct rp_err *err);  /* made it */
int undo_push_rmtree(struct layout_tree *t, const char *rel, struct rp_err *err); /* made it */
int undo_push_times(struct layout_tree *t, const char *rel, struct rp_err *err);  /* a dir */
/* Move rel into the staging area (logged to move back): a removal or replacement to undo. */
int undo_move_aside(struct layout_tree *t, const char *rel, struct rp_err *err);
/* Before adding entries to directory rel: log its times, or make it (and missing parents). */
int undo_prepare_dir(struct layout_tree *t, const char *rel, struct rp_err *err);
/* Move from (in from_dir) to rel, where no file or a regular file is (logged). */
int undo_rename_in(struct layout_tree *t, const struct fsat_dir *from_dir, const char *from,
		   const char *rel, struct rp_err *err);
void undo_run(struct layout_tree *t);
void undo_clear(struct layout_tree *t);

/* cache.c */
int cache_stage(struct layout_tree *t, struct rp_err *err);
int cache_publish(struct layout_tree *t, struct rp_err *err);
int cache_fix_times(struct layout_tree *t, struct rp_err *err);
int cache_prune(struct layout_tree *t, struct rp_err *err);

/* prune.c: a view_sink read function (ctx: the tree) for the manifests a state names. */
int tree_read_manifest(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err);
/* prune.c: every blob the state uses (hex -> 1), the OCI twins of tagged Docker manifests
 * included: those index_json names, or, when it is NULL, worked out from the manifests. */
struct strmap *prune_used_blobs(struct layout_tree *t, const struct snapshot *s,
				const char *index_json, struct rp_err *err);

#endif
