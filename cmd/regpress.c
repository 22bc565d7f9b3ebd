/* regpress: main and the command table. */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

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
	fprintf(out, "\n"
		     "  -h, --help     show this help\n"
		     "  -V, --version  print regpress's version\n"
		     "\n'regpress <command> --help' (or 'regpress help <command>') describes a "
		     "command.\n");
}

/* Messages quote names taken from the input (tar entries, RepoTags): bytes that are not
 * well-formed UTF-8, and every byte of a code point above, are shown as \xNN, so a hostile name
 * can neither split the one-line message nor drive the terminal. */
int cmd_fail(const char *cmd, const struct rp_err *err)
{
	char *text = cmd_safe_text(err->msg, NULL);

	fprintf(stderr, "regpress %s: %s\n", cmd, text ? text : "out of memory");
	free(text);
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

/* The long option an argument names, as getopt_long matches it (a unique prefix will do): the
 * option, NULL if none; *ambiguous counts the other prefix matches when there is no exact one. */
static const struct option *long_named(const struct option *longopts, const char *arg, size_t len,
				       int *ambiguous)
{
	const struct option *o, *found = NULL;

	*ambiguous = 0;
	for (o = longopts; o && o->name; o++) {
		if (strncmp(o->name, arg, len))
			continue;
		if (strlen(o->name) == len)
			return o;
		if (found)
			(*ambiguous)++;
		else
			found = o;
	}
	return found;
}

/* "--pr": "option '--pr' is ambiguous (--prefix, --progress)". */
static int ambiguous_option(const char *cmd, const struct option *longopts, const char *arg,
			    size_t len)
{
	char list[512];
	size_t used = 0;
	const struct option *o;

	list[0] = '\0';
	for (o = longopts; o->name && used < sizeof(list); o++)
		if (!strncmp(o->name, arg, len))
			used += (size_t)snprintf(list + used, sizeof(list) - used, "%s--%s",
						 used ? ", " : "", o->name);
	return cmd_usage_error(cmd, "option '--%.*s' is ambiguous (%s)", (int)len, arg, list);
}

/* getopt_long stops at the first bad option, so every argument before it was good: an argument
 * "--name=value" before it names an option that takes a value, which tells an unwanted value of
 * a long option (optopt its val) from an unknown short option (optopt the character). */
int cmd_bad_option(const char *cmd, int c, char *const *argv, const struct option *longopts)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "", *name = arg + 2, *eq;
	const struct option *o = NULL;
	size_t len;
	int ambiguous = 0;

	if (!strncmp(arg, "--", 2) && *name) {
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		o = long_named(longopts, name, len, &ambiguous);
		if (c == ':' && o)
			return cmd_usage_error(cmd, "option '--%s' needs a value", o->name);
		if (optopt == 0 && ambiguous)
			return ambiguous_option(cmd, longopts, name, len);
		if (optopt == 0)
			return cmd_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
		if (eq && o && o->has_arg == no_argument && o->val == optopt)
			return cmd_usage_error(cmd, "option '--%s' takes no value", o->name);
	}
	if (c == ':')
		return cmd_usage_error(cmd, "option '-%c' needs a value", optopt);
	if (optopt > ' ' && optopt < 0x7f)
		return cmd_usage_error(cmd, "unknown option '-%c'", optopt);
	return cmd_usage_error(cmd, "unknown option '%s'", arg);
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

int cmd_progress_mode(const char *cmd, const char *arg, const char **mode)
{
	if (strcmp(arg, "auto") && strcmp(arg, "plain") && strcmp(arg, "none"))
		return cmd_usage_error(cmd, "--progress is auto, plain or none, not '%s'", arg);
	*mode = arg;
	return CMD_GO;
}

/* A writer (or reader) that has to wait for the tree's lock says so once, or a second build
 * started while the first runs would look hung. */
static void on_wait(void *ctx, const char *tree)
{
	fprintf(stderr, "regpress %s: waiting for another writer on %s\n", (const char *)ctx, tree);
}

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(name, commands[i].name))
			return &commands[i];
	return NULL;
}

static int not_a_command(const char *name)
{
	fprintf(stderr, "regpress: '%s' is not a command\nTry 'regpress --help'.\n", name);
	return 2;
}

/* Run what argv asks for; *cmd gets the command's name (NULL for main's own options). */
static int dispatch(int argc, char **argv, const char **cmd)
{
	const struct command *c;

	*cmd = NULL;
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    (!strcmp(argv[1], "help") && argc == 2)) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("regpress %s\n", RP_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "help")) { /* help CMD: CMD --help */
		char *help[] = { argv[2], "--help", NULL };

		if (!(c = find_command(argv[2])))
			return not_a_command(argv[2]);
		*cmd = c->name;
		return c->fn(2, help);
	}
	if (!(c = find_command(argv[1])))
		return not_a_command(argv[1]);
	*cmd = c->name;
	layout_on_wait(on_wait, (void *)c->name);
	return c->fn(argc - 1, argv + 1);
}

/* Why standard output failed, when cmd_flush_stdout saw it first: a failed fflush may drop
 * the buffer, and the next one then succeeds with only the error flag left to tell. */
static int stdout_errno;

int cmd_flush_stdout(void)
{
	errno = 0;
	if (fflush(stdout) == 0 && !ferror(stdout))
		return 0;
	if (!stdout_errno)
		stdout_errno = errno ? errno : EIO;
	return -1;
}

/* Standard output is checked once, here, for every command: what it printed is its result, and
 * a result that did not get out (a full disk, a closed pipe's EIO) is a failure. A command that
 * failed already keeps its status and its one message. */
static int check_stdout(const char *cmd, int rc)
{
	if (cmd_flush_stdout() == 0 || rc != 0)
		return rc;
	fprintf(stderr, "regpress%s%s: writing standard output: %s\n", cmd ? " " : "",
		cmd ? cmd : "", strerror(stdout_errno));
	return 1;
}

int main(int argc, char **argv)
{
	const char *cmd = NULL;
	int rc;

	/* A write past RLIMIT_FSIZE then fails with EFBIG, which is reported and rolled back like a
	 * full disk, instead of killing the process. */
	signal(SIGXFSZ, SIG_IGN);
	/* Commands report bad options themselves (cmd_bad_option), in the one usage-error form. */
	opterr = 0;
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	rc = dispatch(argc, argv, &cmd);
	return check_stdout(cmd, rc);
}
