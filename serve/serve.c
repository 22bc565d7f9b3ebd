#include "serve.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fsutil.h"
#include "tree.h"

extern const unsigned char serve_lua_script[];
extern const unsigned long serve_lua_script_len;

/* Bodies for the errors lighttpd answers without the script (bad requests, bad ranges, too large
 * headers...). Codes follow the distribution spec where one fits; clients mostly go by status. */
static const struct {
	int status;
	const char *code;
	const char *message;
} error_files[] = {
	{ 400, "UNSUPPORTED", "bad request" },
	{ 401, "UNAUTHORIZED", "authentication required" },
	{ 403, "DENIED", "access denied" },
	{ 404, "NOT_FOUND", "not found" },
	{ 405, "UNSUPPORTED", "method not allowed" },
	{ 411, "UNSUPPORTED", "length required" },
	{ 413, "UNSUPPORTED", "request too large" },
	{ 414, "UNSUPPORTED", "request URI too long" },
	{ 416, "UNSUPPORTED", "range not satisfiable" },
	{ 431, "UNSUPPORTED", "request header fields too large" },
	{ 500, "UNKNOWN", "internal server error" },
	{ 501, "UNSUPPORTED", "not implemented" },
	{ 503, "UNAVAILABLE", "service unavailable" },
	{ 505, "UNSUPPORTED", "HTTP version not supported" },
};

int serve_parse_listen(const char *s, struct serve_listen *out, struct rp_err *err)
{
	const char *colon, *port;
	unsigned char addr[16];
	size_t hlen, i;
	char *end;
	unsigned long p;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return rp_errf(err, "empty listen address");
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return rp_errf(err, "listen address %s: expected [IPV6]:PORT", s);
		hlen = (size_t)(close - s - 1);
		if (hlen == 0 || hlen >= sizeof(out->host))
			return rp_errf(err, "listen address %s: bad IPv6 address", s);
		memcpy(out->host, s + 1, hlen);
		if (inet_pton(AF_INET6, out->host, addr) != 1)
			return rp_errf(err, "listen address %s: bad IPv6 address", s);
		out->ipv6 = 1;
		port = close + 2;
	} else if ((colon = strrchr(s, ':'))) {
		if (strchr(s, ':') != colon)
			return rp_errf(err, "listen address %s: write IPv6 addresses as [ADDR]:PORT", s);
		hlen = (size_t)(colon - s);
		if (hlen >= sizeof(out->host))
			return rp_errf(err, "listen address %s: host name too long", s);
		memcpy(out->host, s, hlen);
		if (hlen == 0)
			strcpy(out->host, "0.0.0.0");
		/* Not an IPv4 literal: a host name lighttpd resolves; keep it to name characters so it
		 * cannot break the configuration's quoting. */
		for (i = 0; i < hlen; i++)
			if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-')
				return rp_errf(err, "listen address %s: bad host", s);
		port = colon + 1;
	} else {
		strcpy(out->host, "0.0.0.0");
		port = s;
	}
	errno = 0;
	p = strtoul(port, &end, 10);
	if (!isdigit((unsigned char)*port) || *end || errno || p == 0 || p > 65535)
		return rp_errf(err, "listen address %s: bad port '%s'", s, port);
	out->port = (unsigned)p;
	return 0;
}

int serve_check_tree(const char *tree, struct rp_err *err)
{
	struct layout_tree *t;
	struct stat st;

	if (stat(tree, &st) < 0)
		return rp_errno(err, "tree %s", tree);
	if (!S_ISDIR(st.st_mode))
		return rp_errf(err, "tree %s: not a directory", tree);
	/* Through the tree handle: the snapshot must parse, and nothing on the way is a symlink. */
	if (layout_open(tree, LAYOUT_READ, &t, err) < 0)
		return rp_err_prefix(err, "cannot serve it (build a tree with 'regpress build')");
	layout_close(t);
	return 0;
}

/* The first OpenSSL error as text, so a bad file gives a reason rather than "failed". */
static const char *ssl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "no PEM data";
}

