/* regpress build: docker save / OCI tarballs in, a servable registry tree out. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build.h"
#include "cmd.h"
#include "fsutil.h"
#include "progress.h"
#include "tree.h"

static const char usage_text[] =
	"usage: regpress build -o TREE [options] FILE...\n"
	"\n"
	"Add the images of FILEs to the registry tree TREE, creating it if needed. A FILE is a\n"
	"docker save tarball (Docker <= 24 and >= 25, podman, skopeo docker-archive:), a containerd\n"
	"or Docker image-store export, an OCI archive or OCI layout directory, possibly gzip, zstd,\n"
	"xz or bzip2 compressed, or '-' for standard input (a pipe, a FIFO or <(...) is read\n"
	"the same way). Registry blobs in the input (compressed layers, manifests, indexes) are\n"
	"kept byte for byte, so pulls by their digest work; uncompressed layers are compressed.\n"
	"The tree changes atomically: all inputs or nothing.\n"
	"\n"
	"options:\n"
	"  -o, --output TREE         the tree to create or update (required)\n"
	"      --compression ALG     layer compression: gzip (default), zstd, none\n"
	"      --format FMT          manifests: docker (Docker schema2, default) or oci;\n"
	"                            zstd implies oci\n"
	"      --tag NAME:TAG        name the only image of each input (for untagged saves)\n"
	"      --untagged-repo REPO  keep images that have no name by digest in REPO\n"
	"                            (default: such images are an error)\n"
	"      --prefix PATH         put every repository under PATH/ (a release namespace)\n"
	"      --strip-registry      drop the registry host from names\n"
	"                            (registry.k8s.io/pause -> pause); collisions are errors\n"
	"      --merge-platforms     the same NAME:TAG from several inputs, as different\n"
	"                            platforms of one image, becomes one OCI index\n"
	"      --prune-missing       write indexes without the platforms the input lacks\n"
	"                            (a new index digest); default: keep the index as is\n"
	"  -j, --threads N           compression threads (default: all cores); output does not\n"
	"                            depend on it\n"
	"      --json                print the result as JSON\n"
	"      --progress=MODE       auto (a progress line when stderr is a terminal, default),\n"
	"                            plain (a line every few seconds, for logs), none\n"
	"  -q, --quiet               print nothing on success, no progress\n"
	"  -h, --help                show this help\n"
	"\n"
	"Environment: SOURCE_DATE_EPOCH sets every mtime in the tree (default 0).\n";

static void build_progress(void *ctx, const char *input, uint64_t done, uint64_t total)
{
	struct progress *p = ctx;

	p->label = input;
	progress_update(p, done, total);
}

/* A plain tar starts with a header; a first block of zeros is its end. A stream that starts so
 * (<(cat /dev/zero)) would otherwise be spooled until the disk is full. */
static int zero_block(const unsigned char *b)
{
	size_t i;

	for (i = 0; i < 512; i++)
		if (b[i])
			return 0;
	return 1;
}

/* Copy a stream (standard input, a pipe, a FIFO) into the tree's scratch area: the formats need
 * two passes. */
