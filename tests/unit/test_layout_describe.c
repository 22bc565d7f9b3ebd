/* Unit tests of layout/describe.c and describe_inspect.c: references as users write them, the
 * tag list (order, kinds, platforms, sizes with each blob once, dates, missing children,
 * attestations, filters), a snapshot without blobs, resolving a reference, one manifest in full
 * (config summary, layers, referrers), and a damaged manifest named in the message. The trees
 * are built through the tree handle, as a build writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "describe.h"
#include "fsutil.h"
#include "tree.h"
#include "unit.h"

#define MT_DOCKER "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CFG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_GZ "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_OCI "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_CFG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_GZ "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_EMPTY "application/vnd.oci.empty.v1+json"
#define MT_SPDX "application/spdx+json"
#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct blob {
	char *bytes;
	size_t len;
	char hex[RP_HEX_LEN + 1];
};

/* The tree of these tests:
 *   library/alpine  tags 3.19, latest -> ma (Docker: cfga, layera listed twice); art untagged,
 *                   an SBOM whose subject is ma
 *   pause           tag 3.9 -> ma (a name that normalises elsewhere: library/pause)
 *   x/art           tag sig -> art
 *   x/multi         tag 1 -> idx: marm (linux/arm64/v8 in the index), mamd (no platform in the
 *                   index: its config says linux/amd64; shares marm's layer), gone (linux/s390x,
 *                   recorded missing), matt (a buildx attestation of mamd) */
struct fx {
	char dir[64];
	char *tree;
	struct blob cfga, layera, ma, cfgarm, layerarm, marm, cfgamd, mamd, cfgatt, layeratt, matt,
		gone, idx, empty, sbom, art;
};

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	return s;
}

static void put(struct layout_tree *t, struct blob *b, char *bytes)
{
	b->bytes = bytes;
	b->len = strlen(bytes);
	OK(layout_put_blob(t, b->bytes, b->len, b->hex, E_));
}

/* A blob the tree will not hold: its digest only. */
static void absent(struct blob *b, char *bytes)
{
	b->bytes = bytes;
	b->len = strlen(bytes);
	rp_sha256_buf(b->bytes, b->len, b->hex);
}

static char *desc(const char *mt, const struct blob *b)
{
	return xasprintf("{\"mediaType\":\"%s\",\"size\":%zu,\"digest\":\"sha256:%s\"}", mt, b->len,
			 b->hex);
}

static char *image(const char *mt, const char *cfg_mt, const struct blob *cfg,
		   const char *layer_mt, const struct blob *layer, int twice)
{
	char *c = desc(cfg_mt, cfg), *l = desc(layer_mt, layer);
	char *s = xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":%s,\"layers\":[%s%s%s]}",
			    mt, c, l, twice ? "," : "", twice ? l : "");

	free(c);
	free(l);
	return s;
}

static void blobs_of(struct layout_tree *t, const char *repo, const struct blob *cfg,
		     const char *cfg_mt, const struct blob *layer, const char *layer_mt)
{
	OK(layout_add_blob(t, repo, cfg->hex, cfg->len, cfg_mt, E_));
	OK(layout_add_blob(t, repo, layer->hex, layer->len, layer_mt, E_));
}

static void put_images(struct layout_tree *t, struct fx *f)
{
	put(t, &f->cfga, strdup("{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":"
				"\"2024-01-02T03:04:05Z\",\"config\":{\"Entrypoint\":[\"/bin/sh\","
				"\"-c\"],\"Cmd\":[\"run\"],\"Env\":[\"A=1\",\"B=2\"],\"Labels\":"
				"{\"z\":\"last\",\"a\":\"first\"}}}"));
	put(t, &f->layera, strdup("layer a: pretend this is gzip"));
	put(t, &f->ma, image(MT_DOCKER, MT_DOCKER_CFG, &f->cfga, MT_DOCKER_GZ, &f->layera, 1));
	/* +01:00: 23:00 UTC the day before, older than cfgamd though it sorts later as text. */
	put(t, &f->cfgarm, strdup("{\"architecture\":\"arm64\",\"variant\":\"v8\",\"os\":\"linux\","
				  "\"created\":\"2024-03-01T00:00:00+01:00\"}"));
	put(t, &f->layerarm, strdup("arm layer"));
	put(t, &f->marm, image(MT_OCI, MT_OCI_CFG, &f->cfgarm, MT_OCI_GZ, &f->layerarm, 0));
	put(t, &f->cfgamd, strdup("{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":"
				  "\"2024-02-29T23:30:00.5Z\"}"));
	put(t, &f->mamd, image(MT_OCI, MT_OCI_CFG, &f->cfgamd, MT_OCI_GZ, &f->layerarm, 0));
	put(t, &f->cfgatt, strdup("{\"architecture\":\"unknown\",\"os\":\"unknown\"}"));
	put(t, &f->layeratt, strdup("{\"_type\":\"https://in-toto.io/Statement/v0.1\"}"));
	put(t, &f->matt, image(MT_OCI, MT_OCI_CFG, &f->cfgatt, "application/vnd.in-toto+json",
			       &f->layeratt, 0));
	absent(&f->gone, strdup("{\"the input\":\"left this platform out\"}"));
}

