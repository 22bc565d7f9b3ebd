/* Every command is `int cmd_<name>(int argc, char **argv)` in cmd/cmd_<name>.c, listed in the table
 * in cmd/regpress.c. A command parses its own options (getopt_long, optstring starting with ':'),
 * keeps its help text once, prints it on -h to stdout, reports a usage error with
 * cmd_usage_error (or cmd_bad_option, for what getopt_long returns), prints one error line
 * "regpress <cmd>: <message>" to stderr on failure, and returns the exit status: 0 ok, 1 failure,
 * 2 usage. main flushes and checks standard output after the command returns, so a command never
 * checks its own printf. Modules below cmd/ never print or exit. */
#ifndef RP_CMD_H
#define RP_CMD_H

#include <stddef.h>
#include <stdint.h>

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
int cmd_ls(int argc, char **argv);
int cmd_inspect(int argc, char **argv);

/* cmd_sign.c. A passphrase from the first line of file, or else asked on the terminal (twice
 * when confirm): 0, 1 if there is neither, -1 (err). */
int cmd_passphrase(const char *file, int confirm, char *buf, size_t sz, struct rp_err *err);
/* Sign the tree's snapshot and a release (layout_sign), asking for the key's passphrase (or
 * reading passfile) when the key is protected. */
struct layout_tree;
struct release;
int cmd_sign_tree(struct layout_tree *t, const char *seckey, const char *passfile,
		  uint64_t number, struct release *out, struct rp_err *err);
/* After a commit: one line on stderr when it removed the tree's signature. */
struct layout_commit_result;
void cmd_note_commit(const char *cmd, const char *tree, const struct layout_commit_result *res);

/* escape.c: s made safe to print (malloc'd; NULL when out of memory); *width (if not NULL): the
 * characters it shows. */
char *cmd_safe_text(const char *s, size_t *width);

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
