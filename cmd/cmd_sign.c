/* Keys and signing: `keygen`, and the signing half of `snapshot --sign`. Passphrases come from
 * the terminal (echo off, asked twice for a new key) or from a file for scripts, never from the
 * command line, where other users could read them in the process list. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "fsutil.h"
#include "release.h"
#include "sign.h"
#include "tree.h"

#define PASS_MAX 1024

static const char keygen_usage[] =
	"usage: regpress keygen [-n | --passphrase-file FILE] PREFIX\n"
	"\n"
	"Create an Ed25519 key pair in OpenBSD signify's format: PREFIX.sec (mode 0600) and\n"
	"PREFIX.pub. The secret key is protected with a passphrase as `signify -G` does\n"
	"(bcrypt_pbkdf), asked twice on the terminal. Existing files are never overwritten.\n"
	"Signatures made with it verify with `signify-openbsd -V -p PREFIX.pub -x SIG -m FILE`.\n"
	"\n"
	"  --passphrase-file FILE  read the passphrase from the first line of FILE (for scripts)\n"
	"  -n, --no-passphrase     write an unprotected secret key (as `signify -G -n`)\n"
	"  -h, --help              show this help\n";

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

/* Read a line from the terminal with echo off: 0, 1 when there is no terminal, -1 (err). A
 * signal while reading puts the terminal back before it takes effect. */
static int tty_line(const char *prompt, char *buf, size_t sz, struct rp_err *err)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP };
	struct sigaction sa, old[sizeof(sigs) / sizeof(sigs[0])];
	struct termios tio, saved;
	size_t n = 0, i;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY), rc = -1;

	if (fd < 0)
		return 1;
	if (tcgetattr(fd, &saved) < 0) {
		close(fd);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	got_signal = 0;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, &old[i]);
	tio = saved;
	tio.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	tcsetattr(fd, TCSANOW, &tio); /* typed-ahead input is kept: scripts may feed it */
	if (write(fd, prompt, strlen(prompt)) < 0)
		(void)0; /* the prompt is a courtesy */
	while (!got_signal) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || c == '\n' || c == '\r') {
			rc = r < 0 ? rp_errno(err, "cannot read the passphrase") : 0;
			break;
		}
		if (n + 1 < sz)
			buf[n++] = c;
	}
	buf[n] = '\0';
	tcsetattr(fd, TCSANOW, &saved);
	if (write(fd, "\n", 1) < 0)
		(void)0;
	close(fd);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &old[i], NULL);
	if (got_signal) {
		explicit_bzero(buf, sz);
		raise(got_signal);
		return rp_errf(err, "interrupted");
	}
	return rc;
}

/* The first line of file (without its line end). */
static int file_line(const char *file, char *buf, size_t sz, struct rp_err *err)
{
	char *text = NULL;
	size_t len;

	if (rp_read_file(file, PASS_MAX, &text, &len, err) < 0)
		return -1;
	len = strcspn(text, "\r\n");
	if (len >= sz) {
		free(text);
		return rp_errf(err, "'%s': the passphrase is too long", file);
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	explicit_bzero(text, strlen(text));
	free(text);
	return 0;
}

int cmd_passphrase(const char *file, int confirm, char *buf, size_t sz, struct rp_err *err)
{
	char again[PASS_MAX];
	int r;

	if (file) {
		if (file_line(file, buf, sz, err) < 0)
			return -1;
		return buf[0] ? 0 : rp_errf(err, "'%s': the passphrase is empty", file);
	}
	r = tty_line("passphrase: ", buf, sz, err);
	if (r != 0)
		return r;
	if (!buf[0])
		return rp_errf(err, "empty passphrase");
	if (!confirm)
		return 0;
	r = tty_line("confirm passphrase: ", again, sizeof(again), err);
	if (r == 0 && strcmp(buf, again))
		r = rp_errf(err, "the passphrases do not match");
	explicit_bzero(again, sizeof(again));
	return r;
}

int cmd_sign_tree(struct layout_tree *t, const char *seckey, const char *passfile,
		  uint64_t number, struct release *out, struct rp_err *err)
{
	char pass[PASS_MAX] = "";
	/* The date is shown, never compared; SOURCE_DATE_EPOCH makes a re-signing reproducible. */
	time_t when = getenv("SOURCE_DATE_EPOCH") ? (time_t)rp_epoch() : time(NULL);
	int r = sign_key_protected(seckey, err), rc;

	if (r < 0)
		return -1;
	if (r == 1 || passfile) {
		r = cmd_passphrase(passfile, 0, pass, sizeof(pass), err);
		if (r == 1)
			return rp_errf(err, "'%s' is passphrase-protected: give --passphrase-file FILE "
				       "or run on a terminal", seckey);
		if (r < 0)
			return -1;
	}
	rc = layout_sign(t, seckey, pass, number, when, out, err);
	explicit_bzero(pass, sizeof(pass));
	return rc;
}

void cmd_note_commit(const char *cmd, const char *tree, const struct layout_commit_result *res)
{
	char rel[48] = "";

	if (!res->signature_dropped)
		return;
	if (res->last_release)
		snprintf(rel, sizeof(rel), " of release %llu", (unsigned long long)res->last_release);
	fprintf(stderr, "regpress %s: '%s' changed, so its signature%s was removed; sign the new "
		"snapshot with 'regpress snapshot --sign'\n", cmd, tree, rel);
}

int cmd_keygen(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "no-passphrase", no_argument, NULL, 'n' },
		{ "passphrase-file", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rp_err err = { "" };
	const char *passfile = NULL;
	char *sec = NULL, *pub = NULL, pass[PASS_MAX] = "";
	int no_pass = 0, rc = 1, c, r;

	while ((c = getopt_long(argc, argv, ":nh", longopts, NULL)) != -1) {
		if (c == 'n')
			no_pass = 1;
		else if (c == 'P')
			passfile = optarg;
		else if (c == 'h')
			return fputs(keygen_usage, stdout), 0;
		else
			return cmd_bad_option("keygen", c, argv, longopts);
	}
	if (optind != argc - 1)
		return cmd_usage_error("keygen", "expected one PREFIX");
	if (no_pass && passfile)
		return cmd_usage_error("keygen", "-n and --passphrase-file exclude each other");
	if (!no_pass) {
		r = cmd_passphrase(passfile, 1, pass, sizeof(pass), &err);
		if (r == 1)
			return cmd_usage_error("keygen", "no terminal to ask for a passphrase: give "
					       "--passphrase-file FILE, or -n for an unprotected key");
		if (r < 0)
			goto out;
	}
	if (asprintf(&sec, "%s.sec", argv[optind]) < 0 ||
	    asprintf(&pub, "%s.pub", argv[optind]) < 0) {
		rp_errf(&err, "out of memory");
		goto out;
	}
	if (sign_keygen_pass(sec, pub, no_pass ? NULL : pass, &err) < 0)
		goto out;
	printf("secret key %s%s\npublic key %s\n", sec, no_pass ? " (no passphrase)" : "", pub);
	rc = 0;
out:
	explicit_bzero(pass, sizeof(pass));
	if (rc)
		cmd_fail("keygen", &err);
	free(sec);
	free(pub);
	return rc;
}
