/* libFuzzer target: snapshot text (layout/snapshot.h), which verify, diff and import read from
 * media that came from elsewhere, and the derivation of the served view from it (layout/view.h),
 * which commit and verify run on a parsed snapshot.
 *
 * Invariants: a snapshot that parses has valid repositories and tags, its records sorted and
 * unique as text (each record's line is its line of the text), its id the sha256 of the text;
 * every file the view derives from it lies in registry/ (snapshot, catalog.json, or below
 * repos/) with no "."/".." component, and index.json can be made from it. */
#include <stdint.h>
#include <string.h>

#include "digest.h"
#include "fuzz.h"
#include "names.h"
#include "snapshot.h"
#include "view.h"

/* A manifest for every digest the view reads (twins, referrers): schema2 with a subject. */
static const char manifest[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.docker.distribution.manifest.v2+json\","
	"\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":2,"
	"\"digest\":\"sha256:4444444444444444444444444444444444444444444444444444444444444444\"},"
	"\"layers\":[{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":"
	"3,\"digest\":\"sha256:5555555555555555555555555555555555555555555555555555555555555555\"}],"
	"\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"size\":9,"
	"\"digest\":\"sha256:6666666666666666666666666666666666666666666666666666666666666666\"}}";

static int on_file(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err)
{
	const char *p = rel;

	(void)ctx, (void)buf, (void)len, (void)err;
	if (!strcmp(rel, "snapshot") || !strcmp(rel, "catalog.json"))
		return 0;
	FUZZ_ASSERT(!strncmp(rel, "repos/", 6));
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		FUZZ_ASSERT(n > 0 && !(n == 1 && p[0] == '.') &&
			    !(n == 2 && p[0] == '.' && p[1] == '.'));
		if (!slash)
			break;
		p = slash + 1;
	}
	return 0;
}

static int on_blob(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		   struct rp_err *err)
{
	(void)ctx, (void)err;
	rp_sha256_buf(buf, len, hex);
	return 0;
}

static int on_read(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err)
{
	(void)ctx, (void)err;
	FUZZ_ASSERT(rp_hex_valid(hex));
	*buf = strdup(manifest);
	FUZZ_ASSERT(*buf);
	*len = strlen(manifest);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct view_sink sink = { on_file, on_blob, on_read, NULL };
	struct snapshot s;
	struct rp_err err;
	char hex[RP_HEX_LEN + 1], *text, *idx = NULL;
	size_t i, len, at = sizeof("regpress-snapshot 1");

	if (snapshot_parse((const char *)data, size, "fuzz", &s, &err) < 0)
		return 0;
	rp_sha256_buf(data, size, hex);
	FUZZ_ASSERT(!strcmp(hex, s.id));
	for (i = 0; i < s.n; i++) {
		const struct snap_rec *r = &s.v[i];

		FUZZ_ASSERT(layout_repo_valid(r->repo) && rp_hex_valid(r->hex));
		FUZZ_ASSERT(r->kind != SNAP_TAG || layout_tag_valid(r->tag));
		len = strlen(r->line);
		FUZZ_ASSERT(at + len < size + 1 && !memcmp(data + at, r->line, len) &&
			    data[at + len] == '\n');
		at += len + 1;
	}
	FUZZ_ASSERT(at == size);
	/* The view is derived from the text as parsed (snapshot_parse accepted no NUL). */
	text = malloc(size + 1);
	FUZZ_ASSERT(text);
	memcpy(text, data, size);
	text[size] = '\0';
	view_emit_all(text, size, &s, &sink, &err);
	if (view_index_json(&s, NULL, &sink, NULL, &idx, &len, &err) == 0)
		FUZZ_ASSERT(idx && len == strlen(idx));
	free(idx);
	free(text);
	snapshot_free(&s);
	return 0;
}
