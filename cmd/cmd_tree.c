/* Tree maintenance: rm (untag) and gc (delete unused blobs). Both change the tree atomically under
 * its lock, through layout/. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "names.h"
#include "progress.h"
#include "tree.h"

static const char rm_usage[] =
	"usage: regpress rm TREE REF...\n"
	"\n"
	"Remove tags or manifests from TREE. REF is REPO:TAG (the tag; REPO alone means\n"
	"REPO:latest) or REPO@sha256:HEX (the manifest and every tag naming it). What only the\n"
	"removed reference kept in its repository is forgotten too; images kept by digest and\n"
	"other tags stay. Blob files nothing uses any more are deleted. All REFs or none.\n"
	"Prints a line per REF (\"removed REPO:TAG (sha256:HEX)\") and the new snapshot id.\n"
	"\n"
	"  -h, --help     show this help\n";

static const char gc_usage[] =
	"usage: regpress gc TREE\n"
	"\n"
	"Delete the blobs in TREE/blobs/sha256 that the tree's current snapshot does not use\n"
	"(left by an interrupted write). Serving is unaffected: nothing the current tree serves\n"
	"is touched.\n"
	"\n"
	"  -h, --help     show this help\n";

static const struct option help_only[] = {
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The options of rm and gc: only -h. CMD_GO, or the exit status. */
static int parse_help(const char *cmd, const char *text, int argc, char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, ":h", help_only, NULL)) != -1) {
		if (c != 'h')
			return cmd_bad_option(cmd, c, argv, help_only);
		fputs(text, stdout);
		return 0;
	}
	return CMD_GO;
}

/* What rm says it removed: "REPO:TAG (sha256:HEX)" or "REPO@sha256:HEX". Taken before the
 * untag, which forgets what the tag named. */
static char *removed_line(const struct layout_tree *tree, const struct rp_ref *ref, const char *tag)
{
	const char *hex = ref->digest[0] ? NULL : layout_tag_target(tree, ref->repo, tag);
	char *line = NULL;

	if (ref->digest[0])
		return asprintf(&line, "%s@%s", ref->repo, ref->digest) < 0 ? NULL : line;
	if (asprintf(&line, "%s:%s%s%s%s", ref->repo, tag, hex ? " (sha256:" : "", hex ? hex : "",
		     hex ? ")" : "") < 0)
		return NULL;
	return line;
}

/* Untag every REF (all or none: nothing is published until the commit); lines[i] says what. */
static int untag_all(struct layout_tree *tree, char **refs, int n, char **lines,
		     struct rp_err *err)
{
	int i;

	for (i = 0; i < n; i++) {
		struct rp_ref ref;
		const char *tag;

		if (layout_ref_parse(refs[i], &ref, err) < 0)
			return -1;
		tag = ref.digest[0] ? NULL : ref.tag[0] ? ref.tag : "latest";
		if (!(lines[i] = removed_line(tree, &ref, tag ? tag : "")))
			return rp_errf(err, "out of memory");
		if (layout_untag(tree, ref.repo, tag, ref.digest[0] ? ref.digest + 7 : NULL, err) < 0)
			return -1;
	}
	return 0;
}

int cmd_rm(int argc, char **argv)
{
	struct layout_commit_result res;
	struct layout_tree *tree = NULL;
	struct rp_err err = { "" };
	char **lines = NULL;
	int i, n, rc = parse_help("rm", rm_usage, argc, argv);

	if (rc != CMD_GO)
		return rc;
	if (argc - optind < 2)
		return cmd_usage_error("rm", "expected TREE and at least one REF");
	n = argc - optind - 1;
	rc = 1;
	if (!(lines = calloc((size_t)n, sizeof(*lines)))) {
		rp_errf(&err, "out of memory");
		goto out;
	}
	if (layout_open(argv[optind], LAYOUT_WRITE, &tree, &err) < 0 ||
	    untag_all(tree, argv + optind + 1, n, lines, &err) < 0 ||
	    layout_commit(tree, &res, &err) < 0)
		goto out;
	cmd_note_commit("rm", argv[optind], &res);
	for (i = 0; i < n; i++)
		printf("removed %s\n", lines[i]);
	printf("snapshot sha256:%s\n", layout_snapshot_id(tree));
	rc = 0;
out:
	if (rc)
		cmd_fail("rm", &err);
	for (i = 0; lines && i < n; i++)
		free(lines[i]);
	free(lines);
	layout_close(tree);
	return rc;
}

int cmd_gc(int argc, char **argv)
{
	struct layout_tree *tree = NULL;
	struct rp_err err = { "" };
	uint64_t files = 0, bytes = 0;
	char size[32];
	int rc = parse_help("gc", gc_usage, argc, argv);

	if (rc != CMD_GO)
		return rc;
	if (argc - optind != 1)
		return cmd_usage_error("gc", "expected one TREE");
	rc = 1;
	if (layout_open(argv[optind], LAYOUT_WRITE, &tree, &err) < 0 ||
	    layout_gc(tree, &files, &bytes, &err) < 0)
		goto out;
	printf("removed %llu blob%s (%s)\n", (unsigned long long)files, files == 1 ? "" : "s",
	       progress_size(bytes, size, sizeof(size)));
	rc = 0;
out:
	if (rc)
		cmd_fail("gc", &err);
	layout_close(tree);
	return rc;
}
