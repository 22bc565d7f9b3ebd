/* Reading a volume: its manifest and snapshot, its items, and checking it on its own. Every file
 * of a volume is opened beneath the volume's directory without following a symlink and only as a
 * regular file (fsat.h): a volume on a disc is an input from elsewhere. */
#include "media_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "copy.h"
#include "snapshot.h"

char *media_path2(const char *a, const char *b)
{
	char *p = NULL;

	return asprintf(&p, "%s/%s", a, b) < 0 ? NULL : p;
}

void volume_free(struct volume *v)
{
	int i;

	free(v->path);
	fsat_close(&v->dir);
	volfile_free(&v->m);
	free(v->snapshot);
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		free(v->signed_buf[i]);
	memset(v, 0, sizeof(*v));
	v->dir.fd = -1;
}

int volume_from_texts(const char *name, char *manifest, size_t mlen, char *snapshot,
		      size_t slen, struct volume *v, struct rp_err *err)
{
	char mname[4096], sname[4096], hex[RP_HEX_LEN + 1];
	struct snapshot s;

	snprintf(mname, sizeof(mname), "%s/%s", name, MEDIA_MANIFEST);
	snprintf(sname, sizeof(sname), "%s/%s", name, MEDIA_SNAPSHOT);
	v->snapshot = snapshot;
	v->snapshot_len = slen;
	if (!v->path && !(v->path = strdup(name))) {
		free(manifest);
		return rp_errf(err, "out of memory");
	}
	if (volfile_parse(manifest, mlen, mname, &v->m, err) < 0)
		return -1;
	rp_sha256_buf(v->snapshot, v->snapshot_len, hex);
	if (v->snapshot_len != v->m.snapshot_len || strcmp(hex, v->m.snapshot_id))
		return rp_errf(err, "'%s': damaged (content has digest sha256:%s, the volume "
			       "manifest says sha256:%s)", sname, hex, v->m.snapshot_id);
	if (snapshot_parse(v->snapshot, v->snapshot_len, sname, &s, err) < 0)
		return -1;
	snapshot_free(&s);
	return 0;
}

/* The signed files the manifest lists, each of its recorded size and digest. */
static int read_signed(struct volume *v, struct rp_err *err)
{
	int i;

	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		const struct volfile_signed *f = &v->m.files[i];
		const char *rel = layout_signed_name((enum layout_signed)i);
		char name[4096], hex[RP_HEX_LEN + 1];
		int r;

		if (!f->present)
			continue;
		fsat_name(&v->dir, rel, name, sizeof(name));
		r = fsat_read(&v->dir, rel, LAYOUT_SIGNED_MAX, &v->signed_buf[i], &v->signed_len[i],
			      err);
		if (r == 1)
			return rp_errf(err, "'%s': missing (the volume manifest lists it)", name);
		if (r < 0)
			return -1;
		rp_sha256_buf(v->signed_buf[i], v->signed_len[i], hex);
		if (v->signed_len[i] != f->size || strcmp(hex, f->hex))
			return rp_errf(err, "'%s': damaged (content has digest sha256:%s, the volume "
				       "manifest says sha256:%s)", name, hex, f->hex);
	}
	return 0;
}

int volume_open(const char *path, struct volume *v, struct rp_err *err)
{
	char *mtext = NULL, *stext = NULL, name[4096];
	size_t mlen = 0, slen = 0;
	struct stat st;
	int r;

	memset(v, 0, sizeof(*v));
	v->dir.fd = -1;
	if (stat(path, &st) < 0)
		return rp_errno(err, "'%s'", path);
	if (!S_ISDIR(st.st_mode))
		return rp_errf(err, "'%s': not a volume directory or ISO image", path);
	if (fsat_open_root(path, 0, &v->dir, err) < 0)
		goto fail;
	v->path = strdup(path);
	if (!v->path) {
		rp_errf(err, "out of memory");
		goto fail;
	}
	r = fsat_read(&v->dir, MEDIA_MANIFEST, VOLFILE_MAX, &mtext, &mlen, err);
	if (r == 1)
		rp_errf(err, "'%s': not a regpress volume (no %s)", path, MEDIA_MANIFEST);
	if (r != 0)
		goto fail;
	r = fsat_read(&v->dir, MEDIA_SNAPSHOT, SNAPSHOT_MAX, &stext, &slen, err);
	if (r == 1)
		rp_errf(err, "'%s': missing", fsat_name(&v->dir, MEDIA_SNAPSHOT, name, sizeof(name)));
	if (r != 0) {
		free(mtext);
		goto fail;
	}
	if (volume_from_texts(path, mtext, mlen, stext, slen, v, err) < 0 || read_signed(v, err) < 0)
		goto fail;
	return 0;
fail:
	volume_free(v);
	return -1;
}

