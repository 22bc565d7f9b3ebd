#include "sign.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
	if (n < 0 || (size_t)n - pad != want)
		return rp_errf(err, "%s: malformed key or signature (wrong length)", what);
	memcpy(out, buf, want);
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
	free(enc);
	free(text);
	return rc;
}

int sign_keygen(const char *seckey_path, const char *pubkey_path, struct rp_err *err)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *pkey = NULL;
	struct seckey sk;
	struct pubkey pk;
	unsigned char digest[64];
	size_t seedlen = 32, publen = 32;
	char comment[512];
	int rc = -1;

	memset(&sk, 0, sizeof(sk));
	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &pkey) <= 0 ||
	    EVP_PKEY_get_raw_private_key(pkey, sk.key, &seedlen) <= 0 ||
	    EVP_PKEY_get_raw_public_key(pkey, sk.key + 32, &publen) <= 0 ||
	    RAND_bytes(sk.keynum, sizeof(sk.keynum)) != 1 ||
	    RAND_bytes(sk.salt, sizeof(sk.salt)) != 1) {
		rp_errf(err, "cannot generate an Ed25519 key");
		goto out;
	}
	memcpy(sk.pkalg, "Ed", 2);
	memcpy(sk.kdfalg, "BK", 2);
	EVP_Digest(sk.key, sizeof(sk.key), digest, NULL, EVP_sha512(), NULL);
	memcpy(sk.checksum, digest, sizeof(sk.checksum));
	memcpy(pk.pkalg, "Ed", 2);
	memcpy(pk.keynum, sk.keynum, sizeof(pk.keynum));
	memcpy(pk.key, sk.key + 32, sizeof(pk.key));
	snprintf(comment, sizeof(comment), "regpress secret key");
	if (write_key_file(seckey_path, comment, &sk, sizeof(sk), 0600, err) < 0)
		goto out;
	snprintf(comment, sizeof(comment), "regpress public key");
	if (write_key_file(pubkey_path, comment, &pk, sizeof(pk), 0644, err) < 0) {
		unlink(seckey_path);
		goto out;
	}
	rc = 0;
out:
	OPENSSL_cleanse(&sk, sizeof(sk));
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	return rc;
}

int sign_message(const char *seckey_path, const void *msg, size_t len, char **sigtext,
		 struct rp_err *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY *pkey = NULL;
	struct seckey sk;
	struct sig sg;
	unsigned char digest[64];
	size_t siglen = sizeof(sg.sig);
	char *text = NULL, *enc = NULL;
	int rc = -1;

	*sigtext = NULL;
	if (!md || read_text(seckey_path, &text, err) < 0)
		goto out;
	if (parse_file_text(text, seckey_path, &sk, sizeof(sk), err) < 0)
		goto out;
	if (memcmp(sk.pkalg, "Ed", 2) || memcmp(sk.kdfalg, "BK", 2)) {
		rp_errf(err, "'%s': not an Ed25519 signify secret key", seckey_path);
		goto out;
	}
	if (sk.rounds[0] | sk.rounds[1] | sk.rounds[2] | sk.rounds[3]) {
		rp_errf(err, "'%s': the key is passphrase-protected; regpress uses unencrypted keys "
			"(regpress keygen, or signify -G -n)", seckey_path);
		goto out;
	}
	EVP_Digest(sk.key, sizeof(sk.key), digest, NULL, EVP_sha512(), NULL);
	if (memcmp(digest, sk.checksum, sizeof(sk.checksum))) {
		rp_errf(err, "'%s': key checksum mismatch (damaged key)", seckey_path);
		goto out;
	}
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
	free(text);
	free(enc);
	EVP_PKEY_free(pkey);
	EVP_MD_CTX_free(md);
	return rc;
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