static void put_index(struct layout_tree *t, struct fx *f)
{
	char *arm = desc(MT_OCI, &f->marm), *amd = desc(MT_OCI, &f->mamd);
	char *gone = desc(MT_OCI, &f->gone), *att = desc(MT_OCI, &f->matt);

	/* Descriptors end in '}': a platform goes in before it. */
	arm[strlen(arm) - 1] = gone[strlen(gone) - 1] = att[strlen(att) - 1] = '\0';
	put(t, &f->idx,
	    xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"manifests\":[%s,\"platform\":"
		      "{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"}},%s,%s,"
		      "\"platform\":{\"os\":\"linux\",\"architecture\":\"s390x\"}},%s,\"platform\":"
		      "{\"os\":\"unknown\",\"architecture\":\"unknown\"},\"annotations\":{"
		      "\"vnd.docker.reference.type\":\"attestation-manifest\","
		      "\"vnd.docker.reference.digest\":\"sha256:%s\"}}]}",
		      MT_OCI_INDEX, arm, amd, gone, att, f->mamd.hex));
	free(arm);
	free(amd);
	free(gone);
	free(att);
}

static void put_artifact(struct layout_tree *t, struct fx *f)
{
	char *c, *l, *subject;

	put(t, &f->empty, strdup("{}"));
	put(t, &f->sbom, strdup("{\"spdxVersion\":\"SPDX-2.3\"}"));
	c = desc(MT_EMPTY, &f->empty);
	l = desc(MT_SPDX, &f->sbom);
	subject = desc(MT_DOCKER, &f->ma);
	put(t, &f->art, xasprintf("{\"schemaVersion\":2,\"mediaType\":\"%s\",\"artifactType\":\"%s\","
				  "\"config\":%s,\"layers\":[%s],\"subject\":%s,\"annotations\":{"
				  "\"org.opencontainers.image.created\":\"2023-05-06T07:08:09Z\"}}",
				  MT_OCI, MT_SPDX, c, l, subject));
	free(c);
	free(l);
	free(subject);
}

static void record(struct layout_tree *t, struct fx *f)
{
	static const char *const alpine_like[] = { "library/alpine", "pause" };
	size_t i;

	for (i = 0; i < 2; i++) {
		OK(layout_add_manifest(t, alpine_like[i], f->ma.hex, f->ma.len, MT_DOCKER, E_));
		blobs_of(t, alpine_like[i], &f->cfga, MT_DOCKER_CFG, &f->layera, MT_DOCKER_GZ);
	}
	OK(layout_set_tag(t, "library/alpine", "3.19", f->ma.hex, E_));
	OK(layout_set_tag(t, "library/alpine", "latest", f->ma.hex, E_));
	OK(layout_set_tag(t, "pause", "3.9", f->ma.hex, E_));
	OK(layout_add_manifest(t, "x/multi", f->idx.hex, f->idx.len, MT_OCI_INDEX, E_));
	OK(layout_add_manifest(t, "x/multi", f->marm.hex, f->marm.len, MT_OCI, E_));
	OK(layout_add_manifest(t, "x/multi", f->mamd.hex, f->mamd.len, MT_OCI, E_));
	OK(layout_add_manifest(t, "x/multi", f->matt.hex, f->matt.len, MT_OCI, E_));
	OK(layout_add_missing(t, "x/multi", f->gone.hex, f->gone.len, MT_OCI, E_));
	blobs_of(t, "x/multi", &f->cfgarm, MT_OCI_CFG, &f->layerarm, MT_OCI_GZ);
	blobs_of(t, "x/multi", &f->cfgamd, MT_OCI_CFG, &f->layerarm, MT_OCI_GZ);
	blobs_of(t, "x/multi", &f->cfgatt, MT_OCI_CFG, &f->layeratt, "application/vnd.in-toto+json");
	OK(layout_set_tag(t, "x/multi", "1", f->idx.hex, E_));
	for (i = 0; i < 2; i++) {
		const char *repo = i ? "x/art" : "library/alpine";

		OK(layout_add_manifest(t, repo, f->art.hex, f->art.len, MT_OCI, E_));
		blobs_of(t, repo, &f->empty, MT_EMPTY, &f->sbom, MT_SPDX);
	}
	OK(layout_set_tag(t, "x/art", "sig", f->art.hex, E_));
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct layout_tree *t = NULL;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-describe-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->tree = rp_join(f->dir, "tree");
	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	put_images(t, f);
	put_index(t, f);
	put_artifact(t, f);
	record(t, f);
	OK(layout_commit(t, NULL, E_));
	layout_close(t);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	struct blob *all[] = { &f->cfga, &f->layera, &f->ma, &f->cfgarm, &f->layerarm, &f->marm,
			       &f->cfgamd, &f->mamd, &f->cfgatt, &f->layeratt, &f->matt, &f->gone,
			       &f->idx, &f->empty, &f->sbom, &f->art };
	struct rp_err err;
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		free(all[i]->bytes);
	rp_rmtree(f->dir, &err);
	free(f->tree);
	free(f);
	return 0;
}

