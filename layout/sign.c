#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bcrypt_pbkdf.h"
#include "fsutil.h"

#define COMMENT "untrusted comment: "

struct seckey {
	unsigned char pkalg[2], kdfalg[2], rounds[4], salt[16], checksum[8], keynum[8], key[64];
};
struct pubkey {
	unsigned char pkalg[2], keynum[8], key[32];
};
struct sig {
	unsigned char pkalg[2], keynum[8], sig[64];
};

/* Base64 of exactly len bytes; malloc'd. */
static char *b64(const void *buf, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, buf, (int)len);
	return out;
}

/* Parse "untrusted comment: ...\n<base64>\n" into exactly want bytes. */
static int parse_file_text(const char *text, const char *what, void *out, size_t want,
			   struct rp_err *err)
{
	const char *line2, *end;
	unsigned char buf[256];
	size_t b64len, pad = 0;
	int n;

	if (strncmp(text, COMMENT, strlen(COMMENT)) || !(line2 = strchr(text, '\n')))
		return rp_errf(err, "%s: no 'untrusted comment:' line", what);
	line2++;
	end = strchr(line2, '\n');
	b64len = end ? (size_t)(end - line2) : strlen(line2);
	if (b64len == 0 || b64len % 4 || b64len > 4 * ((sizeof(buf) + 2) / 3))
		return rp_errf(err, "%s: malformed base64 line", what);
	if (line2[b64len - 1] == '=')
		pad++;
	if (b64len > 1 && line2[b64len - 2] == '=')
		pad++;
	n = EVP_DecodeBlock(buf, (const unsigned char *)line2, (int)b64len);
	if (n < 0 || (size_t)n - pad != want) {
		OPENSSL_cleanse(buf, sizeof(buf));
		return rp_errf(err, "%s: malformed key or signature (wrong length)", what);
	}
	memcpy(out, buf, want);
	OPENSSL_cleanse(buf, sizeof(buf)); /* it may hold a secret key */
	return 0;
}

static int read_text(const char *path, char **text, struct rp_err *err)
{
	size_t len;

	return rp_read_file(path, 4096, text, &len, err);
}

static int write_private(const char *path, const char *text, mode_t mode, struct rp_err *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	size_t len = strlen(text);

	if (fd < 0)
		return rp_errno(err, "cannot create '%s'", path);
	if (fchmod(fd, mode) < 0 || write(fd, text, len) != (ssize_t)len) {
		rp_errno(err, "cannot write '%s'", path);
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) < 0)
		return rp_errno(err, "cannot write '%s'", path);
	return 0;
}

static int write_key_file(const char *path, const char *comment, const void *buf, size_t len,
			  mode_t mode, struct rp_err *err)
{
	char *enc = b64(buf, len), *text = NULL;
	int rc = -1;

	if (enc && asprintf(&text, COMMENT "%s\n%s\n", comment, enc) >= 0)
		rc = write_private(path, text, mode, err);
	else
		rp_errf(err, "out of memory");
	if (enc) /* the base64 of a plain secret key, maybe */
		OPENSSL_cleanse(enc, strlen(enc));
	if (text)
		OPENSSL_cleanse(text, strlen(text));
	free(enc);
	free(text);
	return rc;
}

/* signify -G writes 42 rounds; a key asking for far more would take minutes to open, so it is
 * refused rather than obeyed. */
#define KDF_ROUNDS 42
#define KDF_MAX_ROUNDS 1000

static uint32_t get_be32(const unsigned char b[4])
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void put_be32(unsigned char b[4], uint32_t v)
{
	b[0] = (unsigned char)(v >> 24);
	b[1] = (unsigned char)(v >> 16);
	b[2] = (unsigned char)(v >> 8);
	b[3] = (unsigned char)v;
}

/* The first 8 bytes of SHA-512 of the plain 64-byte secret key. */
static int key_checksum(const struct seckey *sk, unsigned char sum[8])
{
	unsigned char digest[64];
	int ok = EVP_Digest(sk->key, sizeof(sk->key), digest, NULL, EVP_sha512(), NULL) == 1;

	memcpy(sum, digest, 8);
	OPENSSL_cleanse(digest, sizeof(digest));
	return ok ? 0 : -1;
}

/* XOR the secret key with bcrypt_pbkdf(pass, salt, rounds): encrypts a plain key and decrypts an
 * encrypted one, as signify does. */
