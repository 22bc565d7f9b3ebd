/* Ed25519 signatures in OpenBSD signify's file formats, made with OpenSSL, so an auditor can check
 * a tree's snapshot with `signify-openbsd -V` and no regpress code at all; secret keys made by
 * `signify -G` (with or without a passphrase) sign here, and keys made here sign with `signify -S`.
 *
 * public key  "untrusted comment: ...\n" base64("Ed" keynum[8] pubkey[32]) "\n"
 * secret key  "untrusted comment: ...\n" base64("Ed" "BK" kdfrounds[4] salt[16] checksum[8]
 *             keynum[8] seckey[64]) "\n"
 *             seckey is seed[32] pubkey[32], XORed with bcrypt_pbkdf(passphrase, salt,
 *             kdfrounds) when kdfrounds (big-endian) is not 0 (signify uses 42); without a
 *             passphrase kdfrounds is 0 and seckey is plain (signify -n). checksum, the first 8
 *             bytes of SHA-512 of the plain seckey, is how a wrong passphrase is told apart.
 * signature   "untrusted comment: ...\n" base64("Ed" keynum[8] sig[64]) "\n" */
#ifndef RP_SIGN_H
#define RP_SIGN_H

#include <stddef.h>

#include "err.h"

/* Write a new key pair; refuses to overwrite either file. The secret key is mode 0600. A non-empty
 * passphrase protects the secret key as `signify -G` does (kdfrounds 42, random salt); NULL or ""
 * writes an unprotected key, as `signify -G -n`. */
int sign_keygen_pass(const char *seckey_path, const char *pubkey_path, const char *passphrase,
		     struct rp_err *err);
/* sign_keygen_pass without a passphrase. */
int sign_keygen(const char *seckey_path, const char *pubkey_path, struct rp_err *err);
/* Sign msg with the secret key file; *sig is a malloc'd signature file text. A protected key needs
 * its passphrase (NULL or "" is an error saying so; a wrong one fails as "incorrect passphrase");
 * an unprotected key ignores the passphrase, as signify does. */
int sign_message_pass(const char *seckey_path, const char *passphrase, const void *msg,
		      size_t len, char **sig, struct rp_err *err);
/* 1 if the secret key file is passphrase-protected, 0 if not, -1 if it is not a key. */
int sign_key_protected(const char *seckey_path, struct rp_err *err);
/* sign_message_pass without a passphrase: unprotected keys only. */
int sign_message(const char *seckey_path, const void *msg, size_t len, char **sig,
		 struct rp_err *err);
/* 0 if sig (signature file text) is a valid signature of msg by the public key file. */
int sign_verify(const char *pubkey_path, const void *msg, size_t len, const char *sig,
		struct rp_err *err);

#endif
