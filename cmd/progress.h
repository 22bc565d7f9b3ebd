/* One progress line on stderr, only when stderr is a terminal, redrawn at most 5 times a second:
 * "LABEL  412.0 MiB / 1.2 GiB  34%  180.3 MiB/s  ETA 0:04". Nothing below cmd/ prints. */
#ifndef RP_PROGRESS_H
#define RP_PROGRESS_H

#include <stdint.h>

struct progress {
	const char *label;
	int enabled;
	double start, last;
	int drawn;
};

/* mode: "auto" (terminal only), "plain" (a line every few seconds, for logs), "none". */
void progress_init(struct progress *p, const char *label, const char *mode);
void progress_update(struct progress *p, uint64_t done, uint64_t total);
void progress_end(struct progress *p);
/* Human size: "1.2 GiB". buf >= 16 bytes. */
const char *progress_size(uint64_t n, char *buf, int len);

#endif
