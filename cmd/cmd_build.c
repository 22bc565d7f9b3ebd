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
#include "names.h"
#include "progress.h"
#include "snapshot.h"
#include "tree.h"

/* The most compression threads -j takes. */
#define BUILD_MAX_THREADS 256

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
	"      --compression ALG     layer compression: gzip (default), zstd, none; Docker 20.10\n"
	"                            (Debian 12's docker.io) cannot pull zstd layers\n"
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
	"  -j, --threads N           compression threads, 1 to " CMD_STR(BUILD_MAX_THREADS) " (default: all\n"
	"                            cores); the output does not depend on it\n"
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

/* The tags as the tree had them before this build ("repo:tag" -> "sha256:hex"), so that a retag
 * can say what the tag named: the handle's snapshot is the one of open until the commit. */
static json_t *old_tags(const struct layout_tree *tree)
{
	const struct snapshot *s = layout_snapshot(tree);
	json_t *tags = json_object();
	char key[RP_REPO_MAX + RP_TAG_MAX + 2];
	size_t i;

	for (i = 0; tags && i < s->n; i++) {
		if (s->v[i].kind != SNAP_TAG)
			continue;
		snprintf(key, sizeof(key), "%s:%s", s->v[i].repo, s->v[i].tag);
		json_object_set_new(tags, key, json_pack("s+", "sha256:", s->v[i].hex));
	}
	return tags;
}

/* Each image of the report gets "was": the manifest its tag named before, when that was
 * another one (a retag), else null. */
static void add_was(json_t *report, json_t *old)
{
	json_t *item;
	size_t i;

	json_array_foreach(json_object_get(report, "images"), i, item) {
		json_t *was = json_object_get(old, json_string_value(json_object_get(item, "ref")));

		if (was && json_equal(was, json_object_get(item, "digest")))
			was = NULL;
		json_object_set(item, "was", was ? was : json_null());
	}
}

