/* The signed files of a view (tree.h, "signed releases"): registry/snapshot.sig, registry/release
 * and registry/release.sig. They are not derived from the snapshot, so verify checks them on
 * their own (and against a public key), and a commit carries them into the new view only when
 * they still hold: the release always, the signatures only when the import that publishes the
 * state brought them. */
#include "tree_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "release.h"
#include "sign.h"
#include "viewsync.h"

static const char *const signed_names[LAYOUT_SIGNED_N] = {
	[LAYOUT_SNAPSHOT_SIG] = FMT_SIGNATURE_NAME,
	[LAYOUT_RELEASE] = FMT_RELEASE_NAME,
	[LAYOUT_RELEASE_SIG] = FMT_RELEASE_SIG_NAME,
};

const char *layout_signed_name(enum layout_signed f)
{
	return signed_names[f];
}

static int read_one(const struct layout_tree *t, const char *view, enum layout_signed f,
		    char **buf, size_t *len, struct rp_err *err)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "%s/%s", view, signed_names[f]);
	return fsat_read(&t->root, rel, LAYOUT_SIGNED_MAX, buf, len, err);
}

int layout_signed_read(const struct layout_tree *t, enum layout_signed f, char **buf, size_t *len,
		       struct rp_err *err)
{
	return read_one(t, FMT_VIEW, f, buf, len, err);
}

void signed_files_free(struct layout_signed_files *s)
{
	int i;

	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		free((char *)s->buf[i]);
	memset(s, 0, sizeof(*s));
}

int signed_files_read(const struct layout_tree *t, const char *view,
		      struct layout_signed_files *s, struct rp_err *err)
{
	int i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		char *buf = NULL;
		int r = read_one(t, view, (enum layout_signed)i, &buf, &s->len[i], err);

		if (r < 0) {
			signed_files_free(s);
			return -1;
		}
		s->buf[i] = r == 0 ? buf : NULL;
	}
	return 0;
}

static int copy_files(struct layout_signed_files *dst, const struct layout_signed_files *src,
		      struct rp_err *err)
{
	int i;

	memset(dst, 0, sizeof(*dst));
	for (i = 0; i < LAYOUT_SIGNED_N; i++) {
		char *b;

		if (!src->buf[i])
			continue;
		if (!(b = malloc(src->len[i] + 1))) {
			signed_files_free(dst);
			return rp_errf(err, "out of memory");
		}
		memcpy(b, src->buf[i], src->len[i]);
		b[src->len[i]] = '\0';
		dst->buf[i] = b;
		dst->len[i] = src->len[i];
	}
	return 0;
}

int signed_files_for_commit(const struct layout_tree *t, struct layout_signed_files *s,
			    struct rp_err *err)
{
	struct layout_signed_files live;
	int i;

	if (t->stage_signed)
		return copy_files(s, t->stage_signed, err);
	memset(s, 0, sizeof(*s));
	if (!t->text)
		return 0;
	if (signed_files_read(t, FMT_VIEW, &live, err) < 0)
		return -1;
	*s = live;
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (i != LAYOUT_RELEASE) {
			free((char *)s->buf[i]);
			s->buf[i] = NULL;
			s->len[i] = 0;
		}
	return 0;
}

/* A release, if there is one, must be a release (the signatures are the caller's to check). */
static int check_release(const struct layout_signed_files *f, struct rp_err *err)
{
	struct release r;

	if (!f->buf[LAYOUT_RELEASE])
		return 0;
	return release_parse(f->buf[LAYOUT_RELEASE], f->len[LAYOUT_RELEASE], FMT_RELEASE_NAME, &r,
			     err);
}

int layout_stage_signed(struct layout_tree *t, const struct layout_signed_files *f,
			struct rp_err *err)
{
	struct layout_signed_files *s;
	int i;

	if (tree_require_writer(t, err) < 0)
		return -1;
	for (i = 0; i < LAYOUT_SIGNED_N; i++)
		if (f->buf[i] && f->len[i] > LAYOUT_SIGNED_MAX)
			return rp_errf(err, "'%s': larger than %u bytes", signed_names[i],
				       LAYOUT_SIGNED_MAX);
	if (check_release(f, err) < 0)
		return -1;
	if (!(s = calloc(1, sizeof(*s))))
		return rp_errf(err, "out of memory");
	if (copy_files(s, f, err) < 0) {
		free(s);
		return -1;
	}
	if (t->stage_signed)
		signed_files_free(t->stage_signed);
	free(t->stage_signed);
	t->stage_signed = s;
	return 0;
}

/* Make one view's file f what buf says (NULL: absent): written in the staging area and renamed,
 * so a crash leaves no partial file in a view. */
