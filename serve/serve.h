/* Serving a tree: the lighttpd configuration and runtime directory for `regpress serve`.
 *
 * regpress does not serve bytes itself: stock lighttpd (>= 1.4.69, mod_openssl, mod_magnet with
 * Lua 5.4) does, with serve/regpress.lua mapping the pull API onto the tree (docs/tree-format.md).
 * This module checks the inputs and writes what lighttpd needs into a runtime directory:
 *
 *   DIR/lighttpd.conf               the configuration (serve_config)
 *   DIR/regpress.lua                the mod_magnet script compiled into the binary
 *   DIR/errors/status-<code>.html   JSON error bodies for errors lighttpd itself generates
 */
#ifndef RP_SERVE_H
#define RP_SERVE_H

#include "err.h"

/* All interfaces, the port registry clients default to in guides (localhost:5000). */
#define SERVE_DEFAULT_LISTEN "0.0.0.0:5000"
/* Where --print-config alone says the runtime directory is (what a package would install). */
#define SERVE_DEFAULT_DIR "/etc/regpress"

struct serve_opts {
	const char *tree;	/* the tree directory */
	const char *cert;	/* PEM certificate, chain after it */
	const char *key;	/* PEM private key */
	const char *listen;	/* "ADDR:PORT", "[IPV6]:PORT", ":PORT" or "PORT"; NULL: default */
	const char *access_log; /* NULL: none; "-": standard error (lighttpd points its
				 * stdout at /dev/null); else a file appended to */
	const char *htpasswd;	/* NULL or an htpasswd file: HTTP basic authentication */
	const char *client_ca;	/* NULL or PEM CA certificates: clients must present a
				 * certificate they issued (mutual TLS) */
	const char *user;	/* NULL: lighttpd keeps the user it was started as; else the
				 * user it switches to after binding (server.username) */
	const char *group;	/* with user: the group (server.groupname); NULL: user's */
	int workers;		/* lighttpd worker processes (server.max-worker); 0 or 1: a
				 * single process */
	int log_fd;		/* access_log "-" with user: lighttpd opens logs after switching
				 * user, when /dev/stderr can no longer be reopened, so a piped
				 * logger copies the log to this inherited descriptor (a copy of
				 * standard error, SERVE_LOG_FD); 0: "/dev/stderr" */
	unsigned long nofile;	/* the hard RLIMIT_NOFILE lighttpd starts with (ULONG_MAX:
				 * unlimited), which its connection limits come from
				 * (serve_limits); 0: this process's */
	unsigned long somaxconn; /* the kernel's cap on accept queues; 0: read it */
};

/* The most worker processes --workers takes, and the most the default (one per CPU) uses. */
#define SERVE_MAX_WORKERS 64
#define SERVE_DEFAULT_MAX_WORKERS 8

#define SERVE_LOG_FD 9 /* one digit: /bin/sh (dash) redirects only fds 0-9 */

/* lighttpd's limits on connections, file descriptors and idle time, for each worker process
 * (serve.c says how they are chosen). */
struct serve_limits {
	unsigned max_fds;	  /* server.max-fds */
	unsigned max_conns;	  /* server.max-connections */
	unsigned backlog;	  /* server.listen-backlog */
	unsigned read_idle;	  /* server.max-read-idle, seconds */
	unsigned keep_alive_idle; /* server.max-keep-alive-idle, seconds */
	unsigned write_idle;	  /* server.max-write-idle, seconds */
};

/* lighttpd 1.4.69 keeps server.max-fds in an unsigned short: 65536 would silently become its
 * default of 4096. */
#define SERVE_MAX_FDS 65535
/* net.core.somaxconn when /proc does not say (the kernel's default since Linux 5.4). */
#define SERVE_DEFAULT_SOMAXCONN 4096

/* The limits for a lighttpd started with hard RLIMIT_NOFILE nofile (ULONG_MAX: unlimited) on a
 * kernel whose accept queues are capped at somaxconn. */
void serve_limits(unsigned long nofile, unsigned long somaxconn, struct serve_limits *out);
/* This process's hard RLIMIT_NOFILE (ULONG_MAX when unlimited). */
unsigned long serve_nofile_hard(void);
/* net.core.somaxconn, or SERVE_DEFAULT_SOMAXCONN when it cannot be read. */
unsigned long serve_somaxconn(void);

struct serve_listen {
	char host[256]; /* "0.0.0.0", "::1" (no brackets), "name" */
	int ipv6;
	unsigned port;
};

/* Parse a --listen value; IPv6 addresses must be bracketed ("[::1]:5000"). */
int serve_parse_listen(const char *s, struct serve_listen *out, struct rp_err *err);
/* Check that tree looks like a regpress tree (registry/ view and blobs/sha256). */
int serve_check_tree(const char *tree, struct rp_err *err);
/* Check that cert and key are readable PEM files and that the key belongs to the certificate. */
int serve_check_tls(const char *cert, const char *key, struct rp_err *err);
/* Check that an htpasswd file is readable and holds at least one "user:hash" line in a format
 * lighttpd checks (crypt: $1$ $5$ $6$ $2y$..., apr1, {SHA}). */
int serve_check_htpasswd(const char *path, struct rp_err *err);
/* Check that path holds at least one PEM CA certificate. */
int serve_check_client_ca(const char *path, struct rp_err *err);
/* Check that uid/gid can reach and read path (every parent directory searchable, path readable;
 * a directory also searchable), by the mode bits; names the first that is not. */
int serve_check_access(const char *path, unsigned uid, unsigned gid, struct rp_err *err);
/* The access log lighttpd opens after switching to uid/gid: create it (mode 0640, owned by
 * uid/gid) when missing, else check that uid/gid may append to it. */
int serve_prepare_log(const char *path, unsigned uid, unsigned gid, struct rp_err *err);
/* All checks above (but not serve_check_access). */
int serve_check(const struct serve_opts *o, struct rp_err *err);

/* The lighttpd configuration for o whose runtime directory is dir, as a malloc'd string. Paths
 * (tree, cert, key, dir, access log) are made absolute; tree, cert and key must exist. */
int serve_config(const struct serve_opts *o, const char *dir, char **out, struct rp_err *err);
/* Create dir if needed and write the runtime files into it (replacing older ones); *conf_path
 * (optional) gets the configuration's path, malloc'd. */
int serve_write_dir(const struct serve_opts *o, const char *dir, char **conf_path,
		    struct rp_err *err);

#endif
