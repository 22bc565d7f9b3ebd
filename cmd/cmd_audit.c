/* Audit commands: snapshot, verify, diff. They read trees (and snapshot files); only
 * `snapshot --sign` writes, through layout/, the signed files (cmd_sign.c). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd.h"
#include "fsutil.h"
#include "names.h"
#include "progress.h"
#include "release.h"
#include "sign.h"
#include "snapshot.h"
#include "tree.h"
#include "verify.h"

static const char snapshot_usage[] =
	"usage: regpress snapshot [--json] [--sign SECKEY [--release N] [--passphrase-file F]] TREE\n"
	"\n"
	"Print the tree's snapshot: its whole state as canonical text (every repository:tag and\n"
	"the manifest it names, every manifest and blob with size and media type). The text goes\n"
	"to standard output exactly as stored in TREE/registry/snapshot, so its sha256 is the\n"
	"snapshot id; the id is also printed to standard error.\n"
	"\n"
	"  --json          print the snapshot as JSON instead, with its id\n"
	"  --sign SECKEY   sign the snapshot with a signify/regpress Ed25519 secret key: the\n"
	"                  signature goes to TREE/registry/snapshot.sig, and a release (its number,\n"
	"                  the snapshot and the one it follows, the date) to TREE/registry/release\n"
	"                  with its signature release.sig; import refuses older releases\n"
	"  --release N     the release number (default: the tree's last release + 1, or the same\n"
	"                  when that release is of this snapshot); never below the last one\n"
	"  --passphrase-file F  the key's passphrase, from the first line of F (default: asked\n"
	"                  on the terminal when the key is protected)\n"
	"  -h, --help      show this help\n";

static const char verify_usage[] =
	"usage: regpress verify [--quick] [--json] [--pubkey PUB] [--progress=MODE] [-q] TREE\n"
	"\n"
	"Check TREE against its snapshot: re-hash every blob, parse every manifest and check that\n"
	"what it references is served, check that tag lists, catalog, index.json and the served\n"
	"view are exactly what the snapshot implies, and flag stray files and wrong modes.\n"
	"Each problem is one line naming the file. Exit 0 only when the tree is clean.\n"
	"\n"
	"  --quick         check sizes and structure, do not hash blobs\n"
	"  --pubkey PUB    also require TREE/registry/snapshot.sig and release.sig to be valid\n"
	"                  signatures by PUB, the release to be of this snapshot, and nothing in\n"
	"                  the tree beyond the signed snapshot\n"
	"  --json          print the result as JSON\n"
	"  --progress=MODE auto (a line on a terminal, default), plain (for logs), none\n"
	"  -q, --quiet     no progress (problems and the result are still printed)\n"
	"  -h, --help      show this help\n";

static const char diff_usage[] =
	"usage: regpress diff [--json] OLD NEW\n"
	"\n"
	"Compare two snapshots (trees, or snapshot files from `regpress snapshot`): tags added,\n"
	"removed and retagged, and the blobs added and removed with their total size: exactly\n"
	"what a delta transfer from OLD to NEW must carry. Exit 0 whether or not they differ.\n"
	"\n"
	"  --json         print the difference as JSON\n"
	"  -h, --help     show this help\n";

static json_t *snapshot_json(const struct snapshot *s)
{
	json_t *tags = json_array(), *manifests = json_array(), *blobs = json_array();
	json_t *missing = json_array();
	char id[80];
	size_t i;

	for (i = 0; i < s->n; i++) {
		const struct snap_rec *r = &s->v[i];
		char d[80];

		snprintf(d, sizeof(d), "sha256:%s", r->hex);
		if (r->kind == SNAP_TAG)
			json_array_append_new(tags, json_pack("{s:s, s:s, s:s}", "repository",
							      r->repo, "tag", r->tag, "digest", d));
		else
			json_array_append_new(r->kind == SNAP_BLOB ? blobs
					      : r->kind == SNAP_MISSING ? missing : manifests,
					      json_pack("{s:s, s:s, s:I, s:s}", "repository", r->repo,
							"digest", d, "size", (json_int_t)r->size,
							"mediaType", r->media_type));
	}
	snprintf(id, sizeof(id), "sha256:%s", s->id);
	return json_pack("{s:s, s:o, s:o, s:o, s:o}", "snapshot", id, "tags", tags, "manifests",
			 manifests, "blobs", blobs, "missing", missing);
}

static void print_json(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

	if (s)
		printf("%s\n", s);
	free(s);
}

/* What snapshot was asked to do. */
struct snapshot_args {
	int as_json;
	const char *seckey, *passfile;
	unsigned long long release; /* 0: the default */
};

