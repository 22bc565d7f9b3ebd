/* Unit tests of the volume planner in media/plan.c: medium sizes (decimal fractions too), the
 * cost model, deterministic first-fit-decreasing assignment whatever the input order, splitting
 * of blobs larger than a volume or than ISO 9660's 4 GiB file limit, volume counts against the
 * lower bound, fill ratio; and one round trip through media_write, media_check and
 * media_import. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "fsutil.h"
#include "media.h"
#include "tree.h"
#include "unit.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* A blob with a digest made from a seed, so tests need no data. */
static struct media_blob blob(unsigned seed, uint64_t size)
{
	struct media_blob b;
	char in[32];

	snprintf(in, sizeof(in), "blob %u", seed);
	rp_sha256_buf(in, strlen(in), b.hex);
	b.size = size;
	return b;
}

static void shuffle(struct media_blob *v, size_t n, unsigned seed)
{
	size_t i;

	srand(seed);
	for (i = n; i > 1; i--) {
		size_t j = (size_t)rand() % i;
		struct media_blob t = v[i - 1];

		v[i - 1] = v[j];
		v[j] = t;
	}
}

/* Invariants of every plan: volumes within budget, used[] = the cost of their items, each blob's
 * items whole or parts that tile it, data_bytes the sum of the items. */
static void check_plan(const struct media_plan *p, const struct media_blob *in, size_t n)
{
	uint64_t *used = calloc(p->nvolumes, sizeof(*used)), data = 0;
	size_t i, j;

	assert_non_null(used);
	assert_true(p->nvolumes >= 1);
	assert_true(p->min_volumes >= 1 && p->min_volumes <= p->nvolumes);
	for (i = 0; i < p->nitems; i++) {
		const struct media_item *it = &p->items[i];

		assert_true(it->volume >= 1 && it->volume <= p->nvolumes);
		assert_true(it->size <= MEDIA_MAX_FILE);
		used[it->volume - 1] += media_file_cost(it->size);
		data += it->size;
		if (it->split)
			assert_true(it->size <= p->part_size);
		else
			assert_int_equal(it->size, it->blob_size);
	}
	for (i = 0; i < p->nvolumes; i++) {
		assert_int_equal(used[i], p->used[i]);
		assert_true(used[i] <= p->budget);
	}
	assert_int_equal(data, p->data_bytes);
	/* every input blob is carried, exactly once */
	for (i = 0; i < n; i++) {
		uint64_t covered = 0, next = 0;

		for (j = 0; j < p->nitems; j++)
			if (!strcmp(p->items[j].hex, in[i].hex)) {
				assert_int_equal(p->items[j].blob_size, in[i].size);
				covered += p->items[j].size;
			}
		assert_int_equal(covered, in[i].size);
		/* parts: offsets tile the blob in order of the plan (sorted by offset per blob) */
		for (j = 0; j < p->nitems; j++)
			if (!strcmp(p->items[j].hex, in[i].hex) && p->items[j].split) {
				size_t k;
				int found = 0;

				for (k = 0; k < p->nitems; k++)
					if (!strcmp(p->items[k].hex, in[i].hex) &&
					    p->items[k].offset == next) {
						next += p->items[k].size;
						found = 1;
						break;
					}
				assert_true(found);
			}
	}
	/* the plan's order: by volume, whole blobs first, then digest and offset */
	for (i = 1; i < p->nitems; i++) {
		const struct media_item *a = &p->items[i - 1], *b = &p->items[i];

		assert_true(a->volume < b->volume ||
			    (a->volume == b->volume &&
			     (a->split < b->split ||
			      (a->split == b->split &&
			       (strcmp(a->hex, b->hex) < 0 ||
				(!strcmp(a->hex, b->hex) && a->offset < b->offset))))));
	}
	free(used);
}

