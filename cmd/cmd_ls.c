/* Looking at a tree: ls (one line per tag) and inspect (one manifest in full). Both read through
 * the tree handle and describe.h and only print; ls also takes what a volume or a saved snapshot
 * carries, which says less (no blobs). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "describe.h"
#include "fsutil.h"
#include "media.h"
#include "progress.h"
#include "tree.h"

static const char ls_usage[] =
	"usage: regpress ls [--json] [--digests] TREE [REPO[:TAG]]...\n"
	"\n"
	"One line per tag of TREE, sorted by repository then tag: repository, tag,\n"
	"manifest digest (12 hex digits), kind (image, index, artifact), platforms,\n"
	"total compressed size (manifest, configs and layers, each blob once) and the\n"
	"date the image was created. Aligned under a header on a terminal,\n"
	"tab-separated without a header otherwise.\n"
	"\n"
	"REPO is a repository as docker names it (alpine is library/alpine) or as the\n"
	"tree names it; REPO:TAG is one tag. Each must match a tag of TREE.\n"
	"\n"
	"TREE may also be a volume directory written by `regpress media` (a mounted\n"
	"disc) or a snapshot file. These carry the snapshot, not every blob, so kind,\n"
	"platforms, size and created (which need the manifests and configs) are -.\n"
	"\n"
	"  --digests   the whole digest, sha256:<64 hex digits>\n"
	"  --json      every field in full, as JSON\n"
	"  -h, --help  show this help\n";

static const char inspect_usage[] =
	"usage: regpress inspect [--json | --raw] TREE REF\n"
	"\n"
	"Show one manifest of TREE. REF is REPO:TAG (REPO alone means REPO:latest) or\n"
	"REPO@sha256:HEX, REPO as for `regpress ls`. Prints the manifest's media type,\n"
	"digest, size, tags and total size; for each platform (each child of an index,\n"
	"or the image itself) the config (os/arch/variant, created, entrypoint, cmd,\n"
	"number of environment variables, labels) and the layers with media type and\n"
	"size; and the referrers (signatures, SBOMs: the repository's manifests whose\n"
	"subject it is) with their artifact types. Children of an index that the tree\n"
	"lacks (the input left them out) are shown as missing.\n"
	"\n"
	"  --json      all of it as JSON\n"
	"  --raw       the manifest's exact bytes, as the registry serves them\n"
	"  -h, --help  show this help\n";

/* ---- printing what the input wrote ----
 * Platforms, labels, entrypoints and media types come from the images: shown with control
 * characters (C0, DEL, C1, line and paragraph separators, bidirectional controls), and bytes that
 * are not UTF-8, as \xNN, so that they can neither drive the terminal nor break a line or a
 * column: cmd_safe_text, as cmd_fail's messages. */

static void put(const char *s)
{
	char *t = cmd_safe_text(s ? s : "-", NULL);

	fputs(t ? t : "?", stdout);
	free(t);
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	if (s)
		printf("%s\n", s);
	free(s);
}

/* ---- ls ---- */

/* What `ls` reads: a tree, or the snapshot of a volume or a file. */
struct source {
	const char *kind; /* "tree", "volume", "snapshot" */
	struct layout_tree *tree;
	struct snapshot snap;
};

static int source_open(const char *path, struct source *src, struct rp_err *err)
{
	struct stat st;
	char *vol, *snap;
	int r;

	memset(src, 0, sizeof(*src));
	if (stat(path, &st) < 0)
		return rp_errno(err, "'%s'", path);
	if (!S_ISDIR(st.st_mode)) {
		src->kind = "snapshot";
		return layout_snapshot_load(path, &src->snap, NULL, err);
	}
	if (!(vol = rp_join(path, MEDIA_MANIFEST)))
		return rp_errf(err, "out of memory");
	r = stat(vol, &st);
	free(vol);
	if (r < 0) {
		src->kind = "tree";
		return layout_open(path, LAYOUT_READ, &src->tree, err);
	}
	/* A volume carries its set's snapshot as a plain file beside its manifest (docs/media.md). */
	src->kind = "volume";
	if (!(snap = rp_join(path, MEDIA_SNAPSHOT)))
		return rp_errf(err, "out of memory");
	r = layout_snapshot_load(snap, &src->snap, NULL, err);
	free(snap);
	return r;
}

static void source_close(struct source *src)
{
	layout_close(src->tree);
	snapshot_free(&src->snap);
}

enum { COL_REPO, COL_TAG, COL_DIGEST, COL_KIND, COL_PLATFORMS, COL_SIZE, COL_CREATED, NCOLS };
static const char *const col_names[NCOLS] = { "REPOSITORY", "TAG",  "DIGEST",	"KIND",
					      "PLATFORMS",  "SIZE", "CREATED" };