static int put_one(struct layout_tree *t, const char *view, enum layout_signed f, const char *buf,
		   size_t len, int *changed, struct rp_err *err)
{
	char rel[64], *cur = NULL;
	size_t clen;
	int r = read_one(t, view, f, &cur, &clen, err);

	if (r < 0)
		return -1;
	if (r == 0 && buf && clen == len && !memcmp(cur, buf, len)) {
		free(cur);
		return 0;
	}
	free(cur);
	if (r == 1 && !buf)
		return 0;
	*changed = 1;
	snprintf(rel, sizeof(rel), "%s/%s", view, signed_names[f]);
	if (!buf)
		return fsat_unlink(&t->root, rel, err);
	if (fsat_write_new(&t->staging, signed_names[f], buf, len, err) < 0)
		return -1;
	if (syncfs(t->root.fd) < 0)
		return rp_errno(err, "cannot sync '%s'", t->root.path);
	return fsat_rename(&t->staging, signed_names[f], &t->root, rel, err);
}

int signed_put_live(struct layout_tree *t, const struct layout_signed_files *f,
		    struct rp_err *err)
{
	/* The spare is a copy of the view, so it gets the same files. */
	static const char *const views[] = { FMT_VIEW, FMT_SPARE };
	size_t i;
	int j;
	int spare = spare_valid(t);

	if (!t->staging_open)
		return rp_errf(err, "'%s': writing signed files after a commit needs the tree opened "
			       "again", t->root.path);
	for (i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
		int changed = 0;

		if (i == 1 && !spare)
			continue;
		for (j = 0; j < LAYOUT_SIGNED_N; j++)
			if (put_one(t, views[i], (enum layout_signed)j, f->buf[j], f->len[j], &changed,
				    err) < 0)
				return -1;
		if (changed && fsat_set_mtime(&t->root, views[i], err) < 0)
			return -1;
	}
	return 0;
}

int layout_put_signed(struct layout_tree *t, const struct layout_signed_files *f,
		      struct rp_err *err)
{
	if (tree_require_writer(t, err) < 0 || check_release(f, err) < 0)
		return -1;
	return signed_put_live(t, f, err);
}

/* The release that signing the current snapshot makes: by default the tree's last release + 1,
 * or the same number when that release is of this snapshot (signing again, with another key or
 * after a crash); never below the last one. */
static int next_release(const struct layout_tree *t, uint64_t number, time_t when,
			struct release *out, struct rp_err *err)
{
	char *buf = NULL;
	size_t len;
	struct release prev;
	struct tm tm;
	int r = layout_signed_read(t, LAYOUT_RELEASE, &buf, &len, err), have = 0, same = 0;

	memset(out, 0, sizeof(*out));
	if (r < 0)
		return -1;
	if (r == 0) {
		char name[4096];

		fsat_name(&t->root, FMT_VIEW "/" FMT_RELEASE_NAME, name, sizeof(name));
		r = release_parse(buf, len, name, &prev, err);
		free(buf);
		/* A damaged release says nothing about the last number: only a given one replaces it. */
		if (r < 0 && !number)
			return rp_errf(err, "'%s': not a regpress release; give the number of this one "
				       "(--release N)", name);
		have = r == 0;
		same = have && !strcmp(prev.snapshot, t->snap.id);
	}
	out->number = number ? number : !have ? 1 : same ? prev.number : prev.number + 1;
	if (have && (out->number < prev.number || (out->number == prev.number && !same)))
		return rp_errf(err, "'%s': release %llu would not follow release %llu (snapshot "
			       "sha256:%s): an enclave at that release refuses it", t->root.path,
			       (unsigned long long)out->number, (unsigned long long)prev.number,
			       prev.snapshot);
	memcpy(out->snapshot, t->snap.id, sizeof(out->snapshot));
	if (have)
		memcpy(out->follows, same ? prev.follows : prev.snapshot, sizeof(out->follows));
	gmtime_r(&when, &tm);
	strftime(out->date, sizeof(out->date), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return 0;
}

int layout_sign(struct layout_tree *t, const char *seckey, const char *passphrase,
		uint64_t number, time_t when, struct release *out, struct rp_err *err)
{
	struct layout_signed_files f;
	char *snap_sig = NULL, *rel_text = NULL, *rel_sig = NULL;
	size_t rel_len;
	int rc = -1;

	if (tree_require_writer(t, err) < 0)
		return -1;
	if (!t->text)
		return rp_errf(err, "'%s': not a regpress tree (nothing to sign)", t->root.path);
	if (next_release(t, number, when, out, err) < 0)
		return -1;
	if (!(rel_text = release_text(out, &rel_len))) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (sign_message_pass(seckey, passphrase, t->text, t->text_len, &snap_sig, err) < 0 ||
	    sign_message_pass(seckey, passphrase, rel_text, rel_len, &rel_sig, err) < 0)
		goto out;
	f.buf[LAYOUT_SNAPSHOT_SIG] = snap_sig;
	f.len[LAYOUT_SNAPSHOT_SIG] = strlen(snap_sig);
	f.buf[LAYOUT_RELEASE] = rel_text;
	f.len[LAYOUT_RELEASE] = rel_len;
	f.buf[LAYOUT_RELEASE_SIG] = rel_sig;
	f.len[LAYOUT_RELEASE_SIG] = strlen(rel_sig);
	rc = signed_put_live(t, &f, err);
out:
	free(snap_sig);
	free(rel_text);
	free(rel_sig);
	return rc;
}
