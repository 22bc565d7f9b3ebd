/* The build cache: TREE/cache/<ns>/<key>, one short line each (tree.h). Entries are staged at
 * commit (in the staging area) and moved in after the blobs they name: a crash before leaves a
 * cache that merely lacks entries. */
#include "tree_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cache_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return 0;
	return i > 0 && i <= 100 && s[0] != '.';
}

/* The first line of cache file rel below dir, into val: 0, -1 if absent or unreadable. */
static int read_entry(const struct fsat_dir *dir, const char *rel, char *val, size_t valsz)
{
	char *buf = NULL, *nl;
	size_t len;

	if (fsat_read(dir, rel, 4096, &buf, &len, NULL) != 0)
		return -1;
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	snprintf(val, valsz, "%s", buf);
	free(buf);
	return 0;
}

int layout_cache_get(const struct layout_tree *t, const char *ns, const char *key, char *val,
		     size_t valsz)
{
	char rel[256];
	json_t *staged;

	if (!cache_name_ok(ns) || !cache_name_ok(key))
		return -1;
	snprintf(rel, sizeof(rel), "%s/%s", ns, key);
	staged = json_object_get(t->cache_new, rel);
	if (staged) {
		snprintf(val, valsz, "%s", json_string_value(staged));
		return 0;
	}
	snprintf(rel, sizeof(rel), FMT_CACHE "/%s/%s", ns, key);
	return read_entry(&t->root, rel, val, valsz);
}

int layout_cache_put(struct layout_tree *t, const char *ns, const char *key, const char *val,
		     struct rp_err *err)
{
	char rel[256];

	if (tree_require_writer(t, err) < 0)
		return -1;
	if (!cache_name_ok(ns) || !cache_name_ok(key))
		return rp_errf(err, "invalid cache key '%s/%s'", ns, key);
	if (!t->cache_new && !(t->cache_new = json_object()))
		return rp_errf(err, "out of memory");
	snprintf(rel, sizeof(rel), "%s/%s", ns, key);
	return json_object_set_new(t->cache_new, rel, json_string(val)) ? rp_errf(err, "out of memory")
									 : 0;
}

int cache_stage(struct layout_tree *t, struct rp_err *err)
{
	const char *rel;
	json_t *v;

	char made[512] = "";

	json_object_foreach(t->cache_new, rel, v) {
		char path[512], body[256];

		snprintf(path, sizeof(path), FMT_CACHE "/%s", rel);
		*strrchr(path, '/') = '\0';
		if (strcmp(path, made) && fsat_mkdirs(&t->staging, path, err) < 0)
			return -1;
		snprintf(made, sizeof(made), "%s", path); /* entries of one namespace: once */
		snprintf(path, sizeof(path), FMT_CACHE "/%s", rel);
		snprintf(body, sizeof(body), "%s\n", json_string_value(v));
		if (fsat_write_new(&t->staging, path, body, strlen(body), err) < 0)
			return -1;
	}
	return 0;
}

int cache_publish(struct layout_tree *t, struct rp_err *err)
{
	const char *rel;
	json_t *v;

	json_object_foreach(t->cache_new, rel, v) {
		char path[512], dir[512], old[256];

		snprintf(path, sizeof(path), FMT_CACHE "/%s", rel);
		/* A rebuild finds the same entries: leave those alone. */
		if (read_entry(&t->root, path, old, sizeof(old)) == 0 &&
		    !strcmp(old, json_string_value(v)))
			continue;
		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		if (undo_prepare_dir(t, FMT_CACHE, err) < 0 || undo_prepare_dir(t, dir, err) < 0 ||
		    undo_rename_in(t, &t->staging, path, path, err) < 0)
			return -1;
	}
	return 0;
}

int cache_fix_times(struct layout_tree *t, struct rp_err *err)
{
	const char *rel;
	json_t *v;

	json_object_foreach(t->cache_new, rel, v) {
		char dir[512];

		snprintf(dir, sizeof(dir), FMT_CACHE "/%s", rel);
		*strrchr(dir, '/') = '\0';
		if (fsat_type(&t->root, dir, NULL, NULL) == FSAT_DIR &&
		    fsat_set_mtime(&t->root, dir, err) < 0)
			return -1;
	}
	if (t->cache_new && fsat_type(&t->root, FMT_CACHE, NULL, NULL) == FSAT_DIR)
		return fsat_set_mtime(&t->root, FMT_CACHE, err);
	return 0;
}

struct prune_ctx {
	struct layout_tree *t;
};

/* An entry whose blob is gone is dropped, so a later build does not trust it. */
static int prune_one(void *ctx, const char *rel, const struct stat *st, struct rp_err *err)
{
	struct layout_tree *t = ((struct prune_ctx *)ctx)->t;
	char val[RP_HEX_LEN + 40], hex[RP_HEX_LEN + 8];
	const char *h;

	if (S_ISDIR(st->st_mode))
		return strchr(rel + strlen(FMT_CACHE "/"), '/') ? 1 : 0; /* two levels */
	if (!S_ISREG(st->st_mode))
		return rp_errf(err, "'%s/%s': not a regular file (a tree holds no links or special "
			       "files)", t->root.path, rel);
	if (read_entry(&t->root, rel, val, sizeof(val)) == 0 && sscanf(val, "%71s", hex) == 1 &&
	    rp_digest_parse(hex, &h) && layout_has_blob(t, h))
		return 0;
	return fsat_unlink(&t->root, rel, err) < 0 ? -1 : 0;
}

struct dirs_ctx {
	struct layout_tree *t;
};

static int fix_ns(void *ctx, const char *rel, const struct stat *st, struct rp_err *err)
{
	struct layout_tree *t = ((struct dirs_ctx *)ctx)->t;

	if (!S_ISDIR(st->st_mode))
		return 0;
	return fsat_set_mtime(&t->root, rel, err) < 0 ? -1 : 1;
}

int cache_prune(struct layout_tree *t, struct rp_err *err)
{
	struct prune_ctx p = { t };
	struct dirs_ctx d = { t };
	int r = fsat_type(&t->root, FMT_CACHE, NULL, err);

	if (r < 0)
		return -1;
	if (r == FSAT_ABSENT)
		return 0;
	if (r != FSAT_DIR)
		return rp_errf(err, "'%s/%s': not a directory", t->root.path, FMT_CACHE);
	if (fsat_walk(&t->root, FMT_CACHE, prune_one, &p, err) < 0 ||
	    fsat_walk(&t->root, FMT_CACHE, fix_ns, &d, err) < 0)
		return -1;
	return fsat_set_mtime(&t->root, FMT_CACHE, err);
}
