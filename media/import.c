/* Importing volumes into a tree: every volume verified before the tree changes, what the tree
 * lacks copied into its scratch area, and the set's snapshot published once every blob it needs
 * is there; until then the verified files wait in the tree's import area between runs. */
#include "media_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "copy.h"
#include "snapshot.h"
#include "tree.h"

/* Where a file the import needs is, once verified: "s:<scratch name>" (copied by this run) or
 * "k:<rel>" (kept in the import area by an earlier one), by blob or part digest. */
struct avail {
	json_t *whole; /* blob hex -> where */
	json_t *parts; /* part hex -> where */
};

struct importer {
	const char *tree;
	struct layout_tree *t;
	struct volume *vols;
	size_t n;
	struct volume kept; /* the import area's manifest and snapshot, when there is one */
	int have_kept;
	const struct volfile *set; /* the set's manifest (shared part) */
	const char *target_text;
	json_t *needed; /* blob hex -> true: what the tree lacks */
	struct avail a;
	struct copier c;
	struct media_import_result *r;
	const struct media_trust *trust;
	struct layout_signed_files sig; /* what the tree gets with the set's snapshot (borrowed) */
	int stage_sig;
	char *tree_release; /* the tree's registry/release (owned) */
};

static const char *avail_at(json_t *set, const char *hex)
{
	return json_string_value(json_object_get(set, hex));
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Add v to the sorted-unique list (list has room). */
static void add_u32(uint32_t *list, size_t *n, uint32_t v)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (list[i] == v)
			return;
	list[(*n)++] = v;
	qsort(list, *n, sizeof(*list), cmp_u32);
}

/* The blob is complete: whole, or every part of it is available. */
static int blob_ready(const struct volfile *m, const struct avail *a, const char *hex)
{
	size_t i;
	int any = 0;

	if (avail_at(a->whole, hex))
		return 1;
	for (i = 0; i < m->nitems; i++)
		if (!strcmp(m->items[i].hex, hex)) {
			if (!m->items[i].split || !avail_at(a->parts, m->items[i].part_hex))
				return 0;
			any = 1;
		}
	return any;
}

/* Note what the import area already holds (verified in an earlier run). */
static void scan_kept(struct importer *im)
{
	size_t i;

	for (i = 0; i < im->set->nitems; i++) {
		const struct media_item *it = &im->set->items[i];
		char rel[RP_HEX_LEN + 32], where[RP_HEX_LEN + 40];
		int fd;

		if (!json_object_get(im->needed, it->hex))
			continue;
		volfile_item_rel(it, rel, sizeof(rel));
		if (layout_hold_open(im->t, rel, &fd, NULL) != 0)
			continue;
		close(fd);
		snprintf(where, sizeof(where), "k:%s", rel);
		json_object_set_new(it->split ? im->a.parts : im->a.whole,
				    it->split ? it->part_hex : it->hex, json_string(where));
	}
}

/* Copy one checked item of a volume into the tree's scratch area. */
static int take_item(struct importer *im, const struct volume *v, const struct media_item *it,
		     struct rp_err *err)
{
	char name[4096], sname[64], dname[4200], where[80];
	int in, out, rc;

	if (volume_open_item(v, it, &in, name, sizeof(name), err) < 0)
		return -1;
	if (layout_scratch_create(im->t, &out, sname, sizeof(sname), err) < 0) {
		close(in);
		return -1;
	}
	snprintf(dname, sizeof(dname), "%s/%s", layout_scratch_dir(im->t), sname);
	rc = copy_checked(&im->c, in, name, it->size, 0, it->size,
			  it->split ? it->part_hex : it->hex, out, dname, 1, err);
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = rp_errno(err, "cannot write '%s'", dname);
	if (rc < 0)
		return -1;
	snprintf(where, sizeof(where), "s:%s", sname);
	json_object_set_new(it->split ? im->a.parts : im->a.whole, it->split ? it->part_hex : it->hex,
			    json_string(where));
	return 0;
}

