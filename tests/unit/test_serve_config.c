/* Unit tests of serve/serve.c: --listen parsing, input checks, the generated lighttpd configuration
 * and the runtime directory. (What lighttpd does with it is tests/e2e/30-api-curl.sh's job.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fsutil.h"
#include "serve.h"

extern const unsigned char serve_lua_script[];
extern const unsigned long serve_lua_script_len;

struct fixture {
	char dir[64];  /* scratch directory */
	char *tree;    /* a minimal regpress tree */
	char *cert;    /* self-signed certificate for key */
	char *key;
	char *other;   /* a second key, matching nothing */
	char *runtime; /* where serve_write_dir writes */
};

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");

	assert_non_null(pk);
	return pk;
}

static void write_key(const char *path, EVP_PKEY *pk)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
}

static void write_cert(const char *path, EVP_PKEY *pk)
{
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, pk);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1,
				   -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
	X509_free(x);
}

static void touch(const char *dir, const char *name, const char *content)
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

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct rp_err err;
	EVP_PKEY *pk, *other;
	char *p;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_serve_config.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	fx->tree = rp_join(fx->dir, "tree");
	fx->cert = rp_join(fx->dir, "server.crt");
	fx->key = rp_join(fx->dir, "server.key");
	fx->other = rp_join(fx->dir, "other.key");
	fx->runtime = rp_join(fx->dir, "run");
	p = rp_join(fx->tree, "blobs/sha256");
	assert_int_equal(rp_mkdirs(p, &err), 0);
	free(p);
	p = rp_join(fx->tree, "registry");
	assert_int_equal(rp_mkdirs(p, &err), 0);
	touch(p, "catalog.json", "{\"repositories\":[]}");
	touch(p, "snapshot", "regpress-snapshot 1\n"); /* an empty tree */
	free(p);
	pk = new_key();
	other = new_key();
	write_key(fx->key, pk);
	write_key(fx->other, other);
	write_cert(fx->cert, pk);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(other);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	struct rp_err err;

	rp_rmtree(fx->dir, &err);
	free(fx->tree);
	free(fx->cert);
	free(fx->key);
	free(fx->other);
	free(fx->runtime);
	free(fx);
	return 0;
}

static void test_listen_ok(void **state)
{
	static const struct {
		const char *in, *host;
		int ipv6;
		unsigned port;
	} cases[] = {
		{ "127.0.0.1:5000", "127.0.0.1", 0, 5000 },
		{ "0.0.0.0:443", "0.0.0.0", 0, 443 },
		{ "[::1]:5000", "::1", 1, 5000 },
		{ "[::]:8443", "::", 1, 8443 },
		{ "[fe80::1%eth0]:1", NULL, 1, 1 }, /* scope ids: inet_pton refuses them, so do we */
		{ ":8443", "0.0.0.0", 0, 8443 },
		{ "5000", "0.0.0.0", 0, 5000 },
		{ "localhost:65535", "localhost", 0, 65535 },
		{ "registry.example-1.internal:1", "registry.example-1.internal", 0, 1 },
	};
	struct serve_listen l;
	struct rp_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!cases[i].host) {
			assert_int_equal(serve_parse_listen(cases[i].in, &l, &err), -1);
			continue;
		}
		assert_int_equal(serve_parse_listen(cases[i].in, &l, &err), 0);
		assert_string_equal(l.host, cases[i].host);
		assert_int_equal(l.ipv6, cases[i].ipv6);
		assert_int_equal(l.port, cases[i].port);
	}
	assert_int_equal(serve_parse_listen(SERVE_DEFAULT_LISTEN, &l, &err), 0);
}

static void test_listen_bad(void **state)
{
	static const char *const bad[] = {
		"", "::1:5000", "[::1]5000", "[::1]", "[]:5000", "[zz::1]:5000", "1.2.3.4:0",
		"1.2.3.4:65536", "1.2.3.4:", "1.2.3.4:5x", "1.2.3.4:-1", "a b:1", "a\"b:1",
		"host/x:1", "1.2.3.4:+5", "x:99999999999999999999",
	};
	struct serve_listen l;
	struct rp_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.msg[0] = '\0';
		if (serve_parse_listen(bad[i], &l, &err) != -1)
			fail_msg("listen '%s' accepted", bad[i]);
		assert_true(strlen(err.msg) > 0);
	}
	assert_int_equal(serve_parse_listen(NULL, &l, &err), -1);
}

