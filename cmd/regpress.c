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
	{ "ls", cmd_ls, "list a tree's tags: kind, platforms, size, created" },
	{ "inspect", cmd_inspect, "show one manifest: platforms, configs, layers, referrers" },
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

/* The length of the well-formed UTF-8 sequence at p (1 to 4 bytes) and its code point, or 0:
 * overlong forms (C0 9B is ESC), surrogates and code points past U+10FFFF are not well formed.
 * p is NUL-terminated, and a NUL is never a continuation byte, so no read passes the end. */
static int utf8_seq(const unsigned char *p, unsigned *cp)
{
	int n = p[0] < 0x80 ? 1 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : (p[0] & 0xf0) == 0xe0 ? 3
		: p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
	int i;

	*cp = n == 1 ? p[0] : n == 2 ? p[0] & 0x1fu : n == 3 ? p[0] & 0x0fu : p[0] & 0x07u;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		*cp = *cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && (*cp < 0x800 || (*cp >= 0xd800 && *cp <= 0xdfff))) ||
	    (n == 4 && (*cp < 0x10000 || *cp > 0x10ffff)))
		return 0;
	return n;
}

/* Code points a terminal acts on, or that change how the line reads: C0 controls and DEL, C1
 * controls (U+009B is CSI, as the raw byte 0x9b is to a terminal that is not in UTF-8), the line
 * and paragraph separators, and the bidirectional overrides and isolates. */
static int shown_escaped(unsigned cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Messages quote names taken from the input (tar entries, RepoTags): bytes that are not
 * well-formed UTF-8, and every byte of a code point above, are shown as \xNN, so a hostile name
 * can neither split the one-line message nor drive the terminal. */
int cmd_fail(const char *cmd, const struct rp_err *err)
{
	const unsigned char *p = (const unsigned char *)err->msg;

	fprintf(stderr, "regpress %s: ", cmd);
	while (*p) {
		unsigned cp;
		int i, n = utf8_seq(p, &cp);

		if (n == 0)
			fprintf(stderr, "\\x%02x", *p++);
		else if (shown_escaped(cp))
			for (i = 0; i < n; i++)
				fprintf(stderr, "\\x%02x", *p++);
		else
			for (i = 0; i < n; i++)
				fputc(*p++, stderr);
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
