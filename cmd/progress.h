/* Progress of long operations (build, verify, media, import) on stderr. Nothing below cmd/ prints.
 *
 * auto:  only when stderr is a terminal, one line redrawn at most 5 times a second:
 *        "LABEL  412.0 MiB / 1.2 GiB  34%  180.3 MiB/s  ETA 0:04", erased at the end;
 * plain: for logs, a line when an operation (a label) starts, then every 5 seconds, and a
 *        closing line with the total, time and rate: "LABEL: 1.2 GiB / 1.2 GiB (180.3 MiB/s)",
 *        "LABEL: done, 1.2 GiB in 6.8 s (180.3 MiB/s)";
 * none:  nothing (what --quiet selects). */
#ifndef RP_PROGRESS_H
#define RP_PROGRESS_H

#include <stdint.h>

struct progress {
	const char *label;
	int enabled; /* 0 none, 1 terminal line, 2 plain lines */
	double start, last;
	int drawn;
	char shown[256];      /* the operation shown (a copy: build labels are freed per input) */
	uint64_t done, total; /* the last update */
};

/* mode: "auto" (terminal only), "plain" (a line every few seconds, for logs), "none". */
void progress_init(struct progress *p, const char *label, const char *mode);
void progress_update(struct progress *p, uint64_t done, uint64_t total);
/* Erase the terminal line, before printing something else (the next update redraws it). */
void progress_clear(struct progress *p);
/* Erase the terminal line; plain: print the closing line if any line was printed. */
void progress_end(struct progress *p);
/* Human size: "1.2 GiB". buf >= 16 bytes. */
const char *progress_size(uint64_t n, char *buf, int len);

#endif
