/* Unit tests of signed releases (layout/release.c, layout/signed.c): the release file's one
 * canonical form, release numbers when signing, and what a commit does with the signed files:
 * a change drops the signatures and keeps the release, an import's staged files are published
 * with its state, in registry/ and in the spare alike, and verify sees all of it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "fsutil.h"
#include "release.h"
#include "sign.h"
#include "tree.h"
#include "unit.h"
#include "verify.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

struct fx {
	char dir[64], tree[96], sec[96], pub[96], sec2[96], pub2[96];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct rp_err err = { "" };

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-release-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->tree, sizeof(f->tree), "%s/tree", f->dir);
	snprintf(f->sec, sizeof(f->sec), "%s/k.sec", f->dir);
	snprintf(f->pub, sizeof(f->pub), "%s/k.pub", f->dir);
	snprintf(f->sec2, sizeof(f->sec2), "%s/o.sec", f->dir);
	snprintf(f->pub2, sizeof(f->pub2), "%s/o.pub", f->dir);
	if (sign_keygen(f->sec, f->pub, &err) < 0 || sign_keygen(f->sec2, f->pub2, &err) < 0)
		return -1;
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct rp_err err;

	rp_rmtree(f->dir, &err);
	free(f);
	return 0;
}

/* ---- the release file ---- */

static void test_release_text_roundtrip(void **state)
{
	struct release r = { 7, HEX_A, HEX_B, "2026-12-01T10:00:00Z" }, back;
	struct rp_err err = { "" };
	size_t len;
	char *text = release_text(&r, &len);

	(void)state;
	assert_string_equal(text, "regpress-release 1\nrelease 7\nsnapshot sha256:" HEX_A
			    "\nfollows sha256:" HEX_B "\ndate 2026-12-01T10:00:00Z\n");
	assert_int_equal(release_parse(text, len, "r", &back, &err), 0);
	assert_true(back.number == 7);
	assert_string_equal(back.snapshot, HEX_A);
	assert_string_equal(back.follows, HEX_B);
	free(text);
	r.follows[0] = '\0';
	text = release_text(&r, &len);
	assert_non_null(strstr(text, "\nfollows none\n"));
	assert_int_equal(release_parse(text, len, "r", &back, &err), 0);
	assert_string_equal(back.follows, "");
	free(text);
}

static void test_release_not_canonical(void **state)
{
	static const char *const bad[] = {
		"",
		"regpress-release 2\nrelease 1\nsnapshot sha256:" HEX_A "\nfollows none\ndate d\n",
		"regpress-release 1\nrelease 0\nsnapshot sha256:" HEX_A "\nfollows none\ndate d\n",
		"regpress-release 1\nrelease 01\nsnapshot sha256:" HEX_A "\nfollows none\ndate d\n",
		"regpress-release 1\nrelease 1\nsnapshot sha256:" HEX_A "\nfollows none\ndate d",
		"regpress-release 1\nrelease 1\nsnapshot sha256:" HEX_A "\nfollows none\ndate d\nx\n",
		"regpress-release 1\nrelease  1\nsnapshot sha256:" HEX_A "\nfollows none\ndate d\n",
		"regpress-release 1\nrelease 1\nsnapshot sha256:AAAA\nfollows none\ndate d\n",
		"regpress-release 1\nrelease 1\nsnapshot sha256:" HEX_A "\nfollows sha256:x\ndate d\n",
		"regpress-release 1\nrelease 99999999999999999999\nsnapshot sha256:" HEX_A
		"\nfollows none\ndate d\n",
		"regpress-release 1\r\nrelease 1\nsnapshot sha256:" HEX_A "\nfollows none\ndate d\n",
	};
	struct release r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct rp_err err = { "" };

		if (release_parse(bad[i], strlen(bad[i]), "REL", &r, &err) == 0)
			fail_msg("accepted case %zu", i);
		assert_string_equal(err.msg, "'REL': not a regpress release (version 1)");
	}
}

