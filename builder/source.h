/* Input formats behind one small interface (after containers/image's ImageSource and libarchive's
 * bidders). A format looks at the archive index (names, types, small metadata files) and describes
 * the images in it; it never writes anything. The build pipeline moves the bytes. */
#ifndef RP_SOURCE_H
#define RP_SOURCE_H

#include <stddef.h>

#include <jansson.h>

#include "digest.h"
#include "err.h"
#include "names.h"
#include "tarball.h"

struct src_image {
	char *what;	/* for messages: "image 2 (config abc123...)" */
	const struct ar_entry *config;	   /* kept in memory by the index */
	char **refs;	/* image references as the input names them ("alpine:3.19") */
	size_t nrefs;
	const struct ar_entry **layers;	   /* uncompressed layer tars, in rootfs order */
	size_t nlayers;
};

/* A descriptor as the input gives it. */
struct src_desc {
	char hex[RP_HEX_LEN + 1];
	char *media_type;
	int64_t size;
};

/* A manifest or index that the input names (OCI layouts: index.json), kept byte for byte when its
 * layers are registry blobs, rebuilt when they are uncompressed tars. */
struct src_root {
	struct src_desc desc;
	char **refs; /* image references; a reference without a tag keeps the image by digest */
	size_t nrefs;
};

struct src_images {
	struct src_image *v; /* images to rebuild: compress layers, write a manifest */
	size_t n;
	struct src_root *roots;
	size_t nroots;
};

struct src_format {
	const char *name;
	/* > 0 if this format can read the archive (higher wins), 0 if not. */
	int (*bid)(const struct ar_index *idx);
	int (*read)(struct ar_index *idx, struct src_images *out, struct rp_err *err);
	/* The entry holding blob hex, for formats with roots; NULL if absent. */
	const struct ar_entry *(*blob)(const struct ar_index *idx, const char *hex);
	/* For formats whose image manifests may name uncompressed layers (an OCI layout, a
	 * Docker >= 25 save): 1 if manifest (digest hex, config cd) is an image to rebuild like a
	 * docker-archive one, with img filled (what, the config loaded, the layers in the order
	 * rootfs.diff_ids gives); 0 if its blobs are a registry's own, kept byte for byte. NULL
	 * (a regpress tree, which serves whatever its layers): always kept. */
	int (*rebuild)(struct ar_index *idx, json_t *manifest, const char *hex,
		       const struct src_desc *cd, struct src_image *img, struct rp_err *err);
};

/* The metadata files worth keeping in memory during the index pass, for every format. */
int src_keep(const char *name, int64_t size);
/* The format that bids highest; error "unrecognized input format" if none does. */
const struct src_format *src_detect(const struct ar_index *idx, struct rp_err *err);
void src_images_free(struct src_images *imgs);
/* Free what one image owns and zero it. */
void src_image_clear(struct src_image *img);

/* What is wrong with a descriptor object, if anything. */
enum src_desc_fault {
	SRC_DESC_OK,
	SRC_DESC_NO_MEDIA_TYPE, /* otherwise well-formed; media_type is "" */
	SRC_DESC_NOT_OBJECT,
	SRC_DESC_BAD_DIGEST,	/* missing, or not sha256:<64 lowercase hex> */
	SRC_DESC_BAD_SIZE,	/* missing, not an integer, or negative */
	SRC_DESC_NO_MEMORY,
};
/* Parse a descriptor's digest, size and media type into out (media_type malloc'd when the result
 * is SRC_DESC_OK or SRC_DESC_NO_MEDIA_TYPE; out is zeroed otherwise). Callers word the message. */
enum src_desc_fault src_desc_parse(json_t *d, struct src_desc *out);

/* A reference as a regpress tree names it, "REPO:TAG" or "REPO@sha256:HEX" with REPO the tree's
 * own repository (taken as it is: "pause" stays "pause", where a reference would mean
 * "library/pause"). Roots of src_regpress_tree carry such references behind a "=". */
int src_tree_ref_parse(const char *s, struct rp_ref *ref, struct rp_err *err);

/* Names one input may give in all (tags and digests of every image): enough for any save, and a
 * bound on what a small hostile manifest.json can make a build hold and write. */
#define SRC_NAMES_MAX 100000u

/* Helpers shared by the formats. Add a name (repeats are dropped by src_images_tidy). */
int src_add_ref(char ***refs, size_t *n, const char *ref, struct rp_err *err);
/* After a format's read: each image's names sorted and unique, and at most SRC_NAMES_MAX. */
int src_images_tidy(struct src_images *imgs, const char *display, struct rp_err *err);
/* Parse manifest.json (docker save) into images to rebuild. */
int src_docker_manifest(struct ar_index *idx, struct src_images *out, struct rp_err *err);

extern const struct src_format src_docker_archive;
extern const struct src_format src_oci_layout;
extern const struct src_format src_regpress_tree;

#endif
