/* What describe.c (the tag list) and describe_inspect.c (one manifest in full) share. Internal to
 * layout/. */
#ifndef RP_DESCRIBE_INT_H
#define RP_DESCRIBE_INT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "describe.h"
#include "manifest.h"
#include "snapshot.h"
#include "tree.h"

/* buildx puts provenance and SBOMs into an index as children of platform unknown/unknown. */
#define DSC_ANN_REF_TYPE "vnd.docker.reference.type"
#define DSC_REF_TYPE_ATTESTATION "attestation-manifest"

/* The snapshot's records are sorted by line, and the ' ' after a name sorts before every
 * character a name may hold, so the records that start with one prefix ("tag R ", "manifest R
 * sha256:H ") are contiguous: dsc_lower finds the first at or after prefix by binary search. */
size_t dsc_lower(const struct snapshot *s, const char *prefix);
int dsc_has_prefix(const struct snapshot *s, size_t i, const char *prefix);
/* The record "<kind> <repo> sha256:<hex> ...", NULL if there is none. */
const struct snap_rec *dsc_find(const struct snapshot *s, const char *kind, const char *repo,
				const char *hex);

/* Read a blob of at most max bytes; one that is absent is an error naming its file and what the
 * snapshot says it is. */
int dsc_read_blob(const struct layout_tree *t, const char *hex, size_t max, const char *what,
		  char **buf, size_t *len, struct rp_err *err);
/* A manifest (its length in *len when len is set), an image config (a JSON object). */
int dsc_read_manifest(const struct layout_tree *t, const char *hex, struct manifest_info *mi,
		      size_t *len, struct rp_err *err);
int dsc_read_config(const struct layout_tree *t, const char *hex, json_t **out,
		    struct rp_err *err);

/* "os/arch[/variant]" of a config or a descriptor's platform (malloc'd); NULL without both. */
char *dsc_platform(const json_t *o);
uint64_t dsc_desc_size(const json_t *desc);
enum describe_kind dsc_kind(const struct manifest_info *mi);
const char *dsc_annotation(const json_t *o, const char *key);

/* Each manifest and config read once (t NULL: a snapshot only, nothing read). */
int dsc_memo_new(const struct layout_tree *t, const struct snapshot *s,
		 struct describe_memo **out, struct rp_err *err);
void dsc_memo_free(struct describe_memo *m);
/* Describe manifest hex of repo (named by tag, or tag NULL) into d; dsc_tag_clear frees it. */
int dsc_describe_one(struct describe_memo *m, const char *repo, const char *tag,
		     const char *hex, struct describe_tag *d, struct rp_err *err);
void dsc_tag_clear(struct describe_tag *d);

#endif