/* ---- trees ---- */

/* Commit a tree whose one repository "r" has tag tag on a manifest whose config says what. */
static void commit_image(const char *tree, const char *tag, const char *what)
{
	struct layout_tree *t = NULL;
	char cfg[RP_HEX_LEN + 1], m[RP_HEX_LEN + 1], *mj = NULL;
	char body[128];

	snprintf(body, sizeof(body), "{\"os\":\"linux\",\"architecture\":\"%s\"}", what);
	OK(layout_open(tree, LAYOUT_WRITE, &t, E_));
	OK(layout_put_blob(t, body, strlen(body), cfg, E_));
	assert_true(asprintf(&mj, "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image."
			     "manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci."
			     "image.config.v1+json\",\"size\":%zu,\"digest\":\"sha256:%s\"},"
			     "\"layers\":[]}", strlen(body), cfg) > 0);
	OK(layout_put_blob(t, mj, strlen(mj), m, E_));
	OK(layout_add_blob(t, "r", cfg, strlen(body), "application/vnd.oci.image.config.v1+json",
			   E_));
	OK(layout_add_manifest(t, "r", m, strlen(mj), "application/vnd.oci.image.manifest.v1+json",
			       E_));
	OK(layout_set_tag(t, "r", tag, m, E_));
	OK(layout_commit(t, NULL, E_));
	layout_close(t);
	free(mj);
}

static uint64_t sign_tree(const char *tree, const char *sec, uint64_t number, int want_rc,
			  const char *want_err)
{
	struct layout_tree *t = NULL;
	struct release r;
	struct rp_err err = { "" };
	int rc;

	OK(layout_open(tree, LAYOUT_WRITE, &t, E_));
	rc = layout_sign(t, sec, NULL, number, 1700000000, &r, &err);
	layout_close(t);
	assert_int_equal(rc, want_rc);
	if (want_err)
		assert_non_null(strstr(err.msg, want_err));
	return rc == 0 ? r.number : 0;
}

static char *file_in(const char *tree, const char *rel)
{
	char path[512], *buf = NULL;
	size_t len;
	struct rp_err err;

	snprintf(path, sizeof(path), "%s/%s", tree, rel);
	return rp_read_file(path, 1 << 20, &buf, &len, &err) == 0 ? buf : NULL;
}

static int has(const char *tree, const char *rel)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tree, rel);
	return lstat(path, &st) == 0;
}

static struct release release_of(const char *tree)
{
	struct release r;
	struct rp_err err = { "" };
	char *text = file_in(tree, "registry/release");

	assert_non_null(text);
	if (release_parse(text, strlen(text), "release", &r, &err) < 0)
		fail_msg("%s", err.msg);
	free(text);
	return r;
}

static char *snapshot_id(const char *tree)
{
	struct layout_tree *t = NULL;
	char *id;

	OK(layout_open(tree, LAYOUT_READ, &t, E_));
	id = strdup(layout_snapshot_id(t));
	layout_close(t);
	return id;
}

static struct verify_result verify_with(const char *tree, const char *pub)
{
	struct verify_opts o = { 0, pub, NULL, NULL, NULL };
	struct verify_result res;

	OK(layout_verify(tree, &o, &res, E_));
	return res;
}

/* The spare view, when complete, has the same signed files as registry/. */
static void same_in_spare(const char *tree)
{
	static const char *const names[] = { "snapshot.sig", "release", "release.sig" };
	size_t i;

	for (i = 0; i < 3; i++) {
		char a[64], b[64], *x, *y;

		snprintf(a, sizeof(a), "registry/%s", names[i]);
		snprintf(b, sizeof(b), ".regpress-spare/%s", names[i]);
		x = file_in(tree, a);
		y = file_in(tree, b);
		if (!x != !y || (x && strcmp(x, y)))
			fail_msg("%s and %s differ", a, b);
		free(x);
		free(y);
	}
}