int serve_check_tls(const char *cert, const char *key, struct rp_err *err)
{
	FILE *cf = NULL, *kf = NULL;
	X509 *x = NULL;
	EVP_PKEY *pk = NULL;
	int ret = -1;

	if (!cert || !key) {
		rp_errf(err, "a certificate and a key are required (--cert, --key)");
		goto out;
	}
	cf = fopen(cert, "r");
	if (!cf) {
		rp_errno(err, "cannot read certificate %s", cert);
		goto out;
	}
	kf = fopen(key, "r");
	if (!kf) {
		rp_errno(err, "cannot read key %s", key);
		goto out;
	}
	ERR_clear_error();
	x = PEM_read_X509(cf, NULL, NULL, NULL);
	if (!x) {
		rp_errf(err, "%s: not a PEM certificate (%s)", cert, ssl_reason());
		goto out;
	}
	pk = PEM_read_PrivateKey(kf, NULL, NULL, NULL);
	if (!pk) {
		rp_errf(err, "%s: not an unencrypted PEM private key (%s)", key, ssl_reason());
		goto out;
	}
	if (X509_check_private_key(x, pk) != 1) {
		ERR_clear_error();
		rp_errf(err, "key %s does not match certificate %s", key, cert);
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_free(pk);
	X509_free(x);
	if (kf)
		fclose(kf);
	if (cf)
		fclose(cf);
	return ret;
}

int serve_check_htpasswd(const char *path, struct rp_err *err)
{
	char *buf = NULL, *line, *save = NULL;
	size_t len, n = 0, lineno = 0;
	int ret = -1;

	if (rp_read_file(path, 1 << 24, &buf, &len, err) < 0)
		return rp_err_prefix(err, "htpasswd file");
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':'), *hash;
		size_t hl;

		lineno++;
		line[strcspn(line, "\r")] = '\0';
		if (!*line || *line == '#')
			continue;
		if (!colon || colon == line) {
			rp_errf(err, "%s: line %zu: expected user:hash", path, lineno);
			goto out;
		}
		hash = colon + 1;
		hl = strlen(hash);
		/* What lighttpd's htpasswd backend checks: $apr1$ (MD5), {SHA} (SHA-1) and crypt(3):
		 * $1$ $5$ $6$ $2y$ $y$ ..., or 13-character DES. A plain-text password matches
		 * nothing, silently, so refuse it here. */
		if (hash[0] != '$' && strncmp(hash, "{SHA}", 5) != 0 && hl != 13) {
			rp_errf(err, "%s: line %zu: user %.*s: not a password hash lighttpd checks "
				     "(make one with 'openssl passwd -5' or 'htpasswd -B')",
				path, lineno, (int)(colon - line), line);
			goto out;
		}
		n++;
	}
	if (n == 0) {
		rp_errf(err, "%s: no user:hash line", path);
		goto out;
	}
	ret = 0;
out:
	free(buf);
	return ret;
}

int serve_check_client_ca(const char *path, struct rp_err *err)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (!f)
		return rp_errno(err, "cannot read client CA %s", path);
	ERR_clear_error();
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return rp_errf(err, "%s: not a PEM certificate (%s)", path, ssl_reason());
	X509_free(x);
	return 0;
}

/* May uid/gid do `want` (4 read, 1 search) on st, by its mode bits? Root may do anything. */
static int mode_allows(const struct stat *st, unsigned uid, unsigned gid, unsigned want)
{
	unsigned m = (unsigned)st->st_mode;

	if (uid == 0)
		return 1;
	if (st->st_uid == uid)
		return ((m >> 6) & want) == want;
	if (st->st_gid == gid)
		return ((m >> 3) & want) == want;
	return (m & want) == want;
}

