/* Unit tests of layout/sign.c and layout/bcrypt_pbkdf.c: bcrypt_pbkdf against OpenBSD's published
 * vectors, the Blowfish pi table, key pairs with and without a passphrase (the exact signify
 * layout, round trips, wrong and missing passphrases), and interoperation both ways with the real
 * signify-openbsd (skipped, saying so, when it is not installed).
 *
 * signify reads the passphrase from standard input when that is not a terminal (for -G, and for -S
 * unless the message itself is standard input), so the tests drive it through popen(3) pipes with
 * no pty: `printf 'PASS\n' | signify-openbsd -G -p PUB -s SEC` does the same by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "bcrypt_pbkdf.h"
#include "fsutil.h"
#include "sign.h"
#include "unit.h"

#define PASS "correct horse battery staple"
#define MSG "sha256:0123456789abcdef snapshot text\n"

/* Offsets in a decoded secret key (104 bytes) and public key (42 bytes). */
#define SK_ROUNDS 4
#define SK_SALT 8
#define SK_CHECKSUM 24
#define SK_KEYNUM 32
#define SK_KEY 40
#define SK_LEN 104
#define PK_KEYNUM 2
#define PK_KEY 10
#define PK_LEN 42

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* ---- small helpers ---- */

struct fx {
	char dir[64];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/rp-sign-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
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

static char *in_dir(const struct fx *f, const char *name)
{
	char *p = rp_join(f->dir, name);

	assert_non_null(p);
	return p;
}

static char *slurp(const char *path)
{
	struct rp_err err = { "" };
	char *buf = NULL;
	size_t len;

	if (rp_read_file(path, 1 << 20, &buf, &len, &err) < 0)
		fail_msg("cannot read %s: %s", path, err.msg);
	return buf;
}

static void put_file(const char *path, const char *text)
{
	OK(rp_write_new(path, text, strlen(text), E_));
}

static size_t unhex(const char *hex, uint8_t *out, size_t max)
{
	size_t n = strlen(hex) / 2, i;
	unsigned byte;

	assert_true(n <= max);
	for (i = 0; i < n; i++) {
		assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
		out[i] = (uint8_t)byte;
	}
	return n;
}

/* The bytes of a signify file's base64 line. */
static size_t decode_file(const char *path, uint8_t *out, size_t max)
{
	char *text = slurp(path), *line = strchr(text, '\n'), *end;
	size_t len, pad = 0;
	int n;

	assert_non_null(line);
	line++;
	end = strchr(line, '\n');
	len = end ? (size_t)(end - line) : strlen(line);
	assert_true(len > 0 && len % 4 == 0 && len / 4 * 3 <= max);
	pad = (line[len - 1] == '=') + (line[len - 2] == '=');
	n = EVP_DecodeBlock(out, (const unsigned char *)line, (int)len);
	assert_true(n >= 0);
	free(text);
	return (size_t)n - pad;
}

/* Run a shell command with input (NULL: nothing) on its standard input, a pipe; exit status. */
static int run(const char *input, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(const char *input, const char *fmt, ...)
{
	va_list ap;
	char *cmd;
	FILE *p;
	int n, status;

	va_start(ap, fmt);
	n = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	p = popen(cmd, "w");
	assert_non_null(p);
	if (input)
		fputs(input, p);
	status = pclose(p);
	free(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int have_signify(void)
{
	if (run(NULL, "command -v signify-openbsd >/dev/null 2>&1") == 0)
		return 1;
	print_message("[  SKIP    ] signify-openbsd is not installed: interop not tested\n");
	return 0;
}

static void sign_and_verify(const char *sec, const char *pass, const char *pub)
{
	struct rp_err err = { "" };
	char *sig = NULL;

	OK(sign_message_pass(sec, pass, MSG, strlen(MSG), &sig, E_));
	OK(sign_verify(pub, MSG, strlen(MSG), sig, E_));
	assert_int_equal(sign_verify(pub, "other", 5, sig, &err), -1);
	free(sig);
}

/* Signing with pass fails with one message naming the key file and saying want. */
static void expect_sign_error(const char *sec, const char *pass, const char *want)
{
	struct rp_err err = { "" };
	char *sig = NULL;

	assert_int_equal(sign_message_pass(sec, pass, MSG, strlen(MSG), &sig, &err), -1);
	assert_null(sig);
	if (!strstr(err.msg, want) || !strstr(err.msg, sec))
		fail_msg("error '%s' should name '%s' and say '%s'", err.msg, sec, want);
}

/* The secret key file is exactly signify's layout: "Ed" "BK", kdfrounds as expected, the stored key
 * XORed with bcrypt_pbkdf(pass, salt, rounds) (none when rounds is 0), the checksum the first 8
 * bytes of SHA-512 of the plain key, keynum and public half matching the public key file. */
static void check_key_format(const char *sec, const char *pub, const char *pass, uint32_t rounds)
{
	uint8_t sk[128], pk[64], mask[64], digest[64];
	uint8_t be[4] = { (uint8_t)(rounds >> 24), (uint8_t)(rounds >> 16), (uint8_t)(rounds >> 8),
			  (uint8_t)rounds };
	int i;

	assert_int_equal(decode_file(sec, sk, sizeof(sk)), SK_LEN);
	assert_int_equal(decode_file(pub, pk, sizeof(pk)), PK_LEN);
	assert_memory_equal(sk, "EdBK", 4);
	assert_memory_equal(pk, "Ed", 2);
	assert_memory_equal(sk + SK_ROUNDS, be, 4);
	assert_memory_equal(sk + SK_KEYNUM, pk + PK_KEYNUM, 8);
	if (rounds) {
		assert_memory_not_equal(sk + SK_KEY + 32, pk + PK_KEY, 32); /* encrypted */
		assert_int_equal(bcrypt_pbkdf(pass, strlen(pass), sk + SK_SALT, 16, mask,
					      sizeof(mask), rounds), 0);
		for (i = 0; i < 64; i++)
			sk[SK_KEY + i] ^= mask[i];
	}
	assert_memory_equal(sk + SK_KEY + 32, pk + PK_KEY, 32);
	assert_int_equal(EVP_Digest(sk + SK_KEY, 64, digest, NULL, EVP_sha512(), NULL), 1);
	assert_memory_equal(sk + SK_CHECKSUM, digest, 8);
}

/* ---- bcrypt_pbkdf ---- */

static void test_pi_table(void **state)
{
	(void)state;
	assert_int_equal(bcrypt_pbkdf_pi[0], 0x243f6a88);	     /* P[0] */
	assert_int_equal(bcrypt_pbkdf_pi[1], 0x85a308d3);	     /* P[1] */
	assert_int_equal(bcrypt_pbkdf_pi[17], 0x8979fb1b);	     /* P[17] */
	assert_int_equal(bcrypt_pbkdf_pi[18], 0xd1310ba6);	     /* S[0][0] */
	assert_int_equal(bcrypt_pbkdf_pi[18 + 255], 0x6e85076a);     /* S[0][255] */
	assert_int_equal(bcrypt_pbkdf_pi[18 + 256], 0x4b7a70e9);     /* S[1][0] */
	assert_int_equal(bcrypt_pbkdf_pi[18 + 512], 0xe93d5a68);     /* S[2][0] */
	assert_int_equal(bcrypt_pbkdf_pi[18 + 768], 0x3a39ce37);     /* S[3][0] */
	assert_int_equal(bcrypt_pbkdf_pi[18 + 1023], 0x3ac372e6);    /* S[3][255] */
}

/* OpenBSD's published vectors: regress/lib/libutil/bcrypt_pbkdf/bcrypt_pbkdf_test.c in openbsd/src
 * (read at commit 6ae096225359637232e0461ccd24814c0e75d752; the current version, with the
 * "OVERWRITE" check, not the first 2013 one whose bcrypt hash read only 8 bytes of each SHA-512
 * and gave other values). Passwords and salts are in hex because several hold NUL bytes; their
 * lengths are the passlen/saltlen of that file. */
static const struct {
	unsigned rounds;
	const char *pass, *salt, *key;
} pbkdf_vectors[] = {
	{ 4, "70617373776f7264", "73616c74",
	  "5bbf0cc293587f1c3635555c27796598d47e579071bf427e9d8fbe842aba34d9" },
	{ 4, "70617373776f7264", "00", "c12b566235eee04c212598970a579a67" },
	{ 4, "00", "73616c74", "6051be18c2f4f82cbf0efee5471b4bb9" },
	{ 4, "70617373776f726400", "73616c7400",
	  "7410e44cf4fa07bfaac8a928b1727fac001375e7bf7384370f48efd121743050" },
	{ 4, "7061737300776f72", "7361006c", "c2bffd9db38f6569efef4372f4de83c0" },
	{ 4, "7061737300776f7264", "7361006c74", "4ba4ac3925c0e8d7f0cdb6bb1684a56f" },
	{ 8, "70617373776f7264", "73616c74",
	  "e1367ec5151a33faac4cc1c144cd23fa15d5548493ecc99b9b5d9c0d3b27bec7"
	  "6227ea66088b849b20ab7aa478010246e74bba51723fefa9f9474d6508845e8d" },
	{ 42, "70617373776f7264", "73616c74", "833cf0dcf56db65608e8f0dc0ce882bd" },
	{ 8, NULL /* the Lorem ipsum text below */, "73616c697300",
	  "10978b07253df57f71a162eb0e8ad30a" },
	{ 8, "0db3ac94b3ee53284f4a22893b3c24ae", "3a62f0f0dbcef823cfcc854856ea1028",
	  "204438175eee7ce136c91b49a67923ff" },
	{ 8, "0db3ac94b3ee53284f4a22893b3c24ae", "3a62f0f0dbcef823cfcc854856ea1028",
	  "2054b9fff34e3721440334746828e9ed38de4b72e0a69adc170a13b5e8d646385ea4034ae6d26600ee2332c5"
	  "ed40ad557c86e3403fbb30e4e1dc1ae06b99a071368f518d2c426651c9e7e437fd6c915b1bbfc3a4cea71491"
	  "490ea7afb7dd0290a678a4f441128db1792eab2776b21eb4238e0715add4127dff44e4b3e4cc4c4f9970083f"
	  "3f74bd698873fdf648844f75c9bf7f9e0c4d9e5d89a7783997492966616707611cb901de31a19726b6e08c3a"
	  "8001661f2d5c9dcc33b4aa072f90dd0b3f548d5eeba4211397e2fb062e526e1d68f46a4ce256185b4badc268"
	  "5fbe78e1c7657b59f83ab9ab80cf9318d6add1f5933f12d6f36182c8e8115f68030a1244" },
};

static const char lorem[] =
	"Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do "
	"eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut "
	"enim ad minim veniam, quis nostrud exercitation ullamco laboris "
	"nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor "
	"in reprehenderit in voluptate velit esse cillum dolore eu fugiat "
	"nulla pariatur. Excepteur sint occaecat cupidatat non proident, "
	"sunt in culpa qui officia deserunt mollit anim id est laborum.";

static void test_pbkdf_vectors(void **state)
{
	uint8_t pass[64], salt[64], want[256], got[256];
	size_t i, passlen, saltlen, keylen;

	(void)state;
	assert_int_equal(strlen(lorem), 446);
	for (i = 0; i < sizeof(pbkdf_vectors) / sizeof(pbkdf_vectors[0]); i++) {
		const char *p = (const char *)pass;

		if (pbkdf_vectors[i].pass) {
			passlen = unhex(pbkdf_vectors[i].pass, pass, sizeof(pass));
		} else {
			p = lorem;
			passlen = strlen(lorem);
		}
		saltlen = unhex(pbkdf_vectors[i].salt, salt, sizeof(salt));
		keylen = unhex(pbkdf_vectors[i].key, want, sizeof(want));
		memset(got, 0, sizeof(got));
		assert_int_equal(bcrypt_pbkdf(p, passlen, salt, saltlen, got, keylen,
					      pbkdf_vectors[i].rounds), 0);
		if (memcmp(got, want, keylen))
			fail_msg("bcrypt_pbkdf vector %zu (%u rounds, %zu bytes) differs", i,
				 pbkdf_vectors[i].rounds, keylen);
	}
}

static void test_pbkdf_edges(void **state)
{
	uint8_t key[BCRYPT_PBKDF_MAX_KEY + 8];
	size_t i;

	(void)state;
	/* 88 bytes (3 interleaved blocks, the last one short) write exactly 88 bytes. */
	memset(key, 0, sizeof(key));
	assert_int_equal(bcrypt_pbkdf("password", 8, (const uint8_t *)"salt", 4, key, 88, 4), 0);
	assert_true(key[85] | key[86] | key[87]);
	for (i = 88; i < 96; i++)
		assert_int_equal(key[i], 0);
	/* Refused: no rounds, empty password, salt or key, a key above 1024 bytes. */
	assert_int_equal(bcrypt_pbkdf("p", 1, (const uint8_t *)"s", 1, key, 16, 0), -1);
	assert_int_equal(bcrypt_pbkdf("p", 0, (const uint8_t *)"s", 1, key, 16, 1), -1);
	assert_int_equal(bcrypt_pbkdf("p", 1, (const uint8_t *)"s", 0, key, 16, 1), -1);
	assert_int_equal(bcrypt_pbkdf("p", 1, (const uint8_t *)"s", 1, key, 0, 1), -1);
	assert_int_equal(bcrypt_pbkdf("p", 1, (const uint8_t *)"s", 1, key,
				      BCRYPT_PBKDF_MAX_KEY + 1, 1), -1);
	assert_int_equal(bcrypt_pbkdf("p", 1, (const uint8_t *)"s", 1, key,
				      BCRYPT_PBKDF_MAX_KEY, 1), 0);
}

/* What opening a signify key costs: 64 bytes, 42 rounds. */
static void test_pbkdf_speed(void **state)
{
	struct timespec t0, t1;
	uint8_t salt[16] = { 1, 2, 3 }, key[64];
	double secs;

	(void)state;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0); /* CPU time: a busy machine is no failure */
	assert_int_equal(bcrypt_pbkdf(PASS, strlen(PASS), salt, sizeof(salt), key, 64, 42), 0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	print_message("[  INFO    ] bcrypt_pbkdf, 64 bytes, 42 rounds: %.3f s CPU%s\n", secs,
		      SANITIZED ? " (sanitizers)" : "");
	/* Reported, not asserted: speed is the benchmark's business, never a test verdict. */
}

/* ---- key pairs in regpress ---- */

static void test_roundtrip_plain(void **state)
{
	struct fx *f = *state;
	char *sec = in_dir(f, "a.sec"), *pub = in_dir(f, "a.pub");
	char *sec2 = in_dir(f, "b.sec"), *pub2 = in_dir(f, "b.pub"), *pub3 = in_dir(f, "c.pub");
	char *sig = NULL;
	struct rp_err err = { "" };
	struct stat st;

	OK(sign_keygen(sec, pub, E_)); /* the old API: unprotected */
	check_key_format(sec, pub, NULL, 0);
	assert_int_equal(stat(sec, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	OK(sign_message(sec, MSG, strlen(MSG), &sig, E_));
	OK(sign_verify(pub, MSG, strlen(MSG), sig, E_));
	free(sig);
	sign_and_verify(sec, NULL, pub);
	sign_and_verify(sec, "ignored", pub); /* as signify: rounds 0 needs no passphrase */
	OK(sign_keygen_pass(sec2, pub2, "", E_)); /* "" is no passphrase too */
	check_key_format(sec2, pub2, NULL, 0);
	sign_and_verify(sec2, NULL, pub2);
	/* Never overwritten. */
	assert_int_equal(sign_keygen_pass(sec, pub3, PASS, &err), -1);
	free(pub3);
	free(sec);
	free(pub);
	free(sec2);
	free(pub2);
}

static void test_roundtrip_passphrase(void **state)
{
	struct fx *f = *state;
	char *sec = in_dir(f, "p.sec"), *pub = in_dir(f, "p.pub");
	struct stat st;

	OK(sign_keygen_pass(sec, pub, PASS, E_));
	check_key_format(sec, pub, PASS, 42);
	assert_int_equal(stat(sec, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	sign_and_verify(sec, PASS, pub);
	free(sec);
	free(pub);
}

static void test_passphrase_refusals(void **state)
{
	struct fx *f = *state;
	char *sec = in_dir(f, "p.sec"), *pub = in_dir(f, "p.pub"), *sig = NULL;
	struct rp_err err = { "" };

	OK(sign_keygen_pass(sec, pub, PASS, E_));
	expect_sign_error(sec, "correct horse battery stapler", "incorrect passphrase");
	expect_sign_error(sec, "", "passphrase-protected");
	expect_sign_error(sec, NULL, "passphrase-protected");
	/* The old API has no passphrase: the same clear refusal. */
	assert_int_equal(sign_message(sec, MSG, strlen(MSG), &sig, &err), -1);
	assert_non_null(strstr(err.msg, "passphrase-protected"));
	assert_null(sig);
	free(sec);
	free(pub);
}

/* Write bytes as a signify file. */
static void encode_file(const char *path, const uint8_t *buf, size_t len)
{
	char b64[256], *text;

	assert_true(4 * ((len + 2) / 3) < sizeof(b64));
	EVP_EncodeBlock((unsigned char *)b64, buf, (int)len);
	assert_true(asprintf(&text, "untrusted comment: edited\n%s\n", b64) > 0);
	put_file(path, text);
	free(text);
}

static void test_damaged_keys(void **state)
{
	struct fx *f = *state;
	char *sec = in_dir(f, "a.sec"), *pub = in_dir(f, "a.pub"), *bad = in_dir(f, "bad.sec");
	char *huge = in_dir(f, "huge.sec");
	uint8_t sk[128];

	OK(sign_keygen(sec, pub, E_));
	assert_int_equal(decode_file(sec, sk, sizeof(sk)), SK_LEN);
	sk[SK_KEY + 5] ^= 1;
	encode_file(bad, sk, SK_LEN);
	expect_sign_error(bad, NULL, "checksum mismatch");
	sk[SK_KEY + 5] ^= 1;
	memcpy(sk + SK_ROUNDS, "\xff\xff\xff\xff", 4); /* would take days: refused at once */
	encode_file(huge, sk, SK_LEN);
	expect_sign_error(huge, PASS, "kdfrounds");
	free(sec);
	free(pub);
	free(bad);
	free(huge);
}

/* ---- interoperation with signify-openbsd ---- */

/* (a) A key signify made with a passphrase signs here; signify verifies the signature. */
static void test_signify_key_signs_here(void **state)
{
	struct fx *f = *state;
	char *sec = in_dir(f, "s.sec"), *pub = in_dir(f, "s.pub"), *msg = in_dir(f, "msg");
	char *sigf = in_dir(f, "msg.sig"), *sig = NULL;

	if (!have_signify())
		skip();
	assert_int_equal(run(PASS "\n", "signify-openbsd -G -c 'made by signify' -p %s -s %s", pub,
			     sec), 0);
	check_key_format(sec, pub, PASS, 42); /* our bcrypt_pbkdf opens signify's key */
	OK(sign_message_pass(sec, PASS, MSG, strlen(MSG), &sig, E_));
	put_file(msg, MSG);
	put_file(sigf, sig);
	assert_int_equal(run(NULL, "signify-openbsd -V -q -p %s -m %s -x %s", pub, msg, sigf), 0);
	OK(sign_verify(pub, MSG, strlen(MSG), sig, E_));
	expect_sign_error(sec, "wrong", "incorrect passphrase");
	expect_sign_error(sec, NULL, "passphrase-protected");
	free(sig);
	free(sec);
	free(pub);
	free(msg);
	free(sigf);
}

/* (b) A key made here with a passphrase signs in signify; the signature verifies here and there,
 * and signify, too, refuses a wrong passphrase. */
static void test_key_signs_in_signify(void **state)
{
	struct fx *f = *state;
	char *sec = in_dir(f, "r.sec"), *pub = in_dir(f, "r.pub"), *msg = in_dir(f, "msg");
	char *sigf = in_dir(f, "msg.sig"), *errf = in_dir(f, "stderr"), *sig, *text;

	if (!have_signify())
		skip();
	OK(sign_keygen_pass(sec, pub, PASS, E_));
	put_file(msg, MSG);
	assert_int_equal(run(PASS "\n", "signify-openbsd -S -s %s -m %s -x %s", sec, msg, sigf), 0);
	sig = slurp(sigf);
	OK(sign_verify(pub, MSG, strlen(MSG), sig, E_));
	assert_int_equal(run(NULL, "signify-openbsd -V -q -p %s -m %s -x %s", pub, msg, sigf), 0);
	assert_int_not_equal(run("wrong\n", "signify-openbsd -S -s %s -m %s -x %s.2 2>%s", sec, msg,
				 sigf, errf), 0);
	text = slurp(errf);
	if (!strstr(text, "incorrect passphrase"))
		fail_msg("signify said '%s'", text);
	free(text);
	free(sig);
	free(sec);
	free(pub);
	free(msg);
	free(sigf);
	free(errf);
}

/* (c) Unprotected keys (signify -G -n, regpress keygen) work both ways with the old API. */
static void test_signify_plain_keys(void **state)
{
	struct fx *f = *state;
	char *sec = in_dir(f, "n.sec"), *pub = in_dir(f, "n.pub"), *msg = in_dir(f, "msg");
	char *sec2 = in_dir(f, "m.sec"), *pub2 = in_dir(f, "m.pub");
	char *sigf = in_dir(f, "msg.sig"), *sigf2 = in_dir(f, "msg2.sig"), *sig = NULL, *sig2;

	if (!have_signify())
		skip();
	put_file(msg, MSG);
	assert_int_equal(run(NULL, "signify-openbsd -G -n -p %s -s %s", pub, sec), 0);
	check_key_format(sec, pub, NULL, 0);
	OK(sign_message(sec, MSG, strlen(MSG), &sig, E_));
	put_file(sigf, sig);
	assert_int_equal(run(NULL, "signify-openbsd -V -q -p %s -m %s -x %s", pub, msg, sigf), 0);
	OK(sign_keygen(sec2, pub2, E_));
	assert_int_equal(run(NULL, "signify-openbsd -S -s %s -m %s -x %s", sec2, msg, sigf2), 0);
	sig2 = slurp(sigf2);
	OK(sign_verify(pub2, MSG, strlen(MSG), sig2, E_));
	free(sig);
	free(sig2);
	free(sec);
	free(pub);
	free(msg);
	free(sec2);
	free(pub2);
	free(sigf);
	free(sigf2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pi_table),
		cmocka_unit_test(test_pbkdf_vectors),
		cmocka_unit_test(test_pbkdf_edges),
		cmocka_unit_test(test_pbkdf_speed),
		cmocka_unit_test_setup_teardown(test_roundtrip_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roundtrip_passphrase, setup, teardown),
		cmocka_unit_test_setup_teardown(test_passphrase_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signify_key_signs_here, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_signs_in_signify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signify_plain_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