/* "linux/amd64,linux/arm64 (missing)"; "-" when there are none (an artifact) or unknown. */
static char *platforms_cell(const struct describe_tag *d)
{
	size_t i, len = 2;
	char *s;

	for (i = 0; i < d->nplatforms; i++)
		len += strlen(d->platforms[i].name) + 12;
	if (!(s = malloc(len)))
		return NULL;
	strcpy(s, d->nplatforms ? "" : "-");
	for (i = 0; i < d->nplatforms; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, d->platforms[i].name);
		if (d->platforms[i].missing)
			strcat(s, " (missing)");
	}
	return s;
}

/* The cells of one row, unescaped (malloc'd). */
static int row_cells(const struct describe_tag *d, int full, char *cell[NCOLS])
{
	char size[32] = "-", date[16] = "-";
	struct tm tm;
	time_t when = (time_t)d->created_unix;

	if (d->described)
		progress_size(d->size, size, sizeof(size));
	if (d->described && d->created_ok && gmtime_r(&when, &tm))
		strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	cell[COL_REPO] = strdup(d->repo);
	cell[COL_TAG] = strdup(d->tag);
	if (asprintf(&cell[COL_DIGEST], "%s%.*s", full ? "sha256:" : "", full ? RP_HEX_LEN : 12,
		     d->hex) < 0)
		cell[COL_DIGEST] = NULL;
	cell[COL_KIND] = strdup(d->described ? describe_kind_name(d->kind) : "-");
	cell[COL_PLATFORMS] = d->described ? platforms_cell(d) : strdup("-");
	cell[COL_SIZE] = strdup(size);
	cell[COL_CREATED] = strdup(date);
	for (int i = 0; i < NCOLS; i++)
		if (!cell[i])
			return -1;
	return 0;
}

struct row {
	char *cell[NCOLS];
};

/* Every row's cells made safe, with the widths of the columns (in characters). */
static int table_make(const struct describe_list *l, int full, struct row *rows,
		      size_t width[NCOLS])
{
	size_t i, w;
	int c;

	for (c = 0; c < NCOLS; c++)
		width[c] = strlen(col_names[c]);
	for (i = 0; i < l->n; i++) {
		char *raw[NCOLS] = { NULL };
		int bad = row_cells(&l->v[i], full, raw) < 0;

		for (c = 0; c < NCOLS; c++) {
			if (!bad && !(rows[i].cell[c] = cmd_safe_text(raw[c], &w)))
				bad = 1;
			if (!bad && w > width[c])
				width[c] = w;
			free(raw[c]);
		}
		if (bad)
			return -1;
	}
	return 0;
}

static void table_free(struct row *rows, size_t n)
{
	size_t i;
	int c;

	for (i = 0; rows && i < n; i++)
		for (c = 0; c < NCOLS; c++)
			free(rows[i].cell[c]);
	free(rows);
}

/* Display width of a cell made by cmd_safe_text(): its characters, not its bytes. */
static size_t shown_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

static void print_row(const char *const *cells, const size_t width[NCOLS], int aligned)
{
	int c;

	for (c = 0; c < NCOLS; c++) {
		fputs(cells[c], stdout);
		if (c == NCOLS - 1)
			break;
		if (aligned)
			printf("%*s", (int)(width[c] - shown_width(cells[c]) + 2), "");
		else
			putchar('\t');
	}
	putchar('\n');
}

static int print_table(const struct describe_list *l, int full, struct rp_err *err)
{
	int aligned = isatty(STDOUT_FILENO);
	struct row *rows = calloc(l->n + 1, sizeof(*rows));
	size_t width[NCOLS], i;

	if (!rows || table_make(l, full, rows, width) < 0) {
		table_free(rows, l->n);
		return rp_errf(err, "out of memory");
	}
	if (aligned)
		print_row(col_names, width, 1);
	for (i = 0; i < l->n; i++)
		print_row((const char *const *)rows[i].cell, width, aligned);
	table_free(rows, l->n);
	return 0;
}

static int print_ls_json(const struct source *src, const struct describe_list *l,
			 struct rp_err *err)
{
	const char *id = src->tree ? layout_snapshot_id(src->tree) : src->snap.id;
	json_t *tags = json_array(), *j;
	size_t i;

	for (i = 0; tags && i < l->n; i++)
		if (json_array_append_new(tags, describe_tag_json(&l->v[i])) < 0) {
			json_decref(tags);
			tags = NULL;
		}
	j = json_pack("{s:s, s:s+, s:o}", "source", src->kind, "snapshot", "sha256:", id, "tags",
		      tags);
	if (!j)
		return rp_errf(err, "out of memory");
	print_json(j);
	json_decref(j);
	return 0;
}

