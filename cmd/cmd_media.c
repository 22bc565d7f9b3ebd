/* Carrying trees across an air gap: media (a tree, or a delta, as numbered volumes and ISO
 * images) and import (volumes into a tree, any order, across runs). The work is in media/;
 * this file parses options and prints. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "media.h"
#include "progress.h"

static const char media_usage[] =
	"usage: regpress media TREE -o DIR --size SIZE [--iso] [--since OLD] [--only N]\n"
	"                      [--json] [--progress=MODE] [-q]\n"
	"\n"
	"Split TREE into numbered volumes that each fit one disc: DIR/volume-01, volume-02, ...\n"
	"Each volume holds the blobs assigned to it (blobs too large for one volume are cut into\n"
	"parts with their own digests), the tree's snapshot and a manifest listing the whole set\n"
	"with every file's digest, so every disc can be checked on its own\n"
	"(`regpress import --check`). The same tree gives the same volumes, byte for byte.\n"
	"\n"
	"  -o, --output DIR  where the volumes go (created if needed; nothing is replaced)\n"
	"  --size SIZE       dvd, dvd-dl, bd, bd-dl, or bytes with an optional K, M or G\n"
	"                    (powers of 1024; with one, a fraction: 4.7G); the image of each\n"
	"                    volume, file system included, fits in SIZE\n"
	"  --iso             write DIR/volume-NN.iso images (xorriso, Rock Ridge + Joliet,\n"
	"                    reproducible with SOURCE_DATE_EPOCH) instead of directories\n"
	"  --since OLD       a delta: carry only the blobs the snapshot OLD (a snapshot file or\n"
	"                    a tree) lacks; import it onto a tree at OLD\n"
	"  --only N          write only volume N (to remake a lost disc; identical to the first)\n"
	"  --json            print the plan and the result as JSON\n"
	"  --progress=MODE   auto (a line on a terminal, default), plain (for logs), none\n"
	"  -q, --quiet       print nothing on success, no progress\n"
	"  -h, --help        show this help\n";

static const char import_usage[] =
	"usage: regpress import VOLUME... --into TREE [--pubkey PUB]... [--json] [--progress=MODE] [-q]\n"
	"       regpress import --check [--pubkey PUB]... VOLUME...\n"
	"\n"
	"Verify volumes written by `regpress media` (directories: a mounted disc or an extracted\n"
	"image; or the ISO images, extracted under $TMPDIR first) and copy into TREE the blobs it\n"
	"lacks. Volumes may come in any order, one per run or all at once; what is verified is\n"
	"kept in TREE/.regpress-import between runs (never served). When every blob the set's\n"
	"snapshot needs is there, the snapshot is published in one atomic step; until then the\n"
	"volumes still needed are listed. A delta set needs TREE at its base snapshot. A damaged\n"
	"volume fails with the file named, TREE unchanged. Exit 0 whether the set is complete or\n"
	"volumes are still missing (--json says which).\n"
	"\n"
	"A set signed with `regpress snapshot --sign` carries its signatures and release on every\n"
	"volume, and TREE gets them with the snapshot. A release older than TREE's (or the same\n"
	"number with other content), or a set without a release over a TREE that holds one, is\n"
	"refused before anything changes.\n"
	"\n"
	"  --into TREE       the tree to import into (created if needed)\n"
	"  --pubkey PUB      require the set to be signed by this signify public key (repeat for\n"
	"                    several: any one of them)\n"
	"  --allow-downgrade import a release older than TREE's, saying what it replaces\n"
	"  --allow-unsigned  import a set without a signed release over a TREE that holds one\n"
	"  --check           only verify each VOLUME on its own (manifest, snapshot, every file's\n"
	"                    size and digest, nothing extra); writes nothing\n"
	"  --json            print the result as JSON\n"
	"  --progress=MODE   auto (a line on a terminal, default), plain (for logs), none\n"
	"  -q, --quiet       print nothing on success, no progress\n"
	"  -h, --help        show this help\n";

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress_update(ctx, done, total);
}

static void print_json(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

	if (s)
		printf("%s\n", s);
	free(s);
	json_decref(j);
}

static json_t *digest_or_null(const char *hex)
{
	char d[80];

	if (!hex[0])
		return json_null();
	snprintf(d, sizeof(d), "sha256:%s", hex);
	return json_string(d);
}

static void media_report(const struct media_result *r, int as_json)
{
	const struct media_plan *p = &r->plan;
	uint64_t *bytes = calloc(p->nvolumes, sizeof(*bytes));
	size_t i, parts = 0;
	uint32_t v;
	char a[32], b[32];

	if (!bytes)
		return;
	for (i = 0; i < p->nitems; i++) {
		bytes[p->items[i].volume - 1] += p->items[i].size;
		parts += (size_t)p->items[i].split;
	}
	if (as_json) {
		json_t *vols = json_array();

		for (v = 0; v < p->nvolumes; v++)
			json_array_append_new(
				vols, json_pack("{s:I, s:o, s:I, s:I, s:I, s:f}", "volume",
						(json_int_t)v + 1, "path",
						r->paths[v] ? json_string(r->paths[v]) : json_null(),
						"files", (json_int_t)r->files[v], "bytes",
						(json_int_t)bytes[v], "cost", (json_int_t)p->used[v],
						"fill", (double)bytes[v] / (double)p->capacity));
		print_json(json_pack("{s:s+, s:o, s:s+, s:I, s:I, s:o, s:I, s:I, s:f, s:I, s:I}",
				     "snapshot", "sha256:", r->snapshot_id, "base",
				     digest_or_null(r->base_id), "set", "sha256:", r->set_id,
				     "capacity", (json_int_t)p->capacity, "budget",
				     (json_int_t)p->budget, "volumes", vols, "min_volumes",
				     (json_int_t)p->min_volumes, "data_bytes",
				     (json_int_t)p->data_bytes, "fill", media_plan_fill(p),
				     "split_blobs", (json_int_t)p->split_blobs, "parts",
				     (json_int_t)parts));
		free(bytes);
		return;
	}
	for (v = 0; v < p->nvolumes; v++) {
		if (!r->paths[v])
			continue;
		printf("volume %" PRIu32 " of %" PRIu32 ": %s  %" PRIu64 " file%s  %s  %.1f%% full\n",
		       v + 1, p->nvolumes, r->paths[v], r->files[v], r->files[v] == 1 ? "" : "s",
		       progress_size(bytes[v], a, sizeof(a)),
		       100.0 * (double)bytes[v] / (double)p->capacity);
	}
	printf("%" PRIu32 " volume%s of %s (at least %" PRIu32 " needed), %s of blobs, fill %.1f%%",
	       p->nvolumes, p->nvolumes == 1 ? "" : "s", progress_size(p->capacity, b, sizeof(b)),
	       p->min_volumes, progress_size(p->data_bytes, a, sizeof(a)),
	       100.0 * media_plan_fill(p));
	if (p->split_blobs)
		printf("; %zu blob%s split into %zu parts", p->split_blobs,
		       p->split_blobs == 1 ? "" : "s", parts);
	printf("\nsnapshot sha256:%s", r->snapshot_id);
	if (r->base_id[0])
		printf(" (delta from sha256:%s)", r->base_id);
	printf(", set sha256:%s\n", r->set_id);
	free(bytes);
}

static const struct option media_longopts[] = {
	{ "output", required_argument, NULL, 'o' },
	{ "size", required_argument, NULL, 'S' },
	{ "iso", no_argument, NULL, 'I' },
	{ "since", required_argument, NULL, 'B' },
	{ "only", required_argument, NULL, 'N' },
	{ "json", no_argument, NULL, 'J' },
	{ "progress", required_argument, NULL, 'G' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct media_args {
	struct media_opts o;
	const char *out, *mode;
	int as_json, quiet;
};

/* The most volumes --only names: far beyond any set (a set's volumes are numbered from 1). */
#define MEDIA_ONLY_MAX 1000000

