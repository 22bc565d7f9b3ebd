/* Everything in a tree besides the blobs is derived from the snapshot: the registry/ view, the
 * OCI index.json and oci-layout. The functions here produce each derived file through a sink, so
 * the same code writes a tree (commit, whole or one repository at a time) and checks one
 * (verify). Paths given to the sink are relative to registry/ ("repos/library/alpine/_tags.json",
 * "snapshot", "catalog.json"). */
#ifndef RP_VIEW_H
#define RP_VIEW_H

#include <stddef.h>

#include <jansson.h>

#include "digest.h"
#include "err.h"
#include "snapshot.h"

struct strmap;

struct view_sink {
	/* A derived file of registry/. */
	int (*file)(void *ctx, const char *rel, const void *buf, size_t len, struct rp_err *err);
	/* A derived blob (the OCI twin of a Docker manifest): store it or note it; set hex. */
	int (*blob)(void *ctx, const void *buf, size_t len, char hex[RP_HEX_LEN + 1],
		    struct rp_err *err);
	/* Read a blob the snapshot names (a manifest, at most LAYOUT_MANIFEST_MAX). */
	int (*read)(void *ctx, const char *hex, char **buf, size_t *len, struct rp_err *err);
	void *ctx;
};

/* A snapshot's records by repository: indexes into the snapshot's records, in its order. */
struct view_repo {
	const char *name;
	size_t *recs;
	size_t n, cap;
};
struct view_repos {
	struct view_repo *v; /* sorted by name (byte order) */
	size_t n;
	struct strmap *by_name;
};

int view_repos_make(const struct snapshot *s, struct view_repos *out, struct rp_err *err);
void view_repos_free(struct view_repos *r);
const struct view_repo *view_repos_find(const struct view_repos *r, const char *name);

/* The directory of repo below registry/ ("repos/localhost+5000/app"). */
void view_repo_dir(const char *repo, char *out, size_t outsz);
/* The files of one repository: tag and digest pointers, blob markers, referrers, _tags.json. */
int view_emit_repo(const struct snapshot *s, const struct view_repo *repo,
		   const struct view_sink *sink, struct rp_err *err);
/* registry/snapshot (text) and registry/catalog.json. */
int view_emit_top(const char *text, size_t len, const struct view_repos *repos,
		  const struct view_sink *sink, struct rp_err *err);
/* Every file of registry/. */
int view_emit_all(const char *text, size_t len, const struct snapshot *s,
		  const struct view_sink *sink, struct rp_err *err);

/* index.json for the snapshot (malloc'd in *out). A tag found in reuse ("repo:tag" -> descriptor,
 * from an earlier index.json whose tag named the same manifest) keeps that descriptor; for the
 * others the descriptor is made, and a Docker manifest's OCI twin goes through sink->blob; made
 * (when not NULL) gets the digest of every descriptor made. */
int view_index_json(const struct snapshot *s, json_t *reuse, const struct view_sink *sink,
		    struct strmap *made, char **out, size_t *len, struct rp_err *err);

#endif
