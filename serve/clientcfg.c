#include "clientcfg.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fsutil.h"
#include "tree.h"
#include "snapshot.h"

unsigned serve_clientcfg_kind(const char *name)
{
	static const struct {
		const char *name;
		unsigned bit;
	} kinds[] = {
		{ "containerd", SERVE_CLIENT_CONTAINERD }, { "docker", SERVE_CLIENT_DOCKER },
		{ "podman", SERVE_CLIENT_PODMAN },	   { "cri-o", SERVE_CLIENT_PODMAN },
		{ "k3s", SERVE_CLIENT_K3S },		   { "rke2", SERVE_CLIENT_RKE2 },
		{ "talos", SERVE_CLIENT_TALOS },	   { "all", SERVE_CLIENT_ALL },
	};
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(name, kinds[i].name))
			return kinds[i].bit;
	return 0;
}

int serve_clientcfg_host_valid(const char *s)
{
	const char *colon = strrchr(s, ':'), *p;
	size_t hlen;

	if (!*s || strlen(s) > 255)
		return 0;
	if (s[0] == '[') { /* [IPv6]:port */
		const char *close = strchr(s, ']');

		if (!close || close == s + 1)
			return 0;
		for (p = s + 1; p < close; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return 0;
		if (!close[1])
			return 1;
		colon = close + 1;
		if (*colon != ':')
			return 0;
		hlen = 0;
	} else {
		if (colon && strchr(s, ':') != colon)
			return 0;
		hlen = colon ? (size_t)(colon - s) : strlen(s);
		if (hlen == 0)
			return 0;
		for (p = s; p < s + hlen; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
				return 0;
		if (s[0] == '.' || s[0] == '-' || s[hlen - 1] == '.' || s[hlen - 1] == '-')
			return 0;
	}
	if (colon) {
		if (!colon[1] || strlen(colon + 1) > 5)
			return 0;
		for (p = colon + 1; *p; p++)
			if (!isdigit((unsigned char)*p))
				return 0;
		if (atoi(colon + 1) < 1 || atoi(colon + 1) > 65535)
			return 0;
	}
	return 1;
}

int serve_clientcfg_server(const char *arg, char *out, size_t outsz, struct rp_err *err)
{
	const char *s = arg;
	size_t len;

	if (!strncasecmp(s, "https://", 8))
		s += 8;
	else if (strstr(s, "://"))
		return rp_errf(err, "server %s: expected HOST:PORT or https://HOST:PORT (regpress "
				    "serves HTTPS only)", arg);
	len = strlen(s);
	if (s != arg && len && s[len - 1] == '/')
		len--;
	if (len >= outsz)
		return rp_errf(err, "server %s: too long", arg);
	memcpy(out, s, len);
	out[len] = '\0';
	if (!serve_clientcfg_host_valid(out))
		return rp_errf(err, "server %s: expected HOST:PORT or https://HOST:PORT", arg);
	/* Port 443 is what a name without one means; clients then use the bare host. */
	if (len > 4 && !strcmp(out + len - 4, ":443"))
		out[len - 4] = '\0';
	return 0;
}

int serve_clientcfg_zstd_repo(const char *tree, char **repo, struct rp_err *err)
{
	struct snapshot snap;
	char *text = NULL;
	size_t i, len;
	int ret = 0;

	*repo = NULL;
	if (layout_snapshot_load(tree, &snap, &text, err) < 0)
		return -1;
	for (i = 0; i < snap.n && !*repo; i++) {
		const struct snap_rec *r = &snap.v[i];

		len = r->media_type ? strlen(r->media_type) : 0;
		if (r->kind != SNAP_BLOB || len < 5 || strcmp(r->media_type + len - 5, "+zstd"))
			continue;
		*repo = strdup(r->repo);
		if (!*repo)
			ret = rp_errf(err, "out of memory");
	}
	snapshot_free(&snap);
	free(text);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort and drop duplicates in place. */
static void sort_unique(char **v, size_t *n)
{
	size_t i, j = 0;

	qsort(v, *n, sizeof(*v), cmp_str);
	for (i = 0; i < *n; i++) {
		if (j && !strcmp(v[j - 1], v[i])) {
			free(v[i]);
			continue;
		}
		v[j++] = v[i];
	}
	*n = j;
}

int serve_clientcfg_registries(const char *tree, char ***out, size_t *n, struct rp_err *err)
{
	struct snapshot snap;
	char **v = NULL;
	size_t i, k = 0;
	int ret = -1;

	*out = NULL;
	*n = 0;
	/* The tree's repositories, read through its handle (the catalog is derived from them). */
	if (layout_snapshot_load(tree, &snap, NULL, err) < 0)
		return -1;
	v = calloc(snap.n + 1, sizeof(*v));
	if (!v) {
		rp_errf(err, "out of memory");
		goto out;
	}
	for (i = 0; i < snap.n; i++) {
		const char *name = snap.v[i].repo, *slash;
		size_t hl;

		if (k && i && !strcmp(name, snap.v[i - 1].repo))
			continue;
		/* tree-format.md "Names": a first component with '.' or ':', or localhost, is a
		 * registry host; anything else came from docker.io. */
		slash = strchr(name, '/');
		hl = slash ? (size_t)(slash - name) : 0;
		if (slash && (memchr(name, '.', hl) || memchr(name, ':', hl) ||
			      (hl == 9 && !strncmp(name, "localhost", 9))))
			v[k] = strndup(name, hl);
		else
			v[k] = strdup("docker.io");
		if (!v[k]) {
			rp_errf(err, "out of memory");
			goto out;
		}
		k++;
	}
	sort_unique(v, &k);
	*out = v;
	*n = k;
	v = NULL;
	ret = 0;
out:
	if (v) {
		for (i = 0; i < k; i++)
			free(v[i]);
		free(v);
	}
	snapshot_free(&snap);
	return ret;
}

/* ----------------------------------------------------------------------------------------- */

struct gen {
	const struct serve_clientcfg_opts *o;
	const char *server;  /* host:port as clients name it */
	char **regs;	     /* registries to mirror, sorted, without the server itself */
	size_t nregs;
	const char *ca_pem;  /* the CA certificate(s), as read */
	size_t ca_len;
	FILE *readme;	     /* README.regpress being written */
};

/* Write OUT/rel (directories made), replacing an older file. */
static int put(struct gen *g, const char *rel, const char *data, size_t len, struct rp_err *err)
{
	char *path = rp_join(g->o->out, rel), *slash;
	int ret = -1;

	if (!path)
		return rp_errf(err, "out of memory");
	slash = strrchr(path, '/');
	*slash = '\0';
	if (rp_mkdirs(path, err) == 0) {
		*slash = '/';
		ret = rp_write_atomic(path, data, len, err);
	}
	free(path);
	if (ret == 0)
		fprintf(g->readme, "  /%s\n", rel);
	return ret;
}

/* put() of a memstream's text; f is closed. */
static int put_stream(struct gen *g, const char *rel, FILE *f, char **buf, size_t *len,
		      struct rp_err *err)
{
	int ret;

	if (fclose(f) != 0) {
		free(*buf);
		*buf = NULL;
		return rp_errf(err, "out of memory");
	}
	ret = put(g, rel, *buf, *len, err);
	free(*buf);
	*buf = NULL;
	return ret;
}

#define OPEN_MEM(f, buf, len)                                                                     \
	do {                                                                                      \
		(f) = open_memstream(&(buf), &(len));                                             \
		if (!(f))                                                                         \
			return rp_errno(err, "open_memstream");                                  \
	} while (0)

/* The upstream a registry's containerd hosts.toml names as server (used only if the mirror
 * fails; in an enclave it never answers). */
static void upstream(const char *reg, char *out, size_t outsz)
{
	if (!strcmp(reg, "docker.io"))
		snprintf(out, outsz, "https://registry-1.docker.io");
	else
		snprintf(out, outsz, "https://%s", reg);
}

static int gen_containerd(struct gen *g, struct rp_err *err)
{
	char rel[600], up[300], *buf = NULL;
	size_t len = 0, i;
	FILE *f;

	/* ca is relative: containerd resolves it against the directory of hosts.toml, so the
	 * tree works wherever it is copied (/etc/containerd/certs.d, ctr --hosts-dir ...). */
	for (i = 0; i <= g->nregs; i++) {
		const char *dir = i == 0 ? g->server : g->regs[i - 1];

		OPEN_MEM(f, buf, len);
		if (i == 0) {
			/* containerd also tries `server` itself, last and with the top-level
			 * settings only: without a top-level ca, every miss (a tag the tree lacks)
			 * ends as a certificate error there instead of "not found". The [host]
			 * block stays: containerd 1.6 without one does not read the file. */
			fprintf(f, "# regpress: pulls from %s itself (ctr pull %s/library/NAME:TAG).\n"
				   "server = \"https://%s\"\n"
				   "# For server itself too, tried last: a miss is then \"not found\",\n"
				   "# not a certificate error.\n"
				   "ca = \"ca.crt\"\n\n",
				g->server, g->server, g->server);
		} else {
			upstream(dir, up, sizeof(up));
			fprintf(f, "# regpress: pulls of %s/... go to the regpress server %s, which\n"
				   "# routes them by the ?ns=%s parameter containerd adds for mirrors.\n"
				   "server = \"%s\"\n\n",
				dir, g->server, dir, up);
		}
		fprintf(f, "[host.\"https://%s\"]\n"
			   "  capabilities = [\"pull\", \"resolve\"]\n"
			   "  ca = \"ca.crt\"\n",
			g->server);
		snprintf(rel, sizeof(rel), "etc/containerd/certs.d/%s/hosts.toml", dir);
		if (put_stream(g, rel, f, &buf, &len, err) < 0)
			return -1;
		snprintf(rel, sizeof(rel), "etc/containerd/certs.d/%s/ca.crt", dir);
		if (put(g, rel, g->ca_pem, g->ca_len, err) < 0)
			return -1;
	}
	fprintf(g->readme,
		"  containerd (and kubelet through it): /etc/containerd/config.toml must name the\n"
		"  directory, once; containerd reads config.toml only when it starts, so restart it\n"
		"  after adding this (systemctl restart containerd):\n"
		"    containerd 1.x:\n"
		"      [plugins.\"io.containerd.grpc.v1.cri\".registry]\n"
		"        config_path = \"/etc/containerd/certs.d\"\n"
		"    containerd 2.x (the CRI image service is its own plugin there):\n"
		"      [plugins.\"io.containerd.cri.v1.images\".registry]\n"
		"        config_path = \"/etc/containerd/certs.d\"\n"
		"  The certs.d files themselves are read at every pull: adding or changing them\n"
		"  needs no restart. ctr: ctr images pull --hosts-dir /etc/containerd/certs.d ...\n"
		"  A mirrored registry's hosts.toml keeps the upstream as its server, which\n"
		"  containerd tries after regpress (in an air gap it fails; nothing comes from it).\n\n");
	return 0;
}

static int gen_docker(struct gen *g, struct rp_err *err)
{
	char rel[600], *buf = NULL;
	size_t len = 0;
	FILE *f;

	snprintf(rel, sizeof(rel), "etc/docker/certs.d/%s/ca.crt", g->server);
	if (put(g, rel, g->ca_pem, g->ca_len, err) < 0)
		return -1;
	OPEN_MEM(f, buf, len);
	fprintf(f, "{\n  \"registry-mirrors\": [\"https://%s\"]\n}\n", g->server);
	if (put_stream(g, "etc/docker/daemon.json", f, &buf, &len, err) < 0)
		return -1;
	fprintf(g->readme,
		"  docker: certs.d is read at every pull (no restart). daemon.json is a snippet:\n"
		"  merge \"registry-mirrors\" into an existing /etc/docker/daemon.json, then\n"
		"  systemctl reload docker (dockerd rereads registry-mirrors on SIGHUP). Docker\n"
		"  mirrors docker.io only, and on a miss asks Docker Hub itself (in an air gap the\n"
		"  error shown is then the Hub's); pull other images as\n"
		"  %s/<registry>/<name>:<tag>.\n"
		"  Docker 20.10 (Debian 12's docker.io) cannot pull zstd layers.\n\n",
		g->server);
	return 0;
}

static int gen_podman(struct gen *g, struct rp_err *err)
{
	char rel[600], *buf = NULL;
	size_t len = 0, i;
	int pass, first;
	FILE *f;

	snprintf(rel, sizeof(rel), "etc/containers/certs.d/%s/ca.crt", g->server);
	if (put(g, rel, g->ca_pem, g->ca_len, err) < 0)
		return -1;
	OPEN_MEM(f, buf, len);
	fprintf(f, "# regpress: %s mirrors these registries (containers-registries.conf(5)).\n"
		   "# A mirror location replaces the registry host in the image name, so\n"
		   "# docker.io maps to the server's root and REGISTRY to <server>/REGISTRY,\n"
		   "# which is how the tree names its repositories.\n",
		g->server);
	if (g->nregs) {
		/* Short names (podman pull app:1) as Docker users expect them: docker.io first.
		 * A top-level key, so before the first table; it replaces the system list. */
		fprintf(f, "\n# Short names are looked for in these, in order (replaces the system list).\n"
			   "unqualified-search-registries = [");
		for (pass = 0, first = 1; pass < 2; pass++)
			for (i = 0; i < g->nregs; i++) {
				if (!strcmp(g->regs[i], "docker.io") != (pass == 0))
					continue;
				fprintf(f, "%s\"%s\"", first ? "" : ", ", g->regs[i]);
				first = 0;
			}
		fprintf(f, "]\n");
	}
	for (i = 0; i < g->nregs; i++) {
		int dock = !strcmp(g->regs[i], "docker.io");

		fprintf(f, "\n[[registry]]\nprefix = \"%s\"\nlocation = \"%s\"\n\n"
			   "[[registry.mirror]]\nlocation = \"%s%s%s\"\n",
			g->regs[i], g->regs[i], g->server, dock ? "" : "/", dock ? "" : g->regs[i]);
	}
	if (put_stream(g, "etc/containers/registries.conf.d/50-regpress.conf", f, &buf, &len,
		       err) < 0)
		return -1;
	fprintf(g->readme,
		"  podman/CRI-O/skopeo/buildah: read at every run; no restart needed. Short\n"
		"  names (podman pull NAME:TAG) are looked for in the mirrored registries,\n"
		"  docker.io first (unqualified-search-registries, which replaces the system's).\n\n");
	return 0;
}

/* k3s or rke2 (dist): registries.yaml, the format both read, each from its own directory, and a
 * config drop-in that keeps their containerd from falling back to the registries themselves. */
static int gen_rancher(struct gen *g, const char *dist, struct rp_err *err)
{
	char rel[600], *buf = NULL;
	size_t len = 0, i;
	FILE *f;

	OPEN_MEM(f, buf, len);
	fprintf(f, "# regpress: %s pulls through %s (%s writes containerd's hosts.toml\n"
		   "# from this file when it starts: restart the %s service after a change).\n"
		   "mirrors:\n",
		dist, g->server, dist, dist);
	for (i = 0; i <= g->nregs; i++)
		fprintf(f, "  \"%s\":\n    endpoint:\n      - \"https://%s\"\n",
			i ? g->regs[i - 1] : g->server, g->server);
	fprintf(f, "configs:\n  \"%s\":\n    tls:\n      ca_file: /etc/rancher/%s/regpress-ca.crt\n",
		g->server, dist);
	snprintf(rel, sizeof(rel), "etc/rancher/%s/registries.yaml", dist);
	if (put_stream(g, rel, f, &buf, &len, err) < 0)
		return -1;
	snprintf(rel, sizeof(rel), "etc/rancher/%s/regpress-ca.crt", dist);
	if (put(g, rel, g->ca_pem, g->ca_len, err) < 0)
		return -1;
	/* An air gap has no upstream: without this, every miss is retried against the registry
	 * itself and reported as that attempt's failure. */
	OPEN_MEM(f, buf, len);
	fprintf(f, "# regpress: pull from the mirrors in registries.yaml only, never from the\n"
		   "# registries themselves (an air gap has none to reach, and a miss is then\n"
		   "# reported as a miss). %s releases of January 2024 on (v1.26.13, v1.27.10,\n"
		   "# v1.28.6, v1.29.1); delete this file on a site that may reach the registries.\n"
		   "disable-default-registry-endpoint: true\n",
		dist);
	snprintf(rel, sizeof(rel), "etc/rancher/%s/config.yaml.d/50-regpress.yaml", dist);
	if (put_stream(g, rel, f, &buf, &len, err) < 0)
		return -1;
	fprintf(g->readme,
		"  %s: restart the %s (or %s-agent) service. config.yaml.d/50-regpress.yaml\n"
		"  turns off the fallback to the registries themselves, the air-gapped default;\n"
		"  delete it on a connected site.\n\n",
		dist, dist, dist);
	return 0;
}

static int gen_talos(struct gen *g, struct rp_err *err)
{
	char *buf = NULL, *b64 = NULL;
	size_t len = 0, i;
	BIO *mem, *enc;
	long n;
	FILE *f;

	/* machine.registries.config.<host>.tls.ca holds the PEM, base64-encoded. */
	mem = BIO_new(BIO_s_mem());
	enc = BIO_new(BIO_f_base64());
	if (!mem || !enc) {
		BIO_free(mem);
		BIO_free(enc);
		return rp_errf(err, "out of memory");
	}
	BIO_set_flags(enc, BIO_FLAGS_BASE64_NO_NL);
	enc = BIO_push(enc, mem);
	if (BIO_write(enc, g->ca_pem, (int)g->ca_len) != (int)g->ca_len || BIO_flush(enc) != 1 ||
	    (n = BIO_get_mem_data(mem, &b64)) <= 0) {
		BIO_free_all(enc);
		return rp_errf(err, "base64: %s", ERR_reason_error_string(ERR_get_error()));
	}
	f = open_memstream(&buf, &len);
	if (!f) {
		BIO_free_all(enc);
		return rp_errno(err, "open_memstream");
	}
	fprintf(f, "# regpress: Talos machine-config patch: pull through %s.\n"
		   "#   talosctl patch machineconfig -n NODE --patch @regpress-registries.yaml\n"
		   "# (or talosctl gen config --config-patch @regpress-registries.yaml)\n"
		   "# skipFallback: never pull from the registries themselves (an air gap has none\n"
		   "# to reach); remove those lines on a site that may reach them.\n"
		   "machine:\n  registries:\n    mirrors:\n",
		g->server);
	/* skipFallback: the air-gapped default, as for k3s and rke2 (see gen_rancher). */
	for (i = 0; i <= g->nregs; i++)
		fprintf(f, "      \"%s\":\n        endpoints:\n          - \"https://%s\"\n"
			   "        skipFallback: true\n",
			i ? g->regs[i - 1] : g->server, g->server);
	fprintf(f, "    config:\n      \"%s\":\n        tls:\n          ca: \"%.*s\"\n", g->server,
		(int)n, b64);
	BIO_free_all(enc);
	if (put_stream(g, "talos/regpress-registries.yaml", f, &buf, &len, err) < 0)
		return -1;
	fprintf(g->readme, "  talos: apply the patch with talosctl (see its first lines). skipFallback\n"
			   "  is the air-gapped default; remove it on a connected site.\n\n");
	return 0;
}

/* The options a caller may get wrong; the server's name as clients use it goes to name. */
static int check_opts(const struct serve_clientcfg_opts *o, char *name, size_t namesz,
		      struct rp_err *err)
{
	size_t i;

	if (!o->server)
		return rp_errf(err, "no server");
	if (serve_clientcfg_server(o->server, name, namesz, err) < 0)
		return -1;
	if (!o->out)
		return rp_errf(err, "no output directory");
	for (i = 0; i < o->nregistries; i++)
		if (!serve_clientcfg_host_valid(o->registries[i]))
			return rp_errf(err, "registry %s: expected a host name (with :port)",
				       o->registries[i]);
	return 0;
}

/* The CA certificate file as read (*pem, malloc'd), which must hold a PEM certificate. */
static int read_ca(const char *path, char **pem, size_t *len, struct rp_err *err)
{
	BIO *b;
	X509 *x;

	if (rp_read_file(path, 1 << 20, pem, len, err) < 0)
		return rp_err_prefix(err, "CA certificate");
	b = BIO_new_mem_buf(*pem, (int)*len);
	x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (x) {
		X509_free(x);
		return 0;
	}
	ERR_clear_error();
	return rp_errf(err, "%s: not a PEM certificate", path);
}

/* The registries to mirror: sorted, unique, without the server itself and index.docker.io
 * (docker.io's other name). */
static int mirror_list(struct gen *g, const struct serve_clientcfg_opts *o, struct rp_err *err)
{
	size_t i;

	if (!(g->regs = calloc(o->nregistries + 1, sizeof(*g->regs))))
		return rp_errf(err, "out of memory");
	for (i = 0; i < o->nregistries; i++) {
		if (!strcmp(o->registries[i], g->server) ||
		    !strcmp(o->registries[i], "index.docker.io"))
			continue;
		if (!(g->regs[g->nregs++] = strdup(o->registries[i])))
			return rp_errf(err, "out of memory");
	}
	sort_unique(g->regs, &g->nregs);
	return 0;
}

/* Every kind's files, each adding its lines to the README. */
static int gen_kinds(struct gen *g, unsigned kinds, struct rp_err *err)
{
	size_t i;

	fprintf(g->readme, "Client configuration for the regpress server %s, made by regpress\n"
			   "client-config. Review, then copy each file to the same path on the client.\n"
			   "Mirrored registries:", g->server);
	for (i = 0; i < g->nregs; i++)
		fprintf(g->readme, " %s", g->regs[i]);
	fprintf(g->readme, "%s\n\nFiles:\n", g->nregs ? "" : " (none)");
	if (((kinds & SERVE_CLIENT_CONTAINERD) && gen_containerd(g, err) < 0) ||
	    ((kinds & SERVE_CLIENT_DOCKER) && gen_docker(g, err) < 0) ||
	    ((kinds & SERVE_CLIENT_PODMAN) && gen_podman(g, err) < 0) ||
	    ((kinds & SERVE_CLIENT_K3S) && gen_rancher(g, "k3s", err) < 0) ||
	    ((kinds & SERVE_CLIENT_RKE2) && gen_rancher(g, "rke2", err) < 0) ||
	    ((kinds & SERVE_CLIENT_TALOS) && gen_talos(g, err) < 0))
		return -1;
	return 0;
}

/* The README, written last: closes g->readme. */
static int put_readme(struct gen *g, char **readme, size_t *rlen, struct rp_err *err)
{
	char *p;
	int ret;

	ret = fclose(g->readme);
	g->readme = NULL;
	if (ret != 0)
		return rp_errf(err, "out of memory");
	if (!(p = rp_join(g->o->out, "README.regpress")))
		return rp_errf(err, "out of memory");
	ret = rp_write_atomic(p, *readme, *rlen, err);
	free(p);
	return ret;
}

int serve_clientcfg(const struct serve_clientcfg_opts *o, struct rp_err *err)
{
	struct gen g = { 0 };
	char *ca = NULL, *readme = NULL, name[300];
	size_t ca_len, rlen = 0, i;
	int ret = -1;

	g.o = o;
	g.server = name;
	if (check_opts(o, name, sizeof(name), err) < 0 || read_ca(o->ca, &ca, &ca_len, err) < 0 ||
	    mirror_list(&g, o, err) < 0)
		goto out;
	g.ca_pem = ca;
	g.ca_len = ca_len;
	if (!(g.readme = open_memstream(&readme, &rlen))) {
		rp_errno(err, "open_memstream");
		goto out;
	}
	if (gen_kinds(&g, o->kinds ? o->kinds : SERVE_CLIENT_ALL, err) < 0)
		goto out;
	ret = put_readme(&g, &readme, &rlen, err);
out:
	if (g.readme)
		fclose(g.readme);
	free(readme);
	for (i = 0; i < g.nregs; i++)
		free(g.regs[i]);
	free(g.regs);
	free(ca);
	return ret;
}
