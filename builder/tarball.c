#include "tarball.h"

#include "fsutil.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BUF (128u << 10) /* small enough to stay in L2 (see layout/tree.c BLOB_BUF) */

char *ar_normalize(const char *base_dir, const char *path)
{
	size_t blen = base_dir ? strlen(base_dir) : 0;
	size_t plen = strlen(path);
	char *joined = malloc(blen + plen + 2);
	char *out, *seg, *save = NULL;
	size_t olen = 0;

	if (!joined)
		return NULL;
	if (path[0] == '/' || blen == 0) {
		memcpy(joined, path, plen + 1);
	} else {
		memcpy(joined, base_dir, blen);
		joined[blen] = '/';
		memcpy(joined + blen + 1, path, plen + 1);
	}
	out = malloc(strlen(joined) + 1);
	if (!out) {
		free(joined);
		return NULL;
	}
	out[0] = '\0';
	for (seg = strtok_r(joined, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
		if (!strcmp(seg, "."))
			continue;
		if (!strcmp(seg, "..")) {
			char *slash;

			if (olen == 0)
				goto escape; /* above the archive root */
			slash = strrchr(out, '/');
			olen = slash ? (size_t)(slash - out) : 0;
			out[olen] = '\0';
			continue;
		}
		if (olen)
			out[olen++] = '/';
		memcpy(out + olen, seg, strlen(seg) + 1);
		olen += strlen(seg);
	}
	free(joined);
	if (olen == 0) {
		free(out);
		return NULL;
	}
	return out;
escape:
	free(joined);
	free(out);
	return NULL;
}

static struct archive *open_archive(const char *path, struct rp_err *err, const char *display)
{
	struct archive *a = archive_read_new();

	if (!a) {
		rp_errf(err, "'%s': out of memory", display);
		return NULL;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
		rp_errf(err, "'%s': %s", display, archive_error_string(a));
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/* The compression-bomb cap (AR_RATIO_MAX): 0, or -1 with err set. Uncompressed inputs pass. */
static int check_ratio(struct archive *a, const char *display, struct rp_err *err)
{
	la_int64_t in, out;

	if (archive_filter_count(a) < 2)
		return 0;
	in = archive_filter_bytes(a, -1);
	out = archive_filter_bytes(a, 0);
	if (in < 0 || out < 0 || (uint64_t)out <= (uint64_t)in * AR_RATIO_MAX + AR_RATIO_SLACK)
		return 0;
	return rp_errf(err, "'%s': decompresses to more than %u times its size (%lld bytes from "
		       "%lld): a compression bomb? Decompress it first if it is genuine", display,
		       AR_RATIO_MAX, (long long)out, (long long)in);
}

/* Skip an entry's data; through a compression filter, block by block under the bomb cap. */
static int skip_data(struct archive *a, const char *display, const char *raw, struct rp_err *err)
{
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	if (archive_filter_count(a) < 2) {
		if (archive_read_data_skip(a) == ARCHIVE_OK)
			return 0;
		return rp_errf(err, "'%s': entry '%s': %s", display, raw, archive_error_string(a));
	}
	while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
		if (check_ratio(a, display, err) < 0)
			return -1;
	if (r != ARCHIVE_EOF)
		return rp_errf(err, "'%s': entry '%s': %s", display, raw, archive_error_string(a));
	return 0;
}

static enum ar_type entry_type(struct archive_entry *ae)
{
	if (archive_entry_hardlink(ae))
		return AR_HARDLINK;
	switch (archive_entry_filetype(ae)) {
	case AE_IFREG:
		return AR_FILE;
	case AE_IFDIR:
		return AR_DIR;
	case AE_IFLNK:
		return AR_SYMLINK;
	default:
		return AR_OTHER;
	}
}

static const struct ar_index *sort_idx;

static int cmp_entry(const void *a, const void *b)
{
	const char *na = sort_idx->entries[*(const size_t *)a].name;
	const char *nb = sort_idx->entries[*(const size_t *)b].name;

	return strcmp(na ? na : "", nb ? nb : "");
}

static int read_data(struct archive *a, struct ar_entry *e, const struct ar_index *idx,
		     struct rp_err *err)
{
	size_t got = 0;

	e->data = malloc((size_t)e->size + 1);
	if (!e->data)
		return rp_errf(err, "'%s': out of memory", idx->display);
	while (got < (size_t)e->size) {
		la_ssize_t n = archive_read_data(a, e->data + got, (size_t)e->size - got);

		if (n < 0)
			return rp_errf(err, "'%s': entry '%s': %s", idx->display, e->raw,
				       archive_error_string(a));
		if (n == 0)
			return rp_errf(err, "'%s': entry '%s': truncated", idx->display, e->raw);
		got += (size_t)n;
	}
	e->data[got] = '\0';
	e->data_len = got;
	return 0;
}

static int grow(struct ar_index *idx, size_t *cap, struct rp_err *err)
{
	struct ar_entry *ne;
	size_t ncap;

	if (idx->n == AR_ENTRIES_MAX)
		return rp_errf(err, "'%s': more than %u entries", idx->display, AR_ENTRIES_MAX);
	if (idx->n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 64;
	ne = realloc(idx->entries, ncap * sizeof(*ne));
	if (!ne)
		return rp_errf(err, "'%s': out of memory", idx->display);
	idx->entries = ne;
	*cap = ncap;
	return 0;
}

/* Keep this entry's bytes in memory? Applies the caps; returns 0 or 1, -1 on a hard error. */
static int decide_keep(const struct ar_index *idx, const struct ar_entry *e, ar_keep_fn keep,
		       size_t *kept, struct rp_err *err)
{
	int k = e->type == AR_FILE && e->name && keep ? keep(e->name, e->size) : 0;

	if (k == AR_KEEP_MAY &&
	    ((uint64_t)e->size > AR_META_MAX || *kept + (size_t)e->size > AR_META_TOTAL / 2))
		return 0; /* loaded later by ar_load if it turns out to be needed */
	if (!k)
		return 0;
	if ((uint64_t)e->size > AR_META_MAX)
		return rp_errf(err, "'%s': '%s' is %lld bytes, more than the %u MiB allowed for "
			       "metadata", idx->display, e->raw, (long long)e->size, AR_META_MAX >> 20);
	*kept += (size_t)e->size;
	if (*kept > AR_META_TOTAL)
		return rp_errf(err, "'%s': more than %u MiB of metadata", idx->display,
			       AR_META_TOTAL >> 20);
	return 1;
}

static int index_tar(struct ar_index *idx, ar_keep_fn keep, struct rp_err *err)
{
	const char *display = idx->display;
	struct archive_entry *ae;
	struct archive *a;
	size_t cap = 0, kept = 0;
	int r, rc = -1;

	a = open_archive(idx->path, err, display);
	if (!a)
		return -1;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		struct ar_entry *e;
		const char *raw = archive_entry_pathname(ae);
		const char *link;
		int k;

		if (!raw) {
			rp_errf(err, "'%s': entry with no name", display);
			goto out;
		}
		if (grow(idx, &cap, err) < 0)
			goto out;
		e = &idx->entries[idx->n++];
		memset(e, 0, sizeof(*e));
		e->raw = strdup(raw);
		e->name = ar_normalize(NULL, raw);
		e->type = entry_type(ae);
		e->size = archive_entry_size(ae);
		link = e->type == AR_HARDLINK ? archive_entry_hardlink(ae)
		       : e->type == AR_SYMLINK ? archive_entry_symlink(ae) : NULL;
		if (!e->raw || (link && !(e->link = strdup(link)))) {
			rp_errf(err, "'%s': out of memory", display);
			goto out;
		}
		if (e->size < 0) {
			rp_errf(err, "'%s': entry '%s': negative size", display, raw);
			goto out;
		}
		k = decide_keep(idx, e, keep, &kept, err);
		if (k < 0)
			goto out;
		if ((k ? read_data(a, e, idx, err) : skip_data(a, display, raw, err)) < 0)
			goto out;
		if (check_ratio(a, display, err) < 0)
			goto out;
	}
	if (r != ARCHIVE_EOF) {
		rp_errf(err, "'%s': %s", display,
			archive_error_string(a) ? archive_error_string(a) : "cannot read archive");
		goto out;
	}
	rc = 0;
out:
	archive_read_free(a);
	return rc;
}

/* An OCI layout directory (skopeo oci:, umoci, buildah): the same index, entries from the walk. */
static struct ar_index *walk_idx;
static ar_keep_fn walk_keep;
static size_t walk_cap, walk_kept;
static struct rp_err *walk_err;

static int walk_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	struct ar_index *idx = walk_idx;
	const char *rel = path + strlen(idx->path);
	struct ar_entry *e;
	int k;

	(void)ftw;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return 0;
	if (grow(idx, &walk_cap, walk_err) < 0)
		return -1;
	e = &idx->entries[idx->n++];
	memset(e, 0, sizeof(*e));
	e->raw = strdup(rel);
	e->name = ar_normalize(NULL, rel);
	e->size = S_ISREG(st->st_mode) ? st->st_size : 0;
	e->type = type == FTW_D ? AR_DIR : type == FTW_SL || type == FTW_SLN ? AR_SYMLINK
		  : S_ISREG(st->st_mode) ? AR_FILE : AR_OTHER;
	if (!e->raw)
		return rp_errf(walk_err, "'%s': out of memory", idx->display);
	if (e->type == AR_SYMLINK) {
		char target[4096];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0)
			return rp_errno(walk_err, "'%s'", path);
		target[n] = '\0';
		e->link = strdup(target);
	}
	k = decide_keep(idx, e, walk_keep, &walk_kept, walk_err);
	if (k < 0)
		return -1;
	if (k) {
		char *buf;
		size_t len;

		if (rp_read_file(path, AR_META_MAX, &buf, &len, walk_err) < 0)
			return -1;
		e->data = (unsigned char *)buf;
		e->data_len = len;
	}
	return 0;
}

static int index_dir(struct ar_index *idx, ar_keep_fn keep, struct rp_err *err)
{
	walk_idx = idx;
	walk_keep = keep;
	walk_cap = walk_kept = 0;
	walk_err = err;
	err->msg[0] = '\0';
	if (nftw(idx->path, walk_entry, 32, FTW_PHYS) != 0) {
		if (!err->msg[0])
			rp_errno(err, "cannot read '%s'", idx->display);
		return -1;
	}
	return 0;
}

int ar_index_read(const char *path, const char *display, ar_keep_fn keep, struct ar_index **out,
		  struct rp_err *err)
{
	struct ar_index *idx = calloc(1, sizeof(*idx));
	struct stat st;
	size_t i;

	*out = NULL;
	if (!idx || !(idx->path = strdup(path)) || !(idx->display = strdup(display))) {
		ar_index_free(idx);
		return rp_errf(err, "'%s': out of memory", display);
	}
	if (stat(path, &st) < 0) {
		rp_errno(err, "'%s'", display);
		goto fail;
	}
	idx->is_dir = S_ISDIR(st.st_mode);
	if (!idx->is_dir && st.st_size == 0) {
		rp_errf(err, "'%s': empty file", display);
		goto fail;
	}
	if ((idx->is_dir ? index_dir(idx, keep, err) : index_tar(idx, keep, err)) < 0)
		goto fail;
	if (idx->n == 0) {
		rp_errf(err, "'%s': empty archive", display);
		goto fail;
	}
	idx->sorted = malloc(idx->n * sizeof(*idx->sorted));
	if (!idx->sorted) {
		rp_errf(err, "'%s': out of memory", display);
		goto fail;
	}
	for (i = 0; i < idx->n; i++)
		idx->sorted[i] = i;
	sort_idx = idx;
	qsort(idx->sorted, idx->n, sizeof(*idx->sorted), cmp_entry);
	/* The same name twice is ambiguous (which one would a reader take?): refuse it. */
	for (i = 1; i < idx->n; i++) {
		const struct ar_entry *x = &idx->entries[idx->sorted[i - 1]];
		const struct ar_entry *y = &idx->entries[idx->sorted[i]];

		if (x->name && y->name && !strcmp(x->name, y->name) &&
		    !(x->type == AR_DIR && y->type == AR_DIR)) {
			rp_errf(err, "'%s': entry '%s' appears more than once", display, y->raw);
			goto fail;
		}
	}
	*out = idx;
	return 0;
fail:
	ar_index_free(idx);
	return -1;
}

void ar_index_free(struct ar_index *idx)
{
	size_t i;

	if (!idx)
		return;
	for (i = 0; i < idx->n; i++) {
		free(idx->entries[i].name);
		free(idx->entries[i].raw);
		free(idx->entries[i].link);
		free(idx->entries[i].data);
	}
	free(idx->entries);
	free(idx->sorted);
	free(idx->path);
	free(idx->display);
	free(idx);
}

const struct ar_entry *ar_find(const struct ar_index *idx, const char *name)
{
	size_t lo = 0, hi = idx->n;

	if (!*name)
		return NULL; /* entries whose names escape the root sort as "": never a match */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct ar_entry *e = &idx->entries[idx->sorted[mid]];
		int c = strcmp(name, e->name ? e->name : "");

		if (c == 0)
			return e;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int ar_resolve(const struct ar_index *idx, const char *ref, const struct ar_entry **out,
	       struct rp_err *err)
{
	char *name = ar_normalize(NULL, ref);
	int hops;

	*out = NULL;
	if (!name || ref[0] == '/')
		goto escape;
	for (hops = 0; hops < 16; hops++) {
		const struct ar_entry *e = ar_find(idx, name);
		char *dir, *slash, *next;

		if (!e) {
			if (hops == 0)
				rp_errf(err, "'%s': '%s' is not in the archive", idx->display, ref);
			else
				rp_errf(err, "'%s': '%s' links to '%s', which is not in the archive",
					idx->display, ref, name);
			free(name);
			return -1;
		}
		if (e->type == AR_FILE) {
			free(name);
			*out = e;
			return 0;
		}
		if (e->type != AR_SYMLINK && e->type != AR_HARDLINK) {
			rp_errf(err, "'%s': '%s' is not a regular file", idx->display, ref);
			free(name);
			return -1;
		}
		if (e->link[0] == '/')
			goto escape;
		/* Symlinks are relative to their directory, hard links to the archive root. */
		dir = strdup(name);
		if (!dir)
			break;
		slash = strrchr(dir, '/');
		if (slash)
			*slash = '\0';
		else
			dir[0] = '\0';
		next = ar_normalize(e->type == AR_SYMLINK ? dir : NULL, e->link);
		free(dir);
		free(name);
		name = next;
		if (!name)
			goto escape;
	}
	if (hops == 16) {
		free(name);
		return rp_errf(err, "'%s': '%s': too many levels of links", idx->display, ref);
	}
	free(name);
	return rp_errf(err, "out of memory");
escape:
	free(name);
	return rp_errf(err, "'%s': '%s' leads outside the archive", idx->display, ref);
}

/* Stream one file of a directory input. */
static int stream_file(const struct ar_index *idx, const struct ar_entry *e, unsigned char *buf,
		       ar_data_fn data, void *ctx, struct rp_err *err)
{
	char *path = malloc(strlen(idx->path) + strlen(e->name) + 2);
	int64_t got = 0;
	ssize_t n;
	int fd, rc = -1;

	if (!path)
		return rp_errf(err, "out of memory");
	sprintf(path, "%s/%s", idx->path, e->name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		rp_errno(err, "'%s': '%s'", idx->display, e->raw);
		free(path);
		return -1;
	}
	while ((n = read(fd, buf, STREAM_BUF)) > 0) {
		got += n;
		if (data(ctx, e, buf, (size_t)n, err) < 0)
			goto out;
	}
	if (n < 0) {
		rp_errno(err, "'%s': '%s'", idx->display, e->raw);
		goto out;
	}
	if (got != e->size) {
		rp_errf(err, "'%s': '%s' changed while reading", idx->display, e->raw);
		goto out;
	}
	rc = data(ctx, e, NULL, 0, err);
out:
	close(fd);
	free(path);
	return rc;
}

int ar_stream(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
	      struct rp_err *err)
{
	struct archive *a = NULL;
	struct archive_entry *ae;
	unsigned char *buf = malloc(STREAM_BUF);
	size_t i = 0;
	int r, rc = -1;

	if (!buf)
		return rp_errf(err, "'%s': out of memory", idx->display);
	if (idx->is_dir) {
		for (i = 0; i < idx->n; i++) {
			const struct ar_entry *e = &idx->entries[i];

			if (e->type == AR_FILE && e->name && want(ctx, e) &&
			    stream_file(idx, e, buf, data, ctx, err) < 0)
				goto out;
		}
		rc = 0;
		goto out;
	}
	a = open_archive(idx->path, err, idx->display);
	if (!a)
		goto out;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		const struct ar_entry *e;
		int64_t got = 0;

		if (i >= idx->n) {
			rp_errf(err, "'%s': changed while reading", idx->display);
			goto out;
		}
		e = &idx->entries[i++];
		if (e->type != AR_FILE || !e->name || !want(ctx, e))
			continue;
		for (;;) {
			la_ssize_t n = archive_read_data(a, buf, STREAM_BUF);

			if (n < 0) {
				rp_errf(err, "'%s': entry '%s': %s", idx->display, e->raw,
					archive_error_string(a));
				goto out;
			}
			if (n == 0)
				break;
			got += n;
			if (check_ratio(a, idx->display, err) < 0 ||
			    data(ctx, e, buf, (size_t)n, err) < 0)
				goto out;
		}
		if (got != e->size) {
			rp_errf(err, "'%s': entry '%s': truncated", idx->display, e->raw);
			goto out;
		}
		if (data(ctx, e, NULL, 0, err) < 0)
			goto out;
	}
	if (r != ARCHIVE_EOF) {
		rp_errf(err, "'%s': %s", idx->display, archive_error_string(a));
		goto out;
	}
	rc = 0;
out:
	free(buf);
	if (a)
		archive_read_free(a);
	return rc;
}

/* ar_load: collect the wanted entries' bytes into e->data through ar_stream. */
struct load_ctx {
	const struct ar_entry **want;
	size_t n;
	size_t *fill;
	struct ar_index *idx;
};

static int load_want(void *vctx, const struct ar_entry *e)
{
	struct load_ctx *c = vctx;
	size_t i;

	if (e->data)
		return 0;
	for (i = 0; i < c->n; i++)
		if (c->want[i] == e)
			return 1;
	return 0;
}

static int load_data(void *vctx, const struct ar_entry *ce, const void *buf, size_t len,
		     struct rp_err *err)
{
	struct load_ctx *c = vctx;
	struct ar_entry *e = &c->idx->entries[ce - c->idx->entries];
	size_t *fill = &c->fill[ce - c->idx->entries];

	if (!e->data) { /* first data, or the end of an empty file (no data calls at all) */
		e->data = malloc((size_t)e->size + 1);
		if (!e->data)
			return rp_errf(err, "out of memory");
	}
	if (!buf) {
		e->data_len = *fill;
		e->data[*fill] = '\0';
		return 0;
	}
	if (*fill + len > (size_t)e->size)
		return rp_errf(err, "'%s': '%s' changed while reading", c->idx->display, e->raw);
	memcpy(e->data + *fill, buf, len);
	*fill += len;
	return 0;
}

int ar_load(struct ar_index *idx, const struct ar_entry **want, size_t n, struct rp_err *err)
{
	struct load_ctx c = { want, n, NULL, idx };
	size_t i, missing = 0;
	int rc;

	for (i = 0; i < n; i++) {
		if (want[i]->data)
			continue;
		if ((uint64_t)want[i]->size > AR_META_MAX)
			return rp_errf(err, "'%s': '%s' is %lld bytes, too large for metadata",
				       idx->display, want[i]->raw, (long long)want[i]->size);
		missing++;
	}
	if (!missing)
		return 0;
	c.fill = calloc(idx->n, sizeof(*c.fill));
	if (!c.fill)
		return rp_errf(err, "out of memory");
	rc = ar_stream(idx, load_want, load_data, &c, err);
	free(c.fill);
	return rc;
}

int ar_seekable(const struct ar_index *idx)
{
	struct rp_err err;
	struct archive *a;
	int plain;

	if (idx->is_dir)
		return 1;
	a = open_archive(idx->path, &err, idx->display);
	if (!a)
		return 0;
	plain = archive_filter_count(a) < 2; /* only the file itself: no decompression filter */
	archive_read_free(a);
	return plain;
}
