/* regpress serve: run lighttpd over a tree.
 *
 * usage: regpress serve TREE --cert FILE --key FILE [options]
 *
 * Serve the regpress tree TREE as a read-only OCI registry over HTTPS with lighttpd (>= 1.4.69,
 * with mod_openssl and mod_magnet). regpress writes lighttpd's configuration into a temporary
 * directory, runs `lighttpd -D` in the foreground, passes SIGINT, SIGTERM and SIGHUP on to it,
 * removes the directory when lighttpd exits and exits with lighttpd's status.
 *
 *   --cert FILE         PEM certificate (with its chain); clients need the host name or IP in
 *                       its subjectAltName
 *   --key FILE          PEM private key, unencrypted
 *   --listen ADDR:PORT  where to listen (default 0.0.0.0:5000); [::1]:5000 for IPv6, :PORT or
 *                       PORT for all IPv4 interfaces
 *   --access-log FILE   append an access log to FILE ('-': standard error)
 *   --htpasswd FILE     require HTTP basic authentication against FILE (user:hash lines, e.g.
 *                       from 'openssl passwd -5' or 'htpasswd -B'); read on every request
 *   --client-ca FILE    require a client certificate issued by a CA in FILE (mutual TLS)
 *   --user NAME         started as root: serve as NAME after binding (default www-data, else
 *                       nobody; 'root' keeps root). The tree, the htpasswd file and the runtime
 *                       directory must be readable by NAME; certificates are read before the
 *                       switch; a missing --access-log file is created for NAME. With the default user and a tree it cannot read, lighttpd stays
 *                       root and a warning says why.
 *   --group NAME        the group for --user (default: the user's)
 *   --workers N         lighttpd worker processes (server.max-worker); default one per online
 *                       CPU, at most SERVE_DEFAULT_MAX_WORKERS. Serving over TLS is CPU-bound
 *                       and one lighttpd process uses one core.
 *   --config-dir DIR    write lighttpd.conf, regpress.lua and errors/ into DIR and exit, for
 *                       running lighttpd yourself (lighttpd -D -f DIR/lighttpd.conf, systemd)
 *   --print-config      print the configuration and exit (its paths refer to --config-dir DIR,
 *                       or /etc/regpress)
 *   -h, --help          this help
 *
 * lighttpd's connection and fd limits come from the open files limit (RLIMIT_NOFILE): regpress
 * raises its soft limit to min(65535, hard limit) first (as root it also tries to raise the hard
 * limit to 65535), and serve.c's serve_limits derives the rest from that.
 *
 * lighttpd is looked up as $REGPRESS_LIGHTTPD, then on PATH, then in /usr/sbin and /usr/local/sbin.
 */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "serve.h"

static const char usage_text[] =
	"usage: regpress serve TREE --cert FILE --key FILE [options]\n"
	"\n"
	"Serve the regpress tree TREE as a read-only OCI registry over HTTPS with lighttpd.\n"
	"Runs lighttpd in the foreground until SIGINT/SIGTERM; exits with its status.\n"
	"\n"
	"  --cert FILE         PEM certificate (with chain); host name/IP in subjectAltName\n"
	"  --key FILE          PEM private key, unencrypted\n"
	"  --listen ADDR:PORT  where to listen (default " SERVE_DEFAULT_LISTEN "); [::1]:5000 for IPv6\n"
	"  --access-log FILE   append an access log to FILE ('-': standard error)\n"
	"  --htpasswd FILE     require HTTP basic auth against FILE (user:hash lines)\n"
	"  --client-ca FILE    require client certificates issued by FILE's CAs (mutual TLS)\n"
	"  --user NAME         when started as root, serve as NAME (default www-data or\n"
	"                      nobody; 'root' keeps root)\n"
	"  --group NAME        group for --user (default: the user's)\n"
	"  --workers N         lighttpd worker processes (default: one per CPU, at most 8)\n"
	"  --config-dir DIR    write the lighttpd configuration and script into DIR and exit\n"
	"  --print-config      print the lighttpd configuration and exit\n"
	"  -h, --help          show this help\n"
	"\n"
	"lighttpd (>= 1.4.69, mod_openssl, mod_magnet) is found as $REGPRESS_LIGHTTPD, on PATH,\n"
	"or in /usr/sbin. Its connection limits follow from the open files limit (ulimit -Hn,\n"
	"LimitNOFILE=): at most 65535 fds and a quarter as many connections per worker.\n";

