/* The build pipeline's insides, shared by its files (build.h has the API): build.c (inputs,
 * names, report), stream.c (the streaming passes), synth.c (manifests for rebuilt images),
 * graph.c (preserved manifest graphs), tags.c (settling tags). Internal to builder/. */
#ifndef RP_BUILD_INT_H
#define RP_BUILD_INT_H

#include <jansson.h>
#include <stdint.h>

#include "build.h"
#include "digest.h"
#include "names.h"
#include "source.h"
#include "tarball.h"

#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define INDEX_DEPTH_MAX 16	/* indexes of indexes: real ones nest two or three deep */

struct builder {
	struct layout_tree *tree;
	struct build_opts opts;
	/* The compression, resolved once: its facts, the media type of the layers it makes, and
	 * the build cache's namespace for its results. */
	const struct rp_codec *codec;
	const char *layer_mt;
	char cache_ns[128];
	json_t *cands;	  /* "repo:tag" -> [{"digest","size","mediaType","platform","input"}] */
	json_t *untagged; /* ["repo@sha256:..."] */
	json_t *missing;  /* ["repo@sha256:... (in index sha256:...)"] */
	json_t *stripped; /* repo after --strip-registry -> repo before */
	json_t *report;	  /* "repo:tag" -> {"digest","mediaType","inputs"} after finish */
};

/* What happens to one entry of the input in the streaming pass. */
/* ACT_VERIFY: the tree already holds what compressing this layer gives (build cache): only hash
 * the input to check its diff_id. */
enum entry_action { ACT_NONE, ACT_COMPRESS, ACT_COPY, ACT_VERIFY };

struct entry_result {
	enum entry_action action;
	int done;
	int worker;		   /* the parallel pass's thread that streams it, or -1 */
	char raw[RP_HEX_LEN + 1];  /* sha256 of the bytes in the input */
	char blob[RP_HEX_LEN + 1]; /* sha256 of what was stored */
	uint64_t size;		   /* size of what was stored */
};

/* One manifest or index of a preserved graph (or a hole in it). */
enum node_kind { NODE_IMAGE, NODE_INDEX, NODE_MISSING };

struct node {
	enum node_kind kind;
	struct src_desc in;	 /* as the input names it */
	const struct ar_entry *e;
	json_t *json;
	int rebuild;		 /* the format says: compress its layers, write a new manifest */
	struct src_image img;	 /* when rebuild */
	size_t *children;	 /* NODE_INDEX: node indices */
	size_t nchildren;
	/* after finalize */
	int final_done;
	char hex[RP_HEX_LEN + 1];
	uint64_t size;
	const char *mt;
	json_t *blobs;		 /* NODE_IMAGE: [{"digest","size","mediaType"}] config and layers */
	json_t *platform;	 /* NODE_IMAGE: from the config */
};

struct input {
	struct builder *b;
	struct ar_index *idx;
	const struct src_format *fmt;
	struct src_images imgs;
	struct entry_result *res; /* indexed like idx->entries */
	struct node *nodes;
	size_t nnodes, cap;
	json_t *node_of;	  /* hex -> node index */
	uint64_t done, total; /* input bytes streamed, for progress */
	struct parallel_pass *pass; /* while parallel_pass runs */
	/* the entry being streamed */
	struct rp_sha256 raw;
	struct compressor *comp;
	struct layout_blob *blob;
};


/* build.c */
int bld_resolve_ref(struct builder *b, const struct ar_index *idx, const char *what,
		    const char *name, struct rp_ref *ref, struct rp_err *err);
json_t *bld_platform_of(json_t *config);
/* A name for content now in the tree: remember the tag candidate, or the digest-only image. */
int bld_name_content(struct builder *b, const struct ar_index *idx, const char *what,
		     const char *name, const char *hex, uint64_t size, const char *mt,
		     json_t *platform, struct rp_ref *ref, struct rp_err *err);
int bld_cmp_str(const void *a, const void *b);

/* stream.c: before the passes, layers whose compressed form the tree has need only be hashed;
 * then every entry the input needs is streamed once (in parallel where it can skip cheaply). */
void bld_plan_reuse(struct input *in, const struct src_image *img);
int bld_stream(struct input *in, struct rp_err *err);

/* synth.c */
int bld_record_blobs(struct builder *b, const char *repo, json_t *blobs, struct rp_err *err);
int bld_synthesize(struct input *in, const struct src_image *img, char hex[RP_HEX_LEN + 1],
		   uint64_t *size, const char **mt, json_t **blobs, json_t **platform,
		   struct rp_err *err);
int bld_emit_image(struct input *in, const struct src_image *img, struct rp_err *err);

/* graph.c */
int bld_walk(struct input *in, const struct src_desc *d, int depth, size_t *out,
	     struct rp_err *err);
int bld_emit_root(struct input *in, const struct src_root *r, size_t n, size_t nroots,
		  struct rp_err *err);

#endif
