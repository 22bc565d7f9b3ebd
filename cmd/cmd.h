/* Every command is `int cmd_<name>(int argc, char **argv)` in cmd/cmd_<name>.c, listed in the table
 * in cmd/regpress.c. A command parses its own options (getopt_long), prints its own usage on -h to
 * stdout, prints one error line "regpress <cmd>: <message>" to stderr on failure, and returns the exit
 * status: 0 ok, 1 failure, 2 usage. Modules below cmd/ never print or exit. */
#ifndef RP_CMD_H
#define RP_CMD_H

#include "err.h"

#define RP_VERSION "0.1.0"

int cmd_build(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_certs(int argc, char **argv);
int cmd_client_config(int argc, char **argv);
int cmd_snapshot(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_media(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* Print "regpress CMD: MESSAGE" to stderr; returns 1 (the failure exit status). */
int cmd_fail(const char *cmd, const struct rp_err *err);
/* Print "regpress CMD: <fmt...>\nTry 'regpress CMD --help'." to stderr; returns 2. */
int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a whole decimal option value s into *out if it lies in [lo, hi]; -1 (nothing set) if s
 * is empty, has anything after the digits, or is out of range. */
int cmd_parse_int(const char *s, int lo, int hi, int *out);

#endif