static int media_option(int c, struct media_args *a, char **argv)
{
	struct rp_err err = { "" };
	int only;

	switch (c) {
	case 'o': a->out = optarg; break;
	case 'S':
		if (media_parse_size(optarg, &a->o.capacity, &err) < 0)
			return cmd_usage_error("media", "--size %s", err.msg);
		break;
	case 'I': a->o.iso = 1; break;
	case 'B': a->o.since = optarg; break;
	case 'N':
		if (cmd_parse_int(optarg, 1, MEDIA_ONLY_MAX, &only) < 0)
			return cmd_usage_error("media", "--only takes a volume number");
		a->o.only = (uint32_t)only;
		break;
	case 'J': a->as_json = 1; break;
	case 'G': return cmd_progress_mode("media", optarg, &a->mode);
	case 'q': a->quiet = 1; a->mode = "none"; break;
	case 'h': return fputs(media_usage, stdout), 0;
	default: return cmd_bad_option("media", c, argv, media_longopts);
	}
	return CMD_GO;
}

static int parse_media(int argc, char **argv, struct media_args *a)
{
	int c, rc = CMD_GO;

	memset(a, 0, sizeof(*a));
	a->o.progress = on_progress;
	a->mode = "auto";
	while (rc == CMD_GO && (c = getopt_long(argc, argv, ":o:qh", media_longopts, NULL)) != -1)
		rc = media_option(c, a, argv);
	if (rc != CMD_GO)
		return rc;
	if (optind != argc - 1)
		return cmd_usage_error("media", "expected one TREE");
	if (!a->out)
		return cmd_usage_error("media", "-o DIR is required");
	if (!a->o.capacity)
		return cmd_usage_error("media", "--size is required");
	return CMD_GO;
}