static struct layout_tree *open_tree(const struct fx *f)
{
	struct layout_tree *t = NULL;

	OK(layout_open(f->tree, LAYOUT_READ, &t, E_));
	return t;
}

static struct describe_ref ref_of(const char *s)
{
	struct describe_ref r;

	OK(describe_ref_parse(s, &r, E_));
	return r;
}

/* ---- tests ---- */

static void test_ref_parse(void **state)
{
	struct describe_ref r;
	struct rp_err err = { "" };

	(void)state;
	r = ref_of("alpine");
	assert_string_equal(r.repo, "library/alpine");
	assert_string_equal(r.exact, "alpine"); /* a tree may name a repository so */
	assert_string_equal(r.tag, "");
	assert_string_equal(r.hex, "");
	r = ref_of("docker.io/library/alpine:3.19");
	assert_string_equal(r.repo, "library/alpine");
	assert_string_equal(r.tag, "3.19");
	r = ref_of("library/alpine:3.19");
	assert_string_equal(r.exact, ""); /* the same name: nothing else to try */
	r = ref_of("localhost:5000/team/app:1");
	assert_string_equal(r.repo, "localhost:5000/team/app");
	assert_string_equal(r.exact, "");
	assert_string_equal(r.tag, "1");
	r = ref_of("x/multi@sha256:" HEX64);
	assert_string_equal(r.repo, "x/multi");
	assert_string_equal(r.hex, HEX64);
	assert_string_equal(r.text, "x/multi@sha256:" HEX64);
	assert_int_equal(describe_ref_parse("Bad Name", &r, &err), -1);
	assert_non_null(strstr(err.msg, "Bad Name"));
	assert_int_equal(describe_ref_parse("x@sha256:abc", &r, &err), -1);
}

static void expect_platform(const struct describe_tag *d, size_t i, const char *name,
			    const char *hex, int missing)
{
	assert_true(i < d->nplatforms);
	assert_string_equal(d->platforms[i].name, name);
	assert_string_equal(d->platforms[i].hex, hex);
	assert_int_equal(d->platforms[i].missing, missing);
}

