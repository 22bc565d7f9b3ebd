/* Certificates for serving a tree: a CA and a server certificate that Go clients (docker,
 * containerd, skopeo, kubelet) accept, made with the OpenSSL API (no openssl command).
 *
 * Written into one directory (never replacing a file unless asked):
 *   ca.crt       the CA certificate: what clients trust (a copy when an existing CA is reused)
 *   ca.key       its private key, mode 0600 (only when the CA is made here)
 *   server.crt   the server certificate: names in subjectAltName, serverAuth
 *   server.key   its private key, mode 0600
 *   client.crt   optional, for mutual TLS (serve --client-ca ca.crt): clientAuth
 *   client.key   its private key, mode 0600
 */
#ifndef RP_SERVE_CERTS_H
#define RP_SERVE_CERTS_H

#include <stddef.h>

#include "err.h"

/* Server and client: 397 days, under the 398 that browsers, Apple platforms and TLS scanners take
 * as the most a server certificate may be valid (CA/Browser Forum). Rotation reissues it under the
 * same CA (--ca-cert/--ca-key), so clients keep trusting ca.crt, which lives longer. */
#define SERVE_CERTS_DAYS 397
#define SERVE_CERTS_CA_DAYS 3650 /* the CA */
#define SERVE_CERTS_MAX_DAYS 36500 /* the most either may be */

struct serve_certs_opts {
	const char *dir;	       /* output directory, created if needed */
	const char *ca_cert, *ca_key;  /* reuse this CA (both or neither) */
	const char *const *hosts;      /* DNS names (an IP address given here is taken as one) */
	size_t nhosts;
	const char *const *ips;	       /* IPv4/IPv6 addresses for subjectAltName */
	size_t nips;
	const char *client;	       /* NULL, or a client certificate's common name */
	int rsa_bits;		       /* 0: ECDSA P-256; else RSA 2048, 3072 or 4096 */
	int days;		       /* server/client validity; 0: SERVE_CERTS_DAYS */
	int ca_days;		       /* CA validity; 0: SERVE_CERTS_CA_DAYS */
	int force;		       /* replace existing files */
};

/* Check a DNS name for subjectAltName (letters, digits, '-', '.', a leading "*." wildcard; the
 * last label not all digits, so a mistyped address such as 10.0.0.256 is no name). */
int serve_certs_host_valid(const char *host);
/* Is s an IPv4 or IPv6 address literal? */
int serve_certs_is_ip(const char *s);
/* Make the files above; nothing is written when a check fails (existing files, bad names, a CA
 * that is not a CA or whose key does not match). */
int serve_certs(const struct serve_certs_opts *o, struct rp_err *err);

#endif
