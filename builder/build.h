/* The build pipeline: inputs in, tree transaction out. Reads each input's index, lets the input's
 * format describe its images, streams the needed layers once (hash the raw bytes for the diff_id,
 * compress, hash the result into the tree), checks every layer against the config's diff_ids,
 * writes configs and synthesised manifests, and records repositories and tags in the tree. */
#ifndef RP_BUILD_H
#define RP_BUILD_H

#include <jansson.h>

#include "compress.h"
#include "err.h"
#include "tree.h"

struct build_opts {
	enum rp_compression compression;
	int oci;	 /* OCI manifests instead of Docker schema2 */
	int threads;	 /* >= 1 */
	const char *tag; /* --tag: names the only image of each input */
};

struct builder;

int builder_new(struct layout_tree *tree, const struct build_opts *opts, struct builder **out,
		struct rp_err *err);
/* Add one input file; display is its name for messages (the user's argument). */
int builder_add(struct builder *b, const char *path, const char *display, struct rp_err *err);
/* What was built: [{"ref":"repo:tag","digest":"sha256:..","mediaType":..,"input":..}], by ref. */
json_t *builder_report(struct builder *b);
void builder_free(struct builder *b);

#endif