/* The filters, parsed before anything is read: a malformed one is a usage error. */
static int parse_refs(int n, char **args, struct describe_ref **refs)
{
	struct rp_err err = { "" };
	int i;

	if (!(*refs = calloc((size_t)n + 1, sizeof(**refs))))
		return cmd_fail("ls", &(struct rp_err){ "out of memory" });
	for (i = 0; i < n; i++)
		if (describe_ref_parse(args[i], &(*refs)[i], &err) < 0)
			return cmd_usage_error("ls", "%s", err.msg);
	return 0;
}

int cmd_ls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "digests", no_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct describe_list list = { 0 };
	struct describe_ref *refs = NULL;
	struct rp_err err = { "" };
	struct source src = { 0 };
	int as_json = 0, full = 0, c, rc;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'J': as_json = 1; break;
		case 'D': full = 1; break;
		case 'h': return fputs(ls_usage, stdout), 0;
		default: return cmd_bad_option("ls", c, argv, longopts);
		}
	}
	if (optind >= argc)
		return cmd_usage_error("ls", "expected TREE");
	if ((rc = parse_refs(argc - optind - 1, argv + optind + 1, &refs)) != 0) {
		free(refs);
		return rc;
	}
	rc = 1;
	if (source_open(argv[optind], &src, &err) < 0)
		goto out;
	if ((src.tree ? describe_tree(src.tree, refs, (size_t)(argc - optind - 1), &list, &err)
		      : describe_snapshot(&src.snap, argv[optind], refs, (size_t)(argc - optind - 1),
					  &list, &err)) < 0)
		goto out;
	if ((as_json ? print_ls_json(&src, &list, &err) : print_table(&list, full, &err)) < 0)
		goto out;
	rc = 0;
out:
	if (rc)
		cmd_fail("ls", &err);
	describe_list_free(&list);
	source_close(&src);
	free(refs);
	return rc;
}

/* ---- inspect ---- */

static const char *str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void label(int indent, const char *name)
{
	printf("%*s%-12s", indent, "", name);
}

/* "sha256:...  media/type  1.2 KiB" */
static void put_desc(const json_t *o)
{
	char size[32];

	put(str(o, "digest"));
	fputs("  ", stdout);
	put(str(o, "mediaType"));
	printf("  %s\n", progress_size((uint64_t)json_integer_value(json_object_get(o, "size")),
				       size, sizeof(size)));
}

/* An entrypoint or a command as JSON, the way Dockerfiles write them; ASCII, so nothing in it
 * reaches the terminal unescaped. */
static void put_array(const json_t *v)
{
	char *s = json_is_array(v) ? json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

	put(s ? s : "-");
	putchar('\n');
	free(s);
}

static void print_labels(json_t *labels)
{
	const char *k;
	json_t *v;
	int first = 1;

	label(2, "labels");
	if (!json_object_size(labels))
		puts("-");
	json_object_foreach(labels, k, v) {
		char *other = json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

		if (!first)
			label(2, "");
		put(k);
		putchar('=');
		put(other ? other : json_string_value(v));
		putchar('\n');
		free(other);
		first = 0;
	}
}

static void print_config(json_t *c)
{
	json_int_t env = json_integer_value(json_object_get(c, "env"));

	label(2, "config");
	put_desc(c);
	if (!json_object_get(c, "entrypoint")) /* not an image config: only its descriptor */
		return;
	label(2, "created");
	put(str(c, "created"));
	putchar('\n');
	label(2, "entrypoint");
	put_array(json_object_get(c, "entrypoint"));
	label(2, "cmd");
	put_array(json_object_get(c, "cmd"));
	label(2, "env");
	printf("%lld variable%s\n", (long long)env, env == 1 ? "" : "s");
	print_labels(json_object_get(c, "labels"));
}

static void print_referrers(const json_t *refs, int indent)
{
	char size[32];
	json_t *r;
	size_t i;

	json_array_foreach(refs, i, r) {
		printf("%*s", indent, "");
		put(str(r, "digest"));
		fputs("  ", stdout);
		put(str(r, "artifactType") ? str(r, "artifactType") : str(r, "mediaType"));
		printf("  %s\n", progress_size((uint64_t)json_integer_value(json_object_get(r, "size")),
					       size, sizeof(size)));
	}
}

