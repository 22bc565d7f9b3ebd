/* What a manifest or an index references, worked out in one place for every module: the tree
 * writer (what an image keeps reachable), verify (is everything it names served), the served
 * view (referrers) and the build's walk over an input's graph. */
#ifndef RP_MANIFEST_H
#define RP_MANIFEST_H

#include <stddef.h>

#include <jansson.h>

#include "digest.h"

/* One descriptor as the manifest has it. hex is NULL when "digest" is not sha256:<64 hex>. */
struct manifest_ref {
	json_t *desc;
	const char *hex;
	const char *media_type; /* NULL when absent */
};

struct manifest_info {
	json_t *json;		    /* the whole document (owned) */
	int is_index;		    /* it has a "manifests" array */
	struct manifest_ref *children; /* an index's entries */
	size_t nchildren;
	struct manifest_ref config; /* desc NULL when there is none */
	struct manifest_ref *layers;
	size_t nlayers;
	int layers_is_array;	    /* "layers" is an array (possibly empty) */
	const char *media_type;	    /* top-level "mediaType", NULL when absent */
	const char *subject;	    /* hex of "subject".digest, NULL when none */
	const char *artifact_type;  /* "artifactType", else config.mediaType, else NULL */
};

/* Parse bytes (flags as for json_loadb, e.g. JSON_REJECT_DUPLICATES); -1 if they are not a JSON
 * object. Nothing else is required: callers judge what they need. */
int manifest_parse(const void *buf, size_t len, size_t flags, struct manifest_info *m);
/* Take over a parsed document instead (its reference is stolen). */
int manifest_from_json(json_t *json, struct manifest_info *m);
void manifest_info_free(struct manifest_info *m);

#endif
