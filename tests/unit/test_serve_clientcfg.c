/* Unit tests of serve/clientcfg.c: registries found in a tree, host validation, and the files
 * written for each client (paths and the lines each client needs). Real clients using the files
 * are tests/e2e/40-mirror.sh's job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "certs.h"
#include "clientcfg.h"
#include "fsutil.h"
#include "unit.h"

struct fixture {
	char dir[64];
	char *tree, *ca, *out;
};

static void put(const char *dir, const char *name, const char *content)
{
	char *p = rp_join(dir, name);
	FILE *f;

	assert_non_null(p);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	free(p);
}

static char *slurp(const char *dir, const char *rel)
{
	char *p = rp_join(dir, rel), *buf = NULL;
	size_t len;
	struct rp_err err;

	assert_non_null(p);
	if (rp_read_file(p, 1 << 20, &buf, &len, &err) < 0)
		fail_msg("%s", err.msg);
	free(p);
	return buf;
}

static void has(const char *dir, const char *rel, const char *needle)
{
	char *s = slurp(dir, rel);

	if (!strstr(s, needle))
		fail_msg("%s lacks '%s':\n%s", rel, needle, s);
	free(s);
}

static void lacks(const char *dir, const char *rel, const char *needle)
{
	char *s = slurp(dir, rel);

	if (strstr(s, needle))
		fail_msg("%s has '%s':\n%s", rel, needle, s);
	free(s);
}

static int exists(const char *dir, const char *rel)
{
	char *p = rp_join(dir, rel);
	int r = access(p, F_OK) == 0;

	free(p);
	return r;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *hosts[] = { "localhost" };
	struct serve_certs_opts co = { 0 };
	struct rp_err err;
	char *reg, *certs;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_serve_clientcfg.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->tree = rp_join(fx->dir, "tree");
	fx->out = rp_join(fx->dir, "out");
	certs = rp_join(fx->dir, "certs");
	fx->ca = rp_join(certs, "ca.crt");
	reg = rp_join(fx->tree, "registry");
	assert_int_equal(rp_mkdirs(reg, &err), 0);
	put(reg, "catalog.json",
	    "{\"repositories\":[\"example.com/team/app\",\"library/alpine\",\"library/base\","
	    "\"localhost/x\",\"localhost:5000/team/app\",\"registry.k8s.io/pause\","
	    "\"registry.k8s.io/sub/x\",\"user/tool\"]}");
	/* The repositories client-config reads: the snapshot's (through the tree handle). */
	put(reg, "snapshot",
	    "regpress-snapshot 1\n"
#define B(repo) "blob " repo " sha256:1111111111111111111111111111111111111111111111111111111111111111 " \
	"10 application/vnd.oci.image.layer.v1.tar+gzip\n"
	    B("example.com/team/app") B("library/alpine") B("library/base") B("localhost/x")
	    B("localhost:5000/team/app") B("registry.k8s.io/pause") B("registry.k8s.io/sub/x")
	    B("user/tool"));
#undef B
	co.dir = certs;
	co.hosts = hosts;
	co.nhosts = 1;
	assert_int_equal(serve_certs(&co, &err), 0);
	free(reg);
	free(certs);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	struct rp_err err;

	rp_rmtree(fx->dir, &err);
	free(fx->tree);
	free(fx->ca);
	free(fx->out);
	free(fx);
	return 0;
}

