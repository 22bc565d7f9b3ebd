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
 *   --config-dir DIR    write lighttpd.conf, regpress.lua and errors/ into DIR and exit, for
 *                       running lighttpd yourself (lighttpd -D -f DIR/lighttpd.conf, systemd)
 *   --print-config      print the configuration and exit (its paths refer to --config-dir DIR,
 *                       or /etc/regpress)
 *   -h, --help          this help
 *
 * lighttpd is looked up as $REGPRESS_LIGHTTPD, then on PATH, then in /usr/sbin and /usr/local/sbin.
 */
#include "cmd.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
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
	"  --config-dir DIR    write the lighttpd configuration and script into DIR and exit\n"
	"  --print-config      print the lighttpd configuration and exit\n"
	"  -h, --help          show this help\n"
	"\n"
	"lighttpd (>= 1.4.69, mod_openssl, mod_magnet) is found as $REGPRESS_LIGHTTPD, on PATH,\n"
	"or in /usr/sbin.\n";

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

static int run_lighttpd(const char *lighttpd, const char *conf, struct rp_err *err)
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

int cmd_serve(int argc, char **argv)
{
	enum { OPT_CERT = 256, OPT_KEY, OPT_LISTEN, OPT_ACCESS_LOG, OPT_CONFIG_DIR, OPT_PRINT };
	static const struct option longopts[] = {
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "access-log", required_argument, NULL, OPT_ACCESS_LOG },
		{ "config-dir", required_argument, NULL, OPT_CONFIG_DIR },
		{ "print-config", no_argument, NULL, OPT_PRINT },
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
	if (!o.cert || !o.key)
		return cmd_usage_error("serve", "--cert and --key are required");
	if (o.listen) {
		struct serve_listen l;

		if (serve_parse_listen(o.listen, &l, &err) < 0)
			return cmd_usage_error("serve", "%s", err.msg);
	}
	if (serve_check(&o, &err) < 0)
		return cmd_fail("serve", &err);

	if (print || config_dir) {
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
	dir = mkdtemp(tmpl);
	if (!dir) {
		rp_errno(&err, "mkdtemp %s", tmpl);
		free(lighttpd);
		return cmd_fail("serve", &err);
	}
	if (serve_write_dir(&o, dir, &conf_path, &err) < 0 ||
	    run_lighttpd(lighttpd, conf_path, &err) < 0)
		ret = cmd_fail("serve", &err);
	else
		ret = 0;
	if (rp_rmtree(dir, &err) < 0 && ret == 0)
		ret = cmd_fail("serve", &err);
	free(conf_path);
	free(lighttpd);
	return ret;
}