/* Read one volume: verify every file it carries; copy into scratch what the tree still needs. */
static int read_volume(struct importer *im, const struct volume *v, struct rp_err *err)
{
	size_t i;

	for (i = 0; i < v->m.nitems; i++) {
		const struct media_item *it = &v->m.items[i];
		const char *key = it->split ? it->part_hex : it->hex;
		json_t *set = it->split ? im->a.parts : im->a.whole;
		char name[4096];
		int fd, r;

		if (it->volume != v->m.volume)
			continue;
		if (json_object_get(im->needed, it->hex) && !avail_at(im->a.whole, it->hex) &&
		    !avail_at(set, key)) {
			if (take_item(im, v, it, err) < 0)
				return -1;
			continue;
		}
		if (volume_open_item(v, it, &fd, name, sizeof(name), err) < 0)
			return -1;
		r = copy_checked(&im->c, fd, name, it->size, 0, it->size, key, -1, NULL, 0, err);
		close(fd);
		if (r < 0)
			return -1;
	}
	return 0;
}

/* Open an available file ("s:" or "k:") for reading. */
static int open_avail(struct importer *im, const char *where, int *fd, struct rp_err *err)
{
	int r = where[0] == 'k' ? layout_hold_open(im->t, where + 2, fd, err)
				: layout_scratch_open(im->t, where + 2, fd, err);

	return r == 1 ? rp_errf(err, "'%s': vanished from the import area", where + 2) : r;
}

/* A split blob: join its parts into a new blob, checking the whole digest. */
static int join_parts(struct importer *im, const char *hex, struct rp_err *err)
{
	struct layout_blob *b;
	char got[RP_HEX_LEN + 1];
	uint64_t off = 0;
	size_t i;

	if (layout_blob_new(im->t, &b, err) < 0)
		return -1;
	for (;;) {
		const struct media_item *it = NULL;
		uint64_t done;
		int fd;

		for (i = 0; i < im->set->nitems && !it; i++)
			if (im->set->items[i].split && im->set->items[i].offset == off &&
			    !strcmp(im->set->items[i].hex, hex))
				it = &im->set->items[i];
		if (!it)
			break;
		if (open_avail(im, avail_at(im->a.parts, it->part_hex), &fd, err) < 0)
			goto fail;
		for (done = 0; done < it->size;) {
			ssize_t n = pread(fd, im->c.buf, COPY_BUF, (off_t)done);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0 || layout_blob_write(b, im->c.buf, (size_t)n, err) < 0) {
				if (n < 0)
					rp_errno(err, "cannot read a part of sha256:%s", hex);
				else if (n == 0)
					rp_errf(err, "a part of sha256:%s is truncated", hex);
				close(fd);
				goto fail;
			}
			done += (uint64_t)n;
		}
		close(fd);
		off += it->size;
		if (off == it->blob_size)
			break;
	}
	if (layout_blob_finish(b, got, NULL, err) < 0)
		return -1;
	if (strcmp(got, hex))
		return rp_errf(err, "blob sha256:%s joined from its parts has digest sha256:%s", hex,
			       got);
	return 0;
fail:
	layout_blob_free(b);
	return -1;
}

/* Every needed blob is there: stage them (joining parts), set the state, publish. */
static int publish(struct importer *im, struct rp_err *err)
{
	const char *hex;
	json_t *val;

	json_object_foreach(im->needed, hex, val) {
		const char *where = avail_at(im->a.whole, hex);
		char name[64];

		if (!where) {
			if (join_parts(im, hex, err) < 0)
				return -1;
			continue;
		}
		/* Files kept from earlier runs are linked into scratch first, so a failed publish
		 * leaves the import area whole. */
		if (where[0] == 'k') {
			if (layout_hold_link(im->t, where + 2, name, sizeof(name), err) < 0)
				return -1;
		} else {
			snprintf(name, sizeof(name), "%s", where + 2);
		}
		if (layout_blob_adopt(im->t, name, hex, err) < 0)
			return -1;
	}
	if (layout_set_state(im->t, im->target_text, err) < 0 ||
	    (im->stage_sig && layout_stage_signed(im->t, &im->sig, err) < 0) ||
	    layout_commit(im->t, NULL, err) < 0)
		return -1;
	/* Published: the kept files are not needed any more. */
	if (layout_hold_clear(im->t, err) < 0)
		return -1;
	im->r->published = 1;
	return 0;
}

