#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "names.h"

void snapshot_free(struct snapshot *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n; i++) {
		free(s->v[i].repo);
		free(s->v[i].tag);
		free(s->v[i].media_type);
	}
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

static int media_type_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return 0;
	return i > 0 && i < 256 && strchr(s, '/') != NULL;
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-' || (*s == '0' && s[1]))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int parse_line(char *line, struct snap_rec *r)
{
	char *f[6];
	char *save = NULL, *tok;
	const char *hex;
	int n = 0;

	memset(r, 0, sizeof(*r));
	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if (n == 5)
			return -1;
		f[n++] = tok;
	}
	if (n < 4 || !layout_repo_valid(f[1]))
		return -1;
	if (!strcmp(f[0], "tag")) {
		if (n != 4 || !layout_tag_valid(f[2]) || !rp_digest_parse(f[3], &hex))
			return -1;
		r->kind = SNAP_TAG;
		r->tag = strdup(f[2]);
	} else {
		if (n != 5 || !rp_digest_parse(f[2], &hex) || parse_size(f[3], &r->size) < 0 ||
		    !media_type_valid(f[4]))
			return -1;
		if (!strcmp(f[0], "blob"))
			r->kind = SNAP_BLOB;
		else if (!strcmp(f[0], "manifest"))
			r->kind = SNAP_MANIFEST;
		else if (!strcmp(f[0], "missing"))
			r->kind = SNAP_MISSING;
		else
			return -1;
		r->media_type = strdup(f[4]);
	}
	r->repo = strdup(f[1]);
	memcpy(r->hex, hex, RP_HEX_LEN + 1);
	return 0;
}

int snapshot_parse(const char *text, size_t len, const char *name, struct snapshot *out,
		   struct rp_err *err)
{
	const char *p, *end = text + len, *prev = NULL;
	size_t prev_len = 0, lineno = 1, cap = 0;

	memset(out, 0, sizeof(*out));
	rp_sha256_buf(text, len, out->id);
	if (len < sizeof(SNAPSHOT_HEADER) || memcmp(text, SNAPSHOT_HEADER "\n", sizeof(SNAPSHOT_HEADER)))
		return rp_errf(err, "'%s': not a regpress snapshot (version 1)", name);
	if (memchr(text, '\0', len))
		return rp_errf(err, "'%s': contains a NUL byte", name);
	for (p = text + sizeof(SNAPSHOT_HEADER); p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		char line[1024];
		size_t l;
		int c;

		lineno++;
		if (!nl) {
			snapshot_free(out);
			return rp_errf(err, "'%s': line %zu: no newline at the end", name, lineno);
		}
		l = (size_t)(nl - p);
		if (l >= sizeof(line)) {
			snapshot_free(out);
			return rp_errf(err, "'%s': line %zu: too long", name, lineno);
		}
		/* Canonical: sorted by bytes and unique, so equal states have equal text. */
		if (prev) {
			c = memcmp(prev, p, prev_len < l ? prev_len : l);
			if (c > 0 || (c == 0 && prev_len >= l)) {
				snapshot_free(out);
				return rp_errf(err, "'%s': line %zu: out of order or repeated", name,
					       lineno);
			}
		}
		prev = p;
		prev_len = l;
		memcpy(line, p, l);
		line[l] = '\0';
		if (out->n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct snap_rec *nv = realloc(out->v, ncap * sizeof(*nv));

			if (!nv) {
				snapshot_free(out);
				return rp_errf(err, "out of memory");
			}
			out->v = nv;
			cap = ncap;
		}
		if (parse_line(line, &out->v[out->n]) < 0) {
			out->n++;
			snapshot_free(out);
			return rp_errf(err, "'%s': line %zu: malformed record", name, lineno);
		}
		out->n++;
		p = nl + 1;
	}
	return 0;
}

int snapshot_load(const char *path, struct snapshot *out, char **textp, struct rp_err *err)
{
	struct stat st;
	char *file = NULL, *text = NULL;
	size_t len;
	int rc;

	memset(out, 0, sizeof(*out));
	if (stat(path, &st) < 0)
		return rp_errno(err, "'%s'", path);
	file = S_ISDIR(st.st_mode) ? rp_join(path, "registry/snapshot") : strdup(path);
	if (!file)
		return rp_errf(err, "out of memory");
	if (S_ISDIR(st.st_mode) && stat(file, &st) < 0) {
		rp_errf(err, "'%s': not a regpress tree (no registry/snapshot)", path);
		free(file);
		return -1;
	}
	rc = rp_read_file(file, SNAPSHOT_MAX, &text, &len, err);
	if (rc == 0)
		rc = snapshot_parse(text, len, file, out, err);
	free(file);
	if (rc == 0 && textp)
		*textp = text;
	else
		free(text);
	return rc;
}

const struct snap_rec *snapshot_find_manifest(const struct snapshot *s, const char *repo,
					      const char *hex)
{
	size_t i;

	/* Records are sorted by kind, then repo: a linear scan is fine at snapshot sizes, and
	 * exact (the sort is by text, which orders "a/b " before "a/b/c "). */
	for (i = 0; i < s->n; i++)
		if (s->v[i].kind == SNAP_MANIFEST && !strcmp(s->v[i].hex, hex) &&
		    !strcmp(s->v[i].repo, repo))
			return &s->v[i];
	return NULL;
}
