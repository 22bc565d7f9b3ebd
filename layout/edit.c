/* Changing the state a writer will commit: records, tags, removals, a whole imported state. */
#include "tree_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "names.h"
#include "strmap.h"

int layout_add_manifest(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
			const char *media_type, struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0 || tree_state(t, err) < 0)
		return -1;
	return state_put(&t->st, SNAP_MANIFEST, repo, hex, size, media_type, err);
}

int layout_add_blob(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		    const char *media_type, struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0 || tree_state(t, err) < 0)
		return -1;
	return state_put(&t->st, SNAP_BLOB, repo, hex, size, media_type, err);
}

int layout_add_missing(struct layout_tree *t, const char *repo, const char *hex, uint64_t size,
		       const char *media_type, struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0 || tree_state(t, err) < 0)
		return -1;
	return state_put(&t->st, SNAP_MISSING, repo, hex, size, media_type, err);
}

int layout_set_tag(struct layout_tree *t, const char *repo, const char *tag, const char *hex,
		   struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0 || tree_state(t, err) < 0)
		return -1;
	return state_set_tag(&t->st, repo, tag, hex, err);
}

const char *layout_tag_target(const struct layout_tree *t, const char *repo, const char *tag)
{
	long at = state_find(&t->st, SNAP_TAG, repo, tag);

	return at < 0 ? NULL : t->st.v[at].hex;
}

int layout_set_state(struct layout_tree *t, const char *text, struct rp_err *err)
{
	struct snapshot snap;

	if (tree_require_writer(t, err) < 0)
		return -1;
	if (snapshot_parse(text, strlen(text), "snapshot", &snap, err) < 0)
		return -1;
	t->st_stale = 0;
	state_free(&t->st);
	if (state_init(&t->st, err) < 0) {
		snapshot_free(&snap);
		return -1;
	}
	return state_take(&t->st, &snap, err);
}

/* ---- untag ---- */

/* Index nesting beyond this is not followed (real ones are two or three deep). */
#define REACH_DEPTH_MAX 32

/* Add to set everything manifest hex reaches: itself, index children, config and layers.
 * Unreadable manifests reach only themselves. */
static int reach(const struct layout_tree *t, const char *hex, struct strmap *set, int depth)
{
	struct manifest_info m;
	char *buf = NULL;
	size_t len, i, had;

	if (strmap_get(set, hex, &had) == 0)
		return 0;
	if (strmap_put(set, hex, 1) < 0)
		return -1;
	if (depth > REACH_DEPTH_MAX ||
	    layout_blob_read(t, hex, LAYOUT_MANIFEST_MAX, &buf, &len, NULL) != 0)
		return 0;
	if (manifest_parse(buf, len, 0, &m) < 0) {
		free(buf);
		return 0;
	}
	free(buf);
	for (i = 0; i < m.nchildren; i++)
		if (m.children[i].hex && reach(t, m.children[i].hex, set, depth + 1) < 0)
			goto oom;
	if (m.config.hex && strmap_put(set, m.config.hex, 1) < 0)
		goto oom;
	for (i = 0; i < m.nlayers; i++)
		if (m.layers[i].hex && strmap_put(set, m.layers[i].hex, 1) < 0)
			goto oom;
	manifest_info_free(&m);
	return 0;
oom:
	manifest_info_free(&m);
	return -1;
}

static int in_set(const struct strmap *set, const char *hex)
{
	size_t had;

	return strmap_get(set, hex, &had) == 0;
}

/* Drop the tags of repo that name hex. */
static void drop_tags_of(struct state *st, const char *repo, const char *hex)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		if (st->v[i].line && st->v[i].kind == SNAP_TAG && !strcmp(st->v[i].repo, repo) &&
		    !strcmp(st->v[i].hex, hex))
			state_remove(st, i);
}

int layout_untag(struct layout_tree *t, const char *repo, const char *tag, const char *hex_in,
		 struct rp_err *err)
{
	struct strmap *gone = strmap_new(), *keep = strmap_new();
	char target[RP_HEX_LEN + 1] = "";
	struct state *st = &t->st;
	size_t i;
	long at;
	int rc = -1;

	if (!gone || !keep || tree_require_writer(t, err) < 0 || tree_state(t, err) < 0)
		goto out;
	if (tag) {
		at = state_find(st, SNAP_TAG, repo, tag);
		if (at < 0) {
			rp_errf(err, "%s:%s: no such tag", repo, tag);
			goto out;
		}
		memcpy(target, st->v[at].hex, sizeof(target));
		state_remove(st, (size_t)at);
	} else {
		if (state_find(st, SNAP_MANIFEST, repo, hex_in) < 0) {
			rp_errf(err, "%s@sha256:%s: no such manifest", repo, hex_in);
			goto out;
		}
		snprintf(target, sizeof(target), "%s", hex_in);
		drop_tags_of(st, repo, hex_in);
	}
	if (reach(t, target, gone, 0) < 0)
		goto oom;
	/* What stays reachable: the remaining tags, and manifests the removed one did not reach
	 * (images kept by digest). */
	for (i = 0; i < st->n; i++) {
		const struct snap_rec *r = &st->v[i];

		if (!r->line || strcmp(r->repo, repo))
			continue;
		if ((r->kind == SNAP_TAG || (r->kind == SNAP_MANIFEST && !in_set(gone, r->hex))) &&
		    reach(t, r->hex, keep, 0) < 0)
			goto oom;
	}
	if (hex_in && in_set(keep, hex_in)) {
		rp_errf(err, "%s@sha256:%s is part of an index or image still tagged; remove that "
			"first", repo, hex_in);
		goto out;
	}
	for (i = 0; i < st->n; i++) {
		const struct snap_rec *r = &st->v[i];

		if (r->line && r->kind != SNAP_TAG && !strcmp(r->repo, repo) && in_set(gone, r->hex) &&
		    !in_set(keep, r->hex))
			state_remove(st, i);
	}
	rc = 0;
	goto out;
oom:
	rp_errf(err, "out of memory");
out:
	strmap_free(gone);
	strmap_free(keep);
	return rc;
}
