/* OpenBSD's bcrypt_pbkdf(3), the key derivation signify uses for passphrase-protected secret keys,
 * written for regpress with SHA-512 from OpenSSL and a Blowfish of our own (OpenSSL's Blowfish has
 * no expensive key schedule).
 *
 * Output is bit-for-bit what OpenBSD's libutil computes, including its two quirks: each 32-byte
 * block is the bcrypt hash's words stored little-endian, and the blocks are interleaved byte by
 * byte across the key (byte i of block b lands at key[i * nblocks + b]). */
#ifndef RP_BCRYPT_PBKDF_H
#define RP_BCRYPT_PBKDF_H

#include <stddef.h>
#include <stdint.h>

/* Longest key one call derives (32 blocks of 32 bytes), as in OpenBSD. */
#define BCRYPT_PBKDF_MAX_KEY 1024

/* Derive keylen bytes of key from pass (passlen bytes, NULs allowed) and salt with rounds
 * iterations. Returns 0, or -1 (nothing useful in key) when rounds is 0, passlen, saltlen or keylen
 * is 0, keylen > BCRYPT_PBKDF_MAX_KEY, saltlen > 1 MiB, or SHA-512 is unavailable. */
int bcrypt_pbkdf(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen,
		 uint8_t *key, size_t keylen, unsigned rounds);

/* Blowfish's initial state, the hex digits of pi's fraction: P[0..17], then S[0][0..255] to
 * S[3][0..255]. Exposed so the unit test can check the table. */
#define BCRYPT_PBKDF_PI_WORDS (18 + 4 * 256)
extern const uint32_t bcrypt_pbkdf_pi[BCRYPT_PBKDF_PI_WORDS];

#endif
