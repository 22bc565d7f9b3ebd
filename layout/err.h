/* One error convention for every module: functions return 0 on success and -1 on failure, and a
 * failing function sets the message once, at the point of failure, in the struct rp_err its caller
 * passed last. Callers may add context in front (rp_err_prefix); commands print it once. */
#ifndef RP_ERR_H
#define RP_ERR_H

#include <stddef.h>

struct rp_err {
	char msg[2048];
};

/* Set the message; always returns -1 so callers can write `return rp_errf(err, ...)`. */
int rp_errf(struct rp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like rp_errf, appending ": strerror(errno)". */
int rp_errno(struct rp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Put "context: " in front of the message already set; returns -1. */
int rp_err_prefix(struct rp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