static void test_list_all(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	struct describe_list l;
	const struct describe_tag *d;

	OK(describe_tree(t, NULL, 0, &l, E_));
	assert_int_equal(l.n, 5);
	/* repository, then tag, in byte order */
	assert_string_equal(l.v[0].repo, "library/alpine");
	assert_string_equal(l.v[0].tag, "3.19");
	assert_string_equal(l.v[1].tag, "latest");
	assert_string_equal(l.v[2].repo, "pause");
	assert_string_equal(l.v[3].repo, "x/art");
	assert_string_equal(l.v[4].repo, "x/multi");

	d = &l.v[0];
	assert_true(d->described);
	assert_int_equal(d->kind, DESCRIBE_IMAGE);
	assert_string_equal(d->hex, f->ma.hex);
	assert_string_equal(d->media_type, MT_DOCKER);
	assert_int_equal(d->manifest_size, f->ma.len);
	assert_int_equal(d->nplatforms, 1);
	expect_platform(d, 0, "linux/amd64", f->ma.hex, 0);
	/* the layer listed twice counts once */
	assert_int_equal(d->size, f->ma.len + f->cfga.len + f->layera.len);
	assert_string_equal(d->created, "2024-01-02T03:04:05Z");
	assert_true(d->created_ok);
	assert_int_equal(d->created_unix, 1704164645);
	assert_int_equal(d->nmissing, 0);

	d = &l.v[3];
	assert_int_equal(d->kind, DESCRIBE_ARTIFACT);
	assert_string_equal(d->artifact_type, MT_SPDX);
	assert_int_equal(d->nplatforms, 0);
	assert_int_equal(d->size, f->art.len + f->empty.len + f->sbom.len);
	assert_string_equal(d->created, "2023-05-06T07:08:09Z");

	d = &l.v[4];
	assert_int_equal(d->kind, DESCRIBE_INDEX);
	/* the index's order; its own platform for a child the index names none for; the
	 * attestation left out; the missing child shown as missing */
	assert_int_equal(d->nplatforms, 3);
	expect_platform(d, 0, "linux/arm64/v8", f->marm.hex, 0);
	expect_platform(d, 1, "linux/amd64", f->mamd.hex, 0);
	expect_platform(d, 2, "linux/s390x", f->gone.hex, 1);
	assert_int_equal(d->nmissing, 1);
	assert_string_equal(d->missing[0], f->gone.hex);
	/* every present child, the attestation too, and the shared layer once */
	assert_int_equal(d->size, f->idx.len + f->marm.len + f->cfgarm.len + f->layerarm.len +
					  f->mamd.len + f->cfgamd.len + f->matt.len + f->cfgatt.len +
					  f->layeratt.len);
	/* the newest child by time, not by text */
	assert_string_equal(d->created, "2024-02-29T23:30:00.5Z");
	describe_list_free(&l);
	layout_close(t);
}

static void expect_tags(const struct describe_list *l, const char *want)
{
	char got[512] = "";
	size_t i;

	for (i = 0; i < l->n; i++)
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s:%s", i ? " " : "",
			 l->v[i].repo, l->v[i].tag);
	assert_string_equal(got, want);
}

static void test_filters(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	struct describe_ref refs[3];
	struct describe_list l;
	struct rp_err err = { "" };

	refs[0] = ref_of("alpine");
	OK(describe_tree(t, refs, 1, &l, E_));
	expect_tags(&l, "library/alpine:3.19 library/alpine:latest");
	describe_list_free(&l);
	/* in the tree's order whatever the order of the filters, each tag once */
	refs[0] = ref_of("x/multi:1");
	refs[1] = ref_of("docker.io/library/alpine:latest");
	refs[2] = ref_of("alpine");
	OK(describe_tree(t, refs, 3, &l, E_));
	expect_tags(&l, "library/alpine:3.19 library/alpine:latest x/multi:1");
	describe_list_free(&l);
	/* the tree's own name: "pause" is not library/pause */
	refs[0] = ref_of("pause:3.9");
	OK(describe_tree(t, refs, 1, &l, E_));
	expect_tags(&l, "pause:3.9");
	describe_list_free(&l);
	refs[0] = ref_of("alpine");
	refs[1] = ref_of("x/multi:2");
	assert_int_equal(describe_tree(t, refs, 2, &l, &err), -1);
	assert_non_null(strstr(err.msg, "'x/multi:2'"));
	assert_non_null(strstr(err.msg, f->tree));
	assert_int_equal(l.n, 0);
	layout_close(t);
}

static void test_snapshot_only(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	struct describe_list l;
	json_t *j;

	OK(describe_snapshot(layout_snapshot(t), "snap", NULL, 0, &l, E_));
	assert_int_equal(l.n, 5);
	assert_false(l.v[4].described);
	assert_int_equal(l.v[4].kind, DESCRIBE_UNKNOWN);
	assert_string_equal(l.v[4].hex, f->idx.hex);
	assert_string_equal(l.v[4].media_type, MT_OCI_INDEX);
	assert_int_equal(l.v[4].manifest_size, f->idx.len);
	j = describe_tag_json(&l.v[4]);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "repository")), "x/multi");
	assert_true(json_is_null(json_object_get(j, "kind")));
	assert_true(json_is_null(json_object_get(j, "platforms")));
	assert_true(json_is_null(json_object_get(j, "size")));
	assert_true(json_is_null(json_object_get(j, "created")));
	json_decref(j);
	describe_list_free(&l);
	layout_close(t);
}