static void test_check_tree(void **state)
{
	struct fixture *fx = *state;
	struct rp_err err;

	assert_int_equal(serve_check_tree(fx->tree, &err), 0);
	assert_int_equal(serve_check_tree(fx->dir, &err), -1);
	assert_non_null(strstr(err.msg, fx->dir)); /* the message names the path */
	assert_non_null(strstr(err.msg, "not a regpress tree"));
	assert_int_equal(serve_check_tree("/nonexistent/tree", &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/tree"));
	assert_int_equal(serve_check_tree(fx->cert, &err), -1);
	assert_non_null(strstr(err.msg, "not a directory"));
}

static void test_check_tls(void **state)
{
	struct fixture *fx = *state;
	struct rp_err err;

	assert_int_equal(serve_check_tls(fx->cert, fx->key, &err), 0);
	assert_int_equal(serve_check_tls(fx->cert, fx->other, &err), -1);
	assert_non_null(strstr(err.msg, "does not match"));
	assert_int_equal(serve_check_tls("/nonexistent.crt", fx->key, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent.crt"));
	assert_int_equal(serve_check_tls(fx->cert, "/nonexistent.key", &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent.key"));
	assert_int_equal(serve_check_tls(fx->key, fx->key, &err), -1); /* a key is no certificate */
	assert_non_null(strstr(err.msg, "not a PEM certificate"));
	assert_int_equal(serve_check_tls(fx->cert, fx->cert, &err), -1);
	assert_non_null(strstr(err.msg, fx->cert));
	assert_int_equal(serve_check_tls(NULL, fx->key, &err), -1);
}

static void assert_contains(const char *conf, const char *needle)
{
	if (!strstr(conf, needle))
		fail_msg("configuration lacks '%s':\n%s", needle, conf);
}

static void test_config_text(void **state)
{
	struct fixture *fx = *state;
	struct serve_opts o = { .tree = fx->tree, .cert = fx->cert, .key = fx->key, .listen = "[::1]:5443" };
	struct rp_err err;
	char *conf = NULL, *rtree = realpath(fx->tree, NULL), line[PATH_MAX + 64];

	assert_non_null(rtree);
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	snprintf(line, sizeof(line), "server.document-root = \"%s\"\n", rtree);
	assert_contains(conf, line);
	assert_contains(conf, "server.bind = \"[::1]\"\n");
	assert_contains(conf, "server.port = 5443\n");
	assert_contains(conf, "\"mod_openssl\"");
	assert_contains(conf, "\"mod_magnet\"");
	assert_contains(conf, "ssl.engine = \"enable\"\n");
	snprintf(line, sizeof(line), "ssl.pemfile = \"%s\"\n", fx->cert);
	assert_contains(conf, line);
	snprintf(line, sizeof(line), "ssl.privkey = \"%s\"\n", fx->key);
	assert_contains(conf, line);
	assert_contains(conf, "\"MinProtocol\" => \"TLSv1.2\"");
	assert_contains(conf, "etag.use-inode = \"disable\"\n");
	assert_contains(conf, "server.follow-symlink = \"disable\"\n");
	assert_contains(conf, "magnet.attract-physical-path-to = (\"/etc/regpress/regpress.lua\")\n");
	/* The script runs again at response start for manifests only (it fills its cache there). */
	assert_contains(conf, "$HTTP[\"url\"] =~ \"/manifests/\" {\n"
			      "\tmagnet.attract-response-start-to = (\"/etc/regpress/regpress.lua\")\n}\n");
	/* The server's cipher order, AES-128-GCM first, in TLS 1.2 and 1.3. */
	assert_contains(conf, "\"Options\" => \"ServerPreference,PrioritizeChaCha\"");
	assert_contains(conf, "\"CipherString\" => \"EECDH+AESGCM+AES128:");
	assert_contains(conf, "\"Ciphersuites\" => \"TLS_AES_128_GCM_SHA256:");
	/* workers 0 (unset) is one process: no server.max-worker line at all. */
	assert_null(strstr(conf, "server.max-worker"));
	assert_contains(conf, "server.errorfile-prefix = \"/etc/regpress/errors/status-\"\n");
	assert_contains(conf, "\".html\" => \"application/json\"");
	assert_contains(conf, "\"Docker-Distribution-API-Version\" => \"registry/2.0\"");
	/* Compression would re-encode blobs; listings would expose the tree; no access log unless
	 * asked for. */
	assert_null(strstr(conf, "mod_deflate"));
	assert_null(strstr(conf, "dir-listing"));
	assert_null(strstr(conf, "accesslog"));
	free(conf);

	o.listen = NULL; /* the default */
	o.access_log = "-";
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_contains(conf, "server.bind = \"0.0.0.0\"\nserver.port = 5000\n");
	assert_contains(conf, "\"mod_accesslog\"");
	assert_contains(conf, "accesslog.filename = \"/dev/stderr\"\n");
	free(conf);

	o.access_log = "/var/log/regpress.log";
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_contains(conf, "accesslog.filename = \"/var/log/regpress.log\"\n");
	free(conf);

	o.workers = 1;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_null(strstr(conf, "server.max-worker"));
	free(conf);
	o.workers = 4;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_contains(conf, "server.max-worker = 4\n");
	free(conf);
	free(rtree);
}

/* lighttpd's limits from the hard RLIMIT_NOFILE (serve.c's serve_limits has the reasoning). */
static void test_limits(void **state)
{
	static const struct {
		unsigned long nofile, somaxconn;
		unsigned fds, conns, backlog;
	} cases[] = {
		{ 1024, 4096, 1024, 256, 256 },		   /* a login shell's hard limit */
		{ 20000, 4096, 20000, 5000, 4096 },	   /* a container */
		{ 65535, 4096, 65535, 16383, 4096 },
		{ 65536, 4096, 65535, 16383, 4096 },	   /* 65536 would wrap in lighttpd 1.4.69 */
		{ 524288, 4096, 65535, 16383, 4096 },	   /* systemd's default hard limit */
		{ 1048576, 4096, 65535, 16383, 4096 },	   /* docker, many distributions */
		{ ULONG_MAX, 4096, 65535, 16383, 4096 },   /* unlimited */
		{ 1048576, 128, 65535, 16383, 128 },	   /* an older kernel's somaxconn */
		{ 200, 4096, 200, 64, 64 },		   /* at least 64 connections... */
		{ 100, 4096, 100, 50, 50 },		   /* ...but never more than lighttpd's fds/2 */
	};
	struct serve_limits l;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		serve_limits(cases[i].nofile, cases[i].somaxconn, &l);
		if (l.max_fds != cases[i].fds || l.max_conns != cases[i].conns ||
		    l.backlog != cases[i].backlog)
			fail_msg("nofile %lu somaxconn %lu: fds %u conns %u backlog %u, want %u %u %u",
				 cases[i].nofile, cases[i].somaxconn, l.max_fds, l.max_conns, l.backlog,
				 cases[i].fds, cases[i].conns, cases[i].backlog);
		assert_true(l.max_conns <= l.max_fds / 2); /* lighttpd lowers anything above */
		assert_int_equal(l.read_idle, 15);
		assert_int_equal(l.keep_alive_idle, 5);
		assert_int_equal(l.write_idle, 120);
	}
	assert_true(serve_nofile_hard() >= 1);
	assert_true(serve_somaxconn() >= 1);
}

/* The limits in the configuration, for a given fd limit and for this process's. */
static void test_config_limits(void **state)
{
	struct fixture *fx = *state;
	struct serve_opts o = { .tree = fx->tree, .cert = fx->cert, .key = fx->key, .workers = 4 };
	struct serve_limits l;
	struct rp_err err;
	char *conf = NULL, line[128];

	o.nofile = 1024;
	o.somaxconn = 4096;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_contains(conf, "server.max-worker = 4\n");
	assert_contains(conf, "here\n# 1024)");
	assert_contains(conf, "server.max-fds = 1024\n");
	assert_contains(conf, "server.max-connections = 256\n");
	assert_contains(conf, "server.listen-backlog = 256\n");
	assert_contains(conf, "server.max-read-idle = 15\n");
	assert_contains(conf, "server.max-keep-alive-idle = 5\n");
	assert_contains(conf, "server.max-write-idle = 120\n");
	free(conf);

	o.nofile = 1048576;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_contains(conf, "server.max-fds = 65535\n");
	assert_contains(conf, "server.max-connections = 16383\n");
	assert_contains(conf, "server.listen-backlog = 4096\n");
	free(conf);

	o.nofile = ULONG_MAX;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_contains(conf, "here\n# unlimited)");
	assert_contains(conf, "server.max-fds = 65535\n");
	free(conf);

	/* Unset: this process's hard limit and the kernel's somaxconn. */
	o.nofile = 0;
	o.somaxconn = 0;
	serve_limits(serve_nofile_hard(), serve_somaxconn(), &l);
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	snprintf(line, sizeof(line), "server.max-fds = %u\n", l.max_fds);
	assert_contains(conf, line);
	snprintf(line, sizeof(line), "server.max-connections = %u\n", l.max_conns);
	assert_contains(conf, line);
	snprintf(line, sizeof(line), "server.listen-backlog = %u\n", l.backlog);
	assert_contains(conf, line);
	free(conf);
}

/* --htpasswd, --client-ca, --user, and the log descriptor for "-" after switching user. */
static void test_config_access(void **state)
{
	struct fixture *fx = *state;
	struct serve_opts o = { 0 };
	struct rp_err err;
	char *conf = NULL, *ht = rp_join(fx->dir, "htpasswd"), line[PATH_MAX + 64];

	assert_non_null(ht);
	o.tree = fx->tree;
	o.cert = fx->cert;
	o.key = fx->key;
	o.htpasswd = ht;
	o.client_ca = fx->cert;
	o.user = "www-data";
	o.group = "www-data";
	o.access_log = "-";
	o.log_fd = SERVE_LOG_FD;
	touch(fx->dir, "htpasswd", "alice:$5$salt$3Tm5Lgm0p3UrIgGbHqxXUKmQmUrUCvfgy3zPVQvx1WC\n");
	assert_int_equal(serve_check(&o, &err), 0);
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_contains(conf, "\"mod_auth\", \"mod_authn_file\"");
	assert_contains(conf, "auth.backend = \"htpasswd\"\n");
	snprintf(line, sizeof(line), "auth.backend.htpasswd.userfile = \"%s\"\n", ht);
	assert_contains(conf, line);
	assert_contains(conf, "\"realm\" => \"regpress\"");
	assert_contains(conf, "\"require\" => \"valid-user\"");
	snprintf(line, sizeof(line), "ssl.ca-file = \"%s\"\n", fx->cert);
	assert_contains(conf, line);
	assert_contains(conf, "ssl.verifyclient.activate = \"enable\"\n");
	assert_contains(conf, "ssl.verifyclient.enforce = \"enable\"\n");
	assert_contains(conf, "server.username = \"www-data\"\nserver.groupname = \"www-data\"\n");
	assert_contains(conf, "accesslog.filename = \"|exec cat >&9\"\n");
	free(conf);

	/* None of it unless asked for. */
	memset(&o, 0, sizeof(o));
	o.tree = fx->tree;
	o.cert = fx->cert;
	o.key = fx->key;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), 0);
	assert_null(strstr(conf, "mod_auth"));
	assert_null(strstr(conf, "verifyclient"));
	assert_null(strstr(conf, "server.username"));
	free(conf);

	/* A user name that would break the configuration. */
	o.user = "a\"b";
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	assert_null(conf);
	assert_non_null(strstr(err.msg, "a\"b"));

	/* htpasswd files: plain text, no colon, empty, missing; a client CA that is no certificate. */
	touch(fx->dir, "htpasswd", "alice:secret\n");
	assert_int_equal(serve_check_htpasswd(ht, &err), -1);
	assert_non_null(strstr(err.msg, "line 1"));
	touch(fx->dir, "htpasswd", "# comment\nalice\n");
	assert_int_equal(serve_check_htpasswd(ht, &err), -1);
	assert_non_null(strstr(err.msg, "line 2"));
	touch(fx->dir, "htpasswd", "\n# only a comment\n");
	assert_int_equal(serve_check_htpasswd(ht, &err), -1);
	touch(fx->dir, "htpasswd", "a:$apr1$x$y\nb:{SHA}abc=\nc:abcdefghijklm\n");
	assert_int_equal(serve_check_htpasswd(ht, &err), 0);
	assert_int_equal(serve_check_client_ca(ht, &err), -1);
	assert_non_null(strstr(err.msg, ht));
	assert_int_equal(serve_check_client_ca("/nonexistent/ca.crt", &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/ca.crt"));
	free(ht);
}

/* serve_check_access: mode bits for another user, parents included. */
static void test_check_access(void **state)
{
	struct fixture *fx = *state;
	struct rp_err err;
	char *priv = rp_join(fx->dir, "priv"), *file;

	assert_non_null(priv);
	assert_int_equal(rp_mkdirs(priv, &err), 0);
	touch(priv, "f", "x");
	file = rp_join(priv, "f");
	assert_non_null(file);
	assert_int_equal(chmod(fx->dir, 0755), 0);
	assert_int_equal(chmod(priv, 0755), 0);
	assert_int_equal(chmod(file, 0644), 0);
	assert_int_equal(serve_check_access(file, 65534, 65534, &err), 0);
	assert_int_equal(chmod(file, 0600), 0);
	assert_int_equal(serve_check_access(file, 65534, 65534, &err), -1);
	assert_non_null(strstr(err.msg, file));
	assert_int_equal(chmod(file, 0644), 0);
	assert_int_equal(chmod(priv, 0700), 0);
	assert_int_equal(serve_check_access(file, 65534, 65534, &err), -1);
	assert_non_null(strstr(err.msg, "not searchable"));
	/* root may do anything */
	assert_int_equal(serve_check_access(file, 0, 0, &err), 0);
	assert_int_equal(chmod(priv, 0755), 0);
	free(file);
	free(priv);
}

static void test_config_bad(void **state)
{
	struct fixture *fx = *state;
	struct serve_opts o = { .tree = fx->tree, .cert = fx->cert, .key = fx->key, .listen = "::1:5000" };
	struct rp_err err;
	char *conf = (char *)"not touched", *q;

	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	assert_null(conf);
	o.listen = NULL;
	o.tree = "/nonexistent/tree";
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	assert_non_null(strstr(err.msg, "/nonexistent/tree"));
	o.tree = fx->tree;
	o.cert = NULL;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	o.cert = fx->cert;
	/* A quote would end a lighttpd string literal early: refused, not escaped. */
	assert_int_equal(serve_config(&o, "/etc/reg\"press", &conf, &err), -1);
	assert_non_null(strstr(err.msg, "quote"));
	o.access_log = "/var/log/a\nb";
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	o.access_log = NULL;
	o.workers = SERVE_MAX_WORKERS + 1;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	assert_non_null(strstr(err.msg, "worker processes"));
	o.workers = -1;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	o.workers = 0;
	q = rp_join(fx->dir, "tr\"ee");
	assert_non_null(q);
	assert_int_equal(rename(fx->tree, q), 0);
	o.tree = q;
	assert_int_equal(serve_config(&o, "/etc/regpress", &conf, &err), -1);
	assert_int_equal(rename(q, fx->tree), 0);
	free(q);
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
	char *p = rp_join(dir, name), *buf = NULL;
	struct rp_err err;

	assert_non_null(p);
	if (rp_read_file(p, 1 << 20, &buf, len, &err) < 0)
		fail_msg("%s", err.msg);
	free(p);
	return buf;
}

static void test_write_dir(void **state)
{
	struct fixture *fx = *state;
	struct serve_opts o = { .tree = fx->tree, .cert = fx->cert, .key = fx->key, .listen = "127.0.0.1:5000" };
	static const int statuses[] = { 400, 401, 403, 404, 405, 411, 413, 414, 416, 431, 500, 501,
					503, 505 };
	struct rp_err err;
	char *conf_path = NULL, *buf, *expect = NULL, name[64];
	size_t len, i;

	assert_int_equal(serve_check(&o, &err), 0);
	assert_int_equal(serve_write_dir(&o, fx->runtime, &conf_path, &err), 0);
	assert_non_null(conf_path);
	assert_non_null(strstr(conf_path, "/run/lighttpd.conf"));

	buf = slurp(fx->runtime, "lighttpd.conf", &len);
	assert_int_equal(serve_config(&o, fx->runtime, &expect, &err), 0);
	assert_string_equal(buf, expect);
	free(buf);
	free(expect);

	buf = slurp(fx->runtime, "regpress.lua", &len);
	assert_int_equal(len, serve_lua_script_len);
	assert_memory_equal(buf, serve_lua_script, len);
	free(buf);

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
		snprintf(name, sizeof(name), "errors/status-%d.html", statuses[i]);
		buf = slurp(fx->runtime, name, &len);
		assert_true(len > 0);
		assert_true(!strncmp(buf, "{\"errors\":[{\"code\":\"", 20));
		assert_non_null(strstr(buf, "\"detail\":null}]}"));
		free(buf);
	}

	/* Writing again (a --config-dir that already holds a configuration) replaces the files. */
	o.listen = "127.0.0.1:6000";
	assert_int_equal(serve_write_dir(&o, fx->runtime, NULL, &err), 0);
	buf = slurp(fx->runtime, "lighttpd.conf", &len);
	assert_non_null(strstr(buf, "server.port = 6000\n"));
	free(buf);
	free(conf_path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen_ok),
		cmocka_unit_test(test_listen_bad),
		cmocka_unit_test_setup_teardown(test_check_tree, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_bad, setup, teardown),
		cmocka_unit_test(test_limits),
		cmocka_unit_test_setup_teardown(test_config_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_check_access, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_dir, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
