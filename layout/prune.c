/* What a state uses, and deleting what it does not (gc). */
#include "tree_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "strmap.h"
#include "view.h"

struct note_ctx {
	struct layout_tree *t;
	struct strmap *set;
};

/* OCI twins are derived, not recorded: deriving them marks them in use. */
static int note_twin(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		     struct rp_err *err)
{
	rp_sha256_buf(buf, len, hex);
	return strmap_put(((struct note_ctx *)ctx)->set, hex, 1) < 0 ? rp_errf(err, "out of memory")
								     : 0;
}

static int no_file(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	(void)ctx, (void)rel, (void)buf, (void)len;
	return rp_errf(err, "internal: index.json asked for a view file");
}

int tree_read_manifest(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	int r = layout_blob_read(ctx, hex, LAYOUT_MANIFEST_MAX, buf, len, err);

	return r == 1 ? rp_errf(err, "blob sha256:%s is not in the tree", hex) : r;
}

static int read_for(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	return tree_read_manifest(((struct note_ctx *)ctx)->t, hex, buf, len, err);
}

/* The digests index.json's descriptors name. */
static int note_index(struct strmap *set, const char *index_json, struct rp_err *err)
{
	json_t *j = json_loads(index_json, 0, NULL), *d;
	size_t i;
	int rc = 0;

	json_array_foreach(json_object_get(j, "manifests"), i, d) {
		const char *dg = json_string_value(json_object_get(d, "digest")), *hex;

		if (dg && rp_digest_parse(dg, &hex) && strmap_put(set, hex, 1) < 0)
			rc = rp_errf(err, "out of memory");
	}
	json_decref(j);
	return rc;
}

struct strmap *prune_used_blobs(struct layout_tree *t, const struct snapshot *s,
				const char *index_json, struct rp_err *err)
{
	struct note_ctx n = { t, strmap_new() };
	struct view_sink sink = { no_file, note_twin, read_for, &n };
	size_t i;

	if (!n.set) {
		rp_errf(err, "out of memory");
		return NULL;
	}
	for (i = 0; i < s->n; i++)
		if ((s->v[i].kind == SNAP_BLOB || s->v[i].kind == SNAP_MANIFEST) &&
		    strmap_put(n.set, s->v[i].hex, 1) < 0) {
			rp_errf(err, "out of memory");
			goto fail;
		}
	if (index_json) {
		if (note_index(n.set, index_json, err) < 0)
			goto fail;
	} else {
		char *idx = NULL;
		size_t len;

		if (view_index_json(s, NULL, &sink, NULL, &idx, &len, err) < 0)
			goto fail;
		free(idx);
	}
	return n.set;
fail:
	strmap_free(n.set);
	return NULL;
}

/* The names in blobs/sha256/ that set lacks; a name that is not a regular file is refused. */
static char **unused_names(struct layout_tree *t, const struct strmap *set, size_t *n,
			   struct rp_err *err)
{
	int fd = dup(t->blobs.fd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	char **v = NULL;
	size_t had;

	*n = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		rp_errno(err, "cannot read '%s'", t->blobs.path);
		return NULL;
	}
	rewinddir(d);
	while ((e = readdir(d))) {
		struct stat st;
		char **nv;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    strmap_get(set, e->d_name, &had) == 0)
			continue;
		if (fstatat(t->blobs.fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode)) {
			rp_errf(err, "'%s/%s': not a regular file (a tree holds no links or special "
				"files); nothing removed", t->blobs.path, e->d_name);
			goto fail;
		}
		nv = realloc(v, (*n + 2) * sizeof(*v));
		if (!nv || !(nv[*n] = strdup(e->d_name))) {
			v = nv ? nv : v;
			rp_errf(err, "out of memory");
			goto fail;
		}
		v = nv;
		v[++*n] = NULL;
	}
	closedir(d);
	return v ? v : calloc(1, sizeof(*v));
fail:
	closedir(d);
	while (v && *n)
		free(v[--*n]);
	free(v);
	return NULL;
}

int layout_gc(struct layout_tree *t, uint64_t *files, uint64_t *bytes, struct rp_err *err)
{
	struct strmap *used = NULL;
	char **names = NULL;
	size_t i, n = 0;
	int rc = -1;

	*files = *bytes = 0;
	if (tree_require_writer(t, err) < 0)
		return -1;
	if (t->blobs.fd < 0)
		return cache_prune(t, err);
	if (!(used = prune_used_blobs(t, &t->snap, NULL, err)) ||
	    !(names = unused_names(t, used, &n, err)))
		goto out;
	for (i = 0; i < n; i++) {
		struct stat st;

		if (fstatat(t->blobs.fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (fsat_unlink(&t->blobs, names[i], err) < 0)
			goto out;
		(*files)++;
		*bytes += (uint64_t)st.st_size;
	}
	if (fsat_set_mtime(&t->blobs, "", err) < 0 || cache_prune(t, err) < 0)
		goto out;
	rc = 0;
out:
	for (i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	strmap_free(used);
	return rc;
}
