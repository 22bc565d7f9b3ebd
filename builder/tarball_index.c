/* The index pass: every entry of a tar (through the bounded reader) or of an OCI layout
 * directory (a walk), with its name, type and size checked against the caps of tarball.h and
 * the small metadata files kept in memory; lookups by name and through links. */
#include "tarball_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"

static const struct ar_index *sort_idx;

static int cmp_entry(const void *a, const void *b)
{
	const char *na = sort_idx->entries[*(const size_t *)a].name;
	const char *nb = sort_idx->entries[*(const size_t *)b].name;

	return strcmp(na ? na : "", nb ? nb : "");
}

static int append_data(void *vctx, const void *buf, size_t len, struct rp_err *err)
{
	struct ar_entry *e = vctx;

	(void)err;
	memcpy(e->data + e->data_len, buf, len); /* ar_read_entry gives at most e->size bytes */
	e->data_len += len;
	return 0;
}

static int read_data(struct reader *r, struct ar_entry *e, struct rp_err *err)
{
	e->data = malloc((size_t)e->size + 1);
	if (!e->data)
		return rp_errf(err, "'%s': out of memory", r->display);
	e->data_len = 0;
	if (ar_read_entry(r, e, append_data, e, err) < 0)
		return -1;
	e->data[e->data_len] = '\0';
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

/* Charge a name (or a link target) to the archive's budget for names: 0, or -1 with err set.
 * A name is kept twice (as written and normalised), a link target once. */
static int charge_name(const struct ar_index *idx, const char *what, const char *s, int copies,
		       size_t *total, struct rp_err *err)
{
	size_t len = strlen(s);

	if (len > AR_NAME_MAX)
		return rp_errf(err, "'%s': %s of %zu bytes, more than the %u allowed: '%.64s...'",
			       idx->display, what, len, AR_NAME_MAX, s);
	*total += (size_t)copies * (len + 1);
	if (*total > AR_NAMES_TOTAL)
		return rp_errf(err, "'%s': more than %u MiB of entry names and link targets (at "
			       "'%.64s')", idx->display, AR_NAMES_TOTAL >> 20, s);
	return 0;
}

/* What an entry's size can honestly be (AR_ENTRY_MAX, tarball.h): 0, or -1 with err set. */
static int check_size(const struct ar_index *idx, const struct ar_entry *e, int sparse,
		      uint64_t *total, struct rp_err *err)
{
	uint64_t bound = (uint64_t)idx->file_size * AR_RATIO_MAX + AR_RATIO_SLACK;

	if (e->size < 0)
		return rp_errf(err, "'%s': entry '%s': negative size", idx->display, e->raw);
	if ((uint64_t)e->size > AR_ENTRY_MAX)
		return rp_errf(err, "'%s': entry '%s' is %lld bytes, more than the %llu GiB allowed "
			       "for one entry", idx->display, e->raw, (long long)e->size,
			       AR_ENTRY_MAX >> 30);
	if (!idx->compressed && !sparse && e->size > idx->file_size)
		return rp_errf(err, "'%s': entry '%s' is %lld bytes, more than the whole archive (%lld "
			       "bytes)", idx->display, e->raw, (long long)e->size,
			       (long long)idx->file_size);
	*total += (uint64_t)e->size;
	if (*total <= bound)
		return 0;
	if (idx->compressed && !sparse)
		return rp_errf(err, "'%s': entry '%s' is %lld bytes: the input decompresses to more "
			       "than %u times its size (%lld bytes): a compression bomb? Decompress "
			       "it first if it is genuine", idx->display, e->raw, (long long)e->size,
			       AR_RATIO_MAX, (long long)idx->file_size);
	return rp_errf(err, "'%s': entry '%s' is %lld bytes%s: the archive's entries come to more "
		       "than %u times its size (%lld bytes): a sparse-file bomb? Extract it and pack "
		       "it without -S if it is genuine", idx->display, e->raw, (long long)e->size,
		       sparse ? " (sparse: mostly holes)" : "", AR_RATIO_MAX,
		       (long long)idx->file_size);
}

struct tar_walk {
	size_t cap, kept, names;
	uint64_t total;
};

static int add_tar_entry(struct ar_index *idx, struct reader *r, struct archive_entry *ae,
			 ar_keep_fn keep, struct tar_walk *w, struct rp_err *err)
{
	const char *raw = archive_entry_pathname(ae);
	enum ar_type type = ar_entry_type(ae);
	const char *link = type == AR_HARDLINK ? archive_entry_hardlink(ae)
			   : type == AR_SYMLINK ? archive_entry_symlink(ae) : NULL;
	struct ar_entry *e;
	int k;

	if (!raw)
		return rp_errf(err, "'%s': entry with no name", idx->display);
	/* Before anything is copied: the budget is what bounds memory. */
	if (charge_name(idx, "entry name", raw, 2, &w->names, err) < 0 ||
	    (link && charge_name(idx, "link target", link, 1, &w->names, err) < 0) ||
	    grow(idx, &w->cap, err) < 0)
		return -1;
	e = &idx->entries[idx->n++];
	memset(e, 0, sizeof(*e));
	e->raw = strdup(raw);
	e->name = ar_normalize(NULL, raw);
	e->type = type;
	e->size = archive_entry_size(ae);
	if (!e->raw || (link && !(e->link = strdup(link))))
		return rp_errf(err, "'%s': out of memory", idx->display);
	if (check_size(idx, e, archive_entry_sparse_count(ae) > 0, &w->total, err) < 0)
		return -1;
	k = decide_keep(idx, e, keep, &w->kept, err);
	if (k < 0)
		return -1;
	return k ? read_data(r, e, err) : 0;
}

static int index_tar(struct ar_index *idx, ar_keep_fn keep, struct rp_err *err)
{
	struct tar_walk w = { 0, 0, 0, 0 };
	struct archive_entry *ae;
	struct reader r;
	int rc = -1, h;

	if (ar_reader_open(idx, &r, err) < 0)
		goto out;
	idx->compressed = r.unz != NULL;
	while ((h = ar_reader_next(&r, &ae)) == ARCHIVE_OK)
		if (add_tar_entry(idx, &r, ae, keep, &w, err) < 0)
			goto out;
	if (h != ARCHIVE_EOF) {
		if (idx->n == 0)
			ar_not_a_tar(&r, err);
		else
			rp_errf(err, "'%s': %s", idx->display, ar_reader_error(&r));
		goto out;
	}
	rc = 0;
out:
	ar_reader_close(&r);
	return rc;
}

/* An OCI layout directory (skopeo oci:, umoci, buildah): the same index, entries from the walk. */
static struct ar_index *walk_idx;
static ar_keep_fn walk_keep;
static size_t walk_cap, walk_kept, walk_names;
static int walk_prune;
static struct rp_err *walk_err;

/* A kept file of a directory input: opened without following a link or blocking on a FIFO (the
 * walk saw a regular file, but it may have been replaced since). */
static int read_small(const char *path, const struct ar_entry *e, struct ar_entry *out,
		      struct rp_err *err)
{
	struct stat st;
	ssize_t n = 0;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != e->size) {
		if (fd >= 0)
			close(fd);
		return rp_errf(err, "'%s': '%s' changed while reading", walk_idx->display, e->raw);
	}
	out->data = malloc((size_t)e->size + 1);
	while (out->data && got < (size_t)e->size &&
	       ((n = read(fd, out->data + got, (size_t)e->size - got)) > 0 || (n < 0 && errno == EINTR)))
		got += n > 0 ? (size_t)n : 0;
	close(fd);
	if (!out->data)
		return rp_errf(err, "'%s': out of memory", walk_idx->display);
	if (got != (size_t)e->size)
		return rp_errf(err, "'%s': '%s' changed while reading", walk_idx->display, e->raw);
	out->data[got] = '\0';
	out->data_len = got;
	return 0;
}

