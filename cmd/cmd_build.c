/* regpress build: docker save / OCI tarballs in, a servable registry tree out. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build.h"
#include "cmd.h"
#include "fsutil.h"
#include "tree.h"

static const char usage_text[] =
	"usage: regpress build -o TREE [options] FILE...\n"
	"\n"
	"Add the images of docker save tarballs (or '-' for standard input) to the registry tree\n"
	"TREE, creating it if needed. The tree changes atomically: all inputs or nothing.\n"
	"\n"
	"options:\n"
	"  -o, --output TREE         the tree to create or update (required)\n"
	"      --compression ALG     layer compression: gzip (default), zstd, none\n"
	"      --format FMT          manifests: docker (Docker schema2, default) or oci;\n"
	"                            zstd implies oci\n"
	"      --tag NAME:TAG        name the only image of each input (for untagged saves)\n"
	"  -j, --threads N           compression threads (default: all cores); output does not\n"
	"                            depend on it\n"
	"      --json                print the result as JSON\n"
	"  -q, --quiet               print nothing on success\n"
	"  -h, --help                show this help\n"
	"\n"
	"Environment: SOURCE_DATE_EPOCH sets every mtime in the tree (default 0).\n";

/* Copy standard input into the tree's scratch area: the formats need two passes. */
static int spool_stdin(const char *dir, char **path, struct rp_err *err)
{
	char buf[1 << 16];
	int fd;

	*path = rp_join(dir, "stdin.tar");
	if (!*path)
		return rp_errf(err, "out of memory");
	fd = open(*path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return rp_errno(err, "cannot create '%s'", *path);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, sizeof(buf)), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return rp_errno(err, "'-': cannot read standard input");
		}
		if (n == 0)
			break;
		while (off < n) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w < 0) {
				close(fd);
				return rp_errno(err, "cannot write '%s'", *path);
			}
			off += w;
		}
	}
	if (close(fd) < 0)
		return rp_errno(err, "cannot write '%s'", *path);
	return 0;
}

static void print_result(json_t *report, const char *snapshot_id, int as_json)
{
	size_t i;
	json_t *item;

	if (as_json) {
		json_t *out = json_pack("{s:O, s:s}", "images", report, "snapshot", snapshot_id);
		char *s = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(out);
		return;
	}
	json_array_foreach(report, i, item)
		printf("%s %s\n", json_string_value(json_object_get(item, "ref")),
		       json_string_value(json_object_get(item, "digest")));
	printf("snapshot sha256:%s\n", snapshot_id);
}

int cmd_build(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "compression", required_argument, NULL, 'C' },
		{ "format", required_argument, NULL, 'F' },
		{ "tag", required_argument, NULL, 'T' },
		{ "threads", required_argument, NULL, 'j' },
		{ "json", no_argument, NULL, 'J' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct build_opts opts = { RP_COMP_GZIP, 0, 0, NULL };
	const char *output = NULL, *format = NULL;
	struct layout_tree *tree = NULL;
	struct builder *b = NULL;
	struct rp_err err = { "" };
	json_t *report = NULL;
	int as_json = 0, quiet = 0, stdin_used = 0, rc = 1, c, i;
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);

	opts.threads = nproc > 0 ? (int)nproc : 1;
	while ((c = getopt_long(argc, argv, "o:j:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o':
			output = optarg;
			break;
		case 'C':
			if (compression_parse(optarg) < 0)
				return cmd_usage_error("build", "unknown compression '%s' (gzip, zstd, "
						       "none)", optarg);
			opts.compression = (enum rp_compression)compression_parse(optarg);
			break;
		case 'F':
			if (strcmp(optarg, "docker") && strcmp(optarg, "oci"))
				return cmd_usage_error("build", "unknown format '%s' (docker, oci)",
						       optarg);
			format = optarg;
			break;
		case 'T':
			opts.tag = optarg;
			break;
		case 'j':
			opts.threads = atoi(optarg);
			if (opts.threads < 1 || opts.threads > 256)
				return cmd_usage_error("build", "--threads wants 1 to 256");
			break;
		case 'J':
			as_json = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_text, stderr);
			return 2;
		}
	}
	if (!output)
		return cmd_usage_error("build", "no output tree (-o TREE)");
	if (optind == argc)
		return cmd_usage_error("build", "no input files");
	if (format)
		opts.oci = !strcmp(format, "oci");
	else
		opts.oci = opts.compression == RP_COMP_ZSTD;
	if (format && !opts.oci && opts.compression == RP_COMP_ZSTD)
		return cmd_usage_error("build", "zstd layers need --format oci");
	for (i = optind; i < argc; i++)
		if (!strcmp(argv[i], "-") && stdin_used++)
			return cmd_usage_error("build", "'-' given twice");

	if (layout_open(output, &tree, &err) < 0 || builder_new(tree, &opts, &b, &err) < 0)
		goto out;
	for (i = optind; i < argc; i++) {
		char *spooled = NULL;
		int r;

		if (!strcmp(argv[i], "-") && spool_stdin(layout_scratch_dir(tree), &spooled, &err) < 0) {
			free(spooled);
			goto out;
		}
		r = builder_add(b, spooled ? spooled : argv[i], argv[i], &err);
		if (spooled)
			unlink(spooled);
		free(spooled);
		if (r < 0)
			goto out;
	}
	if (layout_commit(tree, &err) < 0)
		goto out;
	report = builder_report(b);
	if (!quiet && report)
		print_result(report, layout_snapshot_id(tree), as_json);
	rc = 0;
out:
	if (rc)
		cmd_fail("build", &err);
	json_decref(report);
	builder_free(b);
	layout_close(tree);
	return rc;
}
