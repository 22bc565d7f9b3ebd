#include "certs.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "fsutil.h"

/* The first OpenSSL error as text. */
static const char *ossl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r ? r : "unknown OpenSSL error";
}

int serve_certs_is_ip(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

int serve_certs_host_valid(const char *h)
{
	size_t len = strlen(h), lab = 0, i;
	int digits = 1;

	if (len == 0 || len > 253)
		return 0;
	if (!strncmp(h, "*.", 2))
		h += 2;
	for (i = 0; h[i]; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c == '.') {
			if (lab == 0 || h[i - 1] == '-')
				return 0;
			lab = 0;
			digits = 1;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (lab == 0 && c == '-')
				return 0;
			if (++lab > 63)
				return 0;
			digits = digits && isdigit(c);
		} else {
			return 0;
		}
	}
	return lab > 0 && !digits;
}

static EVP_PKEY *new_key(int rsa_bits, struct rp_err *err)
{
	EVP_PKEY *pk = rsa_bits ? EVP_RSA_gen((unsigned)rsa_bits) : EVP_EC_gen("P-256");

	if (!pk)
		rp_errf(err, "generating a key: %s", ossl_reason());
	return pk;
}

/* Add one extension given in OpenSSL's configuration syntax ("critical,CA:TRUE"). */
static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, struct rp_err *err)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return rp_errf(err, "certificate extension %s=%s: %s", OBJ_nid2sn(nid), value,
			       ossl_reason());
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : rp_errf(err, "adding extension %s: %s", OBJ_nid2sn(nid), ossl_reason());
}

/* A certificate for key pk, subject CN=cn, issued by issuer/ikey (itself when issuer is NULL).
 * exts: pairs of nid and value, ending with 0. */
static X509 *make_cert(EVP_PKEY *pk, const char *cn, X509 *issuer, EVP_PKEY *ikey, int days,
		       const int *nids, const char *const *values, struct rp_err *err)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	unsigned char serial[20];
	BIGNUM *bn = NULL;
	size_t i;

	if (!x || !name) {
		rp_errf(err, "out of memory");
		goto fail;
	}
	/* A positive random serial of at most 20 octets (RFC 5280 4.1.2.2). */
	if (RAND_bytes(serial, sizeof(serial)) != 1) {
		rp_errf(err, "random serial: %s", ossl_reason());
		goto fail;
	}
	serial[0] &= 0x7f;
	serial[0] |= 0x01;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
	    !X509_set_version(x, 2) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
					-1, 0) ||
	    !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
	    /* An hour back, for clocks a little behind the one that made it. */
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400L) ||
	    !X509_set_pubkey(x, pk)) {
		rp_errf(err, "building certificate %s: %s", cn, ossl_reason());
		goto fail;
	}
	for (i = 0; nids[i]; i++)
		if (add_ext(x, issuer ? issuer : x, nids[i], values[i], err) < 0)
			goto fail;
	if (!X509_sign(x, ikey ? ikey : pk, EVP_sha256())) {
		rp_errf(err, "signing certificate %s: %s", cn, ossl_reason());
		goto fail;
	}
	BN_free(bn);
	X509_NAME_free(name);
	return x;
fail:
	BN_free(bn);
	X509_NAME_free(name);
	X509_free(x);
	return NULL;
}

/* PEM text of a certificate or a private key (PKCS#8, unencrypted) in a malloc'd buffer. */
static int to_pem(X509 *x, EVP_PKEY *pk, char **out, size_t *len, struct rp_err *err)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;
	int ok;

	if (!b)
		return rp_errf(err, "out of memory");
	ok = x ? PEM_write_bio_X509(b, x) : PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &p);
	if (!ok || n <= 0 || !(*out = malloc((size_t)n))) {
		BIO_free(b);
		return rp_errf(err, "encoding PEM: %s", ossl_reason());
	}
	memcpy(*out, p, (size_t)n);
	*len = (size_t)n;
	BIO_free(b);
	return 0;
}

/* Write path with exactly mode (whatever the umask): a temporary file beside it, then rename
 * (force) or link, which fails if path appeared meanwhile, so nothing is replaced by accident. */
static int write_file(const char *path, const char *data, size_t len, mode_t mode, int force,
		      struct rp_err *err)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	int fd = -1, ret = -1;
	size_t off = 0;

	if (!tmp)
		return rp_errf(err, "out of memory");
	snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
	fd = mkstemp(tmp);
	if (fd < 0) {
		rp_errno(err, "creating %s", tmp);
		free(tmp);
		return -1;
	}
	if (fchmod(fd, mode) < 0) {
		rp_errno(err, "chmod %s", tmp);
		goto out;
	}
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rp_errno(err, "writing %s", tmp);
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) < 0) {
		rp_errno(err, "fsync %s", tmp);
		goto out;
	}
	if (force ? rename(tmp, path) < 0 : link(tmp, path) < 0) {
		rp_errno(err, "%s", path);
		goto out;
	}
	ret = 0;