static int xor_kdf(struct seckey *sk, const char *pass, unsigned rounds)
{
	unsigned char mask[sizeof(sk->key)];
	size_t i;
	int rc = bcrypt_pbkdf(pass, strlen(pass), sk->salt, sizeof(sk->salt), mask, sizeof(mask),
			      rounds);

	if (rc == 0)
		for (i = 0; i < sizeof(mask); i++)
			sk->key[i] ^= mask[i];
	OPENSSL_cleanse(mask, sizeof(mask));
	return rc;
}

/* A fresh Ed25519 key pair: sk plain (rounds 0, checksum set), pk its public half. */
static int new_keypair(struct seckey *sk, struct pubkey *pk, struct rp_err *err)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *pkey = NULL;
	size_t seedlen = 32, publen = 32;
	int rc = -1;

	memset(sk, 0, sizeof(*sk));
	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &pkey) <= 0 ||
	    EVP_PKEY_get_raw_private_key(pkey, sk->key, &seedlen) <= 0 ||
	    EVP_PKEY_get_raw_public_key(pkey, sk->key + 32, &publen) <= 0 ||
	    RAND_bytes(sk->keynum, sizeof(sk->keynum)) != 1 ||
	    RAND_bytes(sk->salt, sizeof(sk->salt)) != 1 || key_checksum(sk, sk->checksum) < 0) {
		rp_errf(err, "cannot generate an Ed25519 key");
		goto out;
	}
	memcpy(sk->pkalg, "Ed", 2);
	memcpy(sk->kdfalg, "BK", 2);
	memcpy(pk->pkalg, "Ed", 2);
	memcpy(pk->keynum, sk->keynum, sizeof(pk->keynum));
	memcpy(pk->key, sk->key + 32, sizeof(pk->key));
	rc = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int sign_keygen_pass(const char *seckey_path, const char *pubkey_path, const char *passphrase,
		     struct rp_err *err)
{
	struct seckey sk;
	struct pubkey pk;
	int rc = -1;

	if (new_keypair(&sk, &pk, err) < 0)
		goto out;
	if (passphrase && *passphrase) {
		put_be32(sk.rounds, KDF_ROUNDS);
		if (xor_kdf(&sk, passphrase, KDF_ROUNDS) < 0) {
			rp_errf(err, "'%s': cannot derive a key from the passphrase", seckey_path);
			goto out;
		}
	}
	if (write_key_file(seckey_path, "regpress secret key", &sk, sizeof(sk), 0600, err) < 0)
		goto out;
	if (write_key_file(pubkey_path, "regpress public key", &pk, sizeof(pk), 0644, err) < 0) {
		unlink(seckey_path);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(&sk, sizeof(sk));
	return rc;
}

int sign_keygen(const char *seckey_path, const char *pubkey_path, struct rp_err *err)
{
	return sign_keygen_pass(seckey_path, pubkey_path, NULL, err);
}

/* Decrypt sk (read from path) with the passphrase if it is protected, and check its checksum. */
static int unlock_seckey(const char *path, const char *pass, struct seckey *sk,
			 struct rp_err *err)
{
	uint32_t rounds = get_be32(sk->rounds);
	unsigned char sum[8];

