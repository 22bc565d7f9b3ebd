/* regpress certs: a CA and a server certificate for serving a tree.
 *
 * usage: regpress certs -o DIR (--host NAME | --ip ADDR)... [options]
 *
 * Make a CA (or reuse one) and a server certificate that docker, containerd, skopeo, podman and
 * kubelet accept: the names are in subjectAltName (Go clients ignore the Common Name), ECDSA P-256
 * keys (RSA on request), SHA-256 signatures, the CA marked CA:TRUE with keyCertSign/cRLSign, the
 * server certificate with digitalSignature (+keyEncipherment for RSA) and serverAuth. Private
 * keys are mode 0600. Made through the OpenSSL library; no openssl command is needed.
 *
 *   -o, --output DIR     write ca.crt, ca.key, server.crt, server.key into DIR (created)
 *   --host NAME          a DNS name of the server (repeatable; the first is the Common Name);
 *                        an IP address here is entered as an IP address, as with --ip
 *   --ip ADDR            an IPv4 or IPv6 address of the server (repeatable)
 *   --ca-cert FILE       reuse this CA certificate instead of making one (with --ca-key);
 *   --ca-key FILE        DIR/ca.crt is then a copy of it and no ca.key is written
 *   --client NAME        also write client.crt/client.key (clientAuth, CN=NAME) for mutual TLS
 *                        (regpress serve --client-ca DIR/ca.crt)
 *   --rsa BITS           RSA keys of 2048, 3072 or 4096 bits instead of ECDSA P-256
 *   --days N             validity of the server and client certificates (default 397: clients
 *                        and scanners refuse server certificates valid for more than 398 days)
 *   --ca-days N          validity of a new CA (default 3650)
 *   --force              replace existing files (default: refuse, and write nothing)
 *   -h, --help           this help
 *
 * Rotation: before server.crt expires, run again with --ca-cert DIR/ca.crt --ca-key DIR/ca.key
 * --force: a new server key and certificate under the same CA, so no client needs a change.
 */
#include "cmd.h"

#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "certs.h"

static const char usage_text[] =
	"usage: regpress certs -o DIR (--host NAME | --ip ADDR)... [options]\n"
	"\n"
	"Make a CA (or reuse one) and a server certificate for regpress serve, with the names in\n"
	"subjectAltName as Go clients require. Writes DIR/ca.crt (what clients trust), ca.key,\n"
	"server.crt and server.key (keys mode 0600). Never replaces a file without --force.\n"
	"\n"
	"  -o, --output DIR   output directory (created)\n"
	"  --host NAME        DNS name (or IP address) of the server (repeatable)\n"
	"  --ip ADDR          IPv4/IPv6 address of the server (repeatable)\n"
	"  --ca-cert FILE     reuse this CA certificate (with --ca-key) instead of making one\n"
	"  --ca-key FILE      the reused CA's private key\n"
	"  --client NAME      also write client.crt and client.key for mutual TLS\n"
	"  --rsa BITS         RSA 2048, 3072 or 4096 instead of ECDSA P-256\n"
	"  --days N           server/client certificate validity in days (default 397)\n"
	"  --ca-days N        new CA validity in days (default 3650)\n"
	"  --force            replace existing files\n"
	"  -h, --help         show this help\n"
	"\n"
	"Rotate the server certificate under the same CA (clients keep their ca.crt):\n"
	"  regpress certs -o DIR --host NAME --ca-cert DIR/ca.crt --ca-key DIR/ca.key --force\n";

int cmd_certs(int argc, char **argv)
{
	enum { OPT_HOST = 256, OPT_IP, OPT_CA_CERT, OPT_CA_KEY, OPT_CLIENT, OPT_RSA, OPT_DAYS,
	       OPT_CA_DAYS, OPT_FORCE };
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "ip", required_argument, NULL, OPT_IP },
		{ "ca-cert", required_argument, NULL, OPT_CA_CERT },
		{ "ca-key", required_argument, NULL, OPT_CA_KEY },
		{ "client", required_argument, NULL, OPT_CLIENT },
		{ "rsa", required_argument, NULL, OPT_RSA },
		{ "days", required_argument, NULL, OPT_DAYS },
		{ "ca-days", required_argument, NULL, OPT_CA_DAYS },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_certs_opts o = { 0 };
	struct rp_err err = { { 0 } };
	const char **hosts, **ips;
	int c, ret;

	hosts = calloc((size_t)argc + 1, sizeof(*hosts));
	ips = calloc((size_t)argc + 1, sizeof(*ips));
	if (!hosts || !ips) {
		free(hosts);
		free(ips);
		rp_errf(&err, "out of memory");
		return cmd_fail("certs", &err);
	}
	o.hosts = hosts;
	o.ips = ips;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			o.dir = optarg;
			break;
		case OPT_HOST:
			hosts[o.nhosts++] = optarg;
			break;
		case OPT_IP:
			ips[o.nips++] = optarg;
			break;
		case OPT_CA_CERT:
			o.ca_cert = optarg;
			break;
		case OPT_CA_KEY:
			o.ca_key = optarg;
			break;
		case OPT_CLIENT:
			o.client = optarg;
			break;
		case OPT_RSA:
			if (cmd_parse_int(optarg, 0, INT_MAX, &o.rsa_bits) < 0 ||
			    (o.rsa_bits != 2048 && o.rsa_bits != 3072 && o.rsa_bits != 4096)) {
				ret = cmd_usage_error("certs", "--rsa: 2048, 3072 or 4096");
				goto out;
			}
			break;
		case OPT_DAYS:
		case OPT_CA_DAYS:
			if (cmd_parse_int(optarg, 1, 36500, c == OPT_DAYS ? &o.days : &o.ca_days) < 0) {
				ret = cmd_usage_error("certs", "--%s: 1 to 36500",
						      c == OPT_DAYS ? "days" : "ca-days");
				goto out;
			}
			break;
		case OPT_FORCE:
			o.force = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			ret = 0;
			goto out;
		default:
			ret = cmd_usage_error("certs", "bad option");
			goto out;
		}
	}
	if (optind != argc) {
		ret = cmd_usage_error("certs", "unexpected argument %s", argv[optind]);
		goto out;
	}
	if (!o.dir) {
		ret = cmd_usage_error("certs", "-o DIR is required");
		goto out;
	}
	if (o.nhosts + o.nips == 0) {
		ret = cmd_usage_error("certs", "at least one --host or --ip is required");
		goto out;
	}
	if (!o.ca_cert != !o.ca_key) {
		ret = cmd_usage_error("certs", "--ca-cert and --ca-key go together");
		goto out;
	}
	ret = serve_certs(&o, &err) < 0 ? cmd_fail("certs", &err) : 0;
out:
	free(hosts);
	free(ips);
	return ret;
}
