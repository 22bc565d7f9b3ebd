/* Unit tests of serve/certs.c: what `regpress certs` makes, checked with the OpenSSL API:
 * subjectAltName, key usages, CA constraints, key types and sizes, validity, file modes,
 * verification of the chain, reuse of a CA, and never replacing files without force. */
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

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "fsutil.h"
#include "unit.h"

static char *path_in(const char *dir, const char *name)
{
	char *p = rp_join(dir, name);

	assert_non_null(p);
	return p;
}

static X509 *load_cert(const char *dir, const char *name)
{
	char *p = path_in(dir, name);
	FILE *f = fopen(p, "r");
	X509 *x;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	assert_non_null(x);
	fclose(f);
	free(p);
	return x;
}

static EVP_PKEY *load_key(const char *dir, const char *name)
{
	char *p = path_in(dir, name);
	FILE *f = fopen(p, "r");
	EVP_PKEY *k;
	struct stat st;

	assert_non_null(f);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	assert_non_null(k);
	fclose(f);
	free(p);
	return k;
}

static int verify(X509 *ca, X509 *leaf, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok;

	assert_non_null(store);
	assert_non_null(ctx);
	X509_STORE_add_cert(store, ca);
	X509_STORE_CTX_init(ctx, store, leaf, NULL);
	X509_STORE_CTX_set_purpose(ctx, purpose);
	ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok;
}

static char *mkscratch(void)
{
	char *d = strdup("/tmp/test_serve_certs.XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static void cleanup(char *d)
{
	struct rp_err err;

	rp_rmtree(d, &err);
	free(d);
}

static void test_host_valid(void **state)
{
	(void)state;
	assert_true(serve_certs_host_valid("localhost"));
	assert_true(serve_certs_host_valid("registry.example.com"));
	assert_true(serve_certs_host_valid("*.example.com"));
	assert_true(serve_certs_host_valid("a-b.c"));
	assert_false(serve_certs_host_valid(""));
	assert_false(serve_certs_host_valid("-a.b"));
	assert_false(serve_certs_host_valid("a-.b"));
	assert_false(serve_certs_host_valid("a..b"));
	assert_false(serve_certs_host_valid("a b"));
	assert_false(serve_certs_host_valid("a,DNS:evil"));
	assert_false(serve_certs_host_valid("host:5000"));
	/* An all-digit last label is an address (or a mistyped one), never a name. */
	assert_false(serve_certs_host_valid("10.0.0.5"));
	assert_false(serve_certs_host_valid("10.0.0.256"));
	assert_false(serve_certs_host_valid("a.123"));
	assert_true(serve_certs_host_valid("123.a"));
	assert_true(serve_certs_is_ip("10.0.0.5"));
	assert_true(serve_certs_is_ip("fd00::5"));
	assert_false(serve_certs_is_ip("10.0.0.256"));
	assert_false(serve_certs_is_ip("[::1]"));
}

/* How many subjectAltName entries of cert have GEN_* type. */
static int san_count(X509 *x, int type)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int i, n = 0;

	assert_non_null(san);
	for (i = 0; i < sk_GENERAL_NAME_num(san); i++)
		n += sk_GENERAL_NAME_value(san, i)->type == type;
	GENERAL_NAMES_free(san);
	return n;
}

/* --host given an address (issue 18): an IP entry, which is what Go clients match an address
 * connection against; "DNS:10.0.0.5" would be refused. */
static void test_host_given_an_address(void **state)
{
	const char *hosts[] = { "10.0.0.5", "registry.example", "fd00::5" };
	struct serve_certs_opts o = { 0 };
	char *d = mkscratch();
	X509 *srv;

	(void)state;
	o.dir = d;
	o.hosts = hosts;
	o.nhosts = 3;
	OK(serve_certs(&o, E_));
	srv = load_cert(d, "server.crt");
	assert_int_equal(san_count(srv, GEN_IPADD), 2);
	assert_int_equal(san_count(srv, GEN_DNS), 1);
	assert_int_equal(X509_check_ip_asc(srv, "10.0.0.5", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "fd00::5", 0), 1);
	assert_int_equal(X509_check_host(srv, "registry.example", 0, 0, NULL), 1);
	X509_free(srv);
	cleanup(d);
}

static int days_of(X509 *x)
{
	int days, secs;

	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
	return days;
}

static char *slurp(const char *dir, const char *name)
{
	char *p = path_in(dir, name), *buf = NULL;
	size_t len;

	OK(rp_read_file(p, 1 << 20, &buf, &len, E_));
	free(p);
	return buf;
}

/* The documented rotation: the same command with the directory's own CA and --force gives a new
 * server key and certificate (397 days) under the unchanged CA, so clients need nothing new. */
static void test_rotation(void **state)
{
	const char *hosts[] = { "registry.example" };
	struct serve_certs_opts o = { 0 };
	char *d = mkscratch(), *ca_pem, *cakey_pem, *key_pem, *s;
	X509 *ca, *srv;

	(void)state;
	o.dir = d;
	o.hosts = hosts;
	o.nhosts = 1;
	OK(serve_certs(&o, E_));
	ca_pem = slurp(d, "ca.crt");
	cakey_pem = slurp(d, "ca.key");
	key_pem = slurp(d, "server.key");

	o.ca_cert = path_in(d, "ca.crt");
	o.ca_key = path_in(d, "ca.key");
	o.force = 1;
	OK(serve_certs(&o, E_));
	s = slurp(d, "ca.crt");
	assert_string_equal(s, ca_pem);
	free(s);
	s = slurp(d, "ca.key");
	assert_string_equal(s, cakey_pem);
	free(s);
	s = slurp(d, "server.key");
	assert_string_not_equal(s, key_pem);
	free(s);
	ca = load_cert(d, "ca.crt");
	srv = load_cert(d, "server.crt");
	assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), 1);
	assert_int_equal(days_of(srv), 397);
	assert_int_equal(days_of(ca), 3650);
	X509_free(ca);
	X509_free(srv);
	free((char *)o.ca_cert);
	free((char *)o.ca_key);
	free(ca_pem);
	free(cakey_pem);
	free(key_pem);
	cleanup(d);
}

