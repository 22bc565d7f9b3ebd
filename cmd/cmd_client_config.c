/* regpress client-config: the files that make container clients trust and use a regpress server.
 *
 * usage: regpress client-config --server HOST:PORT --ca FILE [options]
 *        (--server https://HOST:PORT works too)
 *
 * Write, under an output directory shaped like / (review it, then copy the files to the same
 * paths on each client), the standard configuration of each client:
 *   containerd  etc/containerd/certs.d/<server>/hosts.toml + ca.crt, and one directory per
 *               mirrored registry (docker.io, registry.k8s.io, ...) sending its pulls to the server
 *   docker      etc/docker/certs.d/<server>/ca.crt, etc/docker/daemon.json (registry-mirrors)
 *   podman      etc/containers/certs.d/<server>/ca.crt, registries.conf.d/50-regpress.conf
 *               (mirrors, and the search list for short names: docker.io first)
 *   k3s         etc/rancher/k3s/registries.yaml + regpress-ca.crt, config.yaml.d/50-regpress.yaml
 *   rke2        the same under etc/rancher/rke2
 *   talos       talos/regpress-registries.yaml (machine-config patch)
 * and README.regpress listing them. The registries to mirror come from --tree (the registries
 * its images were named after) and --registry. k3s, rke2 and Talos get the air-gapped default:
 * no fallback to the registries themselves. With --tree and docker among the kinds, a tree with
 * zstd layers is warned about (one line on stderr): Docker 20.10 cannot pull them.
 *
 *   --server HOST:PORT  the server as clients reach it (a name or IP in its certificate), or
 *                       https://HOST:PORT
 *   --ca FILE           the CA certificate (regpress certs: ca.crt)
 *   --for KIND          containerd, docker, podman (cri-o), k3s, rke2, talos or all (default);
 *                       repeatable
 *   --tree TREE         mirror every registry the tree's repositories come from
 *   --registry NAME     also mirror NAME (repeatable), e.g. registry.k8s.io
 *   -o, --output DIR    output directory (default ./regpress-client)
 *   -h, --help          this help
 */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientcfg.h"

static const char usage_text[] =
	"usage: regpress client-config --server HOST:PORT --ca FILE [options]\n"
	"\n"
	"Write client trust and mirror configuration for a regpress server into a directory\n"
	"shaped like / (etc/containerd/certs.d/..., etc/docker/..., ...) to review and copy;\n"
	"README.regpress there says what each client needs (restarts, config.toml).\n"
	"\n"
	"  --server HOST:PORT  the server as clients reach it (a name/IP of its certificate);\n"
	"                      https://HOST:PORT works too\n"
	"  --ca FILE           the CA certificate clients must trust (regpress certs: ca.crt)\n"
	"  --for KIND          containerd, docker, podman, k3s, rke2, talos or all (default);\n"
	"                      repeatable\n"
	"  --tree TREE         mirror the registries the tree's images come from\n"
	"  --registry NAME     also mirror registry NAME (repeatable)\n"
	"  -o, --output DIR    output directory (default ./regpress-client)\n"
	"  -h, --help          show this help\n";

/* Docker 20.10 (Debian 12's docker.io) fails on zstd layers with "archive/tar: invalid tar
 * header" after downloading them: say so before anyone copies the files. */
static int warn_zstd(const char *tree)
{
	struct rp_err err = { { 0 } };
	char *repo = NULL;

	if (serve_clientcfg_zstd_repo(tree, &repo, &err) < 0)
		return cmd_fail("client-config", &err);
	if (repo)
		fprintf(stderr, "regpress client-config: warning: %s has zstd layers (%s, maybe "
				"more), which Docker 20.10 cannot pull; build with --compression gzip "
				"for Docker\n", tree, repo);
	free(repo);
	return 0;
}

int cmd_client_config(int argc, char **argv)
{
	enum { OPT_SERVER = 256, OPT_CA, OPT_FOR, OPT_TREE, OPT_REGISTRY };
	static const struct option longopts[] = {
		{ "server", required_argument, NULL, OPT_SERVER },
		{ "ca", required_argument, NULL, OPT_CA },
		{ "for", required_argument, NULL, OPT_FOR },
		{ "tree", required_argument, NULL, OPT_TREE },
		{ "registry", required_argument, NULL, OPT_REGISTRY },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_clientcfg_opts o = { 0 };
	struct rp_err err = { { 0 } };
	const char *tree = NULL;
	char **regs = NULL, **found = NULL, name[300];
	size_t nregs = 0, nfound = 0, i;
	unsigned kind;
	int c, ret = 1;

	regs = calloc((size_t)argc + 1, sizeof(*regs));
	if (!regs) {
		rp_errf(&err, "out of memory");
		return cmd_fail("client-config", &err);
	}
	o.out = "regpress-client";
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SERVER:
			o.server = optarg;
			break;
		case OPT_CA:
			o.ca = optarg;
			break;
		case OPT_FOR:
			kind = serve_clientcfg_kind(optarg);
			if (!kind) {
				ret = cmd_usage_error("client-config", "--for %s: expected containerd, "
						      "docker, podman, k3s, rke2, talos or all", optarg);
				goto out;
			}
			o.kinds |= kind;
			break;
		case OPT_TREE:
			tree = optarg;
			break;
		case OPT_REGISTRY:
			regs[nregs++] = optarg;
			break;
		case 'o':
			o.out = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			ret = 0;
			goto out;
		default:
			ret = cmd_usage_error("client-config", "bad option");
			goto out;
		}
	}
	if (optind != argc) {
		ret = cmd_usage_error("client-config", "unexpected argument %s", argv[optind]);
		goto out;
	}
	if (!o.server || !o.ca) {
		ret = cmd_usage_error("client-config", "--server and --ca are required");
		goto out;
	}
	if (serve_clientcfg_server(o.server, name, sizeof(name), &err) < 0) {
		ret = cmd_usage_error("client-config", "--%s", err.msg);
		goto out;
	}
	if (tree) {
		char **more;

		if (serve_clientcfg_registries(tree, &found, &nfound, &err) < 0) {
			ret = cmd_fail("client-config", &err);
			goto out;
		}
		more = realloc(regs, (nregs + nfound + 1) * sizeof(*regs));
		if (!more) {
			rp_errf(&err, "out of memory");
			ret = cmd_fail("client-config", &err);
			goto out;
		}
		regs = more;
		for (i = 0; i < nfound; i++)
			regs[nregs++] = found[i];
	}
	o.registries = (const char *const *)regs;
	o.nregistries = nregs;
	ret = serve_clientcfg(&o, &err) < 0 ? cmd_fail("client-config", &err) : 0;
	if (ret == 0 && tree && (!o.kinds || (o.kinds & SERVE_CLIENT_DOCKER)))
		ret = warn_zstd(tree);
out:
	for (i = 0; i < nfound; i++)
		free(found[i]);
	free(found);
	free(regs);
	return ret;
}
