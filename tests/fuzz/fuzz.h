/* Helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c, `make fuzz`): the input as a file
 * (the readers take paths: a memfd under /proc/self/fd, no disk), a small ustar writer to wrap
 * fuzzed metadata in an archive, and an invariant check that crashes loudly. */
#ifndef RP_FUZZ_H
#define RP_FUZZ_H

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* An invariant of the code under test: a violation is a bug, reported as a crash. */
#define FUZZ_ASSERT(c)                                                                   \
	do {                                                                             \
		if (!(c)) {                                                              \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#c);                                                     \
			abort();                                                         \
		}                                                                        \
	} while (0)

/* A growing byte buffer. */
struct fuzz_buf {
	unsigned char *p;
	size_t len, cap;
};

static inline void fuzz_put(struct fuzz_buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		size_t cap = (b->len + len) * 2 + 4096;
		unsigned char *n = realloc(b->p, cap);

		FUZZ_ASSERT(n);
		b->p = n;
		b->cap = cap;
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

/* One ustar member: type '0' file, '2' symlink, '5' directory. Names under 100 bytes. */
static inline void fuzz_tar_member(struct fuzz_buf *b, const char *name, char type,
				   const char *link, const void *data, size_t len)
{
	unsigned char h[512];
	unsigned sum = 0;
	size_t i;

	memset(h, 0, sizeof(h));
	snprintf((char *)h, 100, "%s", name);
	snprintf((char *)h + 100, 8, "%07o", type == '5' ? 0755 : 0644);
	snprintf((char *)h + 108, 8, "%07o", 0);
	snprintf((char *)h + 116, 8, "%07o", 0);
	snprintf((char *)h + 124, 12, "%011lo", type == '0' ? (unsigned long)len : 0ul);
	snprintf((char *)h + 136, 12, "%011o", 0);
	h[156] = (unsigned char)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar", 6);
	memcpy(h + 263, "00", 2);
	memset(h + 148, ' ', 8);
	for (i = 0; i < sizeof(h); i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	fuzz_put(b, h, sizeof(h));
	if (type == '0' && len) {
		static const unsigned char zeros[512];

		fuzz_put(b, data, len);
		fuzz_put(b, zeros, (512 - len % 512) % 512);
	}
}

static inline void fuzz_tar_end(struct fuzz_buf *b)
{
	static const unsigned char zeros[1024];

	fuzz_put(b, zeros, sizeof(zeros));
}

/* The bytes as a file: one memfd, rewritten for each input; its path is /proc/self/fd/N. */
static inline const char *fuzz_file(const void *data, size_t len)
{
	static int fd = -1;
	static char path[64];

	if (fd < 0) {
		fd = memfd_create("fuzz-input", MFD_CLOEXEC);
		FUZZ_ASSERT(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	FUZZ_ASSERT(ftruncate(fd, 0) == 0);
	FUZZ_ASSERT(pwrite(fd, data, len, 0) == (ssize_t)len);
	return path;
}

/* The first part of data up to a NUL (or all of it), as a NUL-terminated copy; *rest and
 * *rest_len are what follows the NUL (NULL, 0 if there is none). */
static inline char *fuzz_split(const uint8_t *data, size_t size, const uint8_t **rest,
			       size_t *rest_len)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t n = nul ? (size_t)(nul - data) : size;
	char *s = malloc(n + 1);

	FUZZ_ASSERT(s);
	memcpy(s, data, n);
	s[n] = '\0';
	*rest = nul ? nul + 1 : NULL;
	*rest_len = nul ? size - n - 1 : 0;
	return s;
}

/* A scratch directory for trees, once per process: /dev/shm when there is one (no disk). */
static inline const char *fuzz_scratch_dir(void)
{
	static char dir[64];

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "%s/regpress-fuzz-XXXXXX",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		FUZZ_ASSERT(mkdtemp(dir));
	}
	return dir;
}

#endif
