/* Unit tests of layout/names.c: image reference parsing and normalisation, the distribution
 * repository grammar, tags, and the repository -> directory mapping (docs/tree-format.md "Names"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* Parse s, which must succeed, and compare all three fields. */
static void ok(const char *s, const char *repo, const char *tag, const char *digest)
{
	struct rp_err err = { "" };
	struct rp_ref ref;
	int rc = layout_ref_parse(s, &ref, &err);

	if (rc != 0)
		fail_msg("layout_ref_parse('%s') failed: %s", s, err.msg);
	if (strcmp(ref.repo, repo) || strcmp(ref.tag, tag) || strcmp(ref.digest, digest))
		fail_msg("layout_ref_parse('%s') = repo '%s' tag '%s' digest '%s', want '%s' '%s' '%s'",
			 s, ref.repo, ref.tag, ref.digest, repo, tag, digest);
	/* Whatever is accepted must be a name the tree can hold. */
	assert_true(layout_repo_valid(ref.repo));
	if (*ref.tag)
		assert_true(layout_tag_valid(ref.tag));
}

/* Parse s, which must fail with a message that quotes it (when it fits) and contains want. */
static void bad(const char *s, const char *want)
{
	struct rp_err err = { "" };
	struct rp_ref ref;

	if (layout_ref_parse(s, &ref, &err) == 0)
		fail_msg("layout_ref_parse('%s') accepted it: repo '%s' tag '%s' digest '%s'", s,
			 ref.repo, ref.tag, ref.digest);
	if (err.msg[0] == '\0')
		fail_msg("layout_ref_parse('%s') failed without a message", s);
	if (want && !strstr(err.msg, want))
		fail_msg("layout_ref_parse('%s'): message '%s' lacks '%s'", s, err.msg, want);
	if (strlen(s) < 100 && *s && !strstr(err.msg, s))
		fail_msg("layout_ref_parse('%s'): message '%s' does not quote the reference", s,
			 err.msg);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void test_ref_docker_hub(void **state)
{
	(void)state;
	ok("alpine", "library/alpine", "", "");
	ok("alpine:3.19", "library/alpine", "3.19", "");
	ok("alpine:latest", "library/alpine", "latest", "");
	ok("docker.io/library/alpine:latest", "library/alpine", "latest", "");
	ok("docker.io/alpine", "library/alpine", "", "");
	ok("docker.io/alpine:3", "library/alpine", "3", "");
	ok("index.docker.io/user/app:1", "user/app", "1", "");
	ok("index.docker.io/library/alpine", "library/alpine", "", "");
	ok("user/app", "user/app", "", "");
	ok("user/app:1", "user/app", "1", "");
	ok("docker.io/user/app:1", "user/app", "1", "");
	ok("a/b/c/d:x", "a/b/c/d", "x", "");
	/* The docker.io host is recognised whatever its case. */
	ok("Docker.IO/library/alpine:1", "library/alpine", "1", "");
}

static void test_ref_registry_hosts(void **state)
{
	(void)state;
	ok("registry.k8s.io/pause:3.9", "registry.k8s.io/pause", "3.9", "");
	ok("localhost:5000/app:1", "localhost:5000/app", "1", "");
	ok("localhost:5000/app", "localhost:5000/app", "", "");
	ok("localhost/app", "localhost/app", "", "");
	ok("localhost:5000/team/app:1", "localhost:5000/team/app", "1", "");
	ok("127.0.0.1:5000/team/x:y", "127.0.0.1:5000/team/x", "y", "");
	ok("Example.COM/a/b:1", "example.com/a/b", "1", "");
	ok("ghcr.io/org/img:v1.2.3-rc_1", "ghcr.io/org/img", "v1.2.3-rc_1", "");
	ok("my-registry.example.com:443/x", "my-registry.example.com:443/x", "", "");
}

static void test_ref_digest(void **state)
{
	(void)state;
	ok("app@sha256:" HEX64, "library/app", "", "sha256:" HEX64);
	ok("app:1@sha256:" HEX64, "library/app", "1", "sha256:" HEX64);
	ok("localhost:5000/app@sha256:" HEX64, "localhost:5000/app", "", "sha256:" HEX64);
	ok("localhost:5000/app:2@sha256:" HEX64, "localhost:5000/app", "2", "sha256:" HEX64);
}

static void test_ref_components(void **state)
{
	(void)state;
	ok("a__b", "library/a__b", "", "");
	ok("a--b", "library/a--b", "", "");
	ok("a.b_c-d", "library/a.b_c-d", "", "");
	ok("x/a---b", "x/a---b", "", "");
	ok("0", "library/0", "", "");
}

static void test_ref_rejected(void **state)
{
	char *s, *long_tag;

	(void)state;
	bad("", "empty");
	bad("Alpine", NULL);
	bad("user/Alpine", NULL);
	bad("a//b", NULL);
	bad("a/../b", NULL);
	bad("a/./b", NULL);
	bad("/a", NULL);
	bad("a/", NULL);
	bad("-a", NULL);
	bad("a-", NULL);
	bad("_a", NULL);
	bad("a_", NULL);
	bad("a___b", NULL);
	bad("a.-b", NULL);
	bad("a..b", NULL);
	bad("a b", NULL);
	bad("a:", "tag");
	bad("a:.x", "tag");
	bad("a:-x", "tag");
	bad("a:x/y", NULL);
	bad("a:x y", "tag");
	bad("a@sha256:abc", "digest");
	bad("a@sha256:" HEX64 "0", "digest");
	bad("a@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "digest");
	bad("a@sha512:" HEX64, "digest");
	bad("a@", "digest");
	bad("@sha256:" HEX64, NULL);
	bad("h:99999x/a", NULL);
	bad("h:123456/a", NULL);
	bad("h:/a", NULL);
	bad("-h.com/a", NULL);
	bad("h-.com/a", NULL);
	bad("h..com/a", NULL);
	bad("h_x.com/a", NULL);
	bad("example.com/A", NULL);
	bad("example.com/", NULL);
	bad("docker.io/", NULL);
	bad("docker.io/Alpine", NULL);
	/* After docker.io, a first component that names a registry (fuzz_names found that
	 * "index.docker.io/index.docker.io/u/a" came back from the tree as "u/a"). */
	bad("index.docker.io/index.docker.io/u/a", "names a registry");
	bad("docker.io/example.com/app:1", "names a registry");
	bad("docker.io/localhost/app", "names a registry");
	bad("docker.io/localhost:5000/app", "names a registry");
	ok("docker.io/localhostx/app", "localhostx/app", "", "");
	ok("docker.io/example.com", "library/example.com", "", "");

	/* Tags: 128 characters are fine, 129 are not. */
	long_tag = repeat('t', 129);
	assert_true(asprintf(&s, "a:%s", long_tag) > 0);
	bad(s, "tag");
	free(s);
	long_tag[128] = '\0';
	assert_true(asprintf(&s, "a:%s", long_tag) > 0);
	ok(s, "library/a", long_tag, "");
	free(s);
	free(long_tag);
}

/* ok() compares exact strings; the long-name cases need the expected repo built. */
static void test_ref_length_exact(void **state)
{
	struct rp_err err = { "" };
	struct rp_ref ref;
	char *name, *want, *s;

	(void)state;
	name = repeat('a', 247);
	assert_true(asprintf(&want, "library/%s", name) > 0);
	assert_int_equal(strlen(want), RP_REPO_MAX);
	ok(name, want, "", "");
	free(want);
	free(name);

	name = repeat('a', 248); /* library/ + 248 = 256 */
	assert_int_equal(layout_ref_parse(name, &ref, &err), -1);
	assert_non_null(strstr(err.msg, "too long"));
	free(name);

	name = repeat('b', 253);
	assert_true(asprintf(&s, "x/%s:t", name) > 0);
	assert_true(asprintf(&want, "x/%s", name) > 0);
	ok(s, want, "t", "");
	free(s);
	free(want);
	free(name);

	name = repeat('b', 254); /* x/ + 254 = 256 */
	assert_true(asprintf(&s, "x/%s", name) > 0);
	err.msg[0] = '\0';
	assert_int_equal(layout_ref_parse(s, &ref, &err), -1);
	assert_non_null(strstr(err.msg, "too long"));
	free(s);
	free(name);

	/* A host counts towards the 255 characters too. */
	name = repeat('c', 240);
	assert_true(asprintf(&s, "localhost:5000/%s", name) > 0); /* 15 + 240 = 255 */
	ok(s, s, "", "");
	free(s);
	free(name);
	name = repeat('c', 241);
	assert_true(asprintf(&s, "localhost:5000/%s", name) > 0);
	err.msg[0] = '\0';
	assert_int_equal(layout_ref_parse(s, &ref, &err), -1);
	assert_true(err.msg[0] != '\0');
	free(s);
	free(name);

	/* Far too long for any buffer: refused, not overflowed. */
	name = repeat('d', 5000);
	err.msg[0] = '\0';
	assert_int_equal(layout_ref_parse(name, &ref, &err), -1);
	assert_non_null(strstr(err.msg, "too long"));
	free(name);
}

static void test_repo_valid(void **state)
{
	char *s;

	(void)state;
	assert_true(layout_repo_valid("library/alpine"));
	assert_true(layout_repo_valid("a"));
	assert_true(layout_repo_valid("a/b/c"));
	assert_true(layout_repo_valid("a__b"));
	assert_false(layout_repo_valid("a___b"));
	assert_true(layout_repo_valid("a_b"));
	assert_true(layout_repo_valid("a--b"));
	assert_true(layout_repo_valid("a-----b"));
	assert_true(layout_repo_valid("a.b"));
	assert_false(layout_repo_valid("a.-b"));
	assert_false(layout_repo_valid("a-.b"));
	assert_false(layout_repo_valid("a._b"));
	assert_false(layout_repo_valid("a_.b"));
	assert_false(layout_repo_valid("a..b"));
	assert_false(layout_repo_valid("a_-b"));
	assert_false(layout_repo_valid(""));
	assert_false(layout_repo_valid("/"));
	assert_false(layout_repo_valid("/a"));
	assert_false(layout_repo_valid("a/"));
	assert_false(layout_repo_valid("a//b"));
	assert_false(layout_repo_valid("-a"));
	assert_false(layout_repo_valid("a-"));
	assert_false(layout_repo_valid(".a"));
	assert_false(layout_repo_valid("a."));
	assert_false(layout_repo_valid("A"));
	assert_false(layout_repo_valid("a/B"));
	assert_false(layout_repo_valid("a/_blobs"));
	assert_false(layout_repo_valid("a/_manifests"));
	assert_false(layout_repo_valid("a/_tags.json"));
	assert_false(layout_repo_valid("a/.."));
	assert_false(layout_repo_valid("a/./b"));
	assert_false(layout_repo_valid("a b"));
	assert_false(layout_repo_valid("a+b"));
	assert_false(layout_repo_valid("localhost+5000/app")); /* the directory form is not a name */
	/* Hosts: kept lowercased, optional port of 1 to 5 digits. */
	assert_true(layout_repo_valid("registry.k8s.io/pause"));
	assert_true(layout_repo_valid("localhost:5000/app"));
	assert_true(layout_repo_valid("localhost/app"));
	assert_true(layout_repo_valid("127.0.0.1:5000/team/x"));
	assert_true(layout_repo_valid("my-host.example.com/x"));
	assert_false(layout_repo_valid("Example.com/a"));
	assert_false(layout_repo_valid("LOCALHOST/a"));
	assert_false(layout_repo_valid("h:99999x/a"));
	assert_false(layout_repo_valid("h:123456/a"));
	assert_false(layout_repo_valid("h:/a"));
	assert_false(layout_repo_valid("-h.com/a"));
	assert_false(layout_repo_valid("h-.com/a"));
	assert_false(layout_repo_valid("h..com/a"));
	assert_false(layout_repo_valid("h.com/"));
	assert_false(layout_repo_valid("h.com/A"));
	assert_false(layout_repo_valid("localhost:5000"));

	/* 255 characters in all. */
	s = repeat('a', 255);
	assert_true(layout_repo_valid(s));
	free(s);
	s = repeat('a', 256);
	assert_false(layout_repo_valid(s));
	s[0] = 'x';
	s[1] = '/';
	assert_false(layout_repo_valid(s));
	s[255] = '\0';
	assert_true(layout_repo_valid(s));
	free(s);
}

static void test_tag_valid(void **state)
{
	char *s;

	(void)state;
	assert_true(layout_tag_valid("latest"));
	assert_true(layout_tag_valid("3.19"));
	assert_true(layout_tag_valid("A"));
	assert_true(layout_tag_valid("_x"));
	assert_true(layout_tag_valid("_"));
	assert_true(layout_tag_valid("0"));
	assert_true(layout_tag_valid("v1.2.3-rc_1"));
	assert_true(layout_tag_valid("x."));
	assert_true(layout_tag_valid("x-"));
	assert_true(layout_tag_valid("x..--__"));
	assert_false(layout_tag_valid(""));
	assert_false(layout_tag_valid(".x"));
	assert_false(layout_tag_valid("-x"));
	assert_false(layout_tag_valid("."));
	assert_false(layout_tag_valid("a/b"));
	assert_false(layout_tag_valid("a:b"));
	assert_false(layout_tag_valid("a@b"));
	assert_false(layout_tag_valid("a b"));
	assert_false(layout_tag_valid("a+b"));
	assert_false(layout_tag_valid("caf\xc3\xa9"));
	s = repeat('t', 128);
	assert_true(layout_tag_valid(s));
	free(s);
	s = repeat('t', 129);
	assert_false(layout_tag_valid(s));
	free(s);
}

static void test_repo_path(void **state)
{
	char out[RP_REPO_MAX + 1], small[8];

	(void)state;
	layout_repo_path("localhost:5000/app", out, sizeof(out));
	assert_string_equal(out, "localhost+5000/app");
	layout_repo_path("127.0.0.1:5000/team/x", out, sizeof(out));
	assert_string_equal(out, "127.0.0.1+5000/team/x");
	layout_repo_path("library/alpine", out, sizeof(out));
	assert_string_equal(out, "library/alpine");
	layout_repo_path("registry.k8s.io/pause", out, sizeof(out));
	assert_string_equal(out, "registry.k8s.io/pause");
	/* Truncated to the buffer, always terminated. */
	memset(small, 'X', sizeof(small));
	layout_repo_path("localhost:5000/app", small, sizeof(small));
	assert_string_equal(small, "localho");
	layout_repo_path("abc", small, 1);
	assert_string_equal(small, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_docker_hub),
		cmocka_unit_test(test_ref_registry_hosts),
		cmocka_unit_test(test_ref_digest),
		cmocka_unit_test(test_ref_components),
		cmocka_unit_test(test_ref_rejected),
		cmocka_unit_test(test_ref_length_exact),
		cmocka_unit_test(test_repo_valid),
		cmocka_unit_test(test_tag_valid),
		cmocka_unit_test(test_repo_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