static void print_entry(json_t *e, const char *top)
{
	json_t *layers = json_object_get(e, "layers"), *l, *refs = json_object_get(e, "referrers");
	uint64_t total = 0;
	char size[32];
	size_t i;

	if (json_is_true(json_object_get(e, "attestation")))
		fputs("\nattestation\n", stdout);
	else if (str(e, "platform"))
		fputs("\nplatform ", stdout), put(str(e, "platform")), putchar('\n');
	else
		fputs("\ncontent\n", stdout);
	if (strcmp(str(e, "digest"), top))
		label(2, "manifest"), put_desc(e);
	if (json_is_true(json_object_get(e, "missing"))) {
		label(2, "missing");
		puts("not in the tree (the input left it out)");
		return;
	}
	if (str(e, "artifactType"))
		label(2, "artifact"), put(str(e, "artifactType")), putchar('\n');
	if (json_is_object(json_object_get(e, "config")))
		print_config(json_object_get(e, "config"));
	json_array_foreach(layers, i, l)
		total += (uint64_t)json_integer_value(json_object_get(l, "size"));
	label(2, "layers");
	printf("%zu (%s)\n", json_array_size(layers), progress_size(total, size, sizeof(size)));
	json_array_foreach(layers, i, l)
		printf("    "), put_desc(l);
	if (json_array_size(refs) && strcmp(str(e, "digest"), top))
		label(2, "referrers"), putchar('\n'), print_referrers(refs, 4);
}

static void print_inspect(json_t *j)
{
	json_t *tags = json_object_get(j, "tags"), *v;
	char a[32], b[32];
	size_t i;

	label(0, "repository"), put(str(j, "repository")), putchar('\n');
	label(0, "digest"), put(str(j, "digest")), putchar('\n');
	label(0, "media type"), put(str(j, "mediaType")), putchar('\n');
	label(0, "kind"), put(str(j, "kind"));
	if (str(j, "artifactType"))
		fputs(" (", stdout), put(str(j, "artifactType")), putchar(')');
	printf("\n%-12s%s manifest, %s in all\n", "size",
	       progress_size((uint64_t)json_integer_value(json_object_get(j, "size")), a, 32),
	       progress_size((uint64_t)json_integer_value(json_object_get(j, "totalSize")), b, 32));
	label(0, "created"), put(str(j, "created")), putchar('\n');
	if (str(j, "subject"))
		label(0, "subject"), put(str(j, "subject")), putchar('\n');
	label(0, "tags");
	json_array_foreach(tags, i, v)
		printf("%s%s", i ? ", " : "", json_string_value(v));
	puts(json_array_size(tags) ? "" : "-");
	json_array_foreach(json_object_get(j, "platforms"), i, v)
		print_entry(v, str(j, "digest"));
	fputs("\nreferrers", stdout);
	puts(json_array_size(json_object_get(j, "referrers")) ? "" : "   none");
	print_referrers(json_object_get(j, "referrers"), 2);
}

static int print_raw(const struct layout_tree *tree, const char *hex, struct rp_err *err)
{
	char *buf;
	size_t len;
	int rc = 0;

	if (describe_manifest_bytes(tree, hex, &buf, &len, err) < 0)
		return -1;
	if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
		rc = rp_errno(err, "standard output");
	free(buf);
	return rc;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "raw", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char repo[RP_REPO_MAX + 1], hex[RP_HEX_LEN + 1];
	struct layout_tree *tree = NULL;
	struct rp_err err = { "" };
	struct describe_ref ref;
	json_t *j = NULL;
	int as_json = 0, raw = 0, c, rc = 1;

	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'J': as_json = 1; break;
		case 'R': raw = 1; break;
		case 'h': return fputs(inspect_usage, stdout), 0;
		default: return cmd_bad_option("inspect", c, argv, longopts);
		}
	}
	if (as_json && raw)
		return cmd_usage_error("inspect", "--json and --raw exclude each other");
	if (argc - optind != 2)
		return cmd_usage_error("inspect", "expected TREE and REF");
	if (describe_ref_parse(argv[optind + 1], &ref, &err) < 0)
		return cmd_usage_error("inspect", "%s", err.msg);
	if (layout_open(argv[optind], LAYOUT_READ, &tree, &err) < 0 ||
	    describe_resolve(tree, &ref, repo, hex, &err) < 0)
		goto out;
	if (raw) {
		rc = print_raw(tree, hex, &err) < 0;
		goto out;
	}
	if (describe_inspect(tree, repo, hex, &j, &err) < 0)
		goto out;
	if (as_json)
		print_json(j);
	else
		print_inspect(j);
	rc = 0;
out:
	if (rc)
		cmd_fail("inspect", &err);
	json_decref(j);
	layout_close(tree);
	return rc;
}