int cmd_media(int argc, char **argv)
{
	struct media_args a;
	struct media_result res;
	struct rp_err err = { "" };
	struct progress prog;
	int rc = parse_media(argc, argv, &a);

	if (rc != CMD_GO)
		return rc;
	progress_init(&prog, "writing volumes", a.as_json ? "none" : a.mode);
	a.o.ctx = &prog;
	rc = media_write(argv[optind], a.out, &a.o, &res, &err);
	progress_end(&prog);
	if (rc < 0)
		return cmd_fail("media", &err);
	if (!a.quiet || a.as_json)
		media_report(&res, a.as_json);
	media_result_free(&res);
	return 0;
}

static void list_u32(char *buf, size_t sz, const uint32_t *v, size_t n)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 0; i < n && off < sz; i++)
		off += (size_t)snprintf(buf + off, sz - off, "%s%" PRIu32, i ? ", " : "", v[i]);
}

#define PUBKEYS_MAX 16

/* ", signed, release N" for a checked or imported set. */
static const char *trust_note(int signed_ok, uint64_t release, char buf[64])
{
	if (release)
		snprintf(buf, 64, "%s, release %" PRIu64, signed_ok ? ", signed" : "", release);
	else
		snprintf(buf, 64, "%s", signed_ok ? ", signed" : "");
	return buf;
}

static int import_check(int argc, char **argv, int first, const struct media_trust *trust,
			int as_json, int quiet, const char *mode)
{
	json_t *arr = json_array();
	int i;

	for (i = first; i < argc; i++) {
		struct media_volume_info info;
		struct rp_err err = { "" };
		struct progress prog;
		char size[32], note[64];
		int rc;

		progress_init(&prog, "checking", as_json ? "none" : mode);
		rc = media_check(argv[i], trust, on_progress, &prog, &info, &err);
		progress_end(&prog);
		if (rc < 0) {
			json_decref(arr);
			return cmd_fail("import", &err);
		}
		if (as_json)
			json_array_append_new(
				arr, json_pack("{s:s, s:b, s:I, s:I, s:s+, s:o, s:s+, s:I, s:I, s:b, "
					       "s:I}", "path", argv[i], "ok", 1, "volume",
					       (json_int_t)info.volume, "volumes",
					       (json_int_t)info.nvolumes, "snapshot", "sha256:",
					       info.snapshot_id, "base", digest_or_null(info.base_id),
					       "set", "sha256:", info.set_id, "files",
					       (json_int_t)info.files, "bytes",
					       (json_int_t)info.bytes, "signed", info.signed_ok,
					       "release", (json_int_t)info.release));
		else if (!quiet)
			printf("%s: ok: volume %" PRIu32 " of %" PRIu32 " of snapshot sha256:%s%s%s%s, "
			       "%" PRIu64 " file%s, %s%s\n", argv[i], info.volume, info.nvolumes,
			       info.snapshot_id, info.base_id[0] ? " (delta from sha256:" : "",
			       info.base_id[0] ? info.base_id : "", info.base_id[0] ? ")" : "",
			       info.files, info.files == 1 ? "" : "s",
			       progress_size(info.bytes, size, 32),
			       trust_note(info.signed_ok, info.release, note));
	}
	if (as_json)
		print_json(arr);
	else
		json_decref(arr);
	return 0;
}

