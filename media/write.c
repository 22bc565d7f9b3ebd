/* Writing a volume set: the plan, the parts' digests, each volume as a directory or an ISO
 * image. The tree is read through its handle under a shared lock, so builds, rm and gc wait until
 * the volumes are written. */
#include "media_int.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "fsutil.h"
#include "release.h"
#include "tree.h"

/* Volumes are made here (inside the output directory) and renamed into place when complete. */
#define STAGING_OUT ".regpress-media"

struct writer {
	struct layout_tree *t;
	const char *outdir;
	const struct media_opts *o;
	struct media_result *r;
	struct copier c;
	char *tmp;	/* outdir/.regpress-media */
	char *manifest; /* shared part */
	size_t manifest_len;
	const char *snapshot_text;
	size_t snapshot_len;
	/* The tree's signed files that belong to its snapshot, carried on every volume. */
	char *signed_buf[LAYOUT_SIGNED_N];
	size_t signed_len[LAYOUT_SIGNED_N];
	struct volfile_signed files[LAYOUT_SIGNED_N];
	int width;
};

/* What a signed tree gives every volume: snapshot.sig, and the release with its signature when
 * that release is of this snapshot (a release left from before a change is not carried). */
static int read_signed(struct writer *w, struct rp_err *err)
{
	struct release rel;
	int i;

	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		char *buf = NULL;
		size_t len;
		int r = layout_signed_read(w->t, (enum layout_signed)i, &buf, &len, err);

		if (r < 0)
			return -1;
		w->signed_buf[i] = r == 0 ? buf : NULL;
		w->signed_len[i] = r == 0 ? len : 0;
	}
	if (!w->signed_buf[LAYOUT_RELEASE_SIG] || !w->signed_buf[LAYOUT_RELEASE] ||
	    release_parse(w->signed_buf[LAYOUT_RELEASE], w->signed_len[LAYOUT_RELEASE], "release",
			  &rel, NULL) < 0 || strcmp(rel.snapshot, layout_snapshot_id(w->t)))
		for (i = LAYOUT_RELEASE; i <= LAYOUT_RELEASE_SIG; i++) {
			free(w->signed_buf[i]);
			w->signed_buf[i] = NULL;
		}
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (w->signed_buf[i]) {
			w->files[i].present = 1;
			w->files[i].size = w->signed_len[i];
			rp_sha256_buf(w->signed_buf[i], w->signed_len[i], w->files[i].hex);
		}
	return 0;
}

/* What every volume carries besides blobs and the manifest. */
static uint64_t each_volume_cost(const struct writer *w)
{
	uint64_t c = media_file_cost(w->snapshot_len);
	int i;

	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (w->signed_buf[i])
			c += media_file_cost(w->signed_len[i]);
	return c;
}

/* Open blob hex of the tree, checking it is as large as the snapshot says; name for messages. */
static int open_blob(struct writer *w, const char *hex, uint64_t size, int *fd, char *name,
		     size_t namesz, struct rp_err *err)
{
	int r;

	snprintf(name, namesz, "%s/blobs/sha256/%s", layout_path(w->t), hex);
	r = layout_blob_open(w->t, hex, fd, NULL, err);
	if (r == 1)
		return rp_errf(err, "'%s': missing", name);
	if (r < 0)
		return -1;
	if (copy_size_is(*fd, name, size, "the snapshot", err) < 0) {
		close(*fd);
		return -1;
	}
	return 0;
}

/* The item of the plan that is blob hex's part at off, or NULL. */
static struct media_item *part_at(struct media_plan *p, const char *hex, uint64_t off)
{
	size_t j;

	for (j = 0; j < p->nitems; j++)
		if (p->items[j].split && p->items[j].offset == off && !strcmp(p->items[j].hex, hex))
			return &p->items[j];
	return NULL;
}

/* Hash the parts of one split blob, checking the blob's own digest on the way. */
static int hash_blob_parts(struct writer *w, const struct media_item *first, struct rp_err *err)
{
	struct rp_sha256 whole;
	char name[4096], got[RP_HEX_LEN + 1];
	uint64_t off;
	int fd, rc = 0;

	if (open_blob(w, first->hex, first->blob_size, &fd, name, sizeof(name), err) < 0)
		return -1;
	if (rp_sha256_init(&whole) < 0) {
		close(fd);
		return rp_errf(err, "out of memory");
	}
	/* Parts of one blob: the same digest, offsets in any order in the plan. */
	for (off = 0; rc == 0 && off < first->blob_size;) {
		struct media_item *it = part_at(&w->r->plan, first->hex, off);
		struct rp_sha256 h;

		if (!it || rp_sha256_init(&h) < 0) {
			rc = rp_errf(err, "out of memory");
			break;
		}
		rc = copy_range(&w->c, fd, name, off, it->size, -1, NULL, &h, &whole, err);
		if (rc == 0)
			rp_sha256_final(&h, it->part_hex);
		else
			rp_sha256_free(&h);
		off += it->size;
	}
	close(fd);
	if (rc < 0) {
		rp_sha256_free(&whole);
		return -1;
	}
	rp_sha256_final(&whole, got);
	if (strcmp(got, first->hex))
		return rp_errf(err, "'%s': content has digest sha256:%s, not its name", name, got);
	return 0;
}