int serve_check_access(const char *path, unsigned uid, unsigned gid, struct rp_err *err)
{
	char *abs = realpath(path, NULL), *p;
	struct stat st;
	int ret = -1;

	if (!abs)
		return rp_errno(err, "%s", path);
	/* Each parent directory, from / down, must be searchable. */
	for (p = abs + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		if (c == '\0')
			break;
		*p = '\0';
		if (stat(abs, &st) < 0) {
			rp_errno(err, "%s", abs);
			goto out;
		}
		if (!mode_allows(&st, uid, gid, 1)) {
			rp_errf(err, "directory %s (mode %04o) is not searchable by uid %u", abs,
				(unsigned)st.st_mode & 07777, uid);
			goto out;
		}
		*p = '/';
	}
	if (stat(abs, &st) < 0) {
		rp_errno(err, "%s", abs);
		goto out;
	}
	if (!mode_allows(&st, uid, gid, S_ISDIR(st.st_mode) ? 5 : 4)) {
		rp_errf(err, "%s (mode %04o) is not readable by uid %u", abs,
			(unsigned)st.st_mode & 07777, uid);
		goto out;
	}
	ret = 0;
out:
	free(abs);
	return ret;
}

int serve_prepare_log(const char *path, unsigned uid, unsigned gid, struct rp_err *err)
{
	struct stat st;
	int fd;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd >= 0) {
		if (fchown(fd, uid, gid) < 0) {
			rp_errno(err, "access log %s: chown", path);
			close(fd);
			return -1;
		}
		close(fd);
		return 0;
	}
	if (errno != EEXIST)
		return rp_errno(err, "access log %s", path);
	if (stat(path, &st) < 0)
		return rp_errno(err, "access log %s", path);
	if (!S_ISREG(st.st_mode) || !mode_allows(&st, uid, gid, 2))
		return rp_errf(err, "access log %s (mode %04o, uid %u) is not writable by uid %u", path,
			       (unsigned)st.st_mode & 07777, (unsigned)st.st_uid, uid);
	return 0;
}

int serve_check(const struct serve_opts *o, struct rp_err *err)
{
	struct serve_listen l;

	if (!o->tree)
		return rp_errf(err, "no tree given");
	if (serve_check_tree(o->tree, err) < 0)
		return -1;
	if (serve_parse_listen(o->listen ? o->listen : SERVE_DEFAULT_LISTEN, &l, err) < 0)
		return -1;
	if (o->htpasswd && serve_check_htpasswd(o->htpasswd, err) < 0)
		return -1;
	if (o->client_ca && serve_check_client_ca(o->client_ca, err) < 0)
		return -1;
	return serve_check_tls(o->cert, o->key, err);
}

/* lighttpd's connection limits. Measured with lighttpd 1.4.69 (Debian 12) and read in its source
 * (server.c, connections.c): without server.max-fds a worker uses min(soft RLIMIT_NOFILE, 4096)
 * descriptors and a third as many connections, and a worker that is full takes its listening
 * socket out of its event loop until one of its connections closes; it never closes an idle one
 * to make room. New clients then wait in the kernel's accept queue: 1365 idle connections per
 * worker lock everyone out (341 under systemd, whose soft limit is 1024), and a connection that
 * never sends a request holds its slot for server.max-read-idle, 60 s by default. So:
 *
 * - F = server.max-fds = min(65535, hard RLIMIT_NOFILE). The hard limit is what an unprivileged
 *   lighttpd may raise its soft limit to, and lighttpd sets its limit to F itself once F is given
 *   (cmd_serve raises the soft limit beforehand too). 1.4.69 stores F in an unsigned short, so
 *   65535 is its largest (65536 silently becomes 4096). Giving F also rules out an fd above the
 *   size of lighttpd's fd table, which 1.4.69 allows when F is unset and the soft limit is above
 *   4096 (fixed upstream in 1.4.83).
 * - C = server.max-connections = F / 4: a connection takes one descriptor, plus one shared by all
 *   requests for the same file being sent (lighttpd's stat cache); the rest is headroom for
 *   HTTP/2 streams and for files. lighttpd refuses more than F / 2; never fewer than 64 when F
 *   allows. Each worker is a process with its own F and C, so W workers hold W x C connections
 *   (the kernel spreads accepts about evenly, but C alone is what is certain). At ~48 KiB per
 *   idle connection (measured) the worst case is about C x 48 KiB per worker.
 * - server.listen-backlog = min(C, net.core.somaxconn): bursts of new connections wait in the
 *   kernel rather than being refused (the kernel caps the queue at somaxconn anyway).
 * - server.max-read-idle = 15 s (default 60): a connection must complete its TLS handshake and
 *   its first request's headers in that time. Idle connections are not what fills the server any
 *   more (C is large), but each stray one (a dead node, a port scan, a load balancer's TCP check)
 *   holds its slot a quarter as long. Downloads are not affected: lighttpd does not wait to read
 *   while it writes a response.
 * - server.max-keep-alive-idle = 5 s between requests (the default, kept explicit).
 * - server.max-write-idle = 120 s (default 360): a client that takes nothing for two minutes is
 *   gone.
 * lighttpd 1.4.69 has no per-client connection limit (mod_evasive was removed in 1.4.68, and it
 * counted only connections that had sent a request): a proxy (examples/haproxy.cfg) or the
 * firewall provides one. */
