/* Publishing a writer's state (docs/tree-format.md "Publishing"). The served view is double-
 * buffered: the spare view is brought to the new state (only the files that differ), then swapped
 * with registry/ by one renameat2(RENAME_EXCHANGE), the publishing rename; afterwards the old
 * view, now the spare, is brought to the new state too. Everything up to the publishing rename
 * is logged (undo.c) and taken back if the commit fails, so a failed write leaves the tree
 * byte-identical; a killed one leaves the old state published (or the new one once renamed). */
#include "tree_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "names.h"
#include "strmap.h"
#include "view.h"
#include "viewsync.h"

/* index.json's twins are staged as blobs. */
static int stage_twin(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		      struct rp_err *err)
{
	return layout_put_blob(ctx, buf, len, hex, err);
}

static int no_file(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	(void)ctx, (void)rel, (void)buf, (void)len;
	return rp_errf(err, "internal: index.json asked for a view file");
}

/* Every blob a record names that the old state did not have must be in the tree (committed or
 * staged) before the state is published. */
static int check_new_blobs(const struct layout_tree *t, const struct snapshot *s,
			   struct rp_err *err)
{
	struct strmap *old = strmap_new();
	size_t i, had;
	int rc = -1;

	if (!old)
		return rp_errf(err, "out of memory");
	for (i = 0; i < t->snap.n; i++)
		if (strmap_put(old, t->snap.v[i].hex, 1) < 0) {
			rp_errf(err, "out of memory");
			goto out;
		}
	for (i = 0; i < s->n; i++) {
		const struct snap_rec *r = &s->v[i];
		int w;

		if ((r->kind != SNAP_BLOB && r->kind != SNAP_MANIFEST) ||
		    strmap_get(old, r->hex, &had) == 0)
			continue;
		w = blob_where(t, r->hex, err);
		if (w < 0)
			goto out;
		if (w == 0) {
			rp_errf(err, "%s sha256:%s of '%s' is not in the tree",
				r->kind == SNAP_BLOB ? "blob" : "manifest", r->hex, r->repo);
			goto out;
		}
	}
	rc = 0;
out:
	strmap_free(old);
	return rc;
}

/* index.json of the tree as it is ("repo:tag" -> descriptor), minus the tags the commit
 * changes or removes: what view_index_json may keep. NULL when there is none to keep. */
static json_t *reusable(const char *old_index, const struct snapshot_diff *d)
{
	json_t *j = old_index ? json_loads(old_index, 0, NULL) : NULL, *map = json_object(), *desc;
	size_t i;

	json_array_foreach(json_object_get(j, "manifests"), i, desc) {
		const char *ref = json_string_value(json_object_get(
			json_object_get(desc, "annotations"), "org.opencontainers.image.ref.name"));

		if (ref)
			json_object_set(map, ref, desc);
	}
	json_decref(j);
	for (i = 0; map && i < d->ntags_changed + d->ntags_removed; i++) {
		const struct snap_rec *r = i < d->ntags_changed ? d->tags_changed[i].old
					   : d->tags_removed[i - d->ntags_changed].old;
		char ref[RP_REPO_MAX + RP_TAG_MAX + 2];

		snprintf(ref, sizeof(ref), "%s:%s", r->repo, r->tag);
		json_object_del(map, ref);
	}
	return map;
}

/* Stage index.json, and oci-layout when the tree has none, for snapshot id. */
static int stage_derived(struct layout_tree *t, const char *id, const char *idx, size_t len,
			 struct rp_err *err)
{
	char name[256];

	snprintf(name, sizeof(name), "%s-%s", FMT_INDEX, id);
	if (fsat_write_new(&t->staging, name, idx, len, err) < 0)
		return -1;
	if (fsat_type(&t->root, FMT_OCI_LAYOUT, NULL, err) == FSAT_FILE)
		return 0;
	snprintf(name, sizeof(name), "%s-%s", FMT_OCI_LAYOUT, id);
	return fsat_write_new(&t->staging, name, FMT_OCI_LAYOUT_BODY, strlen(FMT_OCI_LAYOUT_BODY),
			      err);
}

/* Move the staged blobs the new state uses into blobs/sha256/ (logged). Adding blobs never
 * changes what is served; staged blobs it does not use go with the staging area. */