/* A regpress tree's served view and build cache are derived from its snapshot and blobs, and
 * hold many files: not worth an entry each (a tree given as input reads only those). */
static int pruned(const char *rel, int type)
{
	return walk_prune && type == FTW_D &&
	       (!strcmp(rel, "registry/repos") || !strcmp(rel, "cache") ||
		!strcmp(rel, ".regpress-tmp"));
}

static int walk_add(const char *path, const char *rel, const struct stat *st, int type)
{
	struct ar_index *idx = walk_idx;
	struct ar_entry *e;
	int k;

	if (charge_name(idx, "file name", rel, 2, &walk_names, walk_err) < 0 ||
	    grow(idx, &walk_cap, walk_err) < 0)
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
		char target[AR_NAME_MAX + 2];
		ssize_t n = readlink(path, target, sizeof(target) - 1);

		if (n < 0)
			return rp_errno(walk_err, "'%s'", path);
		target[n] = '\0';
		if (charge_name(idx, "link target", target, 1, &walk_names, walk_err) < 0)
			return -1;
		e->link = strdup(target);
		if (!e->link)
			return rp_errf(walk_err, "'%s': out of memory", idx->display);
	}
	k = decide_keep(idx, e, walk_keep, &walk_kept, walk_err);
	if (k < 0)
		return -1;
	return k ? read_small(path, e, e, walk_err) : 0;
}