void serve_limits(unsigned long nofile, unsigned long somaxconn, struct serve_limits *out)
{
	unsigned f = nofile > SERVE_MAX_FDS ? SERVE_MAX_FDS : (unsigned)nofile;
	unsigned c = f / 4;

	if (c < 64)
		c = f / 2 < 64 ? f / 2 : 64;
	out->max_fds = f;
	out->max_conns = c;
	out->backlog = somaxconn < c ? (unsigned)somaxconn : c;
	out->read_idle = 15;
	out->keep_alive_idle = 5;
	out->write_idle = 120;
}

unsigned long serve_nofile_hard(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024; /* Linux's default; getrlimit does not fail for a valid resource */
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > ULONG_MAX)
		return ULONG_MAX;
	return (unsigned long)rl.rlim_max;
}

unsigned long serve_somaxconn(void)
{
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
	unsigned long n = 0;

	if (f) {
		if (fscanf(f, "%lu", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n ? n : SERVE_DEFAULT_SOMAXCONN;
}

/* User and group names go into the configuration: keep them to what useradd accepts. */
static int name_safe(const char *what, const char *s, struct rp_err *err)
{
	const char *p;

	if (!*s)
		return rp_errf(err, "empty %s name", what);
	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.' &&
		    !(*p == '$' && !p[1]))
			return rp_errf(err, "%s name %s: unexpected character", what, s);
	return 0;
}

/* lighttpd string literals have no escape we can rely on for every character, so refuse the few
 * that would end or break one rather than quote them. */
static int config_safe(const char *what, const char *s, struct rp_err *err)
{
	const char *p;

	for (p = s; *p; p++)
		if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
			return rp_errf(err, "%s %s: contains a quote, backslash or control character",
				       what, s);
	return 0;
}

/* Absolute path of an existing file or directory. */
static char *abs_existing(const char *what, const char *path, struct rp_err *err)
{
	char *r = realpath(path, NULL);

	if (!r) {
		rp_errno(err, "%s %s", what, path);
		return NULL;
	}
	if (config_safe(what, r, err) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

/* Absolute path of something that may not exist yet (runtime directory, log file). */
static char *abs_any(const char *what, const char *path, struct rp_err *err)
{
	char cwd[PATH_MAX];
	char *r;

	if (path[0] == '/') {
		r = strdup(path);
	} else {
		if (!getcwd(cwd, sizeof(cwd))) {
			rp_errno(err, "getcwd");
			return NULL;
		}
		r = rp_join(cwd, path);
	}
	if (!r) {
		rp_errf(err, "out of memory");
		return NULL;
	}
	if (config_safe(what, r, err) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

/* The limits block of the configuration (serve_limits says why these values). */
static void write_limits(FILE *f, const struct serve_opts *o)
{
	unsigned long nofile = o->nofile ? o->nofile : serve_nofile_hard();
	struct serve_limits l;
	char hard[32];

	serve_limits(nofile, o->somaxconn ? o->somaxconn : serve_somaxconn(), &l);
	if (nofile == ULONG_MAX)
		strcpy(hard, "unlimited");
	else
		snprintf(hard, sizeof(hard), "%lu", nofile);
	fprintf(f,
		"# Limits for each worker process. Unset, lighttpd would use at most 4096 fds and\n"
		"# a third as many connections, and a full worker stops accepting: idle connections\n"
		"# would lock every other client out. max-fds = min(65535, hard RLIMIT_NOFILE, here\n"
		"# %s); lighttpd sets its own fd limit to it.\n"
		"server.max-fds = %u\n"
		"# A quarter of the fds: one per connection, one per file being sent, HTTP/2 headroom.\n"
		"server.max-connections = %u\n"
		"# New connections beyond that wait in the kernel (capped by net.core.somaxconn).\n"
		"server.listen-backlog = %u\n"
		"# The TLS handshake and the first request's headers within 15 s (default 60), 5 s\n"
		"# between requests, and a download that makes no progress for 120 s ends.\n"
		"server.max-read-idle = %u\n"
		"server.max-keep-alive-idle = %u\n"
		"server.max-write-idle = %u\n",
		hard, l.max_fds, l.max_conns, l.backlog, l.read_idle, l.keep_alive_idle,
		l.write_idle);
}

/* What the configuration names, made absolute and checked (config_safe), and the address. */
struct conf {
	char *tree, *cert, *key, *dir, *log; /* log: NULL for none or standard error */
	char *htpasswd, *client_ca;	     /* NULL when not asked for */
	struct serve_listen l;
};

static void conf_free(struct conf *c)
{
	free(c->tree);
	free(c->cert);
	free(c->key);
	free(c->dir);
	free(c->log);
	free(c->htpasswd);
	free(c->client_ca);
}

static int conf_resolve(const struct serve_opts *o, const char *dir, struct conf *c,
			struct rp_err *err)
{
	memset(c, 0, sizeof(*c));
	if (serve_parse_listen(o->listen ? o->listen : SERVE_DEFAULT_LISTEN, &c->l, err) < 0)
		return -1;
	if (!o->tree || !o->cert || !o->key)
		return rp_errf(err, "a tree, a certificate and a key are required");
	if (!(c->tree = abs_existing("tree", o->tree, err)) ||
	    !(c->cert = abs_existing("certificate", o->cert, err)) ||
	    !(c->key = abs_existing("key", o->key, err)) ||
	    !(c->dir = abs_any("directory", dir, err)))
		return -1;
	if (o->htpasswd && !(c->htpasswd = abs_existing("htpasswd file", o->htpasswd, err)))
		return -1;
	if (o->client_ca && !(c->client_ca = abs_existing("client CA", o->client_ca, err)))
		return -1;
	if (o->workers < 0 || o->workers > SERVE_MAX_WORKERS)
		return rp_errf(err, "%d worker processes: 1 to %d are possible", o->workers,
			       SERVE_MAX_WORKERS);
	if ((o->user && name_safe("user", o->user, err) < 0) ||
	    (o->group && name_safe("group", o->group, err) < 0))
		return -1;
	if (o->access_log && strcmp(o->access_log, "-") &&
	    !(c->log = abs_any("access log", o->access_log, err)))
		return -1;
	return 0;
}

/* The server section: modules, where and as whom it serves, its processes and limits. */
static void write_server(FILE *f, const struct serve_opts *o, const struct conf *c)
{
	const char *tree = c->tree, *adir = c->dir, *htpasswd = c->htpasswd;
	const struct serve_listen l = c->l;

	fprintf(f,
		"# Generated by regpress serve: lighttpd >= 1.4.69 serving the regpress tree\n"
		"# %s as the OCI Distribution pull API (docs/tree-format.md).\n"
		"# Run: lighttpd -D -f %s/lighttpd.conf\n\n",
		tree, adir);
	fprintf(f, "server.modules = (\"mod_openssl\", \"mod_setenv\", %s\"mod_magnet\"%s)\n\n",
		htpasswd ? "\"mod_auth\", \"mod_authn_file\", " : "",
		o->access_log ? ", \"mod_accesslog\"" : "");
	fprintf(f, "server.document-root = \"%s\"\n", tree);
	/* lighttpd 1.4.69 resolves a bare "::1" as a host name and fails; brackets make it an
	 * address. */
	fprintf(f, l.ipv6 ? "server.bind = \"[%s]\"\n" : "server.bind = \"%s\"\n", l.host);
	fprintf(f, "server.port = %u\n", l.port);
	if (o->user) {
		fprintf(f,
			"# Started as root: bind the port and read the certificate and key as root,\n"
			"# then serve as this user (it must be able to read the tree%s).\n"
			"server.username = \"%s\"\n",
			htpasswd ? " and the htpasswd file" : "", o->user);
		if (o->group)
			fprintf(f, "server.groupname = \"%s\"\n", o->group);
	}
	if (o->workers > 1)
		fprintf(f,
			"# Worker processes, each with its own connections: TLS and the script are\n"
			"# CPU-bound, and one lighttpd process uses one core.\n"
			"server.max-worker = %d\n",
			o->workers);
	write_limits(f, o);
	fprintf(f,
		"server.tag = \"regpress\"\n"
		"# The tree has no symlinks (tree-format.md), so none may lead out of it.\n"
		"server.follow-symlink = \"disable\"\n"
		"# The pull API has no request bodies (KiB).\n"
		"server.max-request-size = 1\n"
		"# Stop within seconds even with clients still downloading.\n"
		"server.feature-flags = (\"server.graceful-shutdown-timeout\" => 5)\n"
		"# Identical ETags on every copy of a tree (inode numbers differ between copies).\n"
		"etag.use-inode = \"disable\"\n"
		"# The script sets Content-Type for everything it serves; .html is only the error\n"
		"# files below, which hold JSON.\n"
		"mimetype.assign = (\".html\" => \"application/json\", \"\" => \"application/octet-stream\")\n"
		"server.errorfile-prefix = \"%s/errors/status-\"\n\n",
		adir);
}

/* TLS: the certificate and key, the protocol and ciphers, and mutual TLS if asked for. */
static void write_tls(FILE *f, const struct conf *c)
{
	const char *cert = c->cert, *key = c->key, *client_ca = c->client_ca;

	fprintf(f,
		"ssl.engine = \"enable\"\n"
		"ssl.pemfile = \"%s\"\n"
		"ssl.privkey = \"%s\"\n"
		"# TLS 1.2 with ECDHE and AEAD ciphers only, and TLS 1.3. The server's order picks\n"
		"# AES-128-GCM, the cheapest for both ends with AES instructions (OpenSSL's own order\n"
		"# puts AES-256 first, 1.6x the cost per byte); ChaCha20 for clients that prefer it\n"
		"# because they lack them.\n"
		"ssl.openssl.ssl-conf-cmd = (\"MinProtocol\" => \"TLSv1.2\",\n"
		"                            \"Options\" => \"ServerPreference,PrioritizeChaCha\",\n"
		"                            \"CipherString\" => \"EECDH+AESGCM+AES128:EECDH+AESGCM+AES256:EECDH+CHACHA20\",\n"
		"                            \"Ciphersuites\" => \"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256\")\n\n",
		cert, key);
	if (client_ca)
		fprintf(f,
			"# Mutual TLS: only clients with a certificate issued by these CAs get in.\n"
			"ssl.ca-file = \"%s\"\n"
			"ssl.verifyclient.activate = \"enable\"\n"
			"ssl.verifyclient.enforce = \"enable\"\n"
			"ssl.verifyclient.depth = 4\n\n",
			client_ca);
}

/* HTTP basic authentication, if asked for. */
static void write_auth(FILE *f, const struct conf *c)
{
	const char *htpasswd = c->htpasswd;

	if (htpasswd)
		fprintf(f,
			"# HTTP basic authentication on everything (docker login, skopeo --creds): a 401\n"
			"# with WWW-Authenticate: Basic realm=\"regpress\" and an UNAUTHORIZED body.\n"
			"# lighttpd reads the file on each request, so edits apply at once.\n"
			"auth.backend = \"htpasswd\"\n"
			"auth.backend.htpasswd.userfile = \"%s\"\n"
			"auth.require = (\"/\" => (\"method\" => \"basic\", \"realm\" => \"regpress\",\n"
			"                          \"require\" => \"valid-user\"))\n\n",
			htpasswd);
}

/* The script on every request, the API version header, the access log. */
static void write_script(FILE *f, const struct serve_opts *o, const struct conf *c)
{
	const char *adir = c->dir, *alog = c->log;

	fprintf(f,
		"# Every request goes through the script: it maps the API onto the tree and answers\n"
		"# everything else itself, so no URL reaches a file of the tree directly.\n"
		"magnet.attract-physical-path-to = (\"%s/regpress.lua\")\n"
		"# ...and, for manifests, again once the response starts: a manifest file lighttpd has\n"
		"# just sent enters the script's in-memory cache.\n"
		"$HTTP[\"url\"] =~ \"/manifests/\" {\n"
		"\tmagnet.attract-response-start-to = (\"%s/regpress.lua\")\n"
		"}\n\n"
		"# Also on the errors lighttpd generates itself (the script sets it on its own answers).\n"
		"$HTTP[\"url\"] =~ \"^/v2(/|$)\" {\n"
		"\tsetenv.set-response-header = (\"Docker-Distribution-API-Version\" => \"registry/2.0\")\n"
		"}\n",
		adir, adir);
	if (o->access_log && !alog && o->log_fd > 2)
		fprintf(f, "\naccesslog.filename = \"|exec cat >&%d\"\n", o->log_fd);
	else if (o->access_log)
		fprintf(f, "\naccesslog.filename = \"%s\"\n", alog ? alog : "/dev/stderr");
}

int serve_config(const struct serve_opts *o, const char *dir, char **out, struct rp_err *err)
{
	struct conf c;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = NULL;
	int ret = -1;

	*out = NULL;
	if (conf_resolve(o, dir, &c, err) < 0)
		goto out;
	if (!(f = open_memstream(&buf, &len))) {
		rp_errno(err, "open_memstream");
		goto out;
	}
	write_server(f, o, &c);
	write_tls(f, &c);
	write_auth(f, &c);
	write_script(f, o, &c);
	ret = fclose(f) == 0 ? 0 : rp_errno(err, "writing configuration");
	if (ret == 0) {
		*out = buf;
		buf = NULL;
	}
out:
	free(buf);
	conf_free(&c);
	return ret;
}

static int write_in(const char *dir, const char *name, const void *data, size_t len,
		    struct rp_err *err)
{
	char *p = rp_join(dir, name);
	int ret;

	if (!p)
		return rp_errf(err, "out of memory");
	ret = rp_write_atomic(p, data, len, err);
	free(p);
	return ret;
}

int serve_write_dir(const struct serve_opts *o, const char *dir, char **conf_path,
		    struct rp_err *err)
{
	char *conf = NULL, *errdir = NULL;
	char name[64], body[256];
	size_t i;
	int n, ret = -1;

	if (conf_path)
		*conf_path = NULL;
	if (serve_config(o, dir, &conf, err) < 0)
		goto out;
	errdir = rp_join(dir, "errors");
	if (!errdir) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (rp_mkdirs(errdir, err) < 0)
		goto out;
	for (i = 0; i < sizeof(error_files) / sizeof(error_files[0]); i++) {
		snprintf(name, sizeof(name), "status-%d.html", error_files[i].status);
		n = snprintf(body, sizeof(body),
			     "{\"errors\":[{\"code\":\"%s\",\"message\":\"%s\",\"detail\":null}]}",
			     error_files[i].code, error_files[i].message);
		if (write_in(errdir, name, body, (size_t)n, err) < 0)
			goto out;
	}
	if (write_in(dir, "regpress.lua", serve_lua_script, serve_lua_script_len, err) < 0)
		goto out;
	if (write_in(dir, "lighttpd.conf", conf, strlen(conf), err) < 0)
		goto out;
	if (conf_path) {
		*conf_path = rp_join(dir, "lighttpd.conf");
		if (!*conf_path) {
			rp_errf(err, "out of memory");
			goto out;
		}
	}
	ret = 0;
out:
	free(conf);
	free(errdir);
	return ret;
}
