/* regpress client-config: the files that make container clients trust and use a regpress server
 * (usage_text says which; serve/clientcfg.c writes them). With --tree and docker among the
 * kinds, a tree with zstd layers is warned about (one line on stderr): Docker 20.10 cannot pull
 * them. */
#include "cmd.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clientcfg.h"

#define CLIENT_CONFIG_OUT "regpress-client"

static const char usage_text[] =
	"usage: regpress client-config --server HOST:PORT --ca FILE [options]\n"
	"\n"
	"Write client trust and mirror configuration for a regpress server into a directory\n"
	"shaped like / to review and copy to the same paths on each client:\n"
	"  containerd  etc/containerd/certs.d/<server>/hosts.toml + ca.crt, and one directory\n"
	"              per mirrored registry sending its pulls to the server\n"
	"  docker      etc/docker/certs.d/<server>/ca.crt, etc/docker/daemon.json\n"
	"  podman      etc/containers/certs.d/<server>/ca.crt, registries.conf.d/50-regpress.conf\n"
	"              (mirrors, and the search list for short names: docker.io first)\n"
	"  k3s, rke2   etc/rancher/{k3s,rke2}/registries.yaml + regpress-ca.crt, config.yaml.d\n"
	"  talos       talos/regpress-registries.yaml (a machine-config patch)\n"
	"README.regpress there says what each client needs (restarts, config.toml). k3s, rke2\n"
	"and Talos get the air-gapped default: no fallback to the registries themselves.\n"
	"\n"
	"  --server HOST:PORT  the server as clients reach it (a name/IP of its certificate);\n"
	"                      https://HOST:PORT works too\n"
	"  --ca FILE           the CA certificate clients must trust (regpress certs: ca.crt)\n"
	"  --for KIND          containerd, docker, podman (cri-o), k3s, rke2, talos or all\n"
	"                      (default); repeatable\n"
	"  --tree TREE         mirror the registries the tree's images come from\n"
	"  --registry NAME     also mirror registry NAME (repeatable), e.g. registry.k8s.io\n"
	"  -o, --output DIR    output directory (default ./" CLIENT_CONFIG_OUT ")\n"
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

enum { OPT_SERVER = 256, OPT_CA, OPT_FOR, OPT_TREE, OPT_REGISTRY };

static const struct option cc_longopts[] = {
	{ "server", required_argument, NULL, OPT_SERVER },
	{ "ca", required_argument, NULL, OPT_CA },
	{ "for", required_argument, NULL, OPT_FOR },
	{ "tree", required_argument, NULL, OPT_TREE },
	{ "registry", required_argument, NULL, OPT_REGISTRY },
	{ "output", required_argument, NULL, 'o' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct cc_args {
	struct serve_clientcfg_opts o;
	const char *tree;
	char **regs; /* --registry, then the tree's: room for every argument at first */
	size_t nregs;
};

static int cc_option(int c, struct cc_args *a, char **argv)
{
	unsigned kind;

	switch (c) {
	case OPT_SERVER: a->o.server = optarg; break;
	case OPT_CA: a->o.ca = optarg; break;
	case OPT_FOR:
		if (!(kind = serve_clientcfg_kind(optarg)))
			return cmd_usage_error("client-config", "--for %s: expected containerd, "
					       "docker, podman, k3s, rke2, talos or all", optarg);
		a->o.kinds |= kind;
		break;
	case OPT_TREE: a->tree = optarg; break;
	case OPT_REGISTRY: a->regs[a->nregs++] = optarg; break;
	case 'o': a->o.out = optarg; break;
	case 'h': return fputs(usage_text, stdout), 0;
	default: return cmd_bad_option("client-config", c, argv, cc_longopts);
	}
	return CMD_GO;
}

static int parse_cc(int argc, char **argv, struct cc_args *a)
{
	struct rp_err err = { { 0 } };
	char name[300];
	int c, rc = CMD_GO;

	a->o.out = CLIENT_CONFIG_OUT;
	while (rc == CMD_GO && (c = getopt_long(argc, argv, ":o:h", cc_longopts, NULL)) != -1)
		rc = cc_option(c, a, argv);
	if (rc != CMD_GO)
		return rc;
	if (optind != argc)
		return cmd_usage_error("client-config", "unexpected argument %s", argv[optind]);
	if (!a->o.server || !a->o.ca)
		return cmd_usage_error("client-config", "--server and --ca are required");
	if (serve_clientcfg_server(a->o.server, name, sizeof(name), &err) < 0)
		return cmd_usage_error("client-config", "--%s", err.msg);
	return CMD_GO;
}

/* The registries the tree's images come from join those of --registry (found: the strings,
 * for the caller to free). */
static int add_tree_registries(struct cc_args *a, char ***found, size_t *nfound,
			       struct rp_err *err)
{
	char **more;
	size_t i;

	if (serve_clientcfg_registries(a->tree, found, nfound, err) < 0)
		return -1;
	if (!(more = realloc(a->regs, (a->nregs + *nfound + 1) * sizeof(*more))))
		return rp_errf(err, "out of memory");
	a->regs = more;
	for (i = 0; i < *nfound; i++)
		a->regs[a->nregs++] = (*found)[i];
	return 0;
}

int cmd_client_config(int argc, char **argv)
{
	struct cc_args a = { { 0 }, NULL, NULL, 0 };
	struct rp_err err = { { 0 } };
	char **found = NULL;
	size_t nfound = 0, i;
	int rc = CMD_GO;

	if (!(a.regs = calloc((size_t)argc + 1, sizeof(*a.regs)))) {
		rp_errf(&err, "out of memory");
		rc = cmd_fail("client-config", &err);
	}
	if (rc == CMD_GO)
		rc = parse_cc(argc, argv, &a);
	if (rc == CMD_GO && a.tree && add_tree_registries(&a, &found, &nfound, &err) < 0)
		rc = cmd_fail("client-config", &err);
	a.o.registries = (const char *const *)a.regs;
	a.o.nregistries = a.nregs;
	if (rc == CMD_GO && serve_clientcfg(&a.o, &err) < 0)
		rc = cmd_fail("client-config", &err);
	if (rc == CMD_GO) {
		printf("client configuration in %s (see %s/README.regpress)\n", a.o.out, a.o.out);
		rc = a.tree && (!a.o.kinds || (a.o.kinds & SERVE_CLIENT_DOCKER)) ? warn_zstd(a.tree)
										 : 0;
	}
	for (i = 0; i < nfound; i++)
		free(found[i]);
	free(found);
	free(a.regs);
	return rc;
}