out:
	close(fd);
	if (!force || ret < 0)
		unlink(tmp);
	free(tmp);
	return ret;
}

static int write_pem(const char *dir, const char *name, X509 *x, EVP_PKEY *pk, int force,
		     struct rp_err *err)
{
	char *path = rp_join(dir, name), *pem = NULL;
	size_t len = 0;
	int ret = -1;

	if (!path)
		return rp_errf(err, "out of memory");
	if (to_pem(x, pk, &pem, &len, err) == 0)
		ret = write_file(path, pem, len, x ? 0644 : 0600, force, err);
	if (pem)
		OPENSSL_cleanse(pem, len);
	free(pem);
	free(path);
	return ret;
}

/* Load the CA to reuse: a CA certificate and its matching key. */
static int load_ca(const char *cert, const char *key, X509 **x, EVP_PKEY **pk, struct rp_err *err)
{
	FILE *f = fopen(cert, "r");

	*x = NULL;
	*pk = NULL;
	if (!f)
		return rp_errno(err, "CA certificate %s", cert);
	*x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!*x)
		return rp_errf(err, "%s: not a PEM certificate (%s)", cert, ossl_reason());
	if (X509_check_ca(*x) != 1)
		return rp_errf(err, "%s: not a CA certificate (no basicConstraints CA:TRUE)", cert);
	f = fopen(key, "r");
	if (!f)
		return rp_errno(err, "CA key %s", key);
	*pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!*pk)
		return rp_errf(err, "%s: not an unencrypted PEM private key (%s)", key, ossl_reason());
	if (X509_check_private_key(*x, *pk) != 1) {
		ERR_clear_error();
		return rp_errf(err, "CA key %s does not match %s", key, cert);
	}
	return 0;
}

/* "DNS:a,DNS:b,IP:1.2.3.4" for subjectAltName. */
static char *san_value(const struct serve_certs_opts *o, struct rp_err *err)
{
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&buf, &len);

	if (!f) {
		rp_errno(err, "open_memstream");
		return NULL;
	}
	/* Go clients match an address only against IP entries: "DNS:10.0.0.5" would never do. */
	for (i = 0; i < o->nhosts; i++)
		fprintf(f, "%s%s:%s", i ? "," : "", serve_certs_is_ip(o->hosts[i]) ? "IP" : "DNS",
			o->hosts[i]);
	for (i = 0; i < o->nips; i++)
		fprintf(f, "%sIP:%s", (i || o->nhosts) ? "," : "", o->ips[i]);
	if (fclose(f) != 0) {
		free(buf);
		rp_errf(err, "out of memory");
		return NULL;
	}
	return buf;
}

static int check_opts(const struct serve_certs_opts *o, struct rp_err *err)
{
	size_t i;

	if (!o->dir)
		return rp_errf(err, "no output directory");
	if (o->nhosts + o->nips == 0)
		return rp_errf(err, "a server certificate needs at least one host name or IP address");
	if (!o->ca_cert != !o->ca_key)
		return rp_errf(err, "reusing a CA needs both its certificate and its key");
	if (o->rsa_bits && o->rsa_bits != 2048 && o->rsa_bits != 3072 && o->rsa_bits != 4096)
		return rp_errf(err, "RSA key size %d: use 2048, 3072 or 4096", o->rsa_bits);
	if (o->days < 0 || o->days > SERVE_CERTS_MAX_DAYS || o->ca_days < 0 ||
	    o->ca_days > SERVE_CERTS_MAX_DAYS)
		return rp_errf(err, "validity must be 1 to %d days", SERVE_CERTS_MAX_DAYS);
	for (i = 0; i < o->nhosts; i++)
		if (!serve_certs_host_valid(o->hosts[i]) && !serve_certs_is_ip(o->hosts[i]))
			return rp_errf(err, "host %s: neither a DNS name nor an IP address",
				       o->hosts[i]);
	for (i = 0; i < o->nips; i++)
		if (!serve_certs_is_ip(o->ips[i]))
			return rp_errf(err, "%s: not an IPv4 or IPv6 address", o->ips[i]);
	if (o->client && (!*o->client || strlen(o->client) > 64))
		return rp_errf(err, "client name must be 1 to 64 characters");
	return 0;
}

/* Is o->ca_cert the CA already in the output directory? Then it stays as it is. */
static int same_ca(const struct serve_certs_opts *o, struct rp_err *err)
{
	char *mine, *a, *b;
	int same;

	if (!o->ca_cert)
		return 0;
	if (!(mine = rp_join(o->dir, "ca.crt")))
		return rp_errf(err, "out of memory");
	a = realpath(mine, NULL);
	b = realpath(o->ca_cert, NULL);
	same = a && b && !strcmp(a, b);
	free(a);
	free(b);
	free(mine);
	return same;
}

