/* Tree maintenance: rm (untag) and gc (delete unused blobs). Both change the tree atomically under
 * its lock, through layout/. */
#include <stdio.h>
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
	"other tags stay. Blob files nothing uses any more are deleted. All REFs or none.\n";

static const char gc_usage[] =
	"usage: regpress gc TREE\n"
	"\n"
	"Delete the blobs in TREE/blobs/sha256 that the tree's current snapshot does not use\n"
	"(left by an interrupted write). Serving is unaffected: nothing the current tree serves\n"
	"is touched.\n";

int cmd_rm(int argc, char **argv)
{
	struct layout_tree *tree = NULL;
	struct rp_err err = { "" };
	struct layout_commit_result cres;
	int i, rc = 1;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return fputs(rm_usage, stdout), 0;
	if (argc < 3)
		return cmd_usage_error("rm", "expected TREE and at least one REF");
	if (layout_open(argv[1], LAYOUT_WRITE, &tree, &err) < 0)
		goto out;
	for (i = 2; i < argc; i++) {
		struct rp_ref ref;

		if (layout_ref_parse(argv[i], &ref, &err) < 0)
			goto out;
		if (layout_untag(tree, ref.repo, ref.digest[0] ? NULL : ref.tag[0] ? ref.tag : "latest",
				 ref.digest[0] ? ref.digest + 7 : NULL, &err) < 0)
			goto out;
	}
	if (layout_commit(tree, &cres, &err) < 0)
		goto out;
	cmd_note_commit("rm", argv[1], &cres);
	printf("snapshot sha256:%s\n", layout_snapshot_id(tree));
	rc = 0;
out:
	if (rc)
		cmd_fail("rm", &err);
	layout_close(tree);
	return rc;
}

int cmd_gc(int argc, char **argv)
{
	struct layout_tree *tree = NULL;
	struct rp_err err = { "" };
	uint64_t files = 0, bytes = 0;
	char size[32];
	int rc = 1;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return fputs(gc_usage, stdout), 0;
	if (argc != 2 || argv[1][0] == '-')
		return cmd_usage_error("gc", "expected one TREE");
	if (layout_open(argv[1], LAYOUT_WRITE, &tree, &err) < 0 || layout_gc(tree, &files, &bytes, &err) < 0)
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