/* Not complete yet: keep what this run verified for the next one. */
static int keep(struct importer *im, struct rp_err *err)
{
	const char *key;
	json_t *val;
	int i;

	/* A new import area (an earlier one of a published set is stale). */
	if (!im->have_kept &&
	    layout_hold_start(im->t, MEDIA_MANIFEST, im->vols[0].m.text, im->vols[0].m.len,
			      MEDIA_SNAPSHOT, im->vols[0].snapshot, im->vols[0].snapshot_len,
			      err) < 0)
		return -1;
	for (i = 0; i < 2; i++)
		json_object_foreach(i ? im->a.parts : im->a.whole, key, val) {
			const char *where = json_string_value(val);
			char rel[RP_HEX_LEN + 32];

			if (where[0] != 's')
				continue; /* kept already */
			snprintf(rel, sizeof(rel), "%s/sha256/%s", i ? "parts" : "blobs", key);
			if (layout_hold_take(im->t, where + 2, rel, err) < 0)
				return -1;
		}
	return layout_hold_seal(im->t, err);
}

void media_import_result_free(struct media_import_result *r)
{
	if (!r)
		return;
	free(r->imported);
	free(r->missing);
	memset(r, 0, sizeof(*r));
}

/* Every volume's manifest and snapshot, before the tree is touched: one set. */
static int open_volumes(struct importer *im, const char *const *paths, struct rp_err *err)
{
	size_t i;

	if (im->n == 0)
		return rp_errf(err, "no volumes");
	for (i = 0; i < im->n; i++) {
		if (volume_open(paths[i], &im->vols[i], err) < 0)
			return -1;
		if (i && strcmp(im->vols[i].m.set_id, im->vols[0].m.set_id))
			return rp_errf(err, "'%s' and '%s' belong to different volume sets (snapshots "
				       "sha256:%s and sha256:%s)", paths[0], paths[i],
				       im->vols[0].m.snapshot_id, im->vols[i].m.snapshot_id);
	}
	im->set = &im->vols[0].m;
	im->target_text = im->vols[0].snapshot;
	return 0;
}

/* The import area of an earlier run: this set's (go on), a published set's (stale), or another
 * unfinished set's (refused). */
static int open_kept(struct importer *im, const char *cur, struct rp_err *err)
{
	char *mtext = NULL, *stext = NULL, name[4096];
	size_t mlen, slen;
	int r = layout_hold_read(im->t, MEDIA_MANIFEST, VOLFILE_MAX, &mtext, &mlen, err);

	if (r != 0)
		return r < 0 ? -1 : 0;
	layout_hold_name(im->t, name, sizeof(name));
	r = layout_hold_read(im->t, MEDIA_SNAPSHOT, SNAPSHOT_MAX, &stext, &slen, err);
	if (r != 0) {
		free(mtext);
		return r < 0 ? -1 : rp_errf(err, "'%s/%s': missing", name, MEDIA_SNAPSHOT);
	}
	if (volume_from_texts(name, mtext, mlen, stext, slen, &im->kept, err) < 0)
		return rp_err_prefix(err, "the unfinished import in '%s'", im->tree);
	if (!strcmp(im->kept.m.set_id, im->set->set_id))
		im->have_kept = 1;
	else if (strcmp(cur, im->kept.m.snapshot_id))
		return rp_errf(err, "'%s' has an unfinished import of another volume set (snapshot "
			       "sha256:%s); finish it, or delete '%s' to start over", im->tree,
			       im->kept.m.snapshot_id, name);
	/* else: a set whose snapshot was published; its leftovers go */
	return 0;
}