static volatile sig_atomic_t child_pid;

/* lighttpd runs in its own process group, so a terminal's Ctrl-C reaches it once, through here. */
static void forward(int sig)
{
	if (child_pid > 0)
		kill((pid_t)child_pid, sig);
}

static char *find_lighttpd(void)
{
	static const char *const fixed[] = { "/usr/sbin", "/usr/local/sbin", "/sbin" };
	const char *env = getenv("REGPRESS_LIGHTTPD");
	const char *path = getenv("PATH");
	char *dirs, *d, *save = NULL, *p;
	size_t i;

	if (env && *env)
		return strdup(env);
	dirs = strdup(path ? path : "");
	if (!dirs)
		return NULL;
	for (d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		p = rp_join(*d ? d : ".", "lighttpd");
		if (p && access(p, X_OK) == 0) {
			free(dirs);
			return p;
		}
		free(p);
	}
	free(dirs);
	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		p = rp_join(fixed[i], "lighttpd");
		if (p && access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

static int run_lighttpd(const char *lighttpd, const char *conf, int log_fd, struct rp_err *err)
{
	struct sigaction sa;
	sigset_t block, old;
	pid_t pid, w;
	int status, sigs[] = { SIGINT, SIGTERM, SIGHUP };
	size_t i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	/* Hold the signals until child_pid is known, so none is lost between fork and the store. */
	sigemptyset(&block);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaddset(&block, sigs[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return rp_errno(err, "fork");
	}
	if (pid == 0) {
		for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], SIG_DFL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		setpgid(0, 0);
		/* If regpress is killed outright, lighttpd must not outlive it holding the port. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			_exit(1);
		/* The access log's piped logger writes here (see serve_opts.log_fd). */
		if (log_fd > 0 && dup2(STDERR_FILENO, log_fd) < 0)
			_exit(1);
		execl(lighttpd, "lighttpd", "-D", "-f", conf, (char *)NULL);
		fprintf(stderr, "regpress serve: cannot run %s: %s\n", lighttpd, strerror(errno));
		_exit(127);
	}
	child_pid = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	do
		w = waitpid(pid, &status, 0);
	while (w < 0 && errno == EINTR);
	child_pid = 0;
	if (w < 0)
		return rp_errno(err, "waitpid");
	if (WIFEXITED(status)) {
		if (WEXITSTATUS(status) == 0)
			return 0;
		return rp_errf(err, "lighttpd exited with status %d", WEXITSTATUS(status));
	}
	if (WIFSIGNALED(status)) {
		/* Our own forwarded SIGINT/SIGTERM ending it is a normal stop. */
		if (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM)
			return 0;
		return rp_errf(err, "lighttpd killed by signal %d", WTERMSIG(status));
	}
	return rp_errf(err, "lighttpd ended abnormally");
}

/* The configuration gives lighttpd max-fds = min(65535, hard RLIMIT_NOFILE) (serve_limits), so
 * make that limit as large as this process may: as root, try to raise the hard limit to 65535
 * (it takes CAP_SYS_RESOURCE, which containers often lack; then the hard limit stays), and raise
 * the soft limit to max-fds, which any process may do up to its hard limit. lighttpd raises its
 * soft limit to max-fds itself, but not under valgrind or where SELinux forbids it, and it then
 * keeps the soft limit it inherited: 1024 under systemd. */
static void raise_nofile(void)
{
	struct rlimit rl, up = { SERVE_MAX_FDS, SERVE_MAX_FDS };
	rlim_t want;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (geteuid() == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < SERVE_MAX_FDS &&
	    setrlimit(RLIMIT_NOFILE, &up) == 0)
		rl = up;
	want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < SERVE_MAX_FDS ? rl.rlim_max
									  : SERVE_MAX_FDS;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			fprintf(stderr, "regpress serve: warning: cannot raise the open files limit to "
					"%lu: %s\n", (unsigned long)want, strerror(errno));
	}
}

/* Started as root: pick the user lighttpd serves as (o->user, o->group) and check it can read
 * what lighttpd reads per request. An explicit --user that cannot is an error; the default user
 * falls back to root with a warning (a tree under a private directory). */
static uid_t serve_uid;
static gid_t serve_gid;

static int choose_user(struct serve_opts *o, int explicit_user, struct rp_err *err)
{
	static const char *const defaults[] = { "www-data", "nobody" };
	const struct passwd *pw = NULL;
	const char *paths[3];
	size_t i, n = 0;
	gid_t gid;

	if (geteuid() != 0) {
		if (explicit_user)
			return rp_errf(err, "--user needs regpress to be started as root");
		o->user = NULL;
		o->group = NULL;
		return 0;
	}
	if (explicit_user) {
		if (!strcmp(o->user, "root")) {
			o->user = NULL;
			o->group = NULL;
			return 0;
		}
		pw = getpwnam(o->user);
		if (!pw)
			return rp_errf(err, "no user %s", o->user);
	} else {
		for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]) && !pw; i++)
			pw = getpwnam(defaults[i]);
		if (!pw) {
			fprintf(stderr, "regpress serve: warning: no www-data or nobody user; "
					"lighttpd runs as root (pass --user)\n");
			return 0;
		}
		o->user = pw->pw_name;
	}
	if (pw->pw_uid == 0)
		return rp_errf(err, "user %s is root; pass --user root to keep root", o->user);
	gid = pw->pw_gid;
	if (o->group) {
		const struct group *gr = getgrnam(o->group);

		if (!gr)
			return rp_errf(err, "no group %s", o->group);
		gid = gr->gr_gid;
	}
	paths[n++] = o->tree;
	if (o->htpasswd)
		paths[n++] = o->htpasswd;
	for (i = 0; i < n; i++) {
		char *sub = i == 0 ? rp_join(o->tree, "registry/catalog.json") : NULL;
		int rc = serve_check_access(sub ? sub : paths[i], pw->pw_uid, gid, err);

		free(sub);
		if (rc == 0)
			continue;
		if (explicit_user)
			return rp_err_prefix(err, "user %s cannot read what lighttpd serves", o->user);
		fprintf(stderr, "regpress serve: warning: %s cannot read what lighttpd serves (%s); "
				"lighttpd runs as root (make it readable, or pass --user)\n",
			o->user, err->msg);
		err->msg[0] = '\0';
		o->user = NULL;
		o->group = NULL;
		return 0;
	}
	if (o->access_log && strcmp(o->access_log, "-") &&
	    serve_prepare_log(o->access_log, pw->pw_uid, gid, err) < 0)
		return -1;
	serve_uid = pw->pw_uid;
	serve_gid = gid;
	return 0;
}