/* A release number: whole, decimal, from 1. */
static int parse_release(const char *s, unsigned long long *out)
{
	char *end;

	if (*s < '1' || *s > '9')
		return 0;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return !*end && errno == 0;
}

static int parse_snapshot(int argc, char **argv, struct snapshot_args *a)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "sign", required_argument, NULL, 'S' },
		{ "release", required_argument, NULL, 'R' },
		{ "passphrase-file", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'J')
			a->as_json = 1;
		else if (c == 'S')
			a->seckey = optarg;
		else if (c == 'P')
			a->passfile = optarg;
		else if (c == 'R' && !parse_release(optarg, &a->release))
			return cmd_usage_error("snapshot", "--release: expected a number from 1 up, "
					       "not '%s'", optarg);
		else if (c == 'h')
			return fputs(snapshot_usage, stdout), 0;
		else if (c != 'R')
			return cmd_bad_option("snapshot", c, argv, longopts);
	}
	if (optind != argc - 1)
		return cmd_usage_error("snapshot", "expected one TREE");
	if (!a->seckey && (a->release || a->passfile))
		return cmd_usage_error("snapshot", "--release and --passphrase-file go with --sign");
	return CMD_GO;
}

/* --sign: the tree opened for writing, under its lock, so the snapshot signed is the one in
 * place (a second handle would wait for this one's lock: the text is read through it). */
static int open_to_sign(const char *path, struct layout_tree **tree, struct rp_err *err)
{
	if (layout_open(path, LAYOUT_WRITE, tree, err) < 0)
		return -1;
	if (!layout_snapshot_id(*tree)[0])
		return rp_errf(err, "'%s': not a regpress tree (nothing to sign)", path);
	return 0;
}

/* The snapshot of the tree (through its handle, if open) or of a snapshot file. */
static int load_snapshot(const char *path, struct layout_tree *tree, struct snapshot *s,
			 char **text, struct rp_err *err)
{
	size_t len;
	const char *t;

	if (!tree)
		return layout_snapshot_load(path, s, text, err);
	t = layout_snapshot_text(tree, &len);
	if (!(*text = strndup(t, len)))
		return rp_errf(err, "out of memory");
	return snapshot_parse(*text, len, layout_path(tree), s, err);
}

int cmd_snapshot(int argc, char **argv)
{
	struct snapshot_args a = { 0, NULL, NULL, 0 };
	struct snapshot s = { NULL, 0, "" };
	struct rp_err err = { "" };
	struct layout_tree *tree = NULL;
	struct release rel;
	struct stat st;
	char *text = NULL;
	int rc = parse_snapshot(argc, argv, &a);

	if (rc != CMD_GO)
		return rc;
	if (a.seckey && (stat(argv[optind], &st) < 0 || !S_ISDIR(st.st_mode)))
		return cmd_usage_error("snapshot", "--sign needs a tree, not a file");
	rc = 1;
	if ((a.seckey && open_to_sign(argv[optind], &tree, &err) < 0) ||
	    load_snapshot(argv[optind], tree, &s, &text, &err) < 0 ||
	    (a.seckey && cmd_sign_tree(tree, a.seckey, a.passfile, a.release, &rel, &err) < 0))
		goto out;
	if (a.as_json) {
		json_t *j = snapshot_json(&s);

		print_json(j);
		json_decref(j);
	} else {
		fputs(text, stdout);
		/* The id confirms the text that went out; when it did not, main says so instead. */
		if (cmd_flush_stdout() == 0) {
			if (a.seckey)
				fprintf(stderr, "snapshot sha256:%s (signed: release %llu)\n", s.id,
					(unsigned long long)rel.number);
			else
				fprintf(stderr, "snapshot sha256:%s\n", s.id);
		}
	}
	rc = 0;
out:
	if (rc)
		cmd_fail("snapshot", &err);
	layout_close(tree);
	snapshot_free(&s);
	free(text);
	return rc;
}

struct verify_out {
	int as_json;
	json_t *items;
	struct progress prog;
};

static void verify_report(void *ctx, enum verify_level level, const char *path, const char *what)
{
	struct verify_out *o = ctx;

	if (o->as_json) {
		json_array_append_new(o->items, json_pack("{s:s, s:s, s:s}", "level",
							  level == VERIFY_PROBLEM ? "problem" : "warning",
							  "path", path, "problem", what));
		return;
	}
	progress_clear(&o->prog);
	printf("%s: %s%s\n", path, level == VERIFY_WARNING ? "warning: " : "", what);
}

static void verify_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress_update(&((struct verify_out *)ctx)->prog, done, total);
}