static void test_tag_json(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	struct describe_ref r = ref_of("x/multi");
	struct describe_list l;
	char *s, *want;
	json_t *j;

	OK(describe_tree(t, &r, 1, &l, E_));
	j = describe_tag_json(&l.v[0]);
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	want = xasprintf("{\"repository\":\"x/multi\",\"tag\":\"1\",\"digest\":\"sha256:%s\","
			 "\"mediaType\":\"%s\",\"manifestSize\":%zu,\"kind\":\"index\","
			 "\"artifactType\":null,\"platforms\":[\"linux/arm64/v8\",\"linux/amd64\","
			 "\"linux/s390x\"],\"missing\":[\"sha256:%s\"],\"size\":%llu,\"created\":"
			 "\"2024-02-29T23:30:00.5Z\"}",
			 f->idx.hex, MT_OCI_INDEX, f->idx.len, f->gone.hex,
			 (unsigned long long)l.v[0].size);
	assert_string_equal(s, want);
	free(s);
	free(want);
	json_decref(j);
	describe_list_free(&l);
	layout_close(t);
}

static void resolve_ok(struct layout_tree *t, const char *s, const char *repo, const char *hex)
{
	struct describe_ref r = ref_of(s);
	char grepo[RP_REPO_MAX + 1], ghex[RP_HEX_LEN + 1];

	OK(describe_resolve(t, &r, grepo, ghex, E_));
	assert_string_equal(grepo, repo);
	assert_string_equal(ghex, hex);
}

static void resolve_bad(struct layout_tree *t, const char *s, const char *want)
{
	struct describe_ref r = ref_of(s);
	char grepo[RP_REPO_MAX + 1], ghex[RP_HEX_LEN + 1];
	struct rp_err err = { "" };

	assert_int_equal(describe_resolve(t, &r, grepo, ghex, &err), -1);
	if (!strstr(err.msg, want) || !strstr(err.msg, s))
		fail_msg("resolving '%s': message '%s' lacks '%s' or the reference", s, err.msg, want);
}

static void test_resolve(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	char *ref;

	resolve_ok(t, "alpine", "library/alpine", f->ma.hex); /* :latest */
	resolve_ok(t, "alpine:3.19", "library/alpine", f->ma.hex);
	resolve_ok(t, "pause:3.9", "pause", f->ma.hex);
	ref = xasprintf("alpine@sha256:%s", f->art.hex); /* untagged, by digest */
	resolve_ok(t, ref, "library/alpine", f->art.hex);
	free(ref);
	resolve_bad(t, "alpine:3.20", "no such tag");
	resolve_bad(t, "x/multi", ":latest");
	ref = xasprintf("x/multi@sha256:%s", f->gone.hex);
	resolve_bad(t, ref, "recorded as missing");
	free(ref);
	resolve_bad(t, "x/multi@sha256:" HEX64, "no such manifest");
	layout_close(t);
}

static json_t *inspect(struct layout_tree *t, const char *repo, const char *hex)
{
	json_t *j = NULL;

	OK(describe_inspect(t, repo, hex, &j, E_));
	assert_non_null(j);
	return j;
}

/* The value at path ("a.b.0.c": objects by key, arrays by index): a string as it is, anything
 * else as compact JSON; malloc'd, NULL if there is nothing there. */