static void test_ecdsa_default(void **state)
{
	const char *hosts[] = { "registry.example", "localhost" };
	const char *ips[] = { "127.0.0.1", "::1" };
	struct serve_certs_opts o = { 0 };
	struct rp_err err;
	char *d = mkscratch();
	X509 *ca, *srv;
	EVP_PKEY *cak, *sk;
	BASIC_CONSTRAINTS *bc;
	GENERAL_NAMES *san;
	ASN1_BIT_STRING *ku;
	EXTENDED_KEY_USAGE *eku;
	int i, crit, days, secs;
	char *p;

	(void)state;
	o.dir = d;
	o.hosts = hosts;
	o.nhosts = 2;
	o.ips = ips;
	o.nips = 2;
	assert_int_equal(serve_certs(&o, &err), 0);
	ca = load_cert(d, "ca.crt");
	srv = load_cert(d, "server.crt");
	cak = load_key(d, "ca.key");
	sk = load_key(d, "server.key");
	p = path_in(d, "client.crt");
	assert_int_not_equal(access(p, F_OK), 0); /* no client unless asked */
	free(p);

	/* ECDSA P-256 keys, SHA-256 signatures, keys match. */
	assert_int_equal(EVP_PKEY_get_base_id(sk), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(sk), 256);
	assert_int_equal(X509_get_signature_nid(srv), NID_ecdsa_with_SHA256);
	assert_int_equal(X509_check_private_key(srv, sk), 1);
	assert_int_equal(X509_check_private_key(ca, cak), 1);

	/* CA: basicConstraints CA:TRUE critical, keyCertSign + cRLSign critical. */
	bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_true(bc->ca);
	assert_int_equal(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	ku = X509_get_ext_d2i(ca, NID_key_usage, &crit, NULL);
	assert_int_equal(crit, 1);
	ASN1_BIT_STRING_free(ku);
	assert_int_equal(X509_check_ca(ca), 1);

	/* Server: not a CA, digitalSignature only (ECDSA), serverAuth, SKI and AKI. */
	bc = X509_get_ext_d2i(srv, NID_basic_constraints, &crit, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_int_equal(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE);
	assert_int_equal(X509_get_extended_key_usage(srv), XKU_SSL_SERVER);
	eku = X509_get_ext_d2i(srv, NID_ext_key_usage, NULL, NULL);
	assert_int_equal(sk_ASN1_OBJECT_num(eku), 1);
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	assert_non_null(X509_get0_subject_key_id(srv));
	assert_non_null(X509_get0_authority_key_id(srv));
	assert_int_equal(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(srv),
					       X509_get0_subject_key_id(ca)), 0);

	/* Every name in subjectAltName; hosts match as Go checks them. */
	san = X509_get_ext_d2i(srv, NID_subject_alt_name, NULL, NULL);
	assert_non_null(san);
	assert_int_equal(sk_GENERAL_NAME_num(san), 4);
	GENERAL_NAMES_free(san);
	assert_int_equal(X509_check_host(srv, "registry.example", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(srv, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(srv, "other.example", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(srv, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(srv, "10.0.0.1", 0), 0);

	/* The chain verifies for TLS servers; the server certificate is no client certificate. */
	assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), 1);
	assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_CLIENT), 0);

	/* Validity: 397 days (give or take the hour back; scanners refuse more than 398), the CA ten
	 * years. */
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(srv), X509_get0_notAfter(srv)), 1);
	assert_int_equal(days, 397);
	assert_int_equal(days, SERVE_CERTS_DAYS);
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(ca), X509_get0_notAfter(ca)), 1);
	assert_int_equal(days, SERVE_CERTS_CA_DAYS);

	/* Random serials differ. */
	i = ASN1_INTEGER_cmp(X509_get_serialNumber(ca), X509_get_serialNumber(srv));
	assert_int_not_equal(i, 0);

	/* A second run refuses, naming the file, and changes nothing. */
	X509_free(srv);
	assert_int_equal(serve_certs(&o, &err), -1);
	assert_non_null(strstr(err.msg, "exists"));
	srv = load_cert(d, "server.crt");
	assert_int_equal(X509_check_private_key(srv, sk), 1);

	/* --force replaces; reusing the CA that is already in the directory keeps it. */
	o.force = 1;
	o.ca_cert = p = path_in(d, "ca.crt");
	o.ca_key = path_in(d, "ca.key");
	o.nhosts = 1;
	o.nips = 0;
	o.days = 30;
	o.client = "ci-runner";
	assert_int_equal(serve_certs(&o, &err), 0);
	{
		X509 *ca2 = load_cert(d, "ca.crt"), *srv2 = load_cert(d, "server.crt");
		X509 *cli = load_cert(d, "client.crt");
		EVP_PKEY *ck = load_key(d, "client.key");

		assert_int_equal(X509_cmp(ca, ca2), 0);
		assert_int_equal(verify(ca, srv2, X509_PURPOSE_SSL_SERVER), 1);
		assert_int_equal(X509_check_ip_asc(srv2, "127.0.0.1", 0), 0);
		assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(srv2),
						X509_get0_notAfter(srv2)), 1);
		assert_int_equal(days, 30);
		assert_int_equal(verify(ca, cli, X509_PURPOSE_SSL_CLIENT), 1);
		assert_int_equal(verify(ca, cli, X509_PURPOSE_SSL_SERVER), 0);
		assert_int_equal(X509_get_extended_key_usage(cli), XKU_SSL_CLIENT);
		assert_int_equal(X509_check_private_key(cli, ck), 1);
		X509_free(ca2);
		X509_free(srv2);
		X509_free(cli);
		EVP_PKEY_free(ck);
	}
	free(p);
	free((char *)o.ca_key);
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(sk);
	cleanup(d);
}