void volume_info(const struct volume *v, struct media_volume_info *info)
{
	size_t i;

	memset(info, 0, sizeof(*info));
	info->volume = v->m.volume;
	info->nvolumes = v->m.nvolumes;
	memcpy(info->snapshot_id, v->m.snapshot_id, sizeof(info->snapshot_id));
	memcpy(info->base_id, v->m.base_id, sizeof(info->base_id));
	memcpy(info->set_id, v->m.set_id, sizeof(info->set_id));
	for (i = 0; i < v->m.nitems; i++)
		if (v->m.items[i].volume == v->m.volume) {
			info->files++;
			info->bytes += v->m.items[i].size;
		}
}

int volume_open_item(const struct volume *v, const struct media_item *it, int *fd, char *name,
		     size_t namesz, struct rp_err *err)
{
	char rel[RP_HEX_LEN + 32];
	int r;

	volfile_item_rel(it, rel, sizeof(rel));
	fsat_name(&v->dir, rel, name, namesz);
	r = fsat_open_file(&v->dir, rel, fd, NULL, err);
	if (r == 1)
		return rp_errf(err, "'%s': missing", name);
	if (r < 0)
		return -1;
	if (copy_size_is(*fd, name, it->size, "the volume manifest", err) < 0) {
		close(*fd);
		*fd = -1;
		return -1;
	}
	return 0;
}

/* ---- checking a volume on its own ---- */

struct strays {
	json_t *allowed;
	const struct fsat_dir *dir;
};

/* The files a volume may hold: its manifest, snapshot, the directories and its items. */
static int stray_one(void *ctx, const char *rel, const struct stat *st, struct rp_err *err)
{
	struct strays *s = ctx;
	char name[4096];

	if (S_ISDIR(st->st_mode) && (!strcmp(rel, "blobs") || !strcmp(rel, "parts") ||
				     !strcmp(rel, "blobs/sha256") || !strcmp(rel, "parts/sha256")))
		return 0;
	if (S_ISREG(st->st_mode) && json_object_get(s->allowed, rel))
		return 0;
	return rp_errf(err, "'%s': not part of the volume (not in its manifest)",
		       fsat_name(s->dir, rel, name, sizeof(name)));
}

static int check_dir(const char *voldir, const struct media_trust *trust,
		     media_progress_fn progress, void *ctx, struct media_volume_info *info,
		     struct rp_err *err)
{
	struct release release;
	int has_release;
	struct volume v;
	struct copier c;
	struct strays s = { json_object(), NULL };
	size_t i;
	int rc = -1;

	if (volume_open(voldir, &v, err) < 0) {
		json_decref(s.allowed);
		return -1;
	}
	s.dir = &v.dir;
	volume_info(&v, info);
	if (copier_init(&c, progress, ctx, err) < 0 || !s.allowed) {
		rp_errf(err, "out of memory");
		goto out;
	}
	c.total = info->bytes;
	json_object_set_new(s.allowed, MEDIA_MANIFEST, json_true());
	json_object_set_new(s.allowed, MEDIA_SNAPSHOT, json_true());
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (v.m.files[i].present)
			json_object_set_new(s.allowed, layout_signed_name((enum layout_signed)i),
					    json_true());
	if (volume_trust(&v, trust, &info->signed_ok, &release, &has_release, err) < 0)
		goto out;
	info->release = has_release ? release.number : 0;
	for (i = 0; i < v.m.nitems; i++) {
		const struct media_item *it = &v.m.items[i];
		char rel[RP_HEX_LEN + 32], name[4096];
		int fd, r;

		if (it->volume != v.m.volume)
			continue;
		volfile_item_rel(it, rel, sizeof(rel));
		json_object_set_new(s.allowed, rel, json_true());
		if (volume_open_item(&v, it, &fd, name, sizeof(name), err) < 0)
			goto out;
		r = copy_checked(&c, fd, name, it->size, 0, it->size,
				 it->split ? it->part_hex : it->hex, -1, NULL, 0, err);
		close(fd);
		if (r < 0)
			goto out;
	}
	if (fsat_walk(&v.dir, "", stray_one, &s, err) < 0)
		goto out;
	rc = 0;
out:
	json_decref(s.allowed);
	copier_free(&c);
	volume_free(&v);
	return rc;
}

int media_check(const char *voldir, const struct media_trust *trust, media_progress_fn progress,
		void *ctx, struct media_volume_info *info, struct rp_err *err)
{
	struct volume_dirs vd;
	int rc;

	if (volume_dirs_open(&voldir, 1, progress, ctx, &vd, err) < 0)
		return -1;
	rc = check_dir(vd.dirs[0], trust, progress, ctx, info, err);
	if (rc < 0)
		volume_dirs_err(&vd, &voldir, err);
	volume_dirs_free(&vd);
	return rc;
}