static void test_release_numbers(void **state)
{
	struct fx *f = *state;
	struct release r;
	char *id1, *id2;

	commit_image(f->tree, "1", "amd64");
	id1 = snapshot_id(f->tree);
	assert_true(sign_tree(f->tree, f->sec, 0, 0, NULL) == 1);
	r = release_of(f->tree);
	assert_string_equal(r.snapshot, id1);
	assert_string_equal(r.follows, "");
	assert_string_equal(r.date, "2023-11-14T22:13:20Z");
	/* Signing the same snapshot again keeps its number. */
	assert_true(sign_tree(f->tree, f->sec2, 0, 0, NULL) == 1);
	commit_image(f->tree, "2", "arm64");
	id2 = snapshot_id(f->tree);
	assert_true(sign_tree(f->tree, f->sec, 0, 0, NULL) == 2);
	r = release_of(f->tree);
	assert_string_equal(r.snapshot, id2);
	assert_string_equal(r.follows, id1);
	/* A number may jump ahead, never back, nor stay with other content. */
	assert_true(sign_tree(f->tree, f->sec, 5, 0, NULL) == 5);
	assert_string_equal(release_of(f->tree).follows, id1);
	sign_tree(f->tree, f->sec, 4, -1, "release 4 would not follow release 5");
	commit_image(f->tree, "3", "riscv64");
	sign_tree(f->tree, f->sec, 5, -1, "release 5 would not follow release 5");
	assert_true(sign_tree(f->tree, f->sec, 0, 0, NULL) == 6);
	assert_string_equal(release_of(f->tree).follows, id2);
	same_in_spare(f->tree);
	free(id1);
	free(id2);
}

static void test_commit_drops_signatures_keeps_release(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = NULL;
	struct layout_commit_result res;
	struct verify_result v;

	commit_image(f->tree, "1", "amd64");
	sign_tree(f->tree, f->sec, 0, 0, NULL);
	v = verify_with(f->tree, f->pub);
	assert_int_equal(v.problems, 0);
	assert_true(v.signed_ok && v.release_ok && v.release == 1);
	/* Another key: both signatures fail. */
	v = verify_with(f->tree, f->pub2);
	assert_int_equal(v.problems, 2);
	/* A commit that changes nothing keeps everything. */
	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	OK(layout_commit(t, &res, E_));
	assert_false(res.changed || res.signature_dropped);
	layout_close(t);
	assert_true(has(f->tree, "registry/snapshot.sig"));
	/* A change: the signatures go (and the caller is told), the release stays. */
	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	OK(layout_untag(t, "r", "1", NULL, E_));
	OK(layout_commit(t, &res, E_));
	assert_true(res.changed && res.signature_dropped && res.last_release == 1);
	layout_close(t);
	assert_false(has(f->tree, "registry/snapshot.sig"));
	assert_false(has(f->tree, "registry/release.sig"));
	assert_true(has(f->tree, "registry/release"));
	same_in_spare(f->tree);
	v = verify_with(f->tree, NULL);
	assert_int_equal(v.problems, 0);
	assert_true(v.release == 1);
	v = verify_with(f->tree, f->pub);
	assert_int_equal(v.problems, 1); /* not signed */
	/* The spare, written whole (here: after it went missing), keeps the release too. */
	{
		struct rp_err err;
		char spare[128];

		snprintf(spare, sizeof(spare), "%s/.regpress-spare", f->tree);
		assert_int_equal(rp_rmtree(spare, &err), 0);
	}
	commit_image(f->tree, "2", "arm64");
	assert_true(has(f->tree, "registry/release"));
	same_in_spare(f->tree);
}