static int walk_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	const char *rel = path + strlen(walk_idx->path);

	(void)ftw;
	while (*rel == '/')
		rel++;
	if (!*rel)
		return FTW_CONTINUE;
	if (walk_add(path, rel, st, type) < 0)
		return FTW_STOP;
	return pruned(rel, type) ? FTW_SKIP_SUBTREE : FTW_CONTINUE;
}

static int index_dir(struct ar_index *idx, ar_keep_fn keep, struct rp_err *err)
{
	char *snap = rp_join(idx->path, "registry/snapshot");
	struct stat st;

	walk_idx = idx;
	walk_keep = keep;
	walk_cap = walk_kept = walk_names = 0;
	walk_prune = snap && lstat(snap, &st) == 0 && S_ISREG(st.st_mode);
	walk_err = err;
	free(snap);
	err->msg[0] = '\0';
	if (nftw(idx->path, walk_entry, 32, FTW_PHYS | FTW_ACTIONRETVAL) != 0) {
		if (!err->msg[0])
			rp_errno(err, "cannot read '%s'", idx->display);
		return -1;
	}
	return 0;
}

/* Sort for lookups; the same name twice is ambiguous (which one would a reader take?): refused. */
static int sort_names(struct ar_index *idx, struct rp_err *err)
{
	size_t i;

	idx->sorted = malloc(idx->n * sizeof(*idx->sorted));
	if (!idx->sorted)
		return rp_errf(err, "'%s': out of memory", idx->display);
	for (i = 0; i < idx->n; i++)
		idx->sorted[i] = i;
	sort_idx = idx;
	qsort(idx->sorted, idx->n, sizeof(*idx->sorted), cmp_entry);
	for (i = 1; i < idx->n; i++) {
		const struct ar_entry *x = &idx->entries[idx->sorted[i - 1]];
		const struct ar_entry *y = &idx->entries[idx->sorted[i]];

		if (x->name && y->name && !strcmp(x->name, y->name) &&
		    !(x->type == AR_DIR && y->type == AR_DIR))
			return rp_errf(err, "'%s': entry '%s' appears more than once", idx->display,
				       y->raw);
	}
	return 0;
}

int ar_index_read(const char *path, const char *display, ar_keep_fn keep, struct ar_index **out,
		  struct rp_err *err)
{
	struct ar_index *idx = calloc(1, sizeof(*idx));
	struct stat st;

	*out = NULL;
	if (!idx || !(idx->path = strdup(path)) || !(idx->display = strdup(display))) {
		ar_index_free(idx);
		return rp_errf(err, "'%s': out of memory", display);
	}
	/* The type first, without opening: opening a device can have effects of its own. */
	if (stat(path, &st) < 0) {
		rp_errno(err, "'%s'", display);
		goto fail;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
		rp_errf(err, "'%s': %s, not a tar archive or an OCI layout directory", display,
			ar_file_kind(st.st_mode));
		goto fail;
	}
	idx->is_dir = S_ISDIR(st.st_mode);
	idx->dev = st.st_dev;
	idx->ino = st.st_ino;
	idx->file_size = idx->is_dir ? 0 : st.st_size;
	if (!idx->is_dir && st.st_size == 0) {
		rp_errf(err, "'%s': empty file", display);
		goto fail;
	}
	if ((idx->is_dir ? index_dir(idx, keep, err) : index_tar(idx, keep, err)) < 0)
		goto fail;
	if (idx->n == 0) {
		rp_errf(err, "'%s': %s", display, idx->is_dir ? "empty directory, not an OCI layout"
							      : "empty archive");
		goto fail;
	}
	if (sort_names(idx, err) < 0)
		goto fail;
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

