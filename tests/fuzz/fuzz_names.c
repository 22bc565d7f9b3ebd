/* libFuzzer target: image references, repository names and tags (layout/names.h), which come
 * from RepoTags, annotations, --tag and the command line, and become directories of the tree.
 *
 * Invariants: a parsed reference has a repository layout_repo_valid() accepts and a valid tag or
 * none; parsing "repo:tag" again gives the same; a valid repository maps to a directory path with
 * no ':' and no "."/".."/empty component; the grammar checks never read past the string. */
#include <stdint.h>
#include <string.h>

#include "digest.h"
#include "fuzz.h"
#include "names.h"

static void check_dir(const char *repo)
{
	char dir[RP_REPO_MAX + 1];
	const char *p = dir;

	layout_repo_path(repo, dir, sizeof(dir));
	FUZZ_ASSERT(strlen(dir) == strlen(repo));
	FUZZ_ASSERT(!strchr(dir, ':') && dir[0] != '/');
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		FUZZ_ASSERT(len > 0 && !(len == 1 && p[0] == '.') &&
			    !(len == 2 && p[0] == '.' && p[1] == '.') && p[0] != '_');
		if (!slash)
			break;
		p = slash + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *rest;
	size_t rest_len;
	char *s = fuzz_split(data, size, &rest, &rest_len);
	struct rp_ref ref, again;
	struct rp_err err;
	const char *hex;

	if (layout_repo_valid(s))
		check_dir(s);
	if (layout_tag_valid(s))
		FUZZ_ASSERT(strlen(s) <= RP_TAG_MAX && s[0] != '.' && s[0] != '-' && !strchr(s, '/'));
	if (rp_digest_parse(s, &hex))
		FUZZ_ASSERT(rp_hex_valid(hex) && strlen(s) == 7 + RP_HEX_LEN);
	if (layout_ref_parse(s, &ref, &err) == 0) {
		char buf[RP_REPO_MAX + RP_TAG_MAX + 2];

		FUZZ_ASSERT(layout_repo_valid(ref.repo));
		check_dir(ref.repo);
		FUZZ_ASSERT(!ref.tag[0] || layout_tag_valid(ref.tag));
		FUZZ_ASSERT(!ref.digest[0] || rp_digest_parse(ref.digest, NULL));
		snprintf(buf, sizeof(buf), "%s%s%s", ref.repo, ref.tag[0] ? ":" : "", ref.tag);
		FUZZ_ASSERT(layout_ref_parse(buf, &again, &err) == 0);
		FUZZ_ASSERT(!strcmp(again.repo, ref.repo) && !strcmp(again.tag, ref.tag));
	}
	free(s);
	return 0;
}