static void test_parse_size(void **state)
{
	struct rp_err err;
	uint64_t v;

	(void)state;
	assert_int_equal(media_parse_size("dvd", &v, &err), 0);
	assert_int_equal(v, 4700372992ull);
	assert_int_equal(media_parse_size("DVD-DL", &v, &err), 0);
	assert_int_equal(v, 8543666176ull);
	assert_int_equal(media_parse_size("bd", &v, &err), 0);
	assert_int_equal(v, 25025314816ull);
	assert_int_equal(media_parse_size("bd-dl", &v, &err), 0);
	assert_int_equal(v, 50050629632ull);
	assert_int_equal(media_parse_size("300K", &v, &err), 0);
	assert_int_equal(v, 300 * KiB);
	assert_int_equal(media_parse_size("2m", &v, &err), 0);
	assert_int_equal(v, 2 * MiB);
	assert_int_equal(media_parse_size("4G", &v, &err), 0);
	assert_int_equal(v, 4 * GiB);
	assert_int_equal(media_parse_size("123456789", &v, &err), 0);
	assert_int_equal(v, 123456789);
	/* Decimal fractions with a unit, powers of 1024, rounded down to whole bytes. */
	assert_int_equal(media_parse_size("1.5G", &v, &err), 0);
	assert_int_equal(v, 3 * GiB / 2);
	assert_int_equal(media_parse_size("4.7G", &v, &err), 0);
	assert_int_equal(v, 5046586572ull); /* 4.7 * 2^30 = 5046586572.8 */
	assert_int_equal(media_parse_size("4.7g", &v, &err), 0);
	assert_int_equal(v, 5046586572ull);
	assert_int_equal(media_parse_size("0.5K", &v, &err), 0);
	assert_int_equal(v, 512);
	assert_int_equal(media_parse_size("4480.25M", &v, &err), 0);
	assert_int_equal(v, 4480 * MiB + MiB / 4);
	assert_int_equal(media_parse_size("1.001K", &v, &err), 0);
	assert_int_equal(v, 1025); /* 1025.024 */
	assert_int_equal(media_parse_size("0.999999999999999999999G", &v, &err), 0);
	assert_int_equal(v, GiB - 1); /* just below 1 GiB: still rounded down */
	assert_int_equal(media_parse_size("17179869183.9999999999G", &v, &err), 0);
	assert_int_equal(v, UINT64_MAX); /* the largest whole part, the fraction filling the rest */

	assert_int_equal(media_parse_size("", &v, &err), -1);
	assert_non_null(strstr(err.msg, "not a medium size"));
	assert_int_equal(media_parse_size("K", &v, &err), -1);
	assert_int_equal(media_parse_size("0", &v, &err), -1);
	assert_int_equal(media_parse_size("-5", &v, &err), -1);
	assert_int_equal(media_parse_size("300KB", &v, &err), -1);
	assert_int_equal(media_parse_size("1.5", &v, &err), -1); /* bytes are whole */
	assert_int_equal(media_parse_size("4.G", &v, &err), -1);
	assert_int_equal(media_parse_size(".5G", &v, &err), -1);
	assert_int_equal(media_parse_size("4,7G", &v, &err), -1);
	assert_int_equal(media_parse_size("1.2.3G", &v, &err), -1);
	assert_int_equal(media_parse_size("0.0000000001K", &v, &err), -1); /* 0 bytes */
	assert_int_equal(media_parse_size("17179869184G", &v, &err), -1);  /* 2^64 */
	assert_int_equal(media_parse_size("12T", &v, &err), -1);
	assert_int_equal(media_parse_size("cd", &v, &err), -1);
	assert_int_equal(media_parse_size("99999999999999999999", &v, &err), -1);
	assert_int_equal(media_parse_size("99999999999G", &v, &err), -1);
	assert_non_null(strstr(err.msg, "'99999999999G'"));
}

static void test_cost(void **state)
{
	(void)state;
	assert_int_equal(media_file_cost(0), MEDIA_FILE_META);
	assert_int_equal(media_file_cost(1), MEDIA_SECTOR + MEDIA_FILE_META);
	assert_int_equal(media_file_cost(MEDIA_SECTOR), MEDIA_SECTOR + MEDIA_FILE_META);
	assert_int_equal(media_file_cost(MEDIA_SECTOR + 1), 2 * MEDIA_SECTOR + MEDIA_FILE_META);
}

