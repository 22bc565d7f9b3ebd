/* regpress serve: run lighttpd over a tree (usage_text says what it does and takes).
 *
 * lighttpd's connection and fd limits come from the open files limit (RLIMIT_NOFILE): regpress
 * raises it first (raise_nofile), and serve.c's serve_limits derives the rest from that. Started
 * as root, lighttpd binds the port and reads the keys as root, then switches to the serving user
 * (choose_user picks and checks it). */
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
	"regpress writes lighttpd's configuration into a temporary directory, runs lighttpd in\n"
	"the foreground until SIGINT/SIGTERM (passed on to it, as is SIGHUP), removes the\n"
	"directory and exits with lighttpd's status.\n"
	"\n"
	"  --cert FILE         PEM certificate (with chain); host name/IP in subjectAltName\n"
	"  --key FILE          PEM private key, unencrypted\n"
	"  --listen ADDR:PORT  where to listen (default " SERVE_DEFAULT_LISTEN "); [::1]:5000 for IPv6,\n"
	"                      :PORT or PORT for all IPv4 interfaces\n"
	"  --access-log FILE   append an access log to FILE ('-': standard error)\n"
	"  --htpasswd FILE     require HTTP basic auth against FILE (user:hash lines, e.g. from\n"
	"                      'openssl passwd -5' or 'htpasswd -B'); read on every request\n"
	"  --client-ca FILE    require client certificates issued by FILE's CAs (mutual TLS)\n"
	"  --user NAME         when started as root, serve as NAME after binding the port and\n"
	"                      reading the keys (default www-data, else nobody; 'root' keeps\n"
	"                      root). NAME must be able to read the tree and the htpasswd file;\n"
	"                      if the default user cannot, lighttpd stays root with a warning.\n"
	"                      A missing --access-log file is created for NAME\n"
	"  --group NAME        group for --user (default: the user's)\n"
	"  --workers N         lighttpd worker processes, 1 to " CMD_STR(SERVE_MAX_WORKERS) " (default: one per CPU,\n"
	"                      at most " CMD_STR(SERVE_DEFAULT_MAX_WORKERS) "; TLS is CPU-bound and a worker uses one core)\n"
	"  --config-dir DIR    write the lighttpd configuration and script into DIR and exit\n"
	"                      (for lighttpd -D -f DIR/lighttpd.conf, or a systemd unit)\n"
	"  --print-config      print the lighttpd configuration and exit (its paths refer to\n"
	"                      --config-dir DIR, or " SERVE_DEFAULT_DIR ")\n"
	"  -h, --help          show this help\n"
	"\n"
	"lighttpd (>= 1.4.69, mod_openssl, mod_magnet) is found as $REGPRESS_LIGHTTPD, on PATH,\n"
	"or in /usr/sbin, /usr/local/sbin, /sbin. Its connection limits follow from the open\n"
	"files limit (ulimit -Hn, LimitNOFILE=): at most " CMD_STR(SERVE_MAX_FDS) " fds and a quarter as many\n"
	"connections per worker.\n";

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

enum { OPT_CERT = 256, OPT_KEY, OPT_LISTEN, OPT_ACCESS_LOG, OPT_CONFIG_DIR, OPT_PRINT,
       OPT_HTPASSWD, OPT_CLIENT_CA, OPT_USER, OPT_GROUP, OPT_WORKERS };

