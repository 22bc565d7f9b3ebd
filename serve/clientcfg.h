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
 *               etc/containers/registries.conf.d/50-regpress.conf              mirrors
 *   k3s, rke2   etc/rancher/{k3s,rke2}/registries.yaml, etc/rancher/{k3s,rke2}/regpress-ca.crt
 *   talos       talos/regpress-registries.yaml                                 machine-config patch
 * and README.regpress listing them.
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
	SERVE_CLIENT_ALL = (1 << 5) - 1,
};

struct serve_clientcfg_opts {
	const char *server;		   /* "host:port" (or "host", port 443) clients connect to */
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
/* Write the files for o->kinds. */
int serve_clientcfg(const struct serve_clientcfg_opts *o, struct rp_err *err);

#endif