/* The same blobs in any order, with duplicates, give the same plan, item for item. */
static void test_deterministic(void **state)
{
	struct media_blob in[60], again[90];
	struct media_plan a, b;
	struct rp_err err;
	size_t i;

	(void)state;
	for (i = 0; i < 60; i++)
		in[i] = blob((unsigned)i, (i * 7919 % 97 + 1) * 3 * KiB + i);
	in[7].size = in[8].size; /* equal sizes: the digest decides */
	assert_int_equal(media_plan_make(in, 60, 1 * MiB, media_file_cost(5000), &a, &err), 0);
	check_plan(&a, in, 60);
	memcpy(again, in, sizeof(in));
	memcpy(again + 60, in, 30 * sizeof(in[0]));
	shuffle(again, 90, 42);
	assert_int_equal(media_plan_make(again, 90, 1 * MiB, media_file_cost(5000), &b, &err), 0);
	assert_int_equal(a.nvolumes, b.nvolumes);
	assert_int_equal(a.nitems, b.nitems);
	assert_int_equal(a.budget, b.budget);
	for (i = 0; i < a.nitems; i++) {
		assert_string_equal(a.items[i].hex, b.items[i].hex);
		assert_int_equal(a.items[i].volume, b.items[i].volume);
		assert_int_equal(a.items[i].offset, b.items[i].offset);
		assert_int_equal(a.items[i].size, b.items[i].size);
	}
	/* first fit decreasing stays close to the lower bound */
	assert_true(a.nvolumes <= a.min_volumes + 1);
	media_plan_free(&a);
	media_plan_free(&b);
}

/* A blob larger than a volume becomes parts of part_size (each filling a volume) and a remainder,
 * which shares a volume with small blobs. */
static void test_split(void **state)
{
	struct media_blob in[4];
	struct media_plan p;
	struct rp_err err;
	size_t i, parts = 0;
	uint64_t last = 0;

	(void)state;
	in[0] = blob(1, 2 * MiB + 12345);
	in[1] = blob(2, 20 * KiB);
	in[2] = blob(3, 1000);
	in[3] = blob(4, 0);
	assert_int_equal(media_plan_make(in, 4, 1 * MiB, media_file_cost(3000), &p, &err), 0);
	check_plan(&p, in, 4);
	assert_int_equal(p.split_blobs, 1);
	assert_int_equal(p.part_size % MEDIA_SECTOR, 0);
	assert_int_equal(media_file_cost(p.part_size) + MEDIA_SECTOR > p.budget, 1);
	for (i = 0; i < p.nitems; i++)
		if (p.items[i].split) {
			parts++;
			if (p.items[i].size < p.part_size)
				last = p.items[i].size;
		}
	assert_int_equal(parts, (in[0].size + p.part_size - 1) / p.part_size);
	assert_int_equal(last, in[0].size - (parts - 1) * p.part_size);
	assert_int_equal(p.nvolumes, p.min_volumes);
	assert_int_equal(p.nvolumes, parts); /* full parts one per volume; the rest fits beside */
	media_plan_free(&p);
}

/* ISO 9660 levels 1-2 hold files below 4 GiB: on a BD, a 5 GiB blob fits one volume but as two
 * parts; a blob of exactly MEDIA_MAX_FILE stays whole. */
static void test_split_4g(void **state)
{
	struct media_blob in[2];
	struct media_plan p;
	struct rp_err err;
	size_t i;

	(void)state;
	in[0] = blob(1, 5 * GiB);
	in[1] = blob(2, MEDIA_MAX_FILE);
	assert_int_equal(media_plan_make(in, 2, 25025314816ull, media_file_cost(4096), &p, &err), 0);
	check_plan(&p, in, 2);
	assert_int_equal(p.nvolumes, 1);
	assert_int_equal(p.part_size, MEDIA_MAX_FILE);
	assert_int_equal(p.split_blobs, 1);
	assert_int_equal(p.nitems, 3);
	for (i = 0; i < p.nitems; i++)
		assert_int_equal(p.items[i].split, !strcmp(p.items[i].hex, in[0].hex));
	media_plan_free(&p);
}

