/* The build pipeline: inputs in, tree transaction out.
 *
 * For each input: read its index, let its format describe the images, then stream the entries
 * that are needed once, in archive order: layers to rebuild are hashed raw (the diff_id) and
 * compressed into the tree; registry blobs to preserve are copied and checked against their digest.
 * Afterwards configs and manifests are written (synthesised for rebuilt images, byte for byte for
 * preserved ones) and every name becomes a tag candidate. builder_finish() settles the candidates:
 * one digest per name, or an error naming both inputs, or with --merge-platforms an OCI index. */
#ifndef RP_BUILD_H
#define RP_BUILD_H

#include <jansson.h>

#include "compress.h"
#include "err.h"
#include "tree.h"

struct build_opts {
	enum rp_compression compression;
	int oci;		/* OCI manifests instead of Docker schema2 for rebuilt images */
	int threads;		/* >= 1 */
	const char *tag;	/* --tag: names the only image of each input */
	const char *prefix;	/* --prefix: every repository goes under PREFIX/ */
	int strip_registry;	/* --strip-registry: drop the registry host from names */
	int merge_platforms;	/* --merge-platforms: same name, different platforms -> index */
	int prune_missing;	/* --prune-missing: drop index entries the input lacks */
	const char *untagged_repo; /* --untagged-repo: keep unnamed images by digest there */
	/* Input bytes read so far and in all, for the current input; may be NULL. */
	void (*progress)(void *ctx, const char *input, uint64_t done, uint64_t total);
	void *progress_ctx;
};

struct builder;

int builder_new(struct layout_tree *tree, const struct build_opts *opts, struct builder **out,
		struct rp_err *err);
/* Add one input file or OCI layout directory; display is its name for messages. */
int builder_add(struct builder *b, const char *path, const char *display, struct rp_err *err);
/* Settle tags (see above) into the tree. Call once, after the last builder_add. */
int builder_finish(struct builder *b, struct rp_err *err);
/* What was built: {"images":[{"ref","digest","mediaType","inputs":[..]}], "untagged":[..],
 * "missing":[..]}, sorted. */
json_t *builder_report(struct builder *b);
void builder_free(struct builder *b);

#endif
