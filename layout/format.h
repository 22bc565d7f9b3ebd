/* Every name and limit of the tree format (docs/tree-format.md), in one place. Only layout/ uses
 * the paths: other modules reach a tree's files through the tree handle (tree.h). */
#ifndef RP_FORMAT_H
#define RP_FORMAT_H

/* At the root. */
#define FMT_OCI_LAYOUT "oci-layout"
#define FMT_OCI_LAYOUT_BODY "{\"imageLayoutVersion\":\"1.0.0\"}"
#define FMT_INDEX "index.json"
#define FMT_BLOBS "blobs/sha256"
#define FMT_CACHE "cache"
#define FMT_VIEW "registry"
/* Not part of the snapshot, never served (lighttpd is only given registry/ and blobs/). */
#define FMT_STAGING ".regpress-tmp"	  /* a writer's work area; gone after it */
#define FMT_SPARE ".regpress-spare"	  /* a copy of registry/ the next writer edits and swaps in */
#define FMT_IMPORT ".regpress-import"	  /* verified volumes of an unfinished import */

/* Inside registry/ (the served view). */
#define FMT_SNAPSHOT_NAME "snapshot"
#define FMT_SIGNATURE_NAME "snapshot.sig"
#define FMT_RELEASE_NAME "release"
#define FMT_RELEASE_SIG_NAME "release.sig"
#define FMT_CATALOG_NAME "catalog.json"
#define FMT_REPOS_NAME "repos"
#define FMT_SNAPSHOT FMT_VIEW "/" FMT_SNAPSHOT_NAME
#define FMT_SIGNATURE FMT_VIEW "/" FMT_SIGNATURE_NAME
#define FMT_CATALOG FMT_VIEW "/" FMT_CATALOG_NAME

/* Inside registry/repos/<repo>/ ("_" cannot start a repository path component). */
#define FMT_TAGS_JSON "_tags.json"
#define FMT_TAG_POINTERS "_manifests/tags"
#define FMT_DIGEST_POINTERS "_manifests/sha256"
#define FMT_BLOB_MARKERS "_blobs"
#define FMT_REFERRERS "_referrers"


#endif