/* Known sizes: volume count, lower bound, fill ratio. */
static void test_fill(void **state)
{
	struct media_blob in[10];
	struct media_plan p;
	struct rp_err err;
	uint64_t half;
	size_t i;

	(void)state;
	assert_int_equal(media_plan_make(NULL, 0, 1 * MiB, media_file_cost(100), &p, &err), 0);
	/* two per volume (with room for the manifest growing by ten lines) */
	half = (p.budget / 2 - MEDIA_FILE_META - MEDIA_SECTOR) / MEDIA_SECTOR * MEDIA_SECTOR;
	media_plan_free(&p);
	for (i = 0; i < 10; i++)
		in[i] = blob((unsigned)i, half);
	assert_int_equal(media_plan_make(in, 10, 1 * MiB, media_file_cost(100), &p, &err), 0);
	check_plan(&p, in, 10);
	assert_int_equal(p.nvolumes, 5);
	assert_int_equal(p.min_volumes, 5);
	assert_int_equal(p.data_bytes, 10 * half);
	assert_true(media_plan_fill(&p) > 0.5 && media_plan_fill(&p) < 1.0);
	assert_true(media_plan_fill(&p) == (double)(10 * half) / (5.0 * (double)MiB));
	media_plan_free(&p);

	/* On a DVD the overhead is small: one 4 GiB blob fills the disc to over 90% */
	in[0] = blob(1, 4300 * MiB);
	assert_int_equal(media_plan_make(in, 1, 4700372992ull, media_file_cost(100000), &p, &err), 0);
	check_plan(&p, in, 1);
	assert_int_equal(p.nvolumes, 1);
	assert_true(media_plan_fill(&p) > 0.9);
	assert_true(p.budget > 4700372992ull - 8 * MiB);
	media_plan_free(&p);
}

static void test_empty_and_errors(void **state)
{
	struct media_blob in[2];
	struct media_plan p;
	struct rp_err err;

	(void)state;
	/* nothing to carry (a delta with retags only): one volume with the snapshot */
	assert_int_equal(media_plan_make(NULL, 0, 1 * MiB, media_file_cost(100), &p, &err), 0);
	assert_int_equal(p.nvolumes, 1);
	assert_int_equal(p.nitems, 0);
	assert_int_equal(p.used[0], 0);
	media_plan_free(&p);
	/* too small for the file system and the snapshot */
	in[0] = blob(1, 10);
	assert_int_equal(media_plan_make(in, 1, 100 * KiB, media_file_cost(100), &p, &err), -1);
	assert_non_null(strstr(err.msg, "too small"));
	assert_int_equal(media_plan_make(in, 1, 1 * MiB, media_file_cost(2 * MiB), &p, &err), -1);
	/* one digest, two sizes */
	in[1] = in[0];
	in[1].size = 11;
	assert_int_equal(media_plan_make(in, 2, 1 * MiB, media_file_cost(100), &p, &err), -1);
	assert_non_null(strstr(err.msg, "two sizes"));
	media_plan_free(&p); /* safe after a failure */
}

/* A tree with one image whose layer is larger than a volume: written as volumes, each checks on
 * its own, imported in reverse order one per call they give the same snapshot; a flipped byte in
 * a part is refused by check and by import, which then creates nothing. */