/* Refuse before making anything, so a refusal leaves the directory as it was. */
static int refuse_existing(const struct serve_certs_opts *o, int keep_ca, struct rp_err *err)
{
	static const char *const names[] = { "ca.crt", "ca.key", "server.crt", "server.key",
					     "client.crt", "client.key" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]) && !o->force; i++) {
		char *path;
		int exists;

		if ((i == 1 && o->ca_cert) || (i == 0 && keep_ca) || (i >= 4 && !o->client))
			continue;
		if (!(path = rp_join(o->dir, names[i])))
			return rp_errf(err, "out of memory");
		exists = access(path, F_OK) == 0;
		if (exists)
			rp_errf(err, "%s exists (--force replaces it)", path);
		free(path);
		if (exists)
			return -1;
	}
	return 0;
}

/* The CA: the one given, or a new one named after the server. */
static int get_ca(const struct serve_certs_opts *o, X509 **ca, EVP_PKEY **cakey,
		  struct rp_err *err)
{
	static const int nids[] = { NID_basic_constraints, NID_key_usage,
				    NID_subject_key_identifier, NID_authority_key_identifier, 0 };
	static const char *const vals[] = { "critical,CA:TRUE", "critical,keyCertSign,cRLSign",
					    "hash", "keyid:always" };
	char cn[320];

	if (o->ca_cert)
		return load_ca(o->ca_cert, o->ca_key, ca, cakey, err);
	snprintf(cn, sizeof(cn), "regpress CA %s", o->nhosts ? o->hosts[0] : o->ips[0]);
	if (!(*cakey = new_key(o->rsa_bits, err)))
		return -1;
	*ca = make_cert(*cakey, cn, NULL, NULL, o->ca_days ? o->ca_days : SERVE_CERTS_CA_DAYS, nids,
			vals, err);
	return *ca ? 0 : -1;
}

/* The server certificate (its names in subjectAltName, serverAuth; its common name the first
 * name) or, with client set, the client one (clientAuth, CN=o->client), with its new key. */
static int make_leaf(const struct serve_certs_opts *o, int client, X509 *ca, EVP_PKEY *cakey,
		     X509 **cert, EVP_PKEY **key, struct rp_err *err)
{
	static const int srv_nids[] = { NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
					NID_subject_alt_name, NID_subject_key_identifier,
					NID_authority_key_identifier, 0 };
	static const int cli_nids[] = { NID_basic_constraints, NID_key_usage, NID_ext_key_usage,
					NID_subject_key_identifier, NID_authority_key_identifier, 0 };
	const char *usage = o->rsa_bits ? "critical,digitalSignature,keyEncipherment"
					: "critical,digitalSignature";
	const char *vals[6] = { "critical,CA:FALSE", usage, client ? "clientAuth" : "serverAuth" };
	char *san = client ? NULL : san_value(o, err);
	size_t n = 3;

	if (!client && !san)
		return -1;
	if (san)
		vals[n++] = san;
	vals[n++] = "hash";
	vals[n++] = "keyid";
	if ((*key = new_key(o->rsa_bits, err)))
		*cert = make_cert(*key, client ? o->client : o->nhosts ? o->hosts[0] : o->ips[0], ca,
				  cakey, o->days ? o->days : SERVE_CERTS_DAYS,
				  client ? cli_nids : srv_nids, vals, err);
	free(san);
	return *key && *cert ? 0 : -1;
}

int serve_certs(const struct serve_certs_opts *o, struct rp_err *err)
{
	EVP_PKEY *cakey = NULL, *skey = NULL, *ckey = NULL;
	X509 *ca = NULL, *srv = NULL, *cli = NULL;
	int ret = -1, keep_ca;

	if (check_opts(o, err) < 0 || rp_mkdirs(o->dir, err) < 0 ||
	    (keep_ca = same_ca(o, err)) < 0 || refuse_existing(o, keep_ca, err) < 0)
		return -1;
	ERR_clear_error();
	if (get_ca(o, &ca, &cakey, err) < 0 || make_leaf(o, 0, ca, cakey, &srv, &skey, err) < 0 ||
	    (o->client && make_leaf(o, 1, ca, cakey, &cli, &ckey, err) < 0))
		goto out;
	/* Keys first: a certificate on disk always has its key beside it. */
	if ((!o->ca_cert && write_pem(o->dir, "ca.key", NULL, cakey, o->force, err) < 0) ||
	    (!keep_ca && write_pem(o->dir, "ca.crt", ca, NULL, o->force, err) < 0) ||
	    write_pem(o->dir, "server.key", NULL, skey, o->force, err) < 0 ||
	    write_pem(o->dir, "server.crt", srv, NULL, o->force, err) < 0)
		goto out;
	if (o->client && (write_pem(o->dir, "client.key", NULL, ckey, o->force, err) < 0 ||
			  write_pem(o->dir, "client.crt", cli, NULL, o->force, err) < 0))
		goto out;
	ret = 0;
out:
	X509_free(ca);
	X509_free(srv);
	X509_free(cli);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(skey);
	EVP_PKEY_free(ckey);
	return ret;
}
