/* What a tree holds, described for people: every tag with its kind, platforms, size and creation
 * date (`regpress ls`, and the catalog page), and one manifest in full (`regpress inspect`).
 *
 * Everything is read through the tree handle (tree.h), and nothing is written, so a tree on
 * read-only media (a mounted disc) is described like any other. Nothing here prints: the tag list is structures (for callers
 * that lay out a table or a page) with describe_tag_json() for machines; a manifest in full is a
 * jansson object (its fields are listed at describe_inspect and in the README, `regpress
 * inspect`).
 *
 * Cost: each manifest and config the described tags reach is read and parsed once, whatever the
 * number of repositories and tags that name it; lookups in the snapshot are binary searches (its
 * records are sorted), so describing n tags is O(n log n) with no scan per tag. Inspecting a
 * manifest also reads every manifest of its repository, to find its referrers. */
#ifndef RP_DESCRIBE_H
#define RP_DESCRIBE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "digest.h"
#include "err.h"
#include "names.h"
#include "snapshot.h"
#include "tree.h"

/* The largest config read: real ones are kilobytes, a hostile one may not take the memory. */
#define DESCRIBE_CONFIG_MAX (16u << 20)

/* A reference as a user writes it: "alpine", "alpine:3.19", "registry.k8s.io/pause:3.9",
 * "library/base@sha256:<hex>", or a repository exactly as the tree names it ("pause" in a tree
 * built with --strip-registry). */
struct describe_ref {
	char text[RP_REPO_MAX + RP_TAG_MAX + 96]; /* as written, for messages */
	char repo[RP_REPO_MAX + 1];  /* normalised as docker reads it: "library/alpine" */
	char exact[RP_REPO_MAX + 1]; /* as written, when that is another repository name, or "" */
	char tag[RP_TAG_MAX + 1];    /* "" when none was written */
	char hex[RP_HEX_LEN + 1];    /* "" unless REPO@sha256:HEX */
};

/* -1 (err says why) when s is not a reference: a usage error for a command. */
int describe_ref_parse(const char *s, struct describe_ref *ref, struct rp_err *err);

enum describe_kind {
	DESCRIBE_UNKNOWN,  /* only a snapshot was described: the manifest was not read */
	DESCRIBE_IMAGE,	   /* an image manifest with an image config */
	DESCRIBE_INDEX,	   /* an image index (manifest list) */
	DESCRIBE_ARTIFACT, /* artifactType, a subject, or a config that is not an image config */
};
/* "image", "index", "artifact"; NULL for DESCRIBE_UNKNOWN. */
const char *describe_kind_name(enum describe_kind kind);

struct describe_platform {
	const char *name; /* "os/arch[/variant]" as the index or the config says */
	const char *hex;  /* the manifest of that platform */
	int missing;	  /* the repository records it as missing: the input did not carry it */
};

/* One tag. Strings point into the snapshot or into the list that holds the tag. */
struct describe_tag {
	const char *repo, *tag;
	const char *hex;	/* the manifest the tag names */
	const char *media_type; /* from the snapshot */
	uint64_t manifest_size;
	/* The rest is read from the blobs; unknown (described 0) when only a snapshot was given. */
	int described;
	enum describe_kind kind;
	/* Artifacts: artifactType, else the config's media type. */
	const char *artifact_type;
	/* An index's children in its order (attestations left out), or the image's own; none for
	 * an artifact. */
	struct describe_platform *platforms;
	size_t nplatforms;
	/* The hex of every child recorded as missing, attestations included. */
	const char **missing;
	size_t nmissing;
	/* Manifests, configs and layers, each blob once; of an index, the children it has. */
	uint64_t size;
	/* As the config says; an index: its newest child's; an artifact: its annotation
	 * org.opencontainers.image.created. NULL if none. */
	const char *created;
	int64_t created_unix; /* seconds since the epoch, when created_ok */
	int created_ok;	      /* created is an RFC 3339 time */
};

struct describe_memo;

struct describe_list {
	struct describe_tag *v; /* sorted by repository, then tag (byte order) */
	size_t n;
	struct describe_memo *memo; /* what the tags point into */
};

/* The tags of the tree (described), or only of a snapshot (a volume's, a saved file's: repository,
 * tag, digest, media type and size of the manifest; described 0; name is the snapshot's, for
 * messages). With nonly > 0, only the tags
 * that match one of only[] (its repository, exact or normalised; its tag or digest if given), and
 * each of them must match some tag: otherwise -1 naming it. */
int describe_tree(const struct layout_tree *t, const struct describe_ref *only, size_t nonly,
		  struct describe_list *out, struct rp_err *err);
int describe_snapshot(const struct snapshot *s, const char *name, const struct describe_ref *only,
		      size_t nonly, struct describe_list *out, struct rp_err *err);
void describe_list_free(struct describe_list *l);

/* Every field of a tag, in full: {"repository","tag","digest","mediaType","manifestSize","kind",
 * "artifactType","platforms":[names],"missing":[digests],"size","created"}; what was not
 * described is null. NULL when out of memory. */
json_t *describe_tag_json(const struct describe_tag *d);

/* The manifest ref names in t: its repository (the tree's own name for it) and digest. A ref
 * without tag or digest means :latest. -1 naming ref when the tree has no such tag or manifest,
 * or records the manifest as missing. */
int describe_resolve(const struct layout_tree *t, const struct describe_ref *ref,
		     char repo[RP_REPO_MAX + 1], char hex[RP_HEX_LEN + 1], struct rp_err *err);

/* One manifest of repo in full:
 *   {"repository", "digest", "mediaType", "size" (of the manifest), "kind", "artifactType",
 *    "tags", "totalSize", "created", "subject"?, "annotations"?,
 *    "platforms": [{"platform", "digest", "mediaType", "size", "missing", "attestation"?,
 *                   "kind", "artifactType"?, "config", "layers", "referrers"}],
 *    "referrers": [{"mediaType", "digest", "size", "artifactType"?, "annotations"?}]}
 * "platforms" is an index's children in its order (present or recorded as missing: then only
 * the descriptor's fields), or the manifest itself; "config" of an image config is {"digest",
 * "mediaType", "size", "os", "architecture", "variant", "created", "entrypoint", "cmd", "env"
 * (how many variables), "labels" (in key order), "workingDir", "user"}, of any other config its
 * descriptor; "referrers" are the repository's manifests whose subject it is, as the referrers
 * API lists them. Fields the input lacks are null. */
int describe_inspect(const struct layout_tree *t, const char *repo, const char *hex, json_t **out,
		     struct rp_err *err);

/* The manifest's exact bytes (malloc'd, NUL-terminated after len). */
int describe_manifest_bytes(const struct layout_tree *t, const char *hex, char **buf, size_t *len,
			    struct rp_err *err);

#endif