/* What the tree lacks, which the set must carry. */
static int find_needed(struct importer *im, const char *first, struct rp_err *err)
{
	struct snapshot target;
	size_t i, j;
	int rc = -1;

	if (snapshot_parse(im->target_text, strlen(im->target_text), "snapshot", &target, err) < 0)
		return -1;
	for (i = 0; i < target.n; i++) {
		const char *hex = target.v[i].hex;

		if ((target.v[i].kind != SNAP_BLOB && target.v[i].kind != SNAP_MANIFEST) ||
		    layout_has_blob(im->t, hex))
			continue;
		for (j = 0; j < im->set->nitems && strcmp(im->set->items[j].hex, hex); j++)
			;
		if (j == im->set->nitems) {
			rp_errf(err, "'%s': the volume set does not carry sha256:%s, which '%s' "
				"lacks; nothing was changed", first, hex, im->tree);
			goto out;
		}
		json_object_set_new(im->needed, hex, json_true());
	}
	rc = 0;
out:
	snapshot_free(&target);
	return rc;
}

/* The volumes still needed: those carrying a part or blob that is not available. */
static void find_missing(struct importer *im)
{
	const char *hex;
	json_t *val;
	size_t j;

	json_object_foreach(im->needed, hex, val) {
		if (blob_ready(im->set, &im->a, hex))
			continue;
		for (j = 0; j < im->set->nitems; j++) {
			const struct media_item *it = &im->set->items[j];

			if (!strcmp(it->hex, hex) &&
			    !avail_at(it->split ? im->a.parts : im->a.whole,
				      it->split ? it->part_hex : it->hex))
				add_u32(im->r->missing, &im->r->nmissing, it->volume);
		}
	}
}

/* The tree at the set's base (or at the set's snapshot: nothing to do). */
static int check_base(struct importer *im, const char *cur, const char *first,
		      struct rp_err *err)
{
	const char *base = im->set->base_id;

	if (!base[0] || !strcmp(cur, base))
		return 0;
	if (cur[0])
		return rp_errf(err, "'%s': a delta from snapshot sha256:%s, but '%s' is at "
			       "sha256:%s; nothing was changed", first, base, im->tree, cur);
	return rp_errf(err, "'%s': a delta from snapshot sha256:%s, but '%s' has no snapshot "
		       "(import the full set first); nothing was changed", first, base, im->tree);
}

/* All volumes verified (and what is needed copied to scratch) before anything else is written. */
static int read_all(struct importer *im, struct rp_err *err)
{
	size_t i, j;

	for (i = 0; i < im->n; i++)
		for (j = 0; j < im->vols[i].m.nitems; j++)
			if (im->vols[i].m.items[j].volume == im->vols[i].m.volume)
				im->c.total += im->vols[i].m.items[j].size;
	for (i = 0; i < im->n; i++) {
		for (j = 0; j < i && im->vols[j].m.volume != im->vols[i].m.volume; j++)
			;
		if (j == i && read_volume(im, &im->vols[i], err) < 0)
			return -1;
	}
	im->r->files_copied = im->c.files_copied;
	im->r->bytes_copied = im->c.bytes_copied;
	return 0;
}

/* The set's release against the tree's: forward only (or the same release again), unless
 * allowed. Refused before anything is written. */