static int publish_blobs(struct layout_tree *t, const struct strmap *used, struct rp_err *err)
{
	int fd = dup(t->staged.fd), prepared = 0, rc = 0;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	size_t had;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return rp_errno(err, "cannot read '%s'", t->staged.path);
	}
	rewinddir(d);
	while (rc == 0 && (e = readdir(d))) {
		char rel[sizeof(FMT_BLOBS) + 2 + sizeof(e->d_name)];

		if (e->d_name[0] == '.' || strmap_get(used, e->d_name, &had) < 0)
			continue;
		if (!prepared++ && undo_prepare_dir(t, FMT_BLOBS, err) < 0) {
			rc = -1;
			break;
		}
		snprintf(rel, sizeof(rel), FMT_BLOBS "/%s", e->d_name);
		rc = undo_rename_in(t, &t->staged, e->d_name, rel, err);
	}
	closedir(d);
	if (rc == 0 && prepared)
		rc = tree_open_blobs(t, 0, err);
	return rc;
}

/* After the publishing rename: delete the blob files the old state used and the new one does
 * not (a retagged-away manifest's twin, what rm removed). A crash here leaves them for gc. */
static uint64_t drop_unused(struct layout_tree *t, const struct strmap *used_old,
			    const struct strmap *used_new)
{
	const char *hex;
	size_t pos = 0, had;
	uint64_t n = 0;

	while (t->blobs.fd >= 0 && strmap_next(used_old, &pos, &hex, NULL) == 0)
		if (strmap_get(used_new, hex, &had) < 0 && blob_where(t, hex, NULL) == 1 &&
		    fsat_unlink(&t->blobs, hex, NULL) == 0)
			n++;
	return n;
}

/* The end of a commit that wrote something: times, and the staging area gone. */
static int finish(struct layout_tree *t, struct rp_err *err)
{
	if (t->blobs.fd >= 0 && (fsat_set_mtime(&t->blobs, "", err) < 0 ||
				 fsat_set_mtime(&t->root, "blobs", err) < 0))
		return -1;
	if (cache_fix_times(t, err) < 0)
		return -1;
	fsat_close(&t->staged);
	fsat_close(&t->scratch);
	fsat_close(&t->staging);
	if (fsat_rmtree(&t->root, FMT_STAGING, err) < 0 || fsat_set_mtime(&t->root, "", err) < 0)
		return -1;
	t->staging_open = 0; /* nothing left to abort; close must not put the root's time back */
	return 0;
}

/* The state did not change: publish only new cache entries, and repair the spare. */
static int commit_unchanged(struct layout_tree *t, struct rp_err *err)
{
	int wrote = 0;

	if (t->cache_new) {
		if (cache_stage(t, err) < 0)
			return -1;
		if (syncfs(t->root.fd) < 0)
			return rp_errno(err, "cannot sync '%s'", t->root.path);
		if (cache_publish(t, err) < 0)
			return -1;
		wrote = 1;
	}
	if (!spare_valid(t)) {
		if (spare_write_full(t, &t->snap, t->text, t->text_len, 1, err) < 0)
			return -1;
		wrote = 1;
	}
	undo_clear(t);
	return wrote ? finish(t, err) : 0;
}

struct commit {
	struct snapshot new;
	struct snapshot_diff diff;
	char *text, *idx, *old_idx;
	size_t len, idx_len;
	struct strmap *used_new, *used_old;
	int exchange, spare_epoch_ok;
};

static void commit_free(struct commit *c)
{
	snapshot_free(&c->new);
	snapshot_diff_free(&c->diff);
	free(c->text);
	free(c->idx);
	free(c->old_idx);
	strmap_free(c->used_new);
	strmap_free(c->used_old);
}

/* Up to the publishing rename: the spare brought to the new state, index.json, cache entries and
 * blobs staged and flushed, blobs and cache entries moved in. All of it logged. */
static int prepare(struct layout_tree *t, struct commit *c, struct rp_err *err)
{
	struct view_sink sink = { no_file, stage_twin, tree_read_manifest, t };
	json_t *reuse = NULL;
	size_t olen;
	int r, rc = -1;

	if (check_new_blobs(t, &c->new, err) < 0 || snapshot_diff(&t->snap, &c->new, &c->diff, err) < 0)
		return -1;
	if (t->text) {
		struct stat st;

		if (fsat_read(&t->root, FMT_INDEX, SNAPSHOT_MAX, &c->old_idx, &olen, err) < 0)
			return -1;
		/* The old view becomes the spare: it can be edited only if its times are ours. */
		c->spare_epoch_ok = fsat_type(&t->root, FMT_SNAPSHOT, &st, NULL) == FSAT_FILE &&
				    st.st_mtim.tv_sec == rp_epoch() && st.st_mtim.tv_nsec == 0;
		if (!(c->used_old = prune_used_blobs(t, &t->snap, c->old_idx, err)))
			return -1;
	}
	r = t->text && spare_valid(t) ? spare_sync(t, &t->snap, &c->new, c->text, c->len, 1, err)
				       : spare_write_full(t, &c->new, c->text, c->len, 1, err);
	if (r < 0)
		return -1;
	reuse = reusable(c->old_idx, &c->diff);
	if (view_index_json(&c->new, reuse, &sink, &c->idx, &c->idx_len, err) < 0 ||
	    !(c->used_new = prune_used_blobs(t, &c->new, c->idx, err)) ||
	    stage_derived(t, c->new.id, c->idx, c->idx_len, err) < 0 || cache_stage(t, err) < 0)
		goto out;
	/* Everything new reaches the disk before the rename that makes it visible. */
	if (syncfs(t->root.fd) < 0) {
		rp_errno(err, "cannot sync '%s'", t->root.path);
		goto out;
	}
	if (publish_blobs(t, c->used_new, err) < 0 || cache_publish(t, err) < 0)
		goto out;
	r = fsat_type(&t->root, FMT_VIEW, NULL, err);
	if (r < 0)
		goto out;
	if (r != FSAT_ABSENT && r != FSAT_DIR) {
		rp_errf(err, "'%s/%s': not a directory", t->root.path, FMT_VIEW);
		goto out;
	}
	c->exchange = r == FSAT_DIR;
	rc = 0;
out:
	json_decref(reuse);
	return rc;
}

