#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *progress_size(uint64_t n, char *buf, int len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, (size_t)len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, (size_t)len, "%.1f %s", v, units[u]);
	return buf;
}

void progress_init(struct progress *p, const char *label, const char *mode)
{
	memset(p, 0, sizeof(*p));
	p->label = label;
	if (!mode || !strcmp(mode, "auto"))
		p->enabled = isatty(STDERR_FILENO) ? 1 : 0;
	else if (!strcmp(mode, "plain"))
		p->enabled = 2;
	p->start = p->last = now();
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	double t = now(), rate;
	char a[32], b[32], r[32];

	if (!p->enabled || t - p->last < (p->enabled == 2 ? 5.0 : 0.2))
		return;
	p->last = t;
	rate = t > p->start ? (double)done / (t - p->start) : 0;
	progress_size(done, a, sizeof(a));
	progress_size(total, b, sizeof(b));
	progress_size((uint64_t)rate, r, sizeof(r));
	if (p->enabled == 1) {
		long eta = rate > 0 && total > done ? (long)((double)(total - done) / rate) : 0;

		fprintf(stderr, "\r%s  %s / %s  %3d%%  %s/s  ETA %ld:%02ld\033[K", p->label, a, b,
			total ? (int)(100 * done / total) : 0, r, eta / 60, eta % 60);
		p->drawn = 1;
	} else {
		fprintf(stderr, "%s: %s / %s (%s/s)\n", p->label, a, b, r);
	}
}

void progress_end(struct progress *p)
{
	if (p->enabled == 1 && p->drawn)
		fprintf(stderr, "\r\033[K");
	p->drawn = 0;
}
