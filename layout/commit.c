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
#include "release.h"
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

/* What a commit works out from the old and the new state, one merge of their records: the
 * blobs the new records name (which must be in the tree), the old index.json's descriptors it
 * may keep, and the blob files only the old state may have used. */
struct changes {
	const struct layout_tree *t;
	json_t *reuse;	      /* "repo:tag" -> old descriptor, for tags the commit keeps */
	struct strmap *added; /* hex of blobs and manifests new records name */
	struct strmap *gone;  /* hex the old state used that may now be unused */
	struct rp_err *err;
};

/* The old index.json as "repo:tag" -> descriptor (empty when there is none). */
static json_t *index_map(const char *old_index)
{
	json_t *j = old_index ? json_loads(old_index, 0, NULL) : NULL, *map = json_object(), *desc;
	size_t i;

	json_array_foreach(json_object_get(j, "manifests"), i, desc) {
		const char *ref = json_string_value(json_object_get(
			json_object_get(desc, "annotations"), "org.opencontainers.image.ref.name"));

		if (ref && map)
			json_object_set(map, ref, desc);
	}
	json_decref(j);
	return map;
}

static int note_change(void *ctx, const struct snap_rec *old, const struct snap_rec *new)
{
	struct changes *c = ctx;
	const struct snap_rec *r = old ? old : new;
	int w;

	if (r->kind == SNAP_TAG) {
		char ref[RP_REPO_MAX + RP_TAG_MAX + 2];
		json_t *desc;
		const char *dg, *hex;

		if (!old)
			return 0;
		/* A tag that changes or goes: its old descriptor (and twin) is not kept. */
		snprintf(ref, sizeof(ref), "%s:%s", r->repo, r->tag);
		desc = json_object_get(c->reuse, ref);
		dg = json_string_value(json_object_get(desc, "digest"));
		if (dg && rp_digest_parse(dg, &hex) && strmap_put(c->gone, hex, 1) < 0)
			return rp_errf(c->err, "out of memory");
		json_object_del(c->reuse, ref);
		return 0;
	}
	if (r->kind == SNAP_MISSING)
		return 0;
	if (old)
		return strmap_put(c->gone, r->hex, 1) < 0 ? rp_errf(c->err, "out of memory") : 0;
	/* Every blob a new record names must be in the tree (committed or staged). */
	w = blob_where(c->t, r->hex, c->err);
	if (w < 0)
		return -1;
	if (w == 0)
		return rp_errf(c->err, "%s sha256:%s of '%s' is not in the tree",
			       r->kind == SNAP_BLOB ? "blob" : "manifest", r->hex, r->repo);
	return strmap_put(c->added, r->hex, 1) < 0 ? rp_errf(c->err, "out of memory") : 0;
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

/* Move the staged blobs the new state uses (a new record or a descriptor index.json made names
 * them) into blobs/sha256/ (logged). Adding blobs never changes what is served; staged blobs it
 * does not use go with the staging area. */
static int publish_blobs(struct layout_tree *t, const struct strmap *added,
			 const struct strmap *made, struct rp_err *err)
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

		if (e->d_name[0] == '.' || (strmap_get(added, e->d_name, &had) < 0 &&
					    strmap_get(made, e->d_name, &had) < 0))
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
 * not (a retagged-away manifest's twin, what rm removed). A crash here leaves them for gc. Only
 * when there are such candidates is the new state's whole use worked out. */
static uint64_t drop_unused(struct layout_tree *t, const struct strmap *gone, const char *idx)
{
	struct strmap *used;
	const char *hex;
	size_t pos = 0, had;
	uint64_t n = 0;

	if (!strmap_count(gone) || t->blobs.fd < 0 ||
	    !(used = prune_used_blobs(t, &t->snap, idx, NULL)))
		return 0;
	while (strmap_next(gone, &pos, &hex, NULL) == 0)
		if (strmap_get(used, hex, &had) < 0 && blob_where(t, hex, NULL) == 1 &&
		    fsat_unlink(&t->blobs, hex, NULL) == 0)
			n++;
	strmap_free(used);
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

/* The state did not change: publish only new cache entries and signed files an import brought,
 * and repair the spare. */
static int commit_unchanged(struct layout_tree *t, struct rp_err *err)
{
	struct layout_signed_files live;
	int wrote = 0, rc;

	if (t->cache_new) {
		if (cache_stage(t, err) < 0)
			return -1;
		if (syncfs(t->root.fd) < 0)
			return rp_errno(err, "cannot sync '%s'", t->root.path);
		if (cache_publish(t, err) < 0)
			return -1;
		wrote = 1;
	}
	if (t->stage_signed) {
		if (signed_put_live(t, t->stage_signed, err) < 0)
			return -1;
		wrote = 1;
	}
	/* A writer killed after removing its staging area left the root's time to set. */
	if (t->root_mtime.tv_sec != rp_epoch() || t->root_mtime.tv_nsec != 0)
		wrote = 1;
	if (!spare_valid(t)) {
		if (signed_files_read(t, FMT_VIEW, &live, err) < 0)
			return -1;
		rc = spare_write_full(t, &t->snap, t->text, t->text_len, &live, 1, err);
		signed_files_free(&live);
		if (rc < 0)
			return -1;
		wrote = 1;
	}
	undo_clear(t);
	return wrote ? finish(t, err) : 0;
}

struct commit {
	struct snapshot new; /* the state's records (borrowed until the publish hands them over) */
	char *text, *idx, *old_idx;
	size_t len, idx_len;
	struct changes ch;
	struct strmap *made; /* digests of the descriptors index.json made */
	struct layout_signed_files sig; /* of the new view (owned) */
	int exchange, spare_epoch_ok;
};

static void commit_free(struct commit *c)
{
	free(c->text);
	free(c->idx);
	free(c->old_idx);
	json_decref(c->ch.reuse);
	strmap_free(c->ch.added);
	strmap_free(c->ch.gone);
	strmap_free(c->made);
	signed_files_free(&c->sig);
}

/* Up to the publishing rename: the spare brought to the new state, index.json, cache entries and
 * blobs staged and flushed, blobs and cache entries moved in. All of it logged. */
static int prepare(struct layout_tree *t, struct commit *c, struct rp_err *err)
{
	struct view_sink sink = { no_file, stage_twin, tree_read_manifest, t };
	size_t olen;
	int r;

	c->ch.t = t;
	c->ch.err = err;
	c->ch.added = strmap_new();
	c->ch.gone = strmap_new();
	c->made = strmap_new();
	if (!c->ch.added || !c->ch.gone || !c->made)
		return rp_errf(err, "out of memory");
	if (t->text) {
		struct stat st;

		if (fsat_read(&t->root, FMT_INDEX, SNAPSHOT_MAX, &c->old_idx, &olen, err) < 0)
			return -1;
		/* The old view becomes the spare: it can be edited only if its times are ours. */
		c->spare_epoch_ok = fsat_type(&t->root, FMT_SNAPSHOT, &st, NULL) == FSAT_FILE &&
				    st.st_mtim.tv_sec == rp_epoch() && st.st_mtim.tv_nsec == 0;
	}
	if (!(c->ch.reuse = index_map(c->old_idx)))
		return rp_errf(err, "out of memory");
	if (snap_merge(&t->snap, &c->new, note_change, &c->ch) < 0)
		return -1;
	r = t->text && spare_valid(t)
		    ? spare_sync(t, &t->snap, &c->new, c->text, c->len, &c->sig, 1, err)
		    : spare_write_full(t, &c->new, c->text, c->len, &c->sig, 1, err);
	if (r < 0 ||
	    view_index_json(&c->new, c->ch.reuse, &sink, c->made, &c->idx, &c->idx_len, err) < 0 ||
	    stage_derived(t, c->new.id, c->idx, c->idx_len, err) < 0 || cache_stage(t, err) < 0)
		return -1;
	/* Everything new reaches the disk before the rename that makes it visible. */
	if (syncfs(t->root.fd) < 0)
		return rp_errno(err, "cannot sync '%s'", t->root.path);
	if (publish_blobs(t, c->ch.added, c->made, err) < 0 || cache_publish(t, err) < 0)
		return -1;
	r = fsat_type(&t->root, FMT_VIEW, NULL, err);
	if (r < 0)
		return -1;
	if (r != FSAT_ABSENT && r != FSAT_DIR)
		return rp_errf(err, "'%s/%s': not a directory", t->root.path, FMT_VIEW);
	c->exchange = r == FSAT_DIR;
	return 0;
}

/* After the publishing rename: index.json in place, the published state the current one (the
 * state's records handed over), the spare brought forward, unused blobs deleted. */
static int after_publish(struct layout_tree *t, struct commit *c,
			 struct layout_commit_result *res, struct rp_err *err)
{
	struct snapshot old = t->snap;

	/* A crash from here on leaves index.json for the new snapshot in staging; the next writer
	 * puts it in place (tree.c, recover). */
	if (tree_install_derived(t, c->new.id, err) < 0)
		return -1;
	state_give(&t->st, c->text, c->len, &t->snap);
	free(t->text);
	t->text = c->text;
	t->text_len = c->len;
	c->text = NULL;
	t->st_stale = 1;
	/* The spare: the old view brought forward, or written anew. A failure only leaves it
	 * incomplete, which the next commit repairs: the new state is published either way. */
	if (c->exchange && c->spare_epoch_ok)
		spare_sync(t, &old, &t->snap, t->text, t->text_len, &c->sig, 0, NULL);
	else
		spare_write_full(t, &t->snap, t->text, t->text_len, &c->sig, 0, NULL);
	snapshot_free(&old);
	/* Last, as the old view's referrers above are worked out from the old manifests. */
	res->blobs_removed = drop_unused(t, c->ch.gone, c->idx);
	return finish(t, err);
}

/* Signed files an import staged must be those of the state it set. */
static int staged_release_is(const struct commit *c, struct rp_err *err)
{
	struct release r;
	const struct layout_signed_files *f = &c->sig;

	if (!f->buf[LAYOUT_RELEASE_SIG] || !f->buf[LAYOUT_RELEASE])
		return 0;
	if (release_parse(f->buf[LAYOUT_RELEASE], f->len[LAYOUT_RELEASE], FMT_RELEASE_NAME, &r,
			  err) < 0)
		return -1;
	if (strcmp(r.snapshot, c->new.id))
		return rp_errf(err, "internal: the staged release is of snapshot sha256:%s, not of "
			       "sha256:%s", r.snapshot, c->new.id);
	return 0;
}

int layout_commit(struct layout_tree *t, struct layout_commit_result *res, struct rp_err *err)
{
	struct layout_commit_result dummy;
	struct commit c;

	memset(&c, 0, sizeof(c));
	if (!res)
		res = &dummy;
	memset(res, 0, sizeof(*res));
	if (tree_require_writer(t, err) < 0 || tree_state(t, err) < 0 ||
	    !(c.text = state_text(&t->st, &c.len, err)))
		goto fail;
	if (t->text && c.len == t->text_len && !memcmp(c.text, t->text, c.len)) {
		commit_free(&c);
		return commit_unchanged(t, err);
	}
	state_view(&t->st, c.text, c.len, &c.new);
	if (signed_files_for_commit(t, &c.sig, err) < 0 || staged_release_is(&c, err) < 0)
		goto fail;
	res->signature_dropped = !c.sig.buf[LAYOUT_SNAPSHOT_SIG] &&
				 fsat_type(&t->root, FMT_SIGNATURE, NULL, NULL) == FSAT_FILE;
	if (res->signature_dropped && c.sig.buf[LAYOUT_RELEASE]) {
		struct release r;

		if (release_parse(c.sig.buf[LAYOUT_RELEASE], c.sig.len[LAYOUT_RELEASE],
				  FMT_RELEASE_NAME, &r, NULL) == 0)
			res->last_release = r.number;
	}
	if (prepare(t, &c, err) < 0 ||
	    (c.exchange ? fsat_exchange(&t->root, FMT_SPARE, FMT_VIEW, err)
			: fsat_rename(&t->root, FMT_SPARE, &t->root, FMT_VIEW, err)) < 0)
		goto fail;
	t->published = 1;
	undo_clear(t);
	fsync(t->root.fd);
	res->changed = 1;
	if (after_publish(t, &c, res, err) < 0)
		goto fail;
	commit_free(&c);
	return 0;
fail:
	if (!res->changed)
		res->signature_dropped = 0, res->last_release = 0;
	commit_free(&c);
	return -1;
}