static void test_rsa_and_reuse(void **state)
{
	const char *hosts[] = { "registry.example" };
	struct serve_certs_opts o = { 0 };
	struct rp_err err;
	char *d = mkscratch(), *d2, *ca_cert, *ca_key, *p;
	X509 *ca, *srv;
	EVP_PKEY *sk;
	struct stat st;

	(void)state;
	o.dir = d;
	o.hosts = hosts;
	o.nhosts = 1;
	o.rsa_bits = 3072;
	assert_int_equal(serve_certs(&o, &err), 0);
	sk = load_key(d, "server.key");
	assert_int_equal(EVP_PKEY_get_base_id(sk), EVP_PKEY_RSA);
	assert_int_equal(EVP_PKEY_get_bits(sk), 3072);
	srv = load_cert(d, "server.crt");
	assert_int_equal(X509_get_key_usage(srv), KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT);
	assert_int_equal(X509_get_signature_nid(srv), NID_sha256WithRSAEncryption);
	X509_free(srv);
	EVP_PKEY_free(sk);

	/* Reuse that CA into another directory: ca.crt copied, no ca.key written. */
	d2 = path_in(d, "second");
	ca_cert = path_in(d, "ca.crt");
	ca_key = path_in(d, "ca.key");
	memset(&o, 0, sizeof(o));
	o.dir = d2;
	o.hosts = hosts;
	o.nhosts = 1;
	o.ca_cert = ca_cert;
	o.ca_key = ca_key;
	assert_int_equal(serve_certs(&o, &err), 0);
	ca = load_cert(d, "ca.crt");
	srv = load_cert(d2, "server.crt");
	assert_int_equal(verify(ca, srv, X509_PURPOSE_SSL_SERVER), 1);
	p = path_in(d2, "ca.key");
	assert_int_not_equal(stat(p, &st), 0);
	free(p);
	X509_free(srv);
	srv = load_cert(d2, "ca.crt");
	assert_int_equal(X509_cmp(ca, srv), 0);
	X509_free(srv);
	X509_free(ca);

	/* A server certificate is no CA; a key that does not match is refused. */
	free(ca_cert);
	ca_cert = path_in(d2, "server.crt");
	o.ca_cert = ca_cert;
	o.dir = d;
	o.force = 1;
	assert_int_equal(serve_certs(&o, &err), -1);
	assert_non_null(strstr(err.msg, "not a CA"));
	free(ca_cert);
	ca_cert = path_in(d2, "ca.crt");
	free(ca_key);
	ca_key = path_in(d2, "server.key");
	o.ca_cert = ca_cert;
	o.ca_key = ca_key;
	assert_int_equal(serve_certs(&o, &err), -1);
	assert_non_null(strstr(err.msg, "does not match"));
	free(ca_cert);
	free(ca_key);
	free(d2);
	cleanup(d);
}

