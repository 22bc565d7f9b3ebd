/* Image references and repository names: parsing, normalisation (docker.io familiar names) and the
 * distribution grammar. See docs/tree-format.md "Names". */
#ifndef RP_NAMES_H
#define RP_NAMES_H

#include <stddef.h>

#include "err.h"

#define RP_REPO_MAX 255
#define RP_TAG_MAX 128

struct rp_ref {
	char repo[RP_REPO_MAX + 1]; /* normalised: "library/alpine", "registry.k8s.io/pause" */
	char tag[RP_TAG_MAX + 1];   /* "" when the reference has none */
	char digest[72];	    /* "sha256:<hex>" or "" */
};

/* Parse "name[:tag][@sha256:hex]" as docker does ("alpine" -> "library/alpine"). */
int layout_ref_parse(const char *s, struct rp_ref *ref, struct rp_err *err);
/* 1 if repo is a normalised repository name the tree can hold. */
int layout_repo_valid(const char *repo);
int layout_tag_valid(const char *tag);
/* The repository's directory name under registry/repos/: the ':' of a host:port becomes '+'. */
void layout_repo_path(const char *repo, char *out, size_t outsz);

#endif
