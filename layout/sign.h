/* Ed25519 signatures in OpenBSD signify's file formats, made with OpenSSL, so an auditor can check
 * a tree's snapshot with `signify-openbsd -V` and no regpress code at all.
 *
 * public key  "untrusted comment: ...\n" base64("Ed" keynum[8] pubkey[32]) "\n"
 * secret key  "untrusted comment: ...\n" base64("Ed" "BK" rounds[4]=0 salt[16] checksum[8] keynum[8]
 *             seed[32] pubkey[32]) "\n"   (unencrypted: rounds 0, checksum = SHA-512(key)[0..8])
 * signature   "untrusted comment: ...\n" base64("Ed" keynum[8] sig[64]) "\n" */
#ifndef RP_SIGN_H
#define RP_SIGN_H

#include <stddef.h>

#include "err.h"

/* Write a new key pair; refuses to overwrite either file. The secret key is mode 0600. */
int sign_keygen(const char *seckey_path, const char *pubkey_path, struct rp_err *err);
/* Sign msg with the secret key file; *sig is a malloc'd signature file text. */
int sign_message(const char *seckey_path, const void *msg, size_t len, char **sig,
		 struct rp_err *err);
/* 0 if sig (signature file text) is a valid signature of msg by the public key file. */
int sign_verify(const char *pubkey_path, const void *msg, size_t len, const char *sig,
		struct rp_err *err);

#endif
