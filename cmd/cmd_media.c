/* Carrying trees across an air gap: media (a tree, or a delta, as numbered volumes and ISO
 * images) and import (volumes into a tree, any order, across runs). The work is in layout/media.c;
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
	"                    (the image of each volume, file system included, fits in SIZE)\n"
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

static int parse_progress(const char *cmd, const char *arg, const char **mode)
{
	if (strcmp(arg, "auto") && strcmp(arg, "plain") && strcmp(arg, "none"))
		return cmd_usage_error(cmd, "--progress is auto, plain or none");
	*mode = arg;
	return 0;
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

int cmd_media(int argc, char **argv)
{
	static const struct option longopts[] = {
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
	struct media_opts o = { 0, NULL, 0, 0, on_progress, NULL };
	struct media_result res;
	struct rp_err err = { "" };
	struct progress prog;
	const char *out = NULL, *mode = "auto";
	int as_json = 0, quiet = 0, c, rc;

	while ((c = getopt_long(argc, argv, "o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'S':
			if (media_parse_size(optarg, &o.capacity, &err) < 0)
				return cmd_usage_error("media", "--size %s", err.msg);
			break;
		case 'I': o.iso = 1; break;
		case 'B': o.since = optarg; break;
		case 'N': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 10);

			if (!*optarg || *end || v == 0 || v > 1000000)
				return cmd_usage_error("media", "--only takes a volume number");
			o.only = (uint32_t)v;
			break;
		}
		case 'J': as_json = 1; break;
		case 'G':
			if (parse_progress("media", optarg, &mode))
				return 2;
			break;
		case 'q': quiet = 1; mode = "none"; break;
		case 'h': return fputs(media_usage, stdout), 0;
		default: return fputs(media_usage, stderr), 2;
		}
	}
	if (optind != argc - 1)
		return cmd_usage_error("media", "expected one TREE");
	if (!out)
		return cmd_usage_error("media", "-o DIR is required");
	if (!o.capacity)
		return cmd_usage_error("media", "--size is required");
	progress_init(&prog, "writing volumes", as_json ? "none" : mode);
	o.ctx = &prog;
	rc = media_write(argv[optind], out, &o, &res, &err);
	progress_end(&prog);
	if (rc < 0)
		return cmd_fail("media", &err);
	if (!quiet || as_json)
		media_report(&res, as_json);
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
			printf("%s: ok: volume %" PRIu32 " of %" PRIu32 " of snapshot sha256:%s%s%s, "
			       "%" PRIu64 " file%s, %s%s\n", argv[i], info.volume, info.nvolumes,
			       info.snapshot_id, info.base_id[0] ? " (delta from sha256:" : "",
			       info.base_id[0] ? info.base_id : "", info.files,
			       info.files == 1 ? "" : "s", progress_size(info.bytes, size, 32),
			       trust_note(info.signed_ok, info.release, note));
	}
	if (as_json)
		print_json(arr);
	else
		json_decref(arr);
	return 0;
}

int cmd_import(int argc, char **argv)
{
	static const struct option longopts[] = {
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
	const char *keys[PUBKEYS_MAX];
	struct media_trust trust = { keys, 0, 0, 0 };
	struct media_import_result res;
	struct rp_err err = { "" };
	struct progress prog;
	const char *tree = NULL, *mode = "auto";
	int as_json = 0, quiet = 0, check = 0, c, rc;
	char a[32], a2[64], list[512];

	while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'T': tree = optarg; break;
		case 'C': check = 1; break;
		case 'J': as_json = 1; break;
		case 'G':
			if (parse_progress("import", optarg, &mode))
				return 2;
			break;
		case 'q': quiet = 1; mode = "none"; break;
		case 'K':
			if (trust.npubkeys == PUBKEYS_MAX)
				return cmd_usage_error("import", "at most %d --pubkey", PUBKEYS_MAX);
			keys[trust.npubkeys++] = optarg;
			break;
		case 'D': trust.allow_downgrade = 1; break;
		case 'U': trust.allow_unsigned = 1; break;
		case 'h': return fputs(import_usage, stdout), 0;
		default: return fputs(import_usage, stderr), 2;
		}
	}
	if (optind >= argc)
		return cmd_usage_error("import", "expected at least one VOLUME");
	if (check) {
		if (tree)
			return cmd_usage_error("import", "--check writes nothing: no --into");
		if (trust.allow_downgrade || trust.allow_unsigned)
			return cmd_usage_error("import", "--check compares with no tree: no "
					       "--allow-downgrade or --allow-unsigned");
		return import_check(argc, argv, optind, &trust, as_json, quiet, mode);
	}
	if (!tree)
		return cmd_usage_error("import", "--into TREE is required");
	progress_init(&prog, "importing", as_json ? "none" : mode);
	rc = media_import(tree, (const char *const *)argv + optind, (size_t)(argc - optind), &trust,
			  on_progress, &prog, &res, &err);
	progress_end(&prog);
	if (rc < 0)
		return cmd_fail("import", &err);
	if (as_json) {
		json_t *imp = json_array(), *miss = json_array();
		size_t i;

		for (i = 0; i < res.nimported; i++)
			json_array_append_new(imp, json_integer(res.imported[i]));
		for (i = 0; i < res.nmissing; i++)
			json_array_append_new(miss, json_integer(res.missing[i]));
		print_json(json_pack("{s:s+, s:o, s:I, s:o, s:o, s:b, s:b, s:I, s:I, s:b, s:I, "
				     "s:o}", "snapshot",
				     "sha256:", res.snapshot_id, "base",
				     digest_or_null(res.base_id), "volumes",
				     (json_int_t)res.nvolumes, "imported", imp, "missing", miss,
				     "published", res.published, "already", res.already,
				     "files_copied", (json_int_t)res.files_copied, "bytes_copied",
				     (json_int_t)res.bytes_copied, "signed", res.signed_ok,
				     "release", (json_int_t)res.release, "replaced",
				     res.replaced ? json_pack("{s:I, s:s+}", "release",
							      (json_int_t)res.replaced, "snapshot",
							      "sha256:", res.replaced_id)
						  : json_null()));
	} else if (!quiet) {
		if (res.replaced)
			fprintf(stderr, "regpress import: replaced release %" PRIu64 " (snapshot "
				"sha256:%s) of '%s' by the older release %" PRIu64 " (--allow-"
				"downgrade)\n", res.replaced, res.replaced_id, tree, res.release);
		if (res.already) {
			printf("'%s' is already at snapshot sha256:%s%s: nothing to import%s\n", tree,
			       res.snapshot_id, trust_note(res.signed_ok, res.release, a2),
			       res.signatures_added ? " but its signed files, now in place" : "");
		} else {
			list_u32(list, sizeof(list), res.imported, res.nimported);
			printf("imported volume%s %s of %" PRIu32 " (%" PRIu64 " file%s, %s copied); ",
			       res.nimported == 1 ? "" : "s", list, res.nvolumes, res.files_copied,
			       res.files_copied == 1 ? "" : "s",
			       progress_size(res.bytes_copied, a, sizeof(a)));
			list_u32(list, sizeof(list), res.missing, res.nmissing);
			if (res.published)
				printf("published snapshot sha256:%s%s\n", res.snapshot_id,
				       trust_note(res.signed_ok, res.release, a2));
			else
				printf("still missing: %s\n", list);
		}
	}
	media_import_result_free(&res);
	return 0;
}
