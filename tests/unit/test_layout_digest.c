/* Unit tests of layout/digest.c: SHA-256 (one-shot and streaming) against the FIPS 180-2 vectors,
 * and the hex / "sha256:<hex>" validators. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "digest.h"

#define SHA_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA_ABC "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_448 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
#define SHA_MILLION_A "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define MSG_448 "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

static void test_vectors(void **state)
{
	char hex[RP_HEX_LEN + 1];

	(void)state;
	rp_sha256_buf("", 0, hex);
	assert_string_equal(hex, SHA_EMPTY);
	rp_sha256_buf("abc", 3, hex);
	assert_string_equal(hex, SHA_ABC);
	rp_sha256_buf(MSG_448, strlen(MSG_448), hex);
	assert_string_equal(hex, SHA_448);
	/* Always 64 lowercase hex digits and a NUL. */
	assert_int_equal(strlen(hex), RP_HEX_LEN);
	assert_true(rp_hex_valid(hex));
}

static void test_streaming_empty(void **state)
{
	struct rp_sha256 h;
	char hex[RP_HEX_LEN + 1];

	(void)state;
	assert_int_equal(rp_sha256_init(&h), 0);
	rp_sha256_update(&h, NULL, 0); /* a zero-length update is a no-op, even with NULL */
	rp_sha256_update(&h, "", 0);
	rp_sha256_final(&h, hex);
	assert_string_equal(hex, SHA_EMPTY);
	assert_null(h.ctx); /* final frees the context */
}

static void test_streaming_pieces(void **state)
{
	static const size_t pieces[] = { 1, 2, 3, 7, 63, 64, 65, 1000, 4096, 65537 };
	size_t len = 1000000, i, k;
	char *buf = malloc(len);
	char one[RP_HEX_LEN + 1], hex[RP_HEX_LEN + 1];

	(void)state;
	assert_non_null(buf);
	memset(buf, 'a', len);
	rp_sha256_buf(buf, len, one);
	assert_string_equal(one, SHA_MILLION_A);
	for (k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
		struct rp_sha256 h;

		assert_int_equal(rp_sha256_init(&h), 0);
		for (i = 0; i < len; i += pieces[k])
			rp_sha256_update(&h, buf + i, len - i < pieces[k] ? len - i : pieces[k]);
		rp_sha256_final(&h, hex);
		assert_string_equal(hex, one);
	}
	/* Uneven pieces: "abc" as "a", "", "bc". */
	{
		struct rp_sha256 h;

		assert_int_equal(rp_sha256_init(&h), 0);
		rp_sha256_update(&h, "a", 1);
		rp_sha256_update(&h, "", 0);
		rp_sha256_update(&h, "bc", 2);
		rp_sha256_final(&h, hex);
		assert_string_equal(hex, SHA_ABC);
	}
	free(buf);
}

static void test_free_without_final(void **state)
{
	struct rp_sha256 h;

	(void)state;
	assert_int_equal(rp_sha256_init(&h), 0);
	rp_sha256_update(&h, "abc", 3);
	rp_sha256_free(&h); /* an abandoned hash leaks nothing (LSan checks) */
	assert_null(h.ctx);
	rp_sha256_free(&h); /* and freeing twice is harmless */
}

static void test_hex_valid(void **state)
{
	char s[RP_HEX_LEN + 2];

	(void)state;
	assert_true(rp_hex_valid(SHA_ABC));
	assert_true(rp_hex_valid(SHA_EMPTY));
	assert_true(rp_hex_valid("0000000000000000000000000000000000000000000000000000000000000000"));
	assert_true(rp_hex_valid("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"));
	assert_false(rp_hex_valid(""));
	assert_false(rp_hex_valid("abc"));
	/* Uppercase is not canonical. */
	assert_false(rp_hex_valid("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
	assert_false(rp_hex_valid("Ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
	assert_false(rp_hex_valid("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015aD"));
	/* 63 and 65 digits. */
	memcpy(s, SHA_ABC, RP_HEX_LEN + 1);
	s[63] = '\0';
	assert_false(rp_hex_valid(s));
	memcpy(s, SHA_ABC, RP_HEX_LEN);
	s[64] = '0';
	s[65] = '\0';
	assert_false(rp_hex_valid(s));
	/* Not hex. */
	memcpy(s, SHA_ABC, RP_HEX_LEN + 1);
	s[10] = 'g';
	assert_false(rp_hex_valid(s));
	s[10] = ' ';
	assert_false(rp_hex_valid(s));
	s[10] = ':';
	assert_false(rp_hex_valid(s));
	s[10] = '\xff';
	assert_false(rp_hex_valid(s));
	memcpy(s, SHA_ABC, RP_HEX_LEN + 1);
	s[64] = '\n';
	s[65] = '\0';
	assert_false(rp_hex_valid(s));
}

static void test_digest_parse(void **state)
{
	const char *hex = NULL;
	const char *good = "sha256:" SHA_ABC;

	(void)state;
	assert_true(rp_digest_parse(good, &hex));
	assert_ptr_equal(hex, good + 7);
	assert_string_equal(hex, SHA_ABC);
	assert_true(rp_digest_parse(good, NULL)); /* hex is optional */

	hex = NULL;
	assert_false(rp_digest_parse("sha256:" "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD", &hex));
	assert_null(hex); /* untouched on failure */
	assert_false(rp_digest_parse("sha256:" "a7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", NULL)); /* 63 */
	assert_false(rp_digest_parse("sha256:" SHA_ABC "0", NULL)); /* 65 */
	assert_false(rp_digest_parse("sha512:" SHA_ABC, NULL));
	assert_false(rp_digest_parse("SHA256:" SHA_ABC, NULL));
	assert_false(rp_digest_parse("sha256" SHA_ABC, NULL));
	assert_false(rp_digest_parse("sha256::" SHA_ABC, NULL));
	assert_false(rp_digest_parse(" sha256:" SHA_ABC, NULL));
	assert_false(rp_digest_parse(SHA_ABC, NULL));
	assert_false(rp_digest_parse("sha256:", NULL));
	assert_false(rp_digest_parse("sha", NULL));
	assert_false(rp_digest_parse("", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_streaming_empty),
		cmocka_unit_test(test_streaming_pieces),
		cmocka_unit_test(test_free_without_final),
		cmocka_unit_test(test_hex_valid),
		cmocka_unit_test(test_digest_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
