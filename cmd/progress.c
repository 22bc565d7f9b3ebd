#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TTY_INTERVAL 0.2
#define PLAIN_INTERVAL 5.0

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

static double rate_of(const struct progress *p, double t)
{
	return t > p->start ? (double)p->done / (t - p->start) : 0;
}

/* plain: the closing line of the operation shown last. */
static void plain_close(struct progress *p, double t)
{
	char a[32], r[32];

	if (p->enabled != 2 || !p->shown[0])
		return;
	fprintf(stderr, "%s: done, %s in %.1f s (%s/s)\n", p->shown,
		progress_size(p->done, a, sizeof(a)), t - p->start,
		progress_size((uint64_t)rate_of(p, t), r, sizeof(r)));
	p->shown[0] = '\0';
}

static int is_shown(const struct progress *p)
{
	return !strncmp(p->label, p->shown, sizeof(p->shown) - 1);
}

static void set_shown(struct progress *p)
{
	snprintf(p->shown, sizeof(p->shown), "%s", p->label);
}

void progress_update(struct progress *p, uint64_t done, uint64_t total)
{
	char a[32], b[32], r[32];
	double t;

	if (!p->enabled)
		return;
	t = now();
	if (!is_shown(p)) {
		if (p->shown[0]) {
			/* The next operation (the next input of a build): its own start, rate, ETA. */
			plain_close(p, t);
			p->start = t;
		}
		set_shown(p);
		if (p->enabled == 2) {
			fprintf(stderr, "%s: started, %s\n", p->label,
				progress_size(total, b, sizeof(b)));
			p->drawn = 1;
			p->last = t;
		}
	}
	p->done = done;
	p->total = total;
	if (t - p->last < (p->enabled == 2 ? PLAIN_INTERVAL : TTY_INTERVAL))
		return;
	p->last = t;
	progress_size(done, a, sizeof(a));
	progress_size(total, b, sizeof(b));
	progress_size((uint64_t)rate_of(p, t), r, sizeof(r));
	if (p->enabled == 1) {
		double rate = rate_of(p, t);
		long eta = rate > 0 && total > done ? (long)((double)(total - done) / rate) : 0;

		fprintf(stderr, "\r%s  %s / %s  %3d%%  %s/s  ETA %ld:%02ld\033[K", p->label, a, b,
			total ? (int)(100 * done / total) : 0, r, eta / 60, eta % 60);
		p->drawn = 1;
	} else {
		fprintf(stderr, "%s: %s / %s (%s/s)\n", p->label, a, b, r);
	}
}

void progress_clear(struct progress *p)
{
	if (p->enabled == 1 && p->drawn)
		fprintf(stderr, "\r\033[K");
	if (p->enabled == 1)
		p->drawn = 0;
}

void progress_end(struct progress *p)
{
	if (p->enabled == 1 && p->drawn)
		fprintf(stderr, "\r\033[K");
	plain_close(p, now());
	p->drawn = 0;
}