static void test_kind_and_host(void **state)
{
	(void)state;
	assert_int_equal(serve_clientcfg_kind("containerd"), SERVE_CLIENT_CONTAINERD);
	assert_int_equal(serve_clientcfg_kind("k3s"), SERVE_CLIENT_K3S);
	assert_int_equal(serve_clientcfg_kind("rke2"), SERVE_CLIENT_RKE2);
	assert_int_equal(serve_clientcfg_kind("all"), SERVE_CLIENT_ALL);
	assert_int_equal(serve_clientcfg_kind("nerdctl"), 0);
	assert_true(serve_clientcfg_host_valid("registry.local:5000"));
	assert_true(serve_clientcfg_host_valid("10.0.0.1:443"));
	assert_true(serve_clientcfg_host_valid("[fd00::1]:5000"));
	assert_true(serve_clientcfg_host_valid("localhost"));
	assert_false(serve_clientcfg_host_valid(""));
	assert_false(serve_clientcfg_host_valid("host:"));
	assert_false(serve_clientcfg_host_valid("host:99999"));
	assert_false(serve_clientcfg_host_valid("host:5000/path"));
	assert_false(serve_clientcfg_host_valid("a\"b:1"));
	assert_false(serve_clientcfg_host_valid("../x"));
	assert_false(serve_clientcfg_host_valid("-x:1"));
}

static void test_registries(void **state)
{
	struct fixture *fx = *state;
	static const char *const want[] = { "docker.io", "example.com", "localhost",
					    "localhost:5000", "registry.k8s.io" };
	struct rp_err err;
	char **v;
	size_t n, i;

	assert_int_equal(serve_clientcfg_registries(fx->tree, &v, &n, &err), 0);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < n; i++) {
		assert_string_equal(v[i], want[i]);
		free(v[i]);
	}
	free(v);
	assert_int_equal(serve_clientcfg_registries(fx->dir, &v, &n, &err), -1);
	assert_non_null(strstr(err.msg, "registry/snapshot"));
}