/* Hash every part of every split blob: the manifests list their digests. */
static int hash_parts(struct writer *w, struct rp_err *err)
{
	struct media_plan *p = &w->r->plan;
	size_t i;

	for (i = 0; i < p->nitems; i++)
		if (p->items[i].split && p->items[i].offset == 0 &&
		    hash_blob_parts(w, &p->items[i], err) < 0)
			return -1;
	return 0;
}

static char *volume_name(const struct writer *w, uint32_t v, const char *suffix)
{
	char *s = NULL;

	return asprintf(&s, "volume-%0*" PRIu32 "%s", w->width, v, suffix) < 0 ? NULL : s;
}

/* Copy one item of the tree into the volume directory vdir. */
static int copy_item(struct writer *w, const char *vdir, const struct media_item *it,
		     struct rp_err *err)
{
	char rel[RP_HEX_LEN + 32], name[4096], *dst;
	int in, out, rc = -1;

	volfile_item_rel(it, rel, sizeof(rel));
	if (!(dst = media_path2(vdir, rel)))
		return rp_errf(err, "out of memory");
	if (open_blob(w, it->hex, it->blob_size, &in, name, sizeof(name), err) < 0) {
		free(dst);
		return -1;
	}
	rp_crash_point();
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, RP_FILE_MODE);
	if (out < 0) {
		rp_errno(err, "cannot create '%s'", dst);
	} else {
		rc = copy_checked(&w->c, in, name, it->blob_size, it->offset, it->size,
				  it->split ? it->part_hex : it->hex, out, dst, 0, err);
		if (close(out) < 0 && rc == 0)
			rc = rp_errno(err, "cannot write '%s'", dst);
		if (rc < 0)
			unlink(dst);
	}
	close(in);
	free(dst);
	return rc;
}

/* The manifest of volume v (the shared part, then its number and the set id) and the snapshot. */
static int write_metadata(struct writer *w, uint32_t v, const char *vdir, struct rp_err *err)
{
	char *tail = NULL, *m = NULL, *mpath = media_path2(vdir, MEDIA_MANIFEST);
	char *spath = media_path2(vdir, MEDIA_SNAPSHOT);
	size_t tl;
	int rc = -1, i;

	if (!mpath || !spath ||
	    asprintf(&tail, "volume %" PRIu32 "\nset sha256:%s\n", v, w->r->set_id) < 0) {
		tail = NULL;
		rp_errf(err, "out of memory");
		goto out;
	}
	tl = strlen(tail);
	if (!(m = malloc(w->manifest_len + tl))) {
		rp_errf(err, "out of memory");
		goto out;
	}
	memcpy(m, w->manifest, w->manifest_len);
	memcpy(m + w->manifest_len, tail, tl);
	if (rp_write_new(mpath, m, w->manifest_len + tl, err) < 0 ||
	    rp_write_new(spath, w->snapshot_text, w->snapshot_len, err) < 0)
		goto out;
	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		char *path = w->signed_buf[i]
				     ? media_path2(vdir, layout_signed_name((enum layout_signed)i))
				     : NULL;

		if (w->signed_buf[i] && (!path || rp_write_new(path, w->signed_buf[i],
							      w->signed_len[i], err) < 0)) {
			if (!path)
				rp_errf(err, "out of memory");
			free(path);
			goto out;
		}
		free(path);
	}
	rc = 0;
out:
	free(m);
	free(tail);
	free(mpath);
	free(spath);
	return rc;
}

/* The ISO image of the finished volume directory vdir, renamed to final. */
static int write_iso(struct writer *w, uint32_t v, const char *vdir, const char *final,
		     struct rp_err *err)
{
	char volid[40], *iso = NULL, *log = NULL;
	struct stat st;
	size_t i;
	int fd, rc = -1;

