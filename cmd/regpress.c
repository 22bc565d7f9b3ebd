/* regpress: main and the command table. */
#include "cmd.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "build", cmd_build, "turn docker save / OCI tarballs into a servable registry tree" },
	{ "rm", cmd_rm, "remove tags or manifests from a tree" },
	{ "gc", cmd_gc, "delete blobs a tree no longer uses" },
	{ "serve", cmd_serve, "serve a tree over TLS with lighttpd" },
	{ "certs", cmd_certs, "make a CA and a server certificate for serve" },
	{ "client-config", cmd_client_config, "write client trust and mirror configuration" },
	{ "snapshot", cmd_snapshot, "print (and sign) a tree's snapshot" },
	{ "verify", cmd_verify, "check a tree against its snapshot (and signature)" },
	{ "diff", cmd_diff, "compare two snapshots: tags and blobs added and removed" },
	{ "keygen", cmd_keygen, "create an Ed25519 signing key pair (signify format)" },
	{ "media", cmd_media, "split a tree (or a delta) into DVD/BD volumes and ISO images" },
	{ "import", cmd_import, "verify volumes and import them into a tree" },
};

static void usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: regpress <command> [options] [args]\n\n"
		     "Precomputed, read-only OCI registries for air-gapped sites.\n\ncommands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'regpress <command> --help' describes a command.\n");
}

/* Messages quote names taken from the input (tar entries, RepoTags): control characters are
 * shown escaped, so a hostile name cannot split the one-line message or drive the terminal. */
int cmd_fail(const char *cmd, const struct rp_err *err)
{
	const unsigned char *p;

	fprintf(stderr, "regpress %s: ", cmd);
	for (p = (const unsigned char *)err->msg; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(stderr, "\\x%02x", *p);
		else
			fputc(*p, stderr);
	}
	fputc('\n', stderr);
	return 1;
}

int cmd_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "regpress %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'regpress %s --help'.\n", cmd);
	return 2;
}

int cmd_parse_int(const char *s, int lo, int hi, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (!*s || *end || v < lo || v > hi)
		return -1;
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	size_t i;

	/* A write past RLIMIT_FSIZE then fails with EFBIG, which is reported and rolled back like a
	 * full disk, instead of killing the process. */
	signal(SIGXFSZ, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("regpress %s\n", RP_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "regpress: '%s' is not a command\n", argv[1]);
	usage(stderr);
	return 2;
}