static int check_rollback(struct importer *im, const struct release *set, int set_has,
			  const char *first, struct rp_err *err)
{
	struct release cur;
	size_t len;
	char name[4096];
	int r = layout_signed_read(im->t, LAYOUT_RELEASE, &im->tree_release, &len, err);

	if (r != 0)
		return r < 0 ? -1 : 0; /* the tree holds no release: anything goes */
	snprintf(name, sizeof(name), "%s/registry/release", im->tree);
	if (release_parse(im->tree_release, len, name, &cur, err) < 0)
		return -1;
	if (!set_has) {
		if (im->trust && im->trust->allow_unsigned)
			return 0;
		return rp_errf(err, "'%s': a set without a signed release (snapshot sha256:%s) over "
			       "'%s', which holds release %llu (snapshot sha256:%s); nothing was "
			       "changed (--allow-unsigned imports it anyway)", first,
			       im->set->snapshot_id, im->tree, (unsigned long long)cur.number,
			       cur.snapshot);
	}
	if (set->number > cur.number || (set->number == cur.number &&
					  !strcmp(set->snapshot, cur.snapshot)))
		return 0;
	if (!im->trust || !im->trust->allow_downgrade)
		return rp_errf(err, "'%s': release %llu (snapshot sha256:%s) %s release %llu "
			       "(snapshot sha256:%s) in '%s'; nothing was changed "
			       "(--allow-downgrade imports it anyway)", first,
			       (unsigned long long)set->number, set->snapshot,
			       set->number < cur.number ? "is older than" : "is not",
			       (unsigned long long)cur.number, cur.snapshot, im->tree);
	im->r->replaced = cur.number;
	memcpy(im->r->replaced_id, cur.snapshot, sizeof(im->r->replaced_id));
	return 0;
}

/* Signatures by a trusted key, no rollback; and the signed files the tree is to get: the
 * set's, with the tree's own release when the set carries none (it stays the last release). */
static int check_trust(struct importer *im, const char *first, struct rp_err *err)
{
	const struct volume *v = &im->vols[0];
	struct release rel;
	int has_release, i;

	if (volume_trust(v, im->trust, &im->r->signed_ok, &rel, &has_release, err) < 0 ||
	    check_rollback(im, &rel, has_release, first, err) < 0)
		return -1;
	im->r->release = has_release ? rel.number : 0;
	if (!v->signed_buf[LAYOUT_SNAPSHOT_SIG])
		return 0; /* an unsigned set: the tree's release stays */
	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		im->sig.buf[i] = v->signed_buf[i];
		im->sig.len[i] = v->signed_len[i];
	}
	if (!has_release) {
		im->sig.buf[LAYOUT_RELEASE] = im->tree_release;
		im->sig.len[LAYOUT_RELEASE] = im->tree_release ? strlen(im->tree_release) : 0;
		im->sig.buf[LAYOUT_RELEASE_SIG] = NULL;
		im->sig.len[LAYOUT_RELEASE_SIG] = 0;
	}
	im->stage_sig = 1;
	return 0;
}

/* The tree is at the set's snapshot already: it only takes the signed files it lacks. */
static int already_there(struct importer *im, struct rp_err *err)
{
	int i;

	if (im->stage_sig)
		for (i = 0; i < LAYOUT_SIGNED_N; i++) {
			char *cur = NULL;
			size_t len;
			int r = layout_signed_read(im->t, (enum layout_signed)i, &cur, &len, err), same;

			if (r < 0)
				return -1;
			same = (r == 1 && !im->sig.buf[i]) ||
			       (r == 0 && im->sig.buf[i] && len == im->sig.len[i] &&
				!memcmp(cur, im->sig.buf[i], len));
			free(cur);
			if (!same) {
				if (layout_put_signed(im->t, &im->sig, err) < 0)
					return -1;
				im->r->signatures_added = 1;
				break;
			}
		}
	/* leftovers of an import that published */
	return im->kept.path ? layout_hold_clear(im->t, err) : 0;
}

static int import_dirs(const char *tree, const char *const *paths, size_t n,
		       const struct media_trust *trust, media_progress_fn progress, void *ctx,
		       struct media_import_result *r, struct rp_err *err)
{
	struct importer im;
	const char *cur;
	size_t i;
	int rc = -1;