int cmd_serve(int argc, char **argv)
{
	enum { OPT_CERT = 256, OPT_KEY, OPT_LISTEN, OPT_ACCESS_LOG, OPT_CONFIG_DIR, OPT_PRINT,
	       OPT_HTPASSWD, OPT_CLIENT_CA, OPT_USER, OPT_GROUP, OPT_WORKERS };
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "access-log", required_argument, NULL, OPT_ACCESS_LOG },
		{ "config-dir", required_argument, NULL, OPT_CONFIG_DIR },
		{ "print-config", no_argument, NULL, OPT_PRINT },
		{ "htpasswd", required_argument, NULL, OPT_HTPASSWD },
		{ "client-ca", required_argument, NULL, OPT_CLIENT_CA },
		{ "user", required_argument, NULL, OPT_USER },
		{ "group", required_argument, NULL, OPT_GROUP },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_opts o = { 0 };
	struct rp_err err = { { 0 } };
	const char *config_dir = NULL;
	char tmpl[4096], *dir = NULL, *conf_path = NULL, *conf = NULL, *lighttpd = NULL;
	const char *tmp;
	int c, print = 0, ret = 1;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_CERT:
			o.cert = optarg;
			break;
		case OPT_KEY:
			o.key = optarg;
			break;
		case OPT_LISTEN:
			o.listen = optarg;
			break;
		case OPT_ACCESS_LOG:
			o.access_log = optarg;
			break;
		case OPT_CONFIG_DIR:
			config_dir = optarg;
			break;
		case OPT_PRINT:
			print = 1;
			break;
		case OPT_HTPASSWD:
			o.htpasswd = optarg;
			break;
		case OPT_CLIENT_CA:
			o.client_ca = optarg;
			break;
		case OPT_USER:
			o.user = optarg;
			break;
		case OPT_GROUP:
			o.group = optarg;
			break;
		case OPT_WORKERS:
			if (cmd_parse_int(optarg, 1, SERVE_MAX_WORKERS, &o.workers) < 0)
				return cmd_usage_error("serve", "--workers wants 1 to %d",
						       SERVE_MAX_WORKERS);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			return cmd_usage_error("serve", "bad option");
		}
	}
	if (optind != argc - 1)
		return cmd_usage_error("serve", optind < argc ? "exactly one TREE expected"
							      : "no TREE given");
	o.tree = argv[optind];
	if (!o.workers) {
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);

		o.workers = cpus < 1 ? 1 : cpus > SERVE_DEFAULT_MAX_WORKERS ? SERVE_DEFAULT_MAX_WORKERS
									  : (int)cpus;
	}
	if (!o.cert || !o.key)
		return cmd_usage_error("serve", "--cert and --key are required");
	if (o.listen) {
		struct serve_listen l;

		if (serve_parse_listen(o.listen, &l, &err) < 0)
			return cmd_usage_error("serve", "%s", err.msg);
	}
	if (o.group && !o.user)
		return cmd_usage_error("serve", "--group needs --user");
	if (serve_check(&o, &err) < 0)
		return cmd_fail("serve", &err);
	/* Before the configuration is written: its limits follow from the result (also for
	 * --print-config, which then shows what a run here would use). */
	raise_nofile();

	if (print || config_dir) {
		/* A configuration for later: written as asked, for whoever runs lighttpd. */
		if (o.user && !strcmp(o.user, "root")) {
			o.user = NULL;
			o.group = NULL;
		}
		if (config_dir && serve_write_dir(&o, config_dir, NULL, &err) < 0)
			return cmd_fail("serve", &err);
		if (print) {
			if (serve_config(&o, config_dir ? config_dir : SERVE_DEFAULT_DIR, &conf,
					 &err) < 0)
				return cmd_fail("serve", &err);
			fputs(conf, stdout);
			free(conf);
			if (fflush(stdout) != 0)
				return 1;
		}
		return 0;
	}

	lighttpd = find_lighttpd();
	if (!lighttpd) {
		rp_errf(&err, "lighttpd not found on PATH or in /usr/sbin (install lighttpd, "
			      "lighttpd-mod-openssl and lighttpd-modules-lua)");
		return cmd_fail("serve", &err);
	}
	tmp = getenv("TMPDIR");
	snprintf(tmpl, sizeof(tmpl), "%s/regpress-serve.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (choose_user(&o, o.user != NULL, &err) < 0) {
		free(lighttpd);
		return cmd_fail("serve", &err);
	}
	dir = mkdtemp(tmpl);
	if (!dir) {
		rp_errno(&err, "mkdtemp %s", tmpl);
		free(lighttpd);
		return cmd_fail("serve", &err);
	}
	if (o.user && o.access_log && !strcmp(o.access_log, "-"))
		o.log_fd = SERVE_LOG_FD;
	/* lighttpd reads the script and the error files per request, after switching user. */
	if (o.user && (chmod(dir, 0755) < 0 ? rp_errno(&err, "chmod %s", dir)
		       : serve_check_access(dir, serve_uid, serve_gid, &err) < 0
			       ? rp_err_prefix(&err, "runtime directory (set TMPDIR) for user %s",
					       o.user)
			       : 0) < 0) {
		struct rp_err ignored;

		rp_rmtree(dir, &ignored);
		free(lighttpd);
		return cmd_fail("serve", &err);
	}
	if (serve_write_dir(&o, dir, &conf_path, &err) < 0 ||
	    run_lighttpd(lighttpd, conf_path, o.log_fd, &err) < 0)
		ret = cmd_fail("serve", &err);
	else
		ret = 0;
	if (rp_rmtree(dir, &err) < 0 && ret == 0)
		ret = cmd_fail("serve", &err);
	free(conf_path);
	free(lighttpd);
	return ret;
}
