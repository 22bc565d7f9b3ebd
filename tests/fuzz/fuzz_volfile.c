/* libFuzzer target: the two texts a volume brings besides blobs, which import reads from a disc
 * that came from elsewhere: the volume manifest (media/volfile.h, version 1 or 2 with its file
 * lines) and a release (layout/release.h).
 *
 * Invariants: what parses is canonical (written back, the same bytes: the release exactly, the
 * manifest's shared part, whose digest is its set id); every item lies on a volume of the set. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "fuzz.h"
#include "release.h"
#include "volfile.h"

static void one_release(const uint8_t *data, size_t size)
{
	struct release r;
	struct rp_err err;
	size_t len;
	char *text;

	if (release_parse((const char *)data, size, "release", &r, &err) < 0)
		return;
	text = release_text(&r, &len);
	FUZZ_ASSERT(text && len == size && !memcmp(text, data, size));
	FUZZ_ASSERT(r.number > 0);
	free(text);
}

static void one_manifest(const uint8_t *data, size_t size)
{
	struct volfile m;
	struct rp_err err;
	char *text = malloc(size + 1), *shared, hex[RP_HEX_LEN + 1];
	size_t i, slen;

	FUZZ_ASSERT(text);
	memcpy(text, data, size);
	text[size] = '\0';
	if (volfile_parse(text, size, "REGPRESS-VOLUME", &m, &err) < 0) {
		volfile_free(&m);
		return;
	}
	FUZZ_ASSERT(m.volume >= 1 && m.volume <= m.nvolumes);
	for (i = 0; i < m.nitems; i++)
		FUZZ_ASSERT(m.items[i].volume >= 1 && m.items[i].volume <= m.nvolumes);
	shared = volfile_shared(m.snapshot_id, m.snapshot_len, m.base_id, m.nvolumes, m.capacity,
				m.files, m.items, m.nitems, &slen);
	FUZZ_ASSERT(shared && slen == m.shared_len && !memcmp(shared, data, slen));
	rp_sha256_buf(shared, slen, hex);
	FUZZ_ASSERT(!strcmp(hex, m.set_id));
	free(shared);
	volfile_free(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The first byte picks the reader, so one corpus covers both. */
	if (size == 0)
		return 0;
	if (data[0] & 1)
		one_release(data + 1, size - 1);
	else
		one_manifest(data + 1, size - 1);
	return 0;
}
