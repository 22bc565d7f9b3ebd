/* Client configuration for a served tree: the standard files that make docker, containerd,
 * podman, k3s/rke2 and Talos trust the server's CA and pull through it, directly and as a mirror
 * of the registries the tree's images come from.
 *
 * Written under an output directory shaped like / (the admin reviews it, then copies it):
 *   containerd  etc/containerd/certs.d/<server>/{hosts.toml,ca.crt}            direct pulls
 *               etc/containerd/certs.d/<registry>/{hosts.toml,ca.crt}          mirror per registry
 *   docker      etc/docker/certs.d/<server>/ca.crt, etc/docker/daemon.json     (registry-mirrors:
 *               docker.io only; merge it into an existing daemon.json)
 *   podman      etc/containers/certs.d/<server>/ca.crt,
 *               etc/containers/registries.conf.d/50-regpress.conf              mirrors, short names
 *   k3s, rke2   etc/rancher/<k3s|rke2>/registries.yaml, .../regpress-ca.crt,
 *               etc/rancher/<k3s|rke2>/config.yaml.d/50-regpress.yaml          no upstream fallback
 *   talos       talos/regpress-registries.yaml                                 machine-config patch
 * and README.regpress listing them. What an air gap needs is the default: k3s, rke2 and Talos
 * never fall back to the upstream registries (there are none to reach); README.regpress says what
 * to remove for a connected site.
 */
#ifndef RP_SERVE_CLIENTCFG_H
#define RP_SERVE_CLIENTCFG_H

#include <stddef.h>

#include "err.h"

enum {
	SERVE_CLIENT_CONTAINERD = 1 << 0,
	SERVE_CLIENT_DOCKER = 1 << 1,
	SERVE_CLIENT_PODMAN = 1 << 2,
	SERVE_CLIENT_K3S = 1 << 3,
	SERVE_CLIENT_TALOS = 1 << 4,
	SERVE_CLIENT_RKE2 = 1 << 5,
	SERVE_CLIENT_ALL = (1 << 6) - 1,
};

struct serve_clientcfg_opts {
	const char *server;		   /* "host:port", "host" (port 443) or https://host:port */
	const char *ca;			   /* PEM CA certificate the server's certificate chains to */
	const char *out;		   /* output directory (created) */
	const char *const *registries;	   /* registries to mirror (docker.io, registry.k8s.io...) */
	size_t nregistries;
	unsigned kinds;			   /* SERVE_CLIENT_* bits; 0: all */
};

/* One SERVE_CLIENT_* bit by name (containerd, docker, podman, k3s, rke2, talos, all); 0 if none. */
unsigned serve_clientcfg_kind(const char *name);
/* The registries a tree's images come from, for mirror entries: docker.io for names without a
 * registry host (library/..., user/...), the host (with port) of the others. Sorted, unique,
 * malloc'd array of malloc'd strings. */
int serve_clientcfg_registries(const char *tree, char ***out, size_t *n, struct rp_err *err);
/* Check a "host[:port]" server or registry name (what may go into the files unquoted). */
int serve_clientcfg_host_valid(const char *s);
/* The server as clients name it, from "host[:port]" or "https://host[:port][/]": out gets
 * host[:port], without ":443" (a name without port means 443 to every client). -1 with the reason
 * in err for anything else (http:// included: regpress serves HTTPS only). */
int serve_clientcfg_server(const char *arg, char *out, size_t outsz, struct rp_err *err);
/* The first repository of the tree (by its snapshot) with a zstd-compressed layer (a media type
 * ending in +zstd), which Docker 20.10 cannot pull: *repo is malloc'd, or NULL when none has. */
int serve_clientcfg_zstd_repo(const char *tree, char **repo, struct rp_err *err);
/* Write the files for o->kinds. */
int serve_clientcfg(const struct serve_clientcfg_opts *o, struct rp_err *err);

#endif