static void test_all_files(void **state)
{
	struct fixture *fx = *state;
	const char *regs[] = { "registry.k8s.io", "docker.io", "registry.local:5000",
			       "registry.k8s.io" };
	struct serve_clientcfg_opts o = { 0 };
	struct rp_err err;
	char *ca = slurp(fx->dir, "certs/ca.crt"), *s;

	o.server = "registry.local:5000";
	o.ca = fx->ca;
	o.out = fx->out;
	o.registries = regs;
	o.nregistries = 4;
	assert_int_equal(serve_clientcfg(&o, &err), 0);

	/* containerd: direct, and docker.io + registry.k8s.io mirrors; the server's own registry is
	 * not a mirror of itself; duplicates once. */
	has(fx->out, "etc/containerd/certs.d/registry.local:5000/hosts.toml",
	    "server = \"https://registry.local:5000\"\n");
	/* The CA at the top level too (containerd tries server last with those settings only:
	 * without it, every miss is a certificate error), and still the [host] block. */
	has(fx->out, "etc/containerd/certs.d/registry.local:5000/hosts.toml",
	    "\nca = \"ca.crt\"\n\n[host.");
	/* ...but not for a mirror: its server is the upstream, which the CA does not sign. */
	lacks(fx->out, "etc/containerd/certs.d/docker.io/hosts.toml", "\nca = ");
	has(fx->out, "etc/containerd/certs.d/registry.local:5000/hosts.toml",
	    "[host.\"https://registry.local:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
	    "  ca = \"ca.crt\"\n");
	has(fx->out, "etc/containerd/certs.d/docker.io/hosts.toml",
	    "server = \"https://registry-1.docker.io\"\n");
	has(fx->out, "etc/containerd/certs.d/docker.io/hosts.toml",
	    "[host.\"https://registry.local:5000\"]\n");
	has(fx->out, "etc/containerd/certs.d/registry.k8s.io/hosts.toml",
	    "server = \"https://registry.k8s.io\"\n");
	s = slurp(fx->out, "etc/containerd/certs.d/registry.k8s.io/ca.crt");
	assert_string_equal(s, ca);
	free(s);

	/* docker */
	s = slurp(fx->out, "etc/docker/certs.d/registry.local:5000/ca.crt");
	assert_string_equal(s, ca);
	free(s);
	has(fx->out, "etc/docker/daemon.json", "\"registry-mirrors\": [\"https://registry.local:5000\"]");

	/* podman: docker.io at the root, other registries under their name. */
	has(fx->out, "etc/containers/registries.conf.d/50-regpress.conf",
	    "[[registry]]\nprefix = \"docker.io\"\nlocation = \"docker.io\"\n\n"
	    "[[registry.mirror]]\nlocation = \"registry.local:5000\"\n");
	has(fx->out, "etc/containers/registries.conf.d/50-regpress.conf",
	    "[[registry.mirror]]\nlocation = \"registry.local:5000/registry.k8s.io\"\n");
	/* Short names: docker.io first, then the others; a top-level key, before any table. */
	has(fx->out, "etc/containers/registries.conf.d/50-regpress.conf",
	    "\nunqualified-search-registries = [\"docker.io\", \"registry.k8s.io\"]\n\n"
	    "[[registry]]\nprefix = \"docker.io\"");
	assert_true(exists(fx->out, "etc/containers/certs.d/registry.local:5000/ca.crt"));

	/* k3s and rke2 */
	has(fx->out, "etc/rancher/k3s/registries.yaml",
	    "  \"registry.k8s.io\":\n    endpoint:\n      - \"https://registry.local:5000\"\n");
	has(fx->out, "etc/rancher/k3s/registries.yaml",
	    "configs:\n  \"registry.local:5000\":\n    tls:\n"
	    "      ca_file: /etc/rancher/k3s/regpress-ca.crt\n");
	has(fx->out, "etc/rancher/rke2/registries.yaml", "ca_file: /etc/rancher/rke2/regpress-ca.crt\n");
	assert_true(exists(fx->out, "etc/rancher/rke2/regpress-ca.crt"));
	/* The air-gapped default: no fallback to the registries themselves. */
	has(fx->out, "etc/rancher/k3s/config.yaml.d/50-regpress.yaml",
	    "\ndisable-default-registry-endpoint: true\n");
	has(fx->out, "etc/rancher/rke2/config.yaml.d/50-regpress.yaml",
	    "\ndisable-default-registry-endpoint: true\n");

	/* talos */
	has(fx->out, "talos/regpress-registries.yaml",
	    "machine:\n  registries:\n    mirrors:\n");
	has(fx->out, "talos/regpress-registries.yaml",
	    "      \"docker.io\":\n        endpoints:\n          - \"https://registry.local:5000\"\n");
	has(fx->out, "talos/regpress-registries.yaml", "          ca: \"LS0tLS1CRUdJTi");
	has(fx->out, "talos/regpress-registries.yaml",
	    "      \"registry.k8s.io\":\n        endpoints:\n          - \"https://registry.local:5000\"\n"
	    "        skipFallback: true\n");

	has(fx->out, "README.regpress", "Mirrored registries: docker.io registry.k8s.io\n");
	/* What each client needs to pick the files up: config.toml (both plugin names) and a
	 * restart for containerd, none for its certs.d; a reload for dockerd's mirrors. */
	has(fx->out, "README.regpress", "[plugins.\"io.containerd.grpc.v1.cri\".registry]");
	has(fx->out, "README.regpress", "[plugins.\"io.containerd.cri.v1.images\".registry]");
	has(fx->out, "README.regpress", "restart it");
	has(fx->out, "README.regpress", "systemctl reload docker");
	lacks(fx->out, "README.regpress", "No restart needed.");
	free(ca);
}

static void test_server_forms(void **state)
{
	char out[300];
	struct rp_err err;

	(void)state;
	OK(serve_clientcfg_server("registry.local:5000", out, sizeof(out), E_));
	assert_string_equal(out, "registry.local:5000");
	OK(serve_clientcfg_server("https://registry.local:5443", out, sizeof(out), E_));
	assert_string_equal(out, "registry.local:5443");
	OK(serve_clientcfg_server("HTTPS://registry.local:5443/", out, sizeof(out), E_));
	assert_string_equal(out, "registry.local:5443");
	OK(serve_clientcfg_server("https://10.0.0.5:443", out, sizeof(out), E_));
	assert_string_equal(out, "10.0.0.5");
	OK(serve_clientcfg_server("https://[fd00::5]:5000", out, sizeof(out), E_));
	assert_string_equal(out, "[fd00::5]:5000");
	assert_int_equal(serve_clientcfg_server("http://registry.local:5000", out, sizeof(out), &err), -1);
	assert_non_null(strstr(err.msg, "HTTPS only"));
	assert_int_equal(serve_clientcfg_server("https://registry.local:5000/v2", out, sizeof(out), &err), -1);
	assert_non_null(strstr(err.msg, "https://registry.local:5000/v2"));
	assert_int_equal(serve_clientcfg_server("https://", out, sizeof(out), &err), -1);
	assert_int_equal(serve_clientcfg_server("ftp://x:1", out, sizeof(out), &err), -1);
}