static const struct option serve_longopts[] = {
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

struct serve_args {
	struct serve_opts o;
	const char *config_dir;
	int print;
};

static int serve_option(int c, struct serve_args *a, char **argv)
{
	switch (c) {
	case OPT_CERT: a->o.cert = optarg; break;
	case OPT_KEY: a->o.key = optarg; break;
	case OPT_LISTEN: a->o.listen = optarg; break;
	case OPT_ACCESS_LOG: a->o.access_log = optarg; break;
	case OPT_CONFIG_DIR: a->config_dir = optarg; break;
	case OPT_PRINT: a->print = 1; break;
	case OPT_HTPASSWD: a->o.htpasswd = optarg; break;
	case OPT_CLIENT_CA: a->o.client_ca = optarg; break;
	case OPT_USER: a->o.user = optarg; break;
	case OPT_GROUP: a->o.group = optarg; break;
	case OPT_WORKERS:
		if (cmd_parse_int(optarg, 1, SERVE_MAX_WORKERS, &a->o.workers) < 0)
			return cmd_usage_error("serve", "--workers wants 1 to %d", SERVE_MAX_WORKERS);
		break;
	case 'h': return fputs(usage_text, stdout), 0;
	default: return cmd_bad_option("serve", c, argv, serve_longopts);
	}
	return CMD_GO;
}

/* The options, TREE, and what they say together; the default number of workers. */
static int parse_serve(int argc, char **argv, struct serve_args *a)
{
	struct rp_err err = { { 0 } };
	struct serve_listen l;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int c, rc = CMD_GO;

	memset(a, 0, sizeof(*a));
	while (rc == CMD_GO && (c = getopt_long(argc, argv, ":h", serve_longopts, NULL)) != -1)
		rc = serve_option(c, a, argv);
	if (rc != CMD_GO)
		return rc;
	if (optind != argc - 1)
		return cmd_usage_error("serve", optind < argc ? "exactly one TREE expected"
							      : "no TREE given");
	a->o.tree = argv[optind];
	if (!a->o.workers)
		a->o.workers = cpus < 1 ? 1 : cpus > SERVE_DEFAULT_MAX_WORKERS
						      ? SERVE_DEFAULT_MAX_WORKERS : (int)cpus;
	if (!a->o.cert || !a->o.key)
		return cmd_usage_error("serve", "--cert and --key are required");
	if (a->o.listen && serve_parse_listen(a->o.listen, &l, &err) < 0)
		return cmd_usage_error("serve", "%s", err.msg);
	if (a->o.group && !a->o.user)
		return cmd_usage_error("serve", "--group needs --user");
	return CMD_GO;
}

/* --print-config and --config-dir: a configuration for later, written as asked, for whoever runs
 * lighttpd. */
static int write_config(struct serve_args *a, struct rp_err *err)
{
	char *conf = NULL;

	if (a->o.user && !strcmp(a->o.user, "root")) {
		a->o.user = NULL;
		a->o.group = NULL;
	}
	if (a->config_dir && serve_write_dir(&a->o, a->config_dir, NULL, err) < 0)
		return -1;
	if (!a->print)
		return 0;
	if (serve_config(&a->o, a->config_dir ? a->config_dir : SERVE_DEFAULT_DIR, &conf, err) < 0)
		return -1;
	fputs(conf, stdout);
	free(conf);
	return 0;
}

/* A runtime directory lighttpd can read after switching user (it reads the script and the
 * error files per request); *dir is malloc'd. */
static int make_runtime_dir(const struct serve_opts *o, char **dir, struct rp_err *err)
{
	const char *tmp = getenv("TMPDIR");
	struct rp_err ignored;

	if (asprintf(dir, "%s/regpress-serve.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		*dir = NULL;
		return rp_errf(err, "out of memory");
	}
	if (!mkdtemp(*dir))
		return rp_errno(err, "mkdtemp %s", *dir);
	if (!o->user)
		return 0;
	if (chmod(*dir, 0755) < 0)
		rp_errno(err, "chmod %s", *dir);
	else if (serve_check_access(*dir, serve_uid, serve_gid, err) < 0)
		rp_err_prefix(err, "runtime directory (set TMPDIR) for user %s", o->user);
	else
		return 0;
	rp_rmtree(*dir, &ignored);
	return -1;
}

/* The one line a user starting serve wants: where to point clients, and as whom lighttpd runs. */
static void say_serving(const struct serve_opts *o)
{
	struct serve_listen l;
	struct rp_err err = { { 0 } };
	const struct passwd *pw = o->user ? NULL : getpwuid(geteuid());
	char uid[32];

	if (serve_parse_listen(o->listen ? o->listen : SERVE_DEFAULT_LISTEN, &l, &err) < 0)
		return;
	snprintf(uid, sizeof(uid), "uid %u", (unsigned)geteuid());
	fprintf(stderr, "regpress serve: serving %s at https://%s%s%s:%u/v2/ (lighttpd as %s)\n",
		o->tree, l.ipv6 ? "[" : "", l.host, l.ipv6 ? "]" : "", l.port,
		o->user ? o->user : pw ? pw->pw_name : uid);
}

/* Run lighttpd in the foreground over a fresh runtime directory, removed afterwards. */
static int run_serve(struct serve_opts *o, struct rp_err *err)
{
	char *lighttpd = find_lighttpd(), *dir = NULL, *conf_path = NULL;
	struct rp_err ignored;
	int rc = -1;

	if (!lighttpd)
		return rp_errf(err, "lighttpd not found on PATH or in /usr/sbin (install lighttpd, "
			       "lighttpd-mod-openssl and lighttpd-modules-lua)");
	if (choose_user(o, o->user != NULL, err) < 0 || make_runtime_dir(o, &dir, err) < 0)
		goto out;
	if (o->user && o->access_log && !strcmp(o->access_log, "-"))
		o->log_fd = SERVE_LOG_FD;
	if (serve_write_dir(o, dir, &conf_path, err) == 0) {
		say_serving(o);
		rc = run_lighttpd(lighttpd, conf_path, o->log_fd, err);
	}
	/* A failure to clean up is reported only when nothing failed before it. */
	if (rp_rmtree(dir, rc == 0 ? err : &ignored) < 0)
		rc = -1;
out:
	free(conf_path);
	free(dir);
	free(lighttpd);
	return rc;
}

int cmd_serve(int argc, char **argv)
{
	struct serve_args a;
	struct rp_err err = { { 0 } };
	int rc = parse_serve(argc, argv, &a);

	if (rc != CMD_GO)
		return rc;
	if (serve_check(&a.o, &err) < 0)
		return cmd_fail("serve", &err);
	/* Before the configuration is written: its limits follow from the result (also for
	 * --print-config, which then shows what a run here would use). */
	raise_nofile();
	if (a.print || a.config_dir)
		rc = write_config(&a, &err);
	else
		rc = run_serve(&a.o, &err);
	return rc < 0 ? cmd_fail("serve", &err) : 0;
}