static const struct option import_longopts[] = {
	{ "into", required_argument, NULL, 'T' },
	{ "check", no_argument, NULL, 'C' },
	{ "json", no_argument, NULL, 'J' },
	{ "progress", required_argument, NULL, 'G' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "pubkey", required_argument, NULL, 'K' },
	{ "allow-downgrade", no_argument, NULL, 'D' },
	{ "allow-unsigned", no_argument, NULL, 'U' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct import_args {
	const char *tree, *mode;
	int as_json, quiet, check;
	const char *keys[PUBKEYS_MAX];
	struct media_trust trust;
};

static int parse_import(int argc, char **argv, struct import_args *a)
{
	int c, rc = CMD_GO;

	memset(a, 0, sizeof(*a));
	a->mode = "auto";
	a->trust.pubkeys = a->keys;
	while (rc == CMD_GO && (c = getopt_long(argc, argv, ":qh", import_longopts, NULL)) != -1) {
		switch (c) {
		case 'T': a->tree = optarg; break;
		case 'C': a->check = 1; break;
		case 'J': a->as_json = 1; break;
		case 'G': rc = cmd_progress_mode("import", optarg, &a->mode); break;
		case 'q': a->quiet = 1; a->mode = "none"; break;
		case 'K':
			if (a->trust.npubkeys == PUBKEYS_MAX)
				return cmd_usage_error("import", "at most %d --pubkey", PUBKEYS_MAX);
			a->keys[a->trust.npubkeys++] = optarg;
			break;
		case 'D': a->trust.allow_downgrade = 1; break;
		case 'U': a->trust.allow_unsigned = 1; break;
		case 'h': return fputs(import_usage, stdout), 0;
		default: return cmd_bad_option("import", c, argv, import_longopts);
		}
	}
	if (rc != CMD_GO)
		return rc;
	if (optind >= argc)
		return cmd_usage_error("import", "expected at least one VOLUME");
	if (a->check && a->tree)
		return cmd_usage_error("import", "--check writes nothing: no --into");
	if (a->check && (a->trust.allow_downgrade || a->trust.allow_unsigned))
		return cmd_usage_error("import", "--check compares with no tree: no "
				       "--allow-downgrade or --allow-unsigned");
	if (!a->check && !a->tree)
		return cmd_usage_error("import", "--into TREE is required");
	return CMD_GO;
}

static void import_json(const struct media_import_result *res)
{
	json_t *imp = json_array(), *miss = json_array();
	size_t i;

	for (i = 0; i < res->nimported; i++)
		json_array_append_new(imp, json_integer(res->imported[i]));
	for (i = 0; i < res->nmissing; i++)
		json_array_append_new(miss, json_integer(res->missing[i]));
	print_json(json_pack("{s:s+, s:o, s:I, s:o, s:o, s:b, s:b, s:I, s:I, s:b, s:I, s:o}",
			     "snapshot", "sha256:", res->snapshot_id, "base",
			     digest_or_null(res->base_id), "volumes", (json_int_t)res->nvolumes,
			     "imported", imp, "missing", miss, "published", res->published, "already",
			     res->already, "files_copied", (json_int_t)res->files_copied,
			     "bytes_copied", (json_int_t)res->bytes_copied, "signed", res->signed_ok,
			     "release", (json_int_t)res->release, "replaced",
			     res->replaced ? json_pack("{s:I, s:s+}", "release",
						       (json_int_t)res->replaced, "snapshot",
						       "sha256:", res->replaced_id)
					   : json_null()));
}

static void import_text(const char *tree, const struct media_import_result *res)
{
	char a[32], note[64], list[512];

	if (res->replaced)
		fprintf(stderr, "regpress import: replaced release %" PRIu64 " (snapshot sha256:%s) "
			"of '%s' by the older release %" PRIu64 " (--allow-downgrade)\n",
			res->replaced, res->replaced_id, tree, res->release);
	if (res->already) {
		printf("'%s' is already at snapshot sha256:%s%s: nothing to import%s\n", tree,
		       res->snapshot_id, trust_note(res->signed_ok, res->release, note),
		       res->signatures_added ? " but its signed files, now in place" : "");
		return;
	}
	list_u32(list, sizeof(list), res->imported, res->nimported);
	printf("imported volume%s %s of %" PRIu32 " (%" PRIu64 " file%s, %s copied); ",
	       res->nimported == 1 ? "" : "s", list, res->nvolumes, res->files_copied,
	       res->files_copied == 1 ? "" : "s", progress_size(res->bytes_copied, a, sizeof(a)));
	list_u32(list, sizeof(list), res->missing, res->nmissing);
	if (res->published)
		printf("published snapshot sha256:%s%s\n", res->snapshot_id,
		       trust_note(res->signed_ok, res->release, note));
	else
		printf("still missing: %s\n", list);
}

int cmd_import(int argc, char **argv)
{
	struct import_args a;
	struct media_import_result res;
	struct rp_err err = { "" };
	struct progress prog;
	int rc = parse_import(argc, argv, &a);

	if (rc != CMD_GO)
		return rc;
	if (a.check)
		return import_check(argc, argv, optind, &a.trust, a.as_json, a.quiet, a.mode);
	progress_init(&prog, "importing", a.as_json ? "none" : a.mode);
	rc = media_import(a.tree, (const char *const *)argv + optind, (size_t)(argc - optind),
			  &a.trust, on_progress, &prog, &res, &err);
	progress_end(&prog);
	if (rc < 0)
		return cmd_fail("import", &err);
	if (a.as_json)
		import_json(&res);
	else if (!a.quiet)
		import_text(a.tree, &res);
	media_import_result_free(&res);
	return 0;
}