	/* d-characters only, at most 32: REGPRESS_<set id>_<volume> */
	snprintf(volid, sizeof(volid), "REGPRESS_%.8s_%0*" PRIu32, w->r->set_id, w->width, v);
	for (i = 0; volid[i]; i++)
		volid[i] = (char)toupper((unsigned char)volid[i]);
	if (asprintf(&iso, "%s.iso", vdir) < 0 || asprintf(&log, "%s.log", vdir) < 0) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (media_make_iso(vdir, iso, final, volid, log, err) < 0)
		goto out;
	fd = open(iso, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		rp_errno(err, "cannot read '%s'", iso);
		goto out;
	}
	if (rp_fix_file(fd, iso, err) < 0) {
		close(fd);
		goto out;
	}
	close(fd);
	if ((uint64_t)st.st_size > w->r->plan.capacity) {
		rp_errf(err, "'%s': the image is %lld bytes, more than the medium's %" PRIu64
			" (the ISO overhead estimate in media/media.h is too small)", iso,
			(long long)st.st_size, w->r->plan.capacity);
		goto out;
	}
	if (rename(iso, final) < 0) {
		rp_errno(err, "cannot rename '%s' to '%s'", iso, final);
		goto out;
	}
	rc = rp_rmtree(vdir, err);
out:
	if (log)
		unlink(log);
	free(iso);
	free(log);
	return rc;
}

static int write_volume(struct writer *w, uint32_t v, const char *final, struct rp_err *err)
{
	struct media_plan *p = &w->r->plan;
	char *name = volume_name(w, v, ""), *vdir = name ? media_path2(w->tmp, name) : NULL;
	size_t i;
	int rc = -1, made[2] = { 0, 0 };

	if (!vdir) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (rp_mkdirs(vdir, err) < 0)
		goto out;
	for (i = 0; i < p->nitems; i++) {
		const struct media_item *it = &p->items[i];

		if (it->volume != v)
			continue;
		if (!made[it->split]) {
			char *dir = media_path2(vdir, it->split ? "parts/sha256" : "blobs/sha256");
			int r = dir ? rp_mkdirs(dir, err) : rp_errf(err, "out of memory");

			free(dir);
			if (r < 0)
				goto out;
			made[it->split] = 1;
		}
		if (copy_item(w, vdir, it, err) < 0)
			goto out;
	}
	if (write_metadata(w, v, vdir, err) < 0 || rp_fix_dir_mtimes(vdir, err) < 0)
		goto out;
	if (w->o->iso)
		rc = write_iso(w, v, vdir, final, err);
	else if (rename(vdir, final) < 0)
		rp_errno(err, "cannot rename '%s' to '%s'", vdir, final);
	else
		rc = 0;
out:
	free(name);
	free(vdir);
	return rc;
}

void media_result_free(struct media_result *r)
{
	uint32_t i;

	if (!r)
		return;
	if (r->paths)
		for (i = 0; i < r->plan.nvolumes; i++)
			free(r->paths[i]);
	free(r->paths);
	free(r->files);
	media_plan_free(&r->plan);
	memset(r, 0, sizeof(*r));
}

/* The blobs the set carries: every blob of the snapshot, or with --since what OLD lacks. */
static int plan_set(struct writer *w, struct rp_err *err)
{
	const struct snapshot *s = layout_snapshot(w->t);
	struct snapshot old = { NULL, 0, "" };
	struct snapshot_diff d;
	struct media_blob *blobs = NULL;
	size_t i;
	int rc = -1;

	memcpy(w->r->snapshot_id, s->id, sizeof(s->id));
	if (w->o->since) {
		if (layout_snapshot_load(w->o->since, &old, NULL, err) < 0)
			return -1;
		memcpy(w->r->base_id, old.id, sizeof(old.id));
	}
	if (snapshot_diff(&old, s, &d, err) < 0)
		goto out;
	blobs = calloc(d.nblobs_added + 1, sizeof(*blobs));
	if (!blobs) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < d.nblobs_added; i++) {
		memcpy(blobs[i].hex, d.blobs_added[i].hex, sizeof(blobs[i].hex));
		blobs[i].size = d.blobs_added[i].size;
	}
	rc = media_plan_make(blobs, d.nblobs_added, w->o->capacity, each_volume_cost(w),
			     &w->r->plan, err);
out:
	free(blobs);
	snapshot_diff_free(&d);
	snapshot_free(&old);
	return rc;
}

/* The final name of every volume to write; nothing is ever replaced: each is checked first. */
static char **final_names(struct writer *w, struct rp_err *err)
{
	struct media_result *r = w->r;
	char **finals = calloc(r->plan.nvolumes, sizeof(*finals));
	uint32_t v;

	if (!finals) {
		rp_errf(err, "out of memory");
		return NULL;
	}
	for (v = 1; v <= r->plan.nvolumes; v++) {
		char *name;
		struct stat st;

		if (w->o->only && v != w->o->only)
			continue;
		name = volume_name(w, v, w->o->iso ? ".iso" : "");
		finals[v - 1] = name ? media_path2(w->outdir, name) : NULL;
		free(name);
		if (!finals[v - 1]) {
			rp_errf(err, "out of memory");
			goto fail;
		}
		if (lstat(finals[v - 1], &st) == 0) {
			rp_errf(err, "'%s' exists: regpress does not replace files (use another -o)",
				finals[v - 1]);
			goto fail;
		}
	}
	return finals;
fail:
	for (v = 0; v < r->plan.nvolumes; v++)
		free(finals[v]);
	free(finals);
	return NULL;
}