static void test_round_trip(void **state)
{
	char dir[] = "/tmp/rp-media-XXXXXX", tree[64], out[64], back[64], never[64];
	char lhex[RP_HEX_LEN + 1], chex[RP_HEX_LEN + 1], mhex[RP_HEX_LEN + 1];
	char id[RP_HEX_LEN + 1], *manifest;
	const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
			  "\"layers\",\"diff_ids\":[]}}";
	size_t layer_len = 300 * KiB, i;
	unsigned char *layer = malloc(layer_len);
	struct media_opts o = { 256 * KiB, NULL, 0, 0, NULL, NULL };
	struct media_result res;
	struct layout_tree *t;
	uint32_t x = 2463534242u;
	int v;

	(void)state;
	assert_non_null(layer);
	assert_non_null(mkdtemp(dir));
	setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
	snprintf(tree, sizeof(tree), "%s/tree", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(back, sizeof(back), "%s/back", dir);
	snprintf(never, sizeof(never), "%s/never", dir);
	for (i = 0; i < layer_len; i++) { /* xorshift: incompressible, reproducible */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		layer[i] = (unsigned char)x;
	}
	OK(layout_open(tree, LAYOUT_WRITE, &t, E_));
	OK(layout_put_blob(t, layer, layer_len, lhex, E_));
	OK(layout_put_blob(t, cfg, strlen(cfg), chex, E_));
	assert_true(asprintf(&manifest, "{\"schemaVersion\":2,\"mediaType\":\"application/vnd."
			     "docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":\""
			     "application/vnd.docker.container.image.v1+json\",\"size\":%zu,"
			     "\"digest\":\"sha256:%s\"},\"layers\":[{\"mediaType\":\"application/"
			     "vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":%zu,\"digest\":"
			     "\"sha256:%s\"}]}", strlen(cfg), chex, layer_len, lhex) > 0);
	OK(layout_put_blob(t, manifest, strlen(manifest), mhex, E_));
	OK(layout_add_blob(t, "library/x", lhex, layer_len,
			   "application/vnd.docker.image.rootfs.diff.tar.gzip", E_));
	OK(layout_add_blob(t, "library/x", chex, strlen(cfg),
			   "application/vnd.docker.container.image.v1+json", E_));
	OK(layout_add_manifest(t, "library/x", mhex, strlen(manifest),
			       "application/vnd.docker.distribution.manifest.v2+json", E_));
	OK(layout_set_tag(t, "library/x", "1", mhex, E_));
	OK(layout_commit(t, NULL, E_));
	memcpy(id, layout_snapshot_id(t), sizeof(id));
	layout_close(t);
	free(manifest);
	free(layer);

	OK(media_write(tree, out, &o, &res, E_));
	assert_true(res.plan.nvolumes >= 3);
	assert_int_equal(res.plan.split_blobs, 1);
	assert_string_equal(res.snapshot_id, id);
	assert_string_equal(res.base_id, "");
	for (v = 0; v < (int)res.plan.nvolumes; v++) {
		struct media_volume_info info;

		OK(media_check(res.paths[v], NULL, NULL, NULL, &info, E_));
		assert_int_equal(info.volume, v + 1);
		assert_int_equal(info.nvolumes, res.plan.nvolumes);
		assert_string_equal(info.set_id, res.set_id);
	}
	for (v = (int)res.plan.nvolumes - 1; v >= 0; v--) {
		struct media_import_result r;
		const char *one = res.paths[v];

		OK(media_import(back, &one, 1, NULL, NULL, NULL, &r, E_));
		assert_int_equal(r.published, v == 0);
		assert_int_equal(r.nmissing, v == 0 ? 0 : (size_t)v);
		media_import_result_free(&r);
	}
	OK(layout_open(back, LAYOUT_WRITE, &t, E_));
	assert_string_equal(layout_snapshot_id(t), id);
	layout_close(t);

	/* one flipped byte in the first part */
	{
		struct media_volume_info info;
		struct media_import_result r;
		struct rp_err err;
		const char *one = res.paths[0];
		char *part = NULL;
		FILE *f;
		int c;

		for (i = 0; i < res.plan.nitems && !part; i++)
			if (res.plan.items[i].volume == 1 && res.plan.items[i].split)
				assert_true(asprintf(&part, "%s/parts/sha256/%s", res.paths[0],
						     res.plan.items[i].part_hex) > 0);
		assert_non_null(part);
		f = fopen(part, "r+b");
		assert_non_null(f);
		fseek(f, 1000, SEEK_SET);
		c = fgetc(f);
		fseek(f, 1000, SEEK_SET);
		fputc(c ^ 1, f);
		fclose(f);
		assert_int_equal(media_check(res.paths[0], NULL, NULL, NULL, &info, &err), -1);
		assert_non_null(strstr(err.msg, part));
		assert_int_equal(media_import(never, &one, 1, NULL, NULL, NULL, &r, &err), -1);
		assert_non_null(strstr(err.msg, part));
		assert_int_equal(access(never, F_OK), -1);
		free(part);
	}
	media_result_free(&res);
	{
		struct rp_err err;

		rp_rmtree(dir, &err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_split_4g),
		cmocka_unit_test(test_fill),
		cmocka_unit_test(test_empty_and_errors),
		cmocka_unit_test(test_round_trip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
