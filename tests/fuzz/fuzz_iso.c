/* libFuzzer target: a volume given to `regpress import` as an ISO image file (layout/media.c). The
 * image is extracted with libarchive into a directory under $TMPDIR and checked as a volume.
 *
 * Invariants: whatever the image holds, nothing is left in $TMPDIR afterwards (every failure path
 * removes the extraction), and a failure comes with a message. Writes outside the extraction
 * directory would show as leftovers too, since $TMPDIR is the only place the target lets the
 * process write. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "media.h"

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	FUZZ_ASSERT(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tmp = fuzz_scratch_dir();
	struct media_volume_info info;
	struct rp_err err = { "" };

	setenv("TMPDIR", tmp, 1);
	if (media_check(fuzz_file(data, size), NULL, NULL, NULL, &info, &err) < 0)
		FUZZ_ASSERT(err.msg[0]);
	FUZZ_ASSERT(entries(tmp) == 0);
	return 0;
}