static int spool(int in, const char *name, const char *dir, char **path, struct rp_err *err)
{
	unsigned char buf[1 << 16];
	size_t got = 0;
	int fd;

	*path = rp_join(dir, "spooled-input");
	if (!*path)
		return rp_errf(err, "out of memory");
	fd = open(*path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return rp_errno(err, "cannot create '%s'", *path);
	for (;;) {
		/* The first block is read whole into buf's start, to be looked at. */
		unsigned char *at = got < 512 ? buf + got : buf;
		ssize_t n = read(in, at, got < 512 ? 512 - got : sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return rp_errno(err, "'%s': cannot read", name);
		}
		if (n == 0)
			break;
		if (rp_write_all(fd, *path, at, (size_t)n, err) < 0) {
			close(fd);
			return -1;
		}
		got += (size_t)n;
		if (got == 512 && zero_block(buf)) {
			close(fd);
			return rp_errf(err, "'%s': empty archive (it starts with a block of zeros)", name);
		}
	}
	if (close(fd) < 0)
		return rp_errno(err, "cannot write '%s'", *path);
	return 0;
}

/* Streams are spooled: '-', pipes and process substitutions (<(...) is /dev/fd/N, a pipe), and
 * named FIFOs, opened blocking, which waits for their writer as cat would (a FIFO nobody writes
 * to keeps the build, and the tree's lock, waiting: what the user asked for). Anything else goes
 * to the builder as it is, which names what is wrong with a device or a directory that is not a
 * layout. 1: spooled into *spooled; 0: not a stream; -1: failed. */
static int spool_stream(const char *arg, const char *dir, char **spooled, struct rp_err *err)
{
	struct stat st;
	int fd, rc;

	if (!strcmp(arg, "-")) {
		if (isatty(STDIN_FILENO))
			return rp_errf(err, "'-': standard input is a terminal, not an archive");
		return spool(STDIN_FILENO, "-", dir, spooled, err) < 0 ? -1 : 1;
	}
	if (stat(arg, &st) < 0 || !S_ISFIFO(st.st_mode))
		return 0;
	fd = open(arg, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return rp_errno(err, "'%s'", arg);
	rc = spool(fd, arg, dir, spooled, err);
	close(fd);
	return rc < 0 ? -1 : 1;
}

static void print_result(json_t *report, const char *snapshot_id, int as_json)
{
	size_t i;
	json_t *item;

	if (as_json) {
		json_object_set_new(report, "snapshot", json_pack("s+", "sha256:", snapshot_id));
		{
			char *s = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

			if (s)
				printf("%s\n", s);
			free(s);
		}
		return;
	}
	json_array_foreach(json_object_get(report, "images"), i, item)
		printf("%s %s\n", json_string_value(json_object_get(item, "ref")),
		       json_string_value(json_object_get(item, "digest")));
	json_array_foreach(json_object_get(report, "untagged"), i, item)
		printf("untagged %s\n", json_string_value(item));
	json_array_foreach(json_object_get(report, "missing"), i, item)
		printf("missing %s\n", json_string_value(item));
	printf("snapshot sha256:%s\n", snapshot_id);
}

int cmd_build(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "compression", required_argument, NULL, 'C' },
		{ "format", required_argument, NULL, 'F' },
		{ "tag", required_argument, NULL, 'T' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "untagged-repo", required_argument, NULL, 'U' },
		{ "strip-registry", no_argument, NULL, 'R' },
		{ "merge-platforms", no_argument, NULL, 'M' },
		{ "prune-missing", no_argument, NULL, 'X' },
		{ "threads", required_argument, NULL, 'j' },
		{ "json", no_argument, NULL, 'J' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "progress", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct build_opts opts;
	const char *output = NULL, *format = NULL, *progress_mode = "auto";
	struct progress prog;
	struct layout_tree *tree = NULL;
	struct builder *b = NULL;
	struct rp_err err = { "" };
	struct layout_commit_result cres;
	json_t *report = NULL;
	int as_json = 0, quiet = 0, stdin_used = 0, rc = 1, c, i;
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);

	memset(&opts, 0, sizeof(opts));
	opts.compression = RP_COMP_GZIP;
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
		case 'P':
			opts.prefix = optarg;
			break;
		case 'U':
			opts.untagged_repo = optarg;
			break;
		case 'R':
			opts.strip_registry = 1;
			break;
		case 'M':
			opts.merge_platforms = 1;
			break;
		case 'X':
			opts.prune_missing = 1;
			break;
		case 'j':
			if (cmd_parse_int(optarg, 1, 256, &opts.threads) < 0)
				return cmd_usage_error("build", "--threads wants a whole number from 1 to 256, not '%s'",
						       optarg);
			break;
		case 'J':
			as_json = 1;
			break;
		case 'q':
			quiet = 1;
			progress_mode = "none";
			break;
		case 'G':
			if (strcmp(optarg, "auto") && strcmp(optarg, "plain") && strcmp(optarg, "none"))
				return cmd_usage_error("build", "--progress is auto, plain or none");
			progress_mode = optarg;
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

	progress_init(&prog, "building", progress_mode);
	opts.progress = build_progress;
	opts.progress_ctx = &prog;
	if (layout_open(output, LAYOUT_WRITE, &tree, &err) < 0 || builder_new(tree, &opts, &b, &err) < 0)
		goto out;
	for (i = optind; i < argc; i++) {
		char *spooled = NULL;
		int r = spool_stream(argv[i], layout_scratch_dir(tree), &spooled, &err);

		if (r < 0) {
			if (spooled)
				unlink(spooled);
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
	progress_end(&prog);
	if (builder_finish(b, &err) < 0 || layout_commit(tree, &cres, &err) < 0)
		goto out;
	cmd_note_commit("build", layout_path(tree), &cres);
	report = builder_report(b);
	if (!quiet && report)
		print_result(report, layout_snapshot_id(tree), as_json);
	rc = 0;
out:
	progress_end(&prog);
	if (rc)
		cmd_fail("build", &err);
	json_decref(report);
	builder_free(b);
	layout_close(tree);
	return rc;
}