static void test_bad_opts(void **state)
{
	const char *bad_host[] = { "a b" };
	const char *good_host[] = { "ok.example" };
	const char *bad_ip[] = { "300.1.1.1" };
	const char *bad_addr_host[] = { "10.0.0.256" };
	struct serve_certs_opts o = { 0 };
	struct rp_err err;
	char *d = mkscratch(), *p;

	(void)state;
	o.dir = d;
	assert_int_equal(serve_certs(&o, &err), -1); /* no name at all */
	o.hosts = bad_host;
	o.nhosts = 1;
	assert_int_equal(serve_certs(&o, &err), -1);
	assert_non_null(strstr(err.msg, "a b"));
	o.hosts = bad_addr_host;
	assert_int_equal(serve_certs(&o, &err), -1);
	assert_non_null(strstr(err.msg, "10.0.0.256: neither a DNS name nor an IP address"));
	o.hosts = good_host;
	o.ips = bad_ip;
	o.nips = 1;
	assert_int_equal(serve_certs(&o, &err), -1);
	assert_non_null(strstr(err.msg, "300.1.1.1"));
	o.nips = 0;
	o.rsa_bits = 1024;
	assert_int_equal(serve_certs(&o, &err), -1);
	o.rsa_bits = 0;
	o.ca_cert = "x";
	assert_int_equal(serve_certs(&o, &err), -1); /* cert without key */
	/* Nothing was written by any refusal. */
	p = path_in(d, "ca.crt");
	assert_int_not_equal(access(p, F_OK), 0);
	free(p);
	cleanup(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_valid),
		cmocka_unit_test(test_ecdsa_default),
		cmocka_unit_test(test_host_given_an_address),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_rsa_and_reuse),
		cmocka_unit_test(test_bad_opts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
