#include "digest.h"

#include <openssl/evp.h>
#include <string.h>

int rp_sha256_init(struct rp_sha256 *h)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(ctx);
		h->ctx = NULL;
		return -1;
	}
	h->ctx = ctx;
	return 0;
}

void rp_sha256_update(struct rp_sha256 *h, const void *buf, size_t len)
{
	if (len)
		EVP_DigestUpdate(h->ctx, buf, len);
}

void rp_sha256_final(struct rp_sha256 *h, char hex[RP_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int n = 0;
	unsigned int i;

	EVP_DigestFinal_ex(h->ctx, md, &n);
	for (i = 0; i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[RP_HEX_LEN] = '\0';
	rp_sha256_free(h);
}

void rp_sha256_free(struct rp_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void rp_sha256_buf(const void *buf, size_t len, char hex[RP_HEX_LEN + 1])
{
	struct rp_sha256 h;

	if (rp_sha256_init(&h) < 0) {
		hex[0] = '\0';
		return;
	}
	rp_sha256_update(&h, buf, len);
	rp_sha256_final(&h, hex);
}

int rp_hex_valid(const char *s)
{
	size_t i;

	for (i = 0; i < RP_HEX_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[RP_HEX_LEN] == '\0';
}

int rp_digest_parse(const char *s, const char **hex)
{
	if (strncmp(s, "sha256:", 7) || !rp_hex_valid(s + 7))
		return 0;
	if (hex)
		*hex = s + 7;
	return 1;
}