	if (rounds > 0) {
		if (!pass || !*pass)
			return rp_errf(err, "'%s': the key is passphrase-protected and no "
				       "passphrase was given", path);
		if (rounds > KDF_MAX_ROUNDS)
			return rp_errf(err, "'%s': kdfrounds %" PRIu32 " is more than %d", path,
				       rounds, KDF_MAX_ROUNDS);
		if (xor_kdf(sk, pass, rounds) < 0)
			return rp_errf(err, "'%s': cannot derive a key from the passphrase", path);
	}
	if (key_checksum(sk, sum) < 0)
		return rp_errf(err, "'%s': cannot hash the key", path);
	if (CRYPTO_memcmp(sum, sk->checksum, sizeof(sum)) != 0)
		return rounds > 0 ? rp_errf(err, "'%s': incorrect passphrase", path)
				  : rp_errf(err, "'%s': key checksum mismatch (damaged key)", path);
	return 0;
}

/* Read a secret key file into sk, plain and checked. */
static int load_seckey(const char *path, const char *pass, struct seckey *sk, struct rp_err *err)
{
	char *text = NULL;
	int rc = -1;

	if (read_text(path, &text, err) < 0)
		return -1;
	if (parse_file_text(text, path, sk, sizeof(*sk), err) < 0)
		goto out;
	if (memcmp(sk->pkalg, "Ed", 2) || memcmp(sk->kdfalg, "BK", 2)) {
		rp_errf(err, "'%s': not an Ed25519 signify secret key", path);
		goto out;
	}
	rc = unlock_seckey(path, pass, sk, err);
out:
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

int sign_key_protected(const char *seckey_path, struct rp_err *err)
{
	struct seckey sk;
	char *text = NULL;
	int rc = -1;

	if (read_text(seckey_path, &text, err) < 0)
		return -1;
	if (parse_file_text(text, seckey_path, &sk, sizeof(sk), err) < 0)
		goto out;
	if (memcmp(sk.pkalg, "Ed", 2) || memcmp(sk.kdfalg, "BK", 2)) {
		rp_errf(err, "'%s': not an Ed25519 signify secret key", seckey_path);
		goto out;
	}
	rc = get_be32(sk.rounds) > 0;
out:
	OPENSSL_cleanse(&sk, sizeof(sk));
	OPENSSL_cleanse(text, strlen(text));
	free(text);
	return rc;
}

int sign_message_pass(const char *seckey_path, const char *passphrase, const void *msg,
		      size_t len, char **sigtext, struct rp_err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY *pkey = NULL;
	struct seckey sk;
	struct sig sg;
	size_t siglen = sizeof(sg.sig);
	char *enc = NULL;
	int rc = -1;

	*sigtext = NULL;
	if (!md) {
		rp_errf(err, "out of memory");
		goto out;
	}
	if (load_seckey(seckey_path, passphrase, &sk, err) < 0)
		goto out;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk.key, 32);
	if (!pkey || EVP_DigestSignInit(md, NULL, NULL, NULL, pkey) <= 0 ||
	    EVP_DigestSign(md, sg.sig, &siglen, msg, len) <= 0) {
		rp_errf(err, "'%s': signing failed", seckey_path);
		goto out;
	}
	memcpy(sg.pkalg, "Ed", 2);
	memcpy(sg.keynum, sk.keynum, sizeof(sg.keynum));
	enc = b64(&sg, sizeof(sg));
	if (!enc || asprintf(sigtext, COMMENT "verify with regpress verify --pubkey or signify -V\n"
			     "%s\n", enc) < 0) {
		*sigtext = NULL;
		rp_errf(err, "out of memory");
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(&sk, sizeof(sk));
	free(enc);
	EVP_PKEY_free(pkey);
	EVP_MD_CTX_free(md);
	return rc;
}

int sign_message(const char *seckey_path, const void *msg, size_t len, char **sigtext,
		 struct rp_err *err)
{
	return sign_message_pass(seckey_path, NULL, msg, len, sigtext, err);
}

int sign_verify(const char *pubkey_path, const void *msg, size_t len, const char *sigtext,
		struct rp_err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY *pkey = NULL;
	struct pubkey pk;
	struct sig sg;
	char *text = NULL;
	int rc = -1;

	if (!md || read_text(pubkey_path, &text, err) < 0)
		goto out;
	if (parse_file_text(text, pubkey_path, &pk, sizeof(pk), err) < 0 ||
	    parse_file_text(sigtext, "signature", &sg, sizeof(sg), err) < 0)
		goto out;
	if (memcmp(pk.pkalg, "Ed", 2) || memcmp(sg.pkalg, "Ed", 2)) {
		rp_errf(err, "not an Ed25519 key or signature");
		goto out;
	}
	if (memcmp(pk.keynum, sg.keynum, sizeof(pk.keynum))) {
		rp_errf(err, "signed by a different key than '%s'", pubkey_path);
		goto out;
	}
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk.key, sizeof(pk.key));
	if (!pkey || EVP_DigestVerifyInit(md, NULL, NULL, NULL, pkey) <= 0 ||
	    EVP_DigestVerify(md, sg.sig, sizeof(sg.sig), msg, len) != 1) {
		rp_errf(err, "signature verification failed");
		goto out;
	}
	rc = 0;
out:
	free(text);
	EVP_PKEY_free(pkey);
	EVP_MD_CTX_free(md);
	return rc;
}