static char *value_at(json_t *o, const char *path)
{
	json_t *v = o;
	char key[64];

	while (v && *path) {
		size_t n = strcspn(path, ".");

		snprintf(key, sizeof(key), "%.*s", (int)n, path);
		v = json_is_array(v) ? json_array_get(v, (size_t)atoi(key)) : json_object_get(v, key);
		path += n + (path[n] == '.');
	}
	if (!v)
		return NULL;
	return json_is_string(v) ? strdup(json_string_value(v))
				 : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

static void expect_at(json_t *o, const char *path, const char *want)
{
	char *got = value_at(o, path);

	if (!got || strcmp(got, want))
		fail_msg("%s: got '%s', want '%s'", path, got ? got : "(nothing)", want);
	free(got);
}

static void test_inspect_image(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	json_t *j = inspect(t, "library/alpine", f->ma.hex);
	char *want;

	expect_at(j, "kind", "image");
	expect_at(j, "tags", "[\"3.19\",\"latest\"]");
	expect_at(j, "platforms.0.platform", "linux/amd64");
	expect_at(j, "platforms.0.config.entrypoint", "[\"/bin/sh\",\"-c\"]");
	expect_at(j, "platforms.0.config.cmd", "[\"run\"]");
	expect_at(j, "platforms.0.config.env", "2");
	expect_at(j, "platforms.0.config.labels", "{\"a\":\"first\",\"z\":\"last\"}");
	expect_at(j, "platforms.0.config.created", "2024-01-02T03:04:05Z");
	expect_at(j, "platforms.0.layers.1.mediaType", MT_DOCKER_GZ);
	assert_null(value_at(j, "platforms.0.layers.2"));
	/* the SBOM whose subject it is, with its artifact type and annotations */
	want = xasprintf("sha256:%s", f->art.hex);
	expect_at(j, "referrers.0.digest", want);
	free(want);
	expect_at(j, "referrers.0.artifactType", MT_SPDX);
	expect_at(j, "referrers.0.annotations",
		  "{\"org.opencontainers.image.created\":\"2023-05-06T07:08:09Z\"}");
	assert_int_equal(json_array_size(json_object_get(j, "referrers")), 1);
	json_decref(j);
	/* in another repository the SBOM is not there: no referrers */
	j = inspect(t, "pause", f->ma.hex);
	assert_int_equal(json_array_size(json_object_get(j, "referrers")), 0);
	json_decref(j);
	layout_close(t);
}

static void test_inspect_index(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	json_t *j = inspect(t, "x/multi", f->idx.hex);

	expect_at(j, "kind", "index");
	expect_at(j, "created", "2024-02-29T23:30:00.5Z");
	assert_int_equal(json_array_size(json_object_get(j, "platforms")), 4);
	expect_at(j, "platforms.0.platform", "linux/arm64/v8");
	expect_at(j, "platforms.0.config.variant", "v8");
	expect_at(j, "platforms.1.platform", "linux/amd64"); /* from its config */
	expect_at(j, "platforms.2.platform", "linux/s390x");
	expect_at(j, "platforms.2.missing", "true");
	assert_null(value_at(j, "platforms.2.layers"));
	expect_at(j, "platforms.3.attestation", "true");
	expect_at(j, "platforms.3.layers.0.mediaType", "application/vnd.in-toto+json");
	json_decref(j);
	j = inspect(t, "x/art", f->art.hex);
	expect_at(j, "kind", "artifact");
	expect_at(j, "artifactType", MT_SPDX);
	expect_at(j, "platforms.0.platform", "null");
	expect_at(j, "platforms.0.config.mediaType", MT_EMPTY);
	expect_at(j, "platforms.0.layers.0.mediaType", MT_SPDX);
	json_decref(j);
	layout_close(t);
}

static void test_manifest_bytes(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = open_tree(f);
	char *buf;
	size_t len;

	OK(describe_manifest_bytes(t, f->idx.hex, &buf, &len, E_));
	assert_int_equal(len, f->idx.len);
	assert_memory_equal(buf, f->idx.bytes, len);
	free(buf);
	layout_close(t);
}

/* A manifest that is not JSON: the list fails, naming the file (ls is no verifier, but it
 * must not make something up). */
static void test_damaged_manifest(void **state)
{
	struct fx *f = *state;
	struct layout_tree *t = NULL;
	struct describe_list l;
	struct rp_err err = { "" };
	char hex[RP_HEX_LEN + 1];

	OK(layout_open(f->tree, LAYOUT_WRITE, &t, E_));
	OK(layout_put_blob(t, "not json", 8, hex, E_));
	OK(layout_add_manifest(t, "y/bad", hex, 8, MT_OCI, E_));
	OK(layout_set_tag(t, "y/bad", "1", hex, E_));
	OK(layout_commit(t, NULL, E_));
	layout_close(t);
	t = open_tree(f);
	assert_int_equal(describe_tree(t, NULL, 0, &l, &err), -1);
	assert_non_null(strstr(err.msg, hex));
	assert_non_null(strstr(err.msg, "not a JSON object"));
	layout_close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_parse),
		cmocka_unit_test_setup_teardown(test_list_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tag_json, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inspect_image, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inspect_index, setup, teardown),
		cmocka_unit_test_setup_teardown(test_manifest_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_manifest, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