	memset(&im, 0, sizeof(im));
	im.kept.dir.fd = -1;
	im.tree = tree;
	im.trust = trust;
	im.r = r;
	im.n = n;
	im.vols = calloc(n ? n : 1, sizeof(*im.vols));
	im.needed = json_object();
	im.a.whole = json_object();
	im.a.parts = json_object();
	if (copier_init(&im.c, progress, ctx, err) < 0)
		goto out;
	if (!im.vols || !im.needed || !im.a.whole || !im.a.parts) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		im.vols[i].dir.fd = -1;
	if (open_volumes(&im, paths, err) < 0)
		goto out;
	r->nvolumes = im.set->nvolumes;
	memcpy(r->snapshot_id, im.set->snapshot_id, sizeof(r->snapshot_id));
	memcpy(r->base_id, im.set->base_id, sizeof(r->base_id));
	r->imported = calloc(n, sizeof(*r->imported));
	r->missing = calloc(im.set->nvolumes, sizeof(*r->missing));
	if (!r->imported || !r->missing) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		add_u32(r->imported, &r->nimported, im.vols[i].m.volume);
	if (layout_open(tree, LAYOUT_WRITE, &im.t, err) < 0)
		goto out;
	cur = layout_snapshot_id(im.t);
	if (check_trust(&im, paths[0], err) < 0 || open_kept(&im, cur, err) < 0)
		goto out;
	if (!strcmp(cur, im.set->snapshot_id)) {
		r->already = 1;
		rc = already_there(&im, err);
		goto out;
	}
	if (check_base(&im, cur, paths[0], err) < 0 || find_needed(&im, paths[0], err) < 0)
		goto out;
	if (im.have_kept)
		scan_kept(&im);
	if (read_all(&im, err) < 0)
		goto out;
	find_missing(&im);
	rc = r->nmissing == 0 ? publish(&im, err) : keep(&im, err);
out:
	layout_close(im.t);
	for (i = 0; im.vols && i < n; i++)
		volume_free(&im.vols[i]);
	free(im.vols);
	volume_free(&im.kept);
	json_decref(im.needed);
	json_decref(im.a.whole);
	json_decref(im.a.parts);
	free(im.tree_release);
	copier_free(&im.c);
	if (rc < 0)
		media_import_result_free(r);
	return rc;
}

/* One progress over the two passes of an import of ISO images: extracting the images, then
 * verifying (and copying) what was extracted. Each pass counts from 0 to its own total, so the
 * line would run to 100% and start again; here the extraction is the first part of one total,
 * and the verification, whose total is known only once the extracted manifests are read, is
 * taken to be about as large as the extraction until then. */
struct span {
	media_progress_fn fn;
	void *ctx;
	uint64_t extracted; /* the images' bytes, all extracted once the second pass runs */
};

static void span_extract(void *ctx, uint64_t done, uint64_t total)
{
	struct span *s = ctx;

	s->extracted = total;
	s->fn(s->ctx, done, 2 * total);
}

static void span_verify(void *ctx, uint64_t done, uint64_t total)
{
	struct span *s = ctx;

	s->fn(s->ctx, s->extracted + done, s->extracted + total);
}

int media_import(const char *tree, const char *const *paths, size_t n,
		 const struct media_trust *trust, media_progress_fn progress, void *ctx,
		 struct media_import_result *r, struct rp_err *err)
{
	struct span span = { progress, ctx, 0 };
	struct volume_dirs vd;
	int rc;

	memset(r, 0, sizeof(*r));
	if (volume_dirs_open(paths, n, progress ? span_extract : NULL, &span, &vd, err) < 0)
		return -1;
	rc = import_dirs(tree, vd.dirs, n, trust, progress ? span_verify : NULL, &span, r, err);
	if (rc < 0)
		volume_dirs_err(&vd, paths, err);
	volume_dirs_free(&vd);
	return rc;
}