int layout_commit(struct layout_tree *t, struct layout_commit_result *res, struct rp_err *err)
{
	struct layout_commit_result dummy;
	struct commit c;
	struct snapshot old;
	int rc = -1, signed_tree;

	memset(&c, 0, sizeof(c));
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	if (tree_require_writer(t, err) < 0 || !(c.text = state_text(&t->st, &c.len, err)) ||
	    snapshot_parse(c.text, c.len, "new snapshot", &c.new, err) < 0)
		goto out;
	if (t->text && c.len == t->text_len && !memcmp(c.text, t->text, c.len)) {
		rc = commit_unchanged(t, err);
		goto out;
	}
	signed_tree = fsat_type(&t->root, FMT_SIGNATURE, NULL, NULL) == FSAT_FILE;
	if (prepare(t, &c, err) < 0)
		goto out;
	if ((c.exchange ? fsat_exchange(&t->root, FMT_SPARE, FMT_VIEW, err)
			: fsat_rename(&t->root, FMT_SPARE, &t->root, FMT_VIEW, err)) < 0)
		goto out;
	t->published = 1;
	undo_clear(t);
	fsync(t->root.fd);
	/* A crash from here on leaves index.json for the new snapshot in staging; the next writer
	 * puts it in place (tree.c, recover). */
	if (tree_install_derived(t, c.new.id, err) < 0)
		goto out;
	res->changed = 1;
	res->signature_dropped = signed_tree;
	old = t->snap;
	memset(&t->snap, 0, sizeof(t->snap));
	if (tree_set_current(t, c.text, c.len, err) < 0) {
		c.text = NULL;
		snapshot_free(&old);
		goto out;
	}
	c.text = NULL;
	/* The spare: the old view brought forward, or written anew. A failure only leaves it
	 * incomplete, which the next commit repairs: the new state is published either way. */
	if (c.exchange && c.spare_epoch_ok)
		spare_sync(t, &old, &c.new, t->text, t->text_len, 0, NULL);
	else
		spare_write_full(t, &c.new, t->text, t->text_len, 0, NULL);
	snapshot_free(&old);
	/* Last, as the old view's referrers above are worked out from the old manifests. */
	if (c.used_old)
		res->blobs_removed = drop_unused(t, c.used_old, c.used_new);
	rc = finish(t, err);
out:
	commit_free(&c);
	return rc;
}

int layout_put_signature(struct layout_tree *t, const char *sig, size_t len, struct rp_err *err)
{
	static const char *const views[] = { FMT_VIEW, FMT_SPARE };
	size_t i;

	if (tree_require_writer(t, err) < 0)
		return -1;
	if (!t->staging_open)
		return rp_errf(err, "'%s': signing after a commit needs the tree opened again",
			       t->root.path);
	/* Written in the staging area, then renamed: a crash leaves no stray file in registry/.
	 * The spare is a copy of the view, so it gets the signature as well. */
	for (i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		char rel[64];

		if (i == 1 && !spare_valid(t))
			continue;
		snprintf(rel, sizeof(rel), "%s/%s", views[i], FMT_SIGNATURE_NAME);
		if (fsat_write_new(&t->staging, FMT_SIGNATURE_NAME, sig, len, err) < 0)
			return -1;
		if (syncfs(t->root.fd) < 0)
			return rp_errno(err, "cannot sync '%s'", t->root.path);
		if (fsat_rename(&t->staging, FMT_SIGNATURE_NAME, &t->root, rel, err) < 0 ||
		    fsat_set_mtime(&t->root, views[i], err) < 0)
			return -1;
	}
	return 0;
}
