/* regpress certs: a CA and a server certificate for serving a tree (usage_text says what it
 * makes). The names go into subjectAltName because Go clients ignore the Common Name; the
 * certificates themselves are made in serve/certs.c. */
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
	"Make a CA (or reuse one) and a server certificate for regpress serve that docker,\n"
	"containerd, skopeo, podman and kubelet accept: the names in subjectAltName, ECDSA P-256\n"
	"keys (RSA on request), the CA with CA:TRUE and keyCertSign, the server certificate with\n"
	"serverAuth. Writes DIR/ca.crt (what clients trust), ca.key, server.crt and server.key\n"
	"(keys mode 0600). Never replaces a file without --force.\n"
	"\n"
	"  -o, --output DIR   output directory (created)\n"
	"  --host NAME        DNS name of the server (repeatable; the first is the Common Name);\n"
	"                     an IP address here is entered as an IP address, as with --ip\n"
	"  --ip ADDR          IPv4/IPv6 address of the server (repeatable)\n"
	"  --ca-cert FILE     reuse this CA certificate (with --ca-key) instead of making one;\n"
	"                     DIR/ca.crt is then a copy of it and no ca.key is written\n"
	"  --ca-key FILE      the reused CA's private key\n"
	"  --client NAME      also write client.crt and client.key (clientAuth, CN=NAME) for\n"
	"                     mutual TLS (regpress serve --client-ca DIR/ca.crt)\n"
	"  --rsa BITS         RSA 2048, 3072 or 4096 instead of ECDSA P-256\n"
	"  --days N           server/client certificate validity in days (default "
	CMD_STR(SERVE_CERTS_DAYS) ":\n"
	"                     clients refuse server certificates valid for more than 398)\n"
	"  --ca-days N        new CA validity in days (default " CMD_STR(SERVE_CERTS_CA_DAYS) ")\n"
	"  --force            replace existing files\n"
	"  -h, --help         show this help\n"
	"\n"
	"Rotate the server certificate under the same CA (clients keep their ca.crt):\n"
	"  regpress certs -o DIR --host NAME --ca-cert DIR/ca.crt --ca-key DIR/ca.key --force\n";

enum { OPT_HOST = 256, OPT_IP, OPT_CA_CERT, OPT_CA_KEY, OPT_CLIENT, OPT_RSA, OPT_DAYS,
       OPT_CA_DAYS, OPT_FORCE };

static const struct option certs_longopts[] = {
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

/* o->hosts and o->ips have room for every argument. */
static int certs_option(int c, struct serve_certs_opts *o, const char **hosts, const char **ips,
			char **argv)
{
	switch (c) {
	case 'o': o->dir = optarg; break;
	case OPT_HOST: hosts[o->nhosts++] = optarg; break;
	case OPT_IP: ips[o->nips++] = optarg; break;
	case OPT_CA_CERT: o->ca_cert = optarg; break;
	case OPT_CA_KEY: o->ca_key = optarg; break;
	case OPT_CLIENT: o->client = optarg; break;
	case OPT_RSA:
		if (cmd_parse_int(optarg, 0, INT_MAX, &o->rsa_bits) < 0 ||
		    (o->rsa_bits != 2048 && o->rsa_bits != 3072 && o->rsa_bits != 4096))
			return cmd_usage_error("certs", "--rsa: 2048, 3072 or 4096");
		break;
	case OPT_DAYS:
	case OPT_CA_DAYS:
		if (cmd_parse_int(optarg, 1, SERVE_CERTS_MAX_DAYS,
				  c == OPT_DAYS ? &o->days : &o->ca_days) < 0)
			return cmd_usage_error("certs", "--%s: 1 to %d", c == OPT_DAYS ? "days"
					       : "ca-days", SERVE_CERTS_MAX_DAYS);
		break;
	case OPT_FORCE: o->force = 1; break;
	case 'h': return fputs(usage_text, stdout), 0;
	default: return cmd_bad_option("certs", c, argv, certs_longopts);
	}
	return CMD_GO;
}

static int parse_certs(int argc, char **argv, struct serve_certs_opts *o, const char **hosts,
		       const char **ips)
{
	int c, rc = CMD_GO;

	while (rc == CMD_GO && (c = getopt_long(argc, argv, ":o:h", certs_longopts, NULL)) != -1)
		rc = certs_option(c, o, hosts, ips, argv);
	if (rc != CMD_GO)
		return rc;
	if (optind != argc)
		return cmd_usage_error("certs", "unexpected argument %s", argv[optind]);
	if (!o->dir)
		return cmd_usage_error("certs", "-o DIR is required");
	if (o->nhosts + o->nips == 0)
		return cmd_usage_error("certs", "at least one --host or --ip is required");
	if (!o->ca_cert != !o->ca_key)
		return cmd_usage_error("certs", "--ca-cert and --ca-key go together");
	return CMD_GO;
}

/* What was written, as keygen says it: one line per file. */
static void print_written(const struct serve_certs_opts *o)
{
	printf("CA certificate     %s/ca.crt (what clients trust)\n", o->dir);
	if (!o->ca_cert)
		printf("CA key             %s/ca.key\n", o->dir);
	printf("server certificate %s/server.crt\nserver key         %s/server.key\n", o->dir,
	       o->dir);
	if (o->client)
		printf("client certificate %s/client.crt\nclient key         %s/client.key\n",
		       o->dir, o->dir);
}

int cmd_certs(int argc, char **argv)
{
	struct serve_certs_opts o = { 0 };
	struct rp_err err = { { 0 } };
	const char **hosts = calloc((size_t)argc + 1, sizeof(*hosts));
	const char **ips = calloc((size_t)argc + 1, sizeof(*ips));
	int rc = CMD_GO;

	if (!hosts || !ips) {
		rp_errf(&err, "out of memory");
		rc = cmd_fail("certs", &err);
	}
	o.hosts = hosts;
	o.ips = ips;
	if (rc == CMD_GO)
		rc = parse_certs(argc, argv, &o, hosts, ips);
	if (rc == CMD_GO && serve_certs(&o, &err) < 0)
		rc = cmd_fail("certs", &err);
	if (rc == CMD_GO) {
		print_written(&o);
		rc = 0;
	}
	free(hosts);
	free(ips);
	return rc;
}
