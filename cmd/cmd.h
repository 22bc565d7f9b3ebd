/* Every command is `int cmd_<name>(int argc, char **argv)` in cmd/cmd_<name>.c, listed in the table
 * in cmd/regpress.c. A command parses its own options (getopt_long), prints its own usage on -h to
 * stdout, prints one error line "regpress <cmd>: <message>" to stderr on failure, and returns the exit
 * status: 0 ok, 1 failure, 2 usage. Modules below cmd/ never print or exit. */
#ifndef RP_CMD_H
#define RP_CMD_H

#include <stddef.h>
#include <stdint.h>

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

/* Print "regpress CMD: MESSAGE" to stderr; returns 1 (the failure exit status). */
int cmd_fail(const char *cmd, const struct rp_err *err);
/* Print "regpress CMD: <fmt...>\nTry 'regpress CMD --help'." to stderr; returns 2. */
int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parse a whole decimal option value s into *out if it lies in [lo, hi]; -1 (nothing set) if s
 * is empty, has anything after the digits, or is out of range. */
int cmd_parse_int(const char *s, int lo, int hi, int *out);

#endif