/* What an import does: the signed files of the state it sets, published with it. */
static void test_staged_files_published_with_the_state(void **state)
{
	struct fx *f = *state;
	struct layout_signed_files sf;
	struct layout_tree *t = NULL;
	char other[128], *snap, *text[3];
	static const char *const rel[] = { "registry/snapshot.sig", "registry/release",
					   "registry/release.sig" };
	int i;

	/* The signed state, made in another tree. */
	snprintf(other, sizeof(other), "%s/other", f->dir);
	commit_image(other, "1", "amd64");
	commit_image(other, "2", "arm64");
	sign_tree(other, f->sec, 3, 0, NULL);
	snap = file_in(other, "registry/snapshot");
	memset(&sf, 0, sizeof(sf));
	for (i = 0; i < 3; i++) {
		text[i] = file_in(other, rel[i]);
		sf.buf[i] = text[i];
		sf.len[i] = strlen(text[i]);
	}
	/* This tree: at an older state, then set to the signed one. */
	commit_image(f->tree, "1", "amd64");
	commit_image(f->tree, "2", "arm64");
	commit_image(f->tree, "3", "s390x");
	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	OK(layout_set_state(t, snap, E_));
	OK(layout_stage_signed(t, &sf, E_));
	OK(layout_commit(t, NULL, E_));
	layout_close(t);
	for (i = 0; i < 3; i++) {
		char *got = file_in(f->tree, rel[i]);

		assert_string_equal(got, text[i]);
		free(got);
	}
	same_in_spare(f->tree);
	assert_int_equal(verify_with(f->tree, f->pub).problems, 0);
	/* Staged files of another state are refused, and the tree stays as it was. */
	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	OK(layout_untag(t, "r", "1", NULL, E_));
	OK(layout_stage_signed(t, &sf, E_));
	{
		struct rp_err err = { "" };

		assert_int_equal(layout_commit(t, NULL, &err), -1);
		assert_non_null(strstr(err.msg, "the staged release is of snapshot"));
	}
	layout_close(t);
	assert_int_equal(verify_with(f->tree, f->pub).problems, 0);
	/* A state that is already there gets the files it lacks. */
	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	{
		struct layout_signed_files none;

		memset(&none, 0, sizeof(none));
		OK(layout_put_signed(t, &none, E_));
	}
	layout_close(t);
	assert_false(has(f->tree, "registry/release"));
	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	OK(layout_set_state(t, snap, E_));
	OK(layout_stage_signed(t, &sf, E_));
	OK(layout_commit(t, NULL, E_));
	layout_close(t);
	same_in_spare(f->tree);
	assert_int_equal(verify_with(f->tree, f->pub).problems, 0);
	for (i = 0; i < 3; i++)
		free(text[i]);
	free(snap);
}

static void test_verify_damaged_signed_files(void **state)
{
	struct fx *f = *state;
	char path[256];
	struct verify_result v;
	FILE *fp;

	commit_image(f->tree, "1", "amd64");
	sign_tree(f->tree, f->sec, 0, 0, NULL);
	/* A release that is not canonical is a problem with or without a key. */
	snprintf(path, sizeof(path), "%s/registry/release", f->tree);
	fp = fopen(path, "a");
	assert_non_null(fp);
	fputs("extra\n", fp);
	fclose(fp);
	v = verify_with(f->tree, NULL);
	assert_true(v.problems >= 1);
	/* Signing needs the number then, and repairs it. */
	sign_tree(f->tree, f->sec, 0, -1, "not a regpress release; give the number of this one");
	sign_tree(f->tree, f->sec, 2, 0, NULL);
	assert_int_equal(verify_with(f->tree, f->pub).problems, 0);
	/* The spare's copy differs: a warning. */
	snprintf(path, sizeof(path), "%s/.regpress-spare/release.sig", f->tree);
	assert_int_equal(unlink(path), 0);
	v = verify_with(f->tree, f->pub);
	assert_int_equal(v.problems, 0);
	assert_int_equal(v.warnings, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_release_text_roundtrip),
		cmocka_unit_test(test_release_not_canonical),
		cmocka_unit_test_setup_teardown(test_release_numbers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_drops_signatures_keeps_release, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_staged_files_published_with_the_state, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_verify_damaged_signed_files, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