/* After the plan: how many files each volume holds and the bytes to read. */
static int count_work(struct writer *w, struct rp_err *err)
{
	struct media_result *r = w->r;
	uint32_t v;
	size_t i;

	if (w->o->only > r->plan.nvolumes)
		return rp_errf(err, "there is no volume %" PRIu32 ": the set has %" PRIu32,
			       w->o->only, r->plan.nvolumes);
	for (w->width = 1, v = r->plan.nvolumes; v >= 10; v /= 10)
		w->width++;
	if (w->width < 2)
		w->width = 2;
	r->paths = calloc(r->plan.nvolumes, sizeof(*r->paths));
	r->files = calloc(r->plan.nvolumes, sizeof(*r->files));
	if (!r->paths || !r->files)
		return rp_errf(err, "out of memory");
	for (i = 0; i < r->plan.nitems; i++) {
		const struct media_item *it = &r->plan.items[i];

		r->files[it->volume - 1]++;
		if (it->split && it->offset == 0)
			w->c.total += it->blob_size;
		if (!w->o->only || it->volume == w->o->only)
			w->c.total += it->size;
	}
	return 0;
}

static int write_all(struct writer *w, char **finals, struct rp_err *err)
{
	struct media_result *r = w->r;
	uint32_t v;

	if (rp_mkdirs(w->outdir, err) < 0 || !(w->tmp = media_path2(w->outdir, STAGING_OUT)) ||
	    rp_rmtree(w->tmp, err) < 0 || rp_mkdirs(w->tmp, err) < 0 || hash_parts(w, err) < 0)
		return -1;
	w->manifest = volfile_shared(r->snapshot_id, w->snapshot_len, r->base_id, r->plan.nvolumes,
				     r->plan.capacity, w->files, r->plan.items, r->plan.nitems,
				     &w->manifest_len);
	if (!w->manifest)
		return rp_errf(err, "out of memory");
	rp_sha256_buf(w->manifest, w->manifest_len, r->set_id);
	for (v = 1; v <= r->plan.nvolumes; v++) {
		if (w->o->only && v != w->o->only)
			continue;
		if (write_volume(w, v, finals[v - 1], err) < 0)
			return -1;
		r->paths[v - 1] = finals[v - 1];
		finals[v - 1] = NULL;
	}
	return 0;
}

int media_write(const char *tree, const char *outdir, const struct media_opts *o,
		struct media_result *r, struct rp_err *err)
{
	struct writer w;
	char **finals = NULL;
	struct stat st;
	uint32_t v;
	int rc = -1, created_out;

	memset(r, 0, sizeof(*r));
	memset(&w, 0, sizeof(w));
	w.outdir = outdir;
	w.o = o;
	w.r = r;
	if (copier_init(&w.c, o->progress, o->ctx, err) < 0)
		return -1;
	created_out = stat(outdir, &st) < 0 && errno == ENOENT;
	if (layout_open(tree, LAYOUT_READ, &w.t, err) < 0)
		goto out;
	w.snapshot_text = layout_snapshot_text(w.t, &w.snapshot_len);
	if (read_signed(&w, err) < 0 || plan_set(&w, err) < 0 || count_work(&w, err) < 0 || !(finals = final_names(&w, err)))
		goto out;
	rc = write_all(&w, finals, err);
out:
	if (w.tmp) {
		rp_rmtree(w.tmp, NULL);
		free(w.tmp);
		/* a directory we made holds only volumes: its time is theirs */
		if (created_out && rc == 0 && rp_set_mtime(outdir, err) < 0)
			rc = -1;
	}
	if (rc < 0 && r->paths) /* all or nothing: drop the volumes already written */
		for (v = 0; v < r->plan.nvolumes; v++)
			if (r->paths[v])
				rp_rmtree(r->paths[v], NULL);
	if (created_out && rc < 0)
		rmdir(outdir); /* only if empty: what this call made */
	if (finals)
		for (v = 0; v < r->plan.nvolumes; v++)
			free(finals[v]);
	free(finals);
	if (rc < 0)
		media_result_free(r);
	layout_close(w.t);
	free(w.manifest);
	for (v = 0; v < LAYOUT_SIGNED_N; v++)
		free(w.signed_buf[v]);
	copier_free(&w.c);
	return rc;
}
