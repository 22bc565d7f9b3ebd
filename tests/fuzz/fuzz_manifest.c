/* libFuzzer target: a docker save's manifest.json and image config, through the docker-archive
 * reader (builder/src_docker.c) and the build pipeline that checks the config (rootfs.diff_ids,
 * platform) and names the images (RepoTags through layout_ref_parse).
 *
 * Input: manifest.json, then optionally a NUL and the config stored as config.json. The archive
 * around them (fuzz_build.h) holds the layer as layer.tar, a link to it from v1/layer.tar, a hard
 * link same.tar, links out of the archive and in a loop, a directory, and the fixed config under
 * its digest's name (@C@.json), so Config and Layers paths can name all of those. */
#include <stdint.h>
#include <string.h>

#include "fuzz_build.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *const pairs[][2] = { { "@U@", fuzz_u.hex }, { "@C@", fuzz_c.hex },
					 { "@G@", fuzz_g.hex } };
	struct fuzz_buf tar = { NULL, 0, 0 };
	const uint8_t *rest;
	size_t rest_len;
	char *raw, *manifest, *config = NULL, cname[RP_HEX_LEN + 8];

	fuzz_build_init();
	raw = fuzz_split(data, size, &rest, &rest_len);
	manifest = fuzz_subst(raw, pairs, 3);
	free(raw);
	if (rest) {
		raw = fuzz_split(rest, rest_len, &rest, &rest_len);
		config = fuzz_subst(raw, pairs, 3);
		free(raw);
	}
	snprintf(cname, sizeof(cname), "%s.json", fuzz_c.hex);
	fuzz_tar_member(&tar, "layer.tar", '0', NULL, fuzz_u.data, fuzz_u.len);
	fuzz_tar_member(&tar, "dir", '5', NULL, NULL, 0);
	fuzz_tar_member(&tar, "v1/layer.tar", '2', "../layer.tar", NULL, 0);
	fuzz_tar_member(&tar, "same.tar", '1', "layer.tar", NULL, 0);
	fuzz_tar_member(&tar, "out.tar", '2', "../../etc/passwd", NULL, 0);
	fuzz_tar_member(&tar, "loop.tar", '2', "loop.tar", NULL, 0);
	fuzz_tar_member(&tar, cname, '0', NULL, fuzz_c.data, fuzz_c.len);
	if (config)
		fuzz_tar_member(&tar, "config.json", '0', NULL, config, strlen(config));
	fuzz_tar_member(&tar, "manifest.json", '0', NULL, manifest, strlen(manifest));
	fuzz_tar_end(&tar);
	fuzz_build(fuzz_file(tar.p, tar.len), 0);
	free(tar.p);
	free(manifest);
	free(config);
	return 0;
}