static int parse_verify(int argc, char **argv, struct verify_opts *opts, struct verify_out *out,
			const char **mode)
{
	static const struct option longopts[] = {
		{ "quick", no_argument, NULL, 'Q' },
		{ "json", no_argument, NULL, 'J' },
		{ "pubkey", required_argument, NULL, 'P' },
		{ "progress", required_argument, NULL, 'G' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, rc = CMD_GO;

	while (rc == CMD_GO && (c = getopt_long(argc, argv, ":qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'Q': opts->quick = 1; break;
		case 'J': out->as_json = 1; break;
		case 'P': opts->pubkey = optarg; break;
		case 'G': rc = cmd_progress_mode("verify", optarg, mode); break;
		case 'q': *mode = "none"; break;
		case 'h': return fputs(verify_usage, stdout), 0;
		default: return cmd_bad_option("verify", c, argv, longopts);
		}
	}
	if (rc == CMD_GO && optind != argc - 1)
		return cmd_usage_error("verify", "expected one TREE");
	return rc;
}

/* ", release N" when the release is signed and good, for the ok line. */
static const char *release_note(const struct verify_result *res, char buf[48])
{
	buf[0] = '\0';
	if (res->release_ok)
		snprintf(buf, 48, ", release %llu", (unsigned long long)res->release);
	return buf;
}

static void print_verify(const char *tree, const struct verify_opts *opts,
			 const struct verify_result *res, struct verify_out *out)
{
	char size[32], rel[48];

	if (out->as_json) {
		json_t *j = json_pack("{s:b, s:s+, s:I, s:I, s:I, s:I, s:o}", "ok", res->problems == 0,
				      "snapshot", "sha256:", res->snapshot_id, "problems",
				      (json_int_t)res->problems, "warnings", (json_int_t)res->warnings,
				      "blobs_hashed", (json_int_t)res->blobs, "bytes_hashed",
				      (json_int_t)res->bytes, "findings", out->items);

		if (opts->pubkey) {
			json_object_set_new(j, "signature", json_boolean(res->signed_ok));
			json_object_set_new(j, "release_signature", json_boolean(res->release_ok));
		}
		if (res->release)
			json_object_set_new(j, "release", json_integer((json_int_t)res->release));
		print_json(j);
		json_decref(j);
		return;
	}
	json_decref(out->items);
	if (res->problems)
		fprintf(stderr, "regpress verify: %s: %zu problem%s\n", tree, res->problems,
			res->problems == 1 ? "" : "s");
	else
		printf("ok: snapshot sha256:%s, %llu blobs (%s) %s%s%s\n", res->snapshot_id,
		       (unsigned long long)res->blobs, progress_size(res->bytes, size, 32),
		       opts->quick ? "checked by size" : "hashed",
		       res->signed_ok ? ", signature good" : "", release_note(res, rel));
}

int cmd_verify(int argc, char **argv)
{
	struct verify_out out = { .as_json = 0, .items = NULL };
	struct verify_opts opts = { 0, NULL, verify_report, verify_progress, &out };
	struct verify_result res;
	struct rp_err err = { "" };
	const char *mode = "auto";
	int rc = parse_verify(argc, argv, &opts, &out, &mode);

	if (rc != CMD_GO)
		return rc;
	out.items = json_array();
	progress_init(&out.prog, "verifying", out.as_json ? "none" : mode);
	rc = layout_verify(argv[optind], &opts, &res, &err);
	progress_end(&out.prog);
	if (rc < 0) {
		json_decref(out.items);
		return cmd_fail("verify", &err);
	}
	print_verify(argv[optind], &opts, &res, &out);
	return res.problems ? 1 : 0;
}

static json_t *tag_json(const struct snap_rec *r, const struct snap_rec *old)
{
	char ref[RP_REPO_MAX + RP_TAG_MAX + 2];

	snprintf(ref, sizeof(ref), "%s:%s", r->repo, r->tag);
	if (old)
		return json_pack("{s:s, s:s+, s:s+}", "ref", ref, "old", "sha256:", old->hex, "new",
				 "sha256:", r->hex);
	return json_pack("{s:s, s:s+}", "ref", ref, "digest", "sha256:", r->hex);
}

/* The difference as JSON: {"old","new","tags":{"added","removed","changed"},
 * "blobs":{"added","removed","added_bytes","removed_bytes"}}. */
static json_t *diff_json(const struct snapshot *a, const struct snapshot *b,
			 const struct snapshot_diff *d)
{
	json_t *tags = json_pack("{s:[], s:[], s:[]}", "added", "removed", "changed");
	json_t *blobs = json_pack("{s:[], s:[]}", "added", "removed");
	size_t i;

	for (i = 0; tags && i < d->ntags_added; i++)
		json_array_append_new(json_object_get(tags, "added"), tag_json(d->tags_added[i].new, NULL));
	for (i = 0; tags && i < d->ntags_removed; i++)
		json_array_append_new(json_object_get(tags, "removed"),
				      tag_json(d->tags_removed[i].old, NULL));
	for (i = 0; tags && i < d->ntags_changed; i++)
		json_array_append_new(json_object_get(tags, "changed"),
				      tag_json(d->tags_changed[i].new, d->tags_changed[i].old));
	for (i = 0; blobs && i < d->nblobs_added + d->nblobs_removed; i++) {
		int add = i < d->nblobs_added;
		const struct snap_blob_change *c = add ? &d->blobs_added[i]
						       : &d->blobs_removed[i - d->nblobs_added];

		json_array_append_new(json_object_get(blobs, add ? "added" : "removed"),
				      json_pack("{s:s+, s:I}", "digest", "sha256:", c->hex, "size",
						(json_int_t)c->size));
	}
	if (blobs) {
		json_object_set_new(blobs, "added_bytes", json_integer((json_int_t)d->bytes_added));
		json_object_set_new(blobs, "removed_bytes",
				    json_integer((json_int_t)d->bytes_removed));
	}
	return json_pack("{s:s+, s:s+, s:o, s:o}", "old", "sha256:", a->id, "new", "sha256:", b->id,
			 "tags", tags, "blobs", blobs);
}

static void print_diff(json_t *out)
{
	json_t *tags = json_object_get(out, "tags"), *blobs = json_object_get(out, "blobs"), *v;
	char s1[32], s2[32];
	size_t k;

	json_array_foreach(json_object_get(tags, "added"), k, v)
		printf("tag added    %s %s\n", json_string_value(json_object_get(v, "ref")),
		       json_string_value(json_object_get(v, "digest")));
	json_array_foreach(json_object_get(tags, "removed"), k, v)
		printf("tag removed  %s %s\n", json_string_value(json_object_get(v, "ref")),
		       json_string_value(json_object_get(v, "digest")));
	json_array_foreach(json_object_get(tags, "changed"), k, v)
		printf("tag changed  %s %s -> %s\n", json_string_value(json_object_get(v, "ref")),
		       json_string_value(json_object_get(v, "old")),
		       json_string_value(json_object_get(v, "new")));
	json_array_foreach(json_object_get(blobs, "added"), k, v)
		printf("blob added   %s %lld\n", json_string_value(json_object_get(v, "digest")),
		       (long long)json_integer_value(json_object_get(v, "size")));
	json_array_foreach(json_object_get(blobs, "removed"), k, v)
		printf("blob removed %s %lld\n", json_string_value(json_object_get(v, "digest")),
		       (long long)json_integer_value(json_object_get(v, "size")));
	printf("tags: %zu added, %zu removed, %zu changed; blobs: %zu added (%s), %zu removed "
	       "(%s)\n", json_array_size(json_object_get(tags, "added")),
	       json_array_size(json_object_get(tags, "removed")),
	       json_array_size(json_object_get(tags, "changed")),
	       json_array_size(json_object_get(blobs, "added")),
	       progress_size((uint64_t)json_integer_value(json_object_get(blobs, "added_bytes")), s1,
			     32),
	       json_array_size(json_object_get(blobs, "removed")),
	       progress_size((uint64_t)json_integer_value(json_object_get(blobs, "removed_bytes")),
			     s2, 32));
}

static int parse_diff(int argc, char **argv, int *as_json)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		if (c == 'J')
			*as_json = 1;
		else if (c == 'h')
			return fputs(diff_usage, stdout), 0;
		else
			return cmd_bad_option("diff", c, argv, longopts);
	}
	if (argc - optind != 2)
		return cmd_usage_error("diff", "expected OLD and NEW");
	return CMD_GO;
}

int cmd_diff(int argc, char **argv)
{
	struct snapshot a = { NULL, 0, "" }, b = { NULL, 0, "" };
	struct snapshot_diff d;
	struct rp_err err = { "" };
	json_t *out = NULL;
	int as_json = 0, rc = parse_diff(argc, argv, &as_json);

	if (rc != CMD_GO)
		return rc;
	rc = 1;
	memset(&d, 0, sizeof(d));
	if (layout_snapshot_load(argv[optind], &a, NULL, &err) < 0 ||
	    layout_snapshot_load(argv[optind + 1], &b, NULL, &err) < 0 ||
	    snapshot_diff(&a, &b, &d, &err) < 0)
		goto out;
	if (!(out = diff_json(&a, &b, &d))) {
		rp_errf(&err, "out of memory");
		goto out;
	}
	if (as_json)
		print_json(out);
	else
		print_diff(out);
	rc = 0;
out:
	if (rc)
		cmd_fail("diff", &err);
	json_decref(out);
	snapshot_diff_free(&d);
	snapshot_free(&a);
	snapshot_free(&b);
	return rc;
}