/* The snapshot's media types tell zstd layers apart (client-config --for docker warns). */
static void test_zstd_repo(void **state)
{
	struct fixture *fx = *state;
	char *reg = rp_join(fx->tree, "registry"), *repo;

	put(reg, "snapshot",
	    "regpress-snapshot 1\n"
	    "blob library/base sha256:1111111111111111111111111111111111111111111111111111111111111111 "
	    "10 application/vnd.oci.image.layer.v1.tar+gzip\n");
	OK(serve_clientcfg_zstd_repo(fx->tree, &repo, E_));
	assert_null(repo);
	put(reg, "snapshot",
	    "regpress-snapshot 1\n"
	    "blob library/base sha256:1111111111111111111111111111111111111111111111111111111111111111 "
	    "10 application/vnd.oci.image.layer.v1.tar+gzip\n"
	    "blob team/app sha256:2222222222222222222222222222222222222222222222222222222222222222 "
	    "10 application/vnd.oci.image.layer.v1.tar+zstd\n");
	OK(serve_clientcfg_zstd_repo(fx->tree, &repo, E_));
	assert_string_equal(repo, "team/app");
	free(repo);
	free(reg);
}

/* --for k3s and --for rke2 are separate kinds now: each writes its own directory only. */
static void test_k3s_rke2_apart(void **state)
{
	struct fixture *fx = *state;
	struct serve_clientcfg_opts o = { 0 };

	o.server = "https://registry.local:5000";
	o.ca = fx->ca;
	o.out = fx->out;
	o.kinds = SERVE_CLIENT_RKE2;
	OK(serve_clientcfg(&o, E_));
	assert_true(exists(fx->out, "etc/rancher/rke2/registries.yaml"));
	assert_false(exists(fx->out, "etc/rancher/k3s"));
	has(fx->out, "etc/rancher/rke2/registries.yaml", "  \"registry.local:5000\":\n");
	has(fx->out, "README.regpress", "registry.local:5000, made by");
}

static void test_one_kind(void **state)
{
	struct fixture *fx = *state;
	struct serve_clientcfg_opts o = { 0 };
	struct rp_err err;

	o.server = "10.1.2.3:443"; /* :443 is dropped: clients name such a server without port */
	o.ca = fx->ca;
	o.out = fx->out;
	o.kinds = SERVE_CLIENT_CONTAINERD;
	assert_int_equal(serve_clientcfg(&o, &err), 0);
	has(fx->out, "etc/containerd/certs.d/10.1.2.3/hosts.toml", "server = \"https://10.1.2.3\"\n");
	assert_false(exists(fx->out, "etc/docker"));
	assert_false(exists(fx->out, "talos"));
	assert_false(exists(fx->out, "etc/containerd/certs.d/docker.io"));

	o.server = "bad host:1";
	assert_int_equal(serve_clientcfg(&o, &err), -1);
	assert_non_null(strstr(err.msg, "bad host"));
	o.server = "ok:1";
	o.ca = fx->tree; /* a directory, not a certificate */
	assert_int_equal(serve_clientcfg(&o, &err), -1);
	o.ca = "/nonexistent/ca.crt";
	assert_int_equal(serve_clientcfg(&o, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/ca.crt"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_and_host),
		cmocka_unit_test_setup_teardown(test_registries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_all_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_kind, setup, teardown),
		cmocka_unit_test(test_server_forms),
		cmocka_unit_test_setup_teardown(test_zstd_repo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_k3s_rke2_apart, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