static void print_result(json_t *report, const char *snapshot_id, int as_json)
{
	size_t i;
	json_t *item;

	if (as_json) {
		char *s;

		json_object_set_new(report, "snapshot", json_pack("s+", "sha256:", snapshot_id));
		s = json_dumps(report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (s)
			printf("%s\n", s);
		free(s);
		return;
	}
	json_array_foreach(json_object_get(report, "images"), i, item) {
		const char *was = json_string_value(json_object_get(item, "was"));

		printf("%s %s%s%s%s\n", json_string_value(json_object_get(item, "ref")),
		       json_string_value(json_object_get(item, "digest")), was ? " (was " : "",
		       was ? was : "", was ? ")" : "");
	}
	json_array_foreach(json_object_get(report, "untagged"), i, item)
		printf("untagged %s\n", json_string_value(item));
	json_array_foreach(json_object_get(report, "missing"), i, item)
		printf("missing %s\n", json_string_value(item));
	printf("snapshot sha256:%s\n", snapshot_id);
}

struct build_args {
	struct build_opts opts;
	const char *output, *format, *progress;
	int as_json, quiet;
};

static const struct option build_longopts[] = {
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

/* The options that take a value and check it. CMD_GO, or the exit status. */
static int build_value(int c, struct build_args *a)
{
	int comp;

	switch (c) {
	case 'C':
		if ((comp = compression_parse(optarg)) < 0)
			return cmd_usage_error("build", "unknown compression '%s' (gzip, zstd, none)",
					       optarg);
		a->opts.compression = (enum rp_compression)comp;
		return CMD_GO;
	case 'F':
		if (strcmp(optarg, "docker") && strcmp(optarg, "oci"))
			return cmd_usage_error("build", "unknown format '%s' (docker, oci)", optarg);
		a->format = optarg;
		return CMD_GO;
	case 'j':
		if (cmd_parse_int(optarg, 1, BUILD_MAX_THREADS, &a->opts.threads) < 0)
			return cmd_usage_error("build", "--threads wants a whole number from 1 to %d, "
					       "not '%s'", BUILD_MAX_THREADS, optarg);
		return CMD_GO;
	default: /* 'G' */
		return cmd_progress_mode("build", optarg, &a->progress);
	}
}

static int build_option(int c, struct build_args *a, char **argv)
{
	switch (c) {
	case 'o': a->output = optarg; break;
	case 'T': a->opts.tag = optarg; break;
	case 'P': a->opts.prefix = optarg; break;
	case 'U': a->opts.untagged_repo = optarg; break;
	case 'R': a->opts.strip_registry = 1; break;
	case 'M': a->opts.merge_platforms = 1; break;
	case 'X': a->opts.prune_missing = 1; break;
	case 'J': a->as_json = 1; break;
	case 'q': a->quiet = 1; a->progress = "none"; break;
	case 'C': case 'F': case 'j': case 'G': return build_value(c, a);
	case 'h': return fputs(usage_text, stdout), 0;
	default: return cmd_bad_option("build", c, argv, build_longopts);
	}
	return CMD_GO;
}

/* What the options say together, and the inputs. */
static int build_check(int argc, char **argv, struct build_args *a)
{
	int i, stdin_used = 0;

	if (!a->output)
		return cmd_usage_error("build", "no output tree (-o TREE)");
	if (optind == argc)
		return cmd_usage_error("build", "no input files");
	if (a->format)
		a->opts.oci = !strcmp(a->format, "oci");
	else
		a->opts.oci = a->opts.compression == RP_COMP_ZSTD;
	if (a->format && !a->opts.oci && a->opts.compression == RP_COMP_ZSTD)
		return cmd_usage_error("build", "zstd layers need --format oci");
	for (i = optind; i < argc; i++)
		if (!strcmp(argv[i], "-") && stdin_used++)
			return cmd_usage_error("build", "'-' given twice");
	return CMD_GO;
}

static int parse_build(int argc, char **argv, struct build_args *a)
{
	long nproc = sysconf(_SC_NPROCESSORS_ONLN);
	int c, rc = CMD_GO;

	memset(a, 0, sizeof(*a));
	a->opts.compression = RP_COMP_GZIP;
	a->opts.threads = nproc > 0 ? (int)nproc : 1;
	a->progress = "auto";
	while (rc == CMD_GO && (c = getopt_long(argc, argv, ":o:j:qh", build_longopts, NULL)) != -1)
		rc = build_option(c, a, argv);
	return rc == CMD_GO ? build_check(argc, argv, a) : rc;
}

/* Add one input: a stream is spooled into the tree's scratch area first. */
static int add_input(struct builder *b, struct layout_tree *tree, const char *arg,
		     struct rp_err *err)
{
	char *spooled = NULL;
	int r = spool_stream(arg, layout_scratch_dir(tree), &spooled, err);

	if (r >= 0)
		r = builder_add(b, spooled ? spooled : arg, arg, err);
	if (spooled)
		unlink(spooled);
	free(spooled);
	return r < 0 ? -1 : 0;
}

/* Every input into the tree, tags settled, committed; *report says what was built. */
static int build_all(struct layout_tree *tree, struct build_args *a, char **inputs, int n,
		     struct progress *prog, json_t **report, struct rp_err *err)
{
	struct layout_commit_result res;
	struct builder *b = NULL;
	json_t *old = NULL;
	int i, rc = -1;

	if (builder_new(tree, &a->opts, &b, err) < 0)
		goto out;
	for (i = 0; i < n; i++)
		if (add_input(b, tree, inputs[i], err) < 0)
			goto out;
	progress_end(prog);
	if (builder_finish(b, err) < 0)
		goto out;
	old = old_tags(tree);
	*report = builder_report(b);
	if (!old || !*report) {
		rp_errf(err, "out of memory");
		goto out;
	}
	add_was(*report, old);
	rc = layout_commit(tree, &res, err);
	if (rc == 0)
		cmd_note_commit("build", layout_path(tree), &res);
out:
	json_decref(old);
	builder_free(b);
	return rc;
}

int cmd_build(int argc, char **argv)
{
	struct build_args a;
	struct progress prog;
	struct layout_tree *tree = NULL;
	struct rp_err err = { "" };
	json_t *report = NULL;
	int rc = parse_build(argc, argv, &a);

	if (rc != CMD_GO)
		return rc;
	rc = 1;
	progress_init(&prog, "building", a.progress);
	a.opts.progress = build_progress;
	a.opts.progress_ctx = &prog;
	if (layout_open(a.output, LAYOUT_WRITE, &tree, &err) < 0 ||
	    build_all(tree, &a, argv + optind, argc - optind, &prog, &report, &err) < 0)
		goto out;
	if (!a.quiet)
		print_result(report, layout_snapshot_id(tree), a.as_json);
	rc = 0;
out:
	progress_end(&prog);
	if (rc)
		cmd_fail("build", &err);
	json_decref(report);
	layout_close(tree);
	return rc;
}
