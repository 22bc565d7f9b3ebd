#include "tarball.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_BUF (1u << 20)

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

int ar_index_read(const char *path, const char *display, ar_keep_fn keep, struct ar_index **out,
		  struct rp_err *err)
{
	struct ar_index *idx = calloc(1, sizeof(*idx));
	struct archive_entry *ae;
	struct archive *a = NULL;
	size_t cap = 0, kept = 0, i;
	int r;

	*out = NULL;
	if (!idx || !(idx->path = strdup(path)) || !(idx->display = strdup(display))) {
		ar_index_free(idx);
		return rp_errf(err, "'%s': out of memory", display);
	}
	a = open_archive(path, err, display);
	if (!a)
		goto fail;
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		struct ar_entry *e;
		const char *raw = archive_entry_pathname(ae);
		const char *link;

		if (!raw) {
			rp_errf(err, "'%s': entry with no name", display);
			goto fail;
		}
		if (idx->n == AR_ENTRIES_MAX) {
			rp_errf(err, "'%s': more than %u entries", display, AR_ENTRIES_MAX);
			goto fail;
		}
		if (idx->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct ar_entry *ne = realloc(idx->entries, ncap * sizeof(*ne));

			if (!ne) {
				rp_errf(err, "'%s': out of memory", display);
				goto fail;
			}
			idx->entries = ne;
			cap = ncap;
		}
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
			goto fail;
		}
		if (e->size < 0) {
			rp_errf(err, "'%s': entry '%s': negative size", display, raw);
			goto fail;
		}
		if (e->type == AR_FILE && e->name && keep && keep(e->name, e->size)) {
			if ((uint64_t)e->size > AR_META_MAX) {
				rp_errf(err, "'%s': '%s' is %lld bytes, more than the %u MiB allowed for "
					"metadata", display, raw, (long long)e->size, AR_META_MAX >> 20);
				goto fail;
			}
			kept += (size_t)e->size;
			if (kept > AR_META_TOTAL) {
				rp_errf(err, "'%s': more than %u MiB of metadata", display,
					AR_META_TOTAL >> 20);
				goto fail;
			}
			if (read_data(a, e, idx, err) < 0)
				goto fail;
		} else if (archive_read_data_skip(a) != ARCHIVE_OK) {
			rp_errf(err, "'%s': entry '%s': %s", display, raw, archive_error_string(a));
			goto fail;
		}
	}
	if (r != ARCHIVE_EOF) {
		rp_errf(err, "'%s': %s", display,
			archive_error_string(a) ? archive_error_string(a) : "cannot read archive");
		goto fail;
	}
	if (idx->n == 0) {
		rp_errf(err, "'%s': empty archive", display);
		goto fail;
	}
	archive_read_free(a);
	a = NULL;
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
	if (a)
		archive_read_free(a);
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
			rp_errf(err, "'%s': '%s' is not in the archive", idx->display, ref);
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

int ar_stream(const struct ar_index *idx, ar_want_fn want, ar_data_fn data, void *ctx,
	      struct rp_err *err)
{
	struct archive *a = open_archive(idx->path, err, idx->display);
	struct archive_entry *ae;
	unsigned char *buf = malloc(STREAM_BUF);
	size_t i = 0;
	int r, rc = -1;

	if (!a || !buf) {
		if (a && !buf)
			rp_errf(err, "'%s': out of memory", idx->display);
		goto out;
	}
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
			if (data(ctx, e, buf, (size_t)n, err) < 0)
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
