/* SHA-256 through OpenSSL EVP (SHA-NI where the CPU has it), streaming, and digest string helpers. */
#ifndef RP_DIGEST_H
#define RP_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define RP_HEX_LEN 64

struct rp_sha256 {
	void *ctx; /* EVP_MD_CTX */
};

int rp_sha256_init(struct rp_sha256 *h);
void rp_sha256_update(struct rp_sha256 *h, const void *buf, size_t len);
/* Writes 64 lowercase hex digits and a NUL into hex; frees the context. */
void rp_sha256_final(struct rp_sha256 *h, char hex[RP_HEX_LEN + 1]);
void rp_sha256_free(struct rp_sha256 *h);
void rp_sha256_buf(const void *buf, size_t len, char hex[RP_HEX_LEN + 1]);

/* 1 if s is exactly 64 lowercase hex digits. */
int rp_hex_valid(const char *s);
/* 1 if s is "sha256:" followed by 64 lowercase hex digits; *hex then points into s. */
int rp_digest_parse(const char *s, const char **hex);

#endif
