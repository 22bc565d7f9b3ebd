/* Every command is `int cmd_<name>(int argc, char **argv)` in cmd/cmd_<name>.c, listed in the table
 * in cmd/regpress.c. A command parses its own options (getopt_long, optstring starting with ':'),
 * keeps its help text once, prints it on -h to stdout, reports a usage error with
 * cmd_usage_error (or cmd_bad_option, for what getopt_long returns), prints one error line
 * "regpress <cmd>: <message>" to stderr on failure, and returns the exit status: 0 ok, 1 failure,
 * 2 usage. main flushes and checks standard output after the command returns, so a command never
 * checks its own printf. Modules below cmd/ never print or exit. */
#ifndef RP_CMD_H
#define RP_CMD_H

#include "err.h"

#define RP_VERSION "0.1.0"

/* A number in a help text, from the constant the code checks against. */
#define CMD_STR(x) CMD_STR_(x)
#define CMD_STR_(x) #x

/* What an option parser returns when the command should go on; anything else is the exit
 * status (0 after --help, 2 after a usage error). */
#define CMD_GO (-1)

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

/* Print "regpress CMD: MESSAGE" to stderr; returns 1 (the failure exit status). */
int cmd_fail(const char *cmd, const struct rp_err *err);
/* Print "regpress CMD: <fmt...>\nTry 'regpress CMD --help'." to stderr; returns 2. */
int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The usage error for what getopt_long returned in c ('?' or ':', with optind and optopt as it
 * left them): "unknown option '-x'", "option '--foo' needs a value", ...; returns 2. */
struct option;
int cmd_bad_option(const char *cmd, int c, char *const *argv, const struct option *longopts);
/* Parse a whole decimal option value s into *out if it lies in [lo, hi]; -1 (nothing set) if s
 * is empty, has anything after the digits, or is out of range. */
int cmd_parse_int(const char *s, int lo, int hi, int *out);
/* Flush standard output now (before a line on stderr that must follow it): 0, or -1 if it
 * failed, which main then reports as it does any failed write to standard output. */
int cmd_flush_stdout(void);
/* --progress=MODE: *mode = arg if it is auto, plain or none (CMD_GO), else a usage error (2). */
int cmd_progress_mode(const char *cmd, const char *arg, const char **mode);

#endif
