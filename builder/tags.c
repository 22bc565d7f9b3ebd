/* Settling tags after the last input: one digest per name, or an error naming both inputs, or
 * with --merge-platforms an OCI index of the platforms. */
#include "build_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- settling tags ---- */


/* A candidate's key "repo:tag" (build.c) back into its parts. The repository is the tree's own,
 * already resolved: parsing it again as a reference would normalize it a second time (a stripped
 * "pause" would become "library/pause"). Tags hold no ':', so the last one splits. */
static void split_key(const char *key, struct rp_ref *ref)
{
	const char *colon = strrchr(key, ':');

	memset(ref, 0, sizeof(*ref));
	snprintf(ref->repo, sizeof(ref->repo), "%.*s", (int)(colon - key), key);
	snprintf(ref->tag, sizeof(ref->tag), "%s", colon + 1);
}

static char *platform_string(json_t *p)
{
	char *s = NULL;
	const char *v = json_string_value(json_object_get(p, "variant"));

	if (asprintf(&s, "%s/%s%s%s", json_string_value(json_object_get(p, "os")),
		     json_string_value(json_object_get(p, "architecture")), v ? "/" : "",
		     v ? v : "") < 0)
		return NULL;
	return s;
}

struct plat_item {
	char *key;
	json_t *cand;
};

static int cmp_plat(const void *a, const void *b)
{
	return strcmp(((const struct plat_item *)a)->key, ((const struct plat_item *)b)->key);
}

/* Several platforms of one image under one name: write the OCI index that joins them. */
static int merge_platforms(struct builder *b, const char *key, json_t *list, json_t **chosen,
			   struct rp_err *err)
{
	size_t i, n = json_array_size(list), k = 0;
	struct plat_item *items = calloc(n + 1, sizeof(*items));
	json_t *manifests = json_array(), *index = NULL, *c;
	char hex[RP_HEX_LEN + 1], *bytes = NULL;
	struct rp_ref ref;
	int rc = -1;

	if (!items || !manifests) {
		rp_errf(err, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, c) {
		json_t *p = json_object_get(c, "platform");
		const char *mt = json_string_value(json_object_get(c, "mediaType"));
		size_t j;

		if (!p || (strcmp(mt, MT_OCI_MANIFEST) && strcmp(mt, MT_DOCKER_MANIFEST))) {
			rp_errf(err, "%s: '%s' gives an index or an image without a platform; "
				"--merge-platforms joins single-platform images", key,
				json_string_value(json_object_get(c, "input")));
			goto out;
		}
		items[k].key = platform_string(p);
		items[k].cand = c;
		for (j = 0; j < k; j++)
			if (!strcmp(items[j].key, items[k].key) &&
			    !json_equal(json_object_get(items[j].cand, "digest"),
					json_object_get(c, "digest"))) {
				rp_errf(err, "%s: '%s' and '%s' are both %s with different content",
					key, json_string_value(json_object_get(items[j].cand, "input")),
					json_string_value(json_object_get(c, "input")), items[k].key);
				k++;
				goto out;
			}
		k++;
	}
	/* Sorted by platform, so the index does not depend on the order of the inputs. */
	qsort(items, k, sizeof(*items), cmp_plat);
	for (i = 0; i < k; i++) {
		if (i > 0 && !strcmp(items[i].key, items[i - 1].key))
			continue;
		json_array_append_new(manifests, json_pack("{s:O, s:O, s:O, s:O}", "mediaType",
			json_object_get(items[i].cand, "mediaType"), "digest",
			json_object_get(items[i].cand, "digest"), "size",
			json_object_get(items[i].cand, "size"), "platform",
			json_object_get(items[i].cand, "platform")));
	}
	index = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX,
			  "manifests", manifests);
	bytes = index ? json_dumps(index, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	if (!bytes) {
		rp_errf(err, "out of memory");
		goto out;
	}
	split_key(key, &ref);
	if (layout_put_blob(b->tree, bytes, strlen(bytes), hex, err) < 0 ||
	    layout_add_manifest(b->tree, ref.repo, hex, strlen(bytes), MT_OCI_INDEX, err) < 0)
		goto out;
	*chosen = json_pack("{s:s+, s:s, s:I}", "digest", "sha256:", hex, "mediaType", MT_OCI_INDEX,
			    "size", (json_int_t)strlen(bytes));
	rc = 0;
out:
	for (i = 0; items && i < n; i++)
		free(items[i].key);
	free(items);
	free(bytes);
	json_decref(index);
	json_decref(manifests);
	return rc;
}

int builder_finish(struct builder *b, struct rp_err *err)
{
	size_t i, n = json_object_size(b->cands);
	const char **keys = malloc((n + 1) * sizeof(*keys));
	const char *key;
	json_t *list;
	int rc = -1;

	if (!keys)
		return rp_errf(err, "out of memory");
	i = 0;
	json_object_foreach(b->cands, key, list)
		keys[i++] = key;
	qsort(keys, n, sizeof(*keys), bld_cmp_str);
	for (i = 0; i < n; i++) {
		json_t *first, *chosen = NULL, *inputs = json_array(), *c;
		struct rp_ref ref;
		size_t j;
		int differ = 0;

		list = json_object_get(b->cands, keys[i]);
		first = json_array_get(list, 0);
		json_array_foreach(list, j, c) {
			json_t *in = json_object_get(c, "input");
			size_t k;
			json_t *x;
			int dup = 0;

			json_array_foreach(inputs, k, x)
				dup |= json_equal(x, in);
			if (!dup)
				json_array_append(inputs, in);
			if (!json_equal(json_object_get(c, "digest"), json_object_get(first, "digest")))
				differ = 1;
		}
		if (differ && !b->opts.merge_platforms) {
			json_t *other = NULL;

			json_array_foreach(list, j, c)
				if (!other && !json_equal(json_object_get(c, "digest"),
							  json_object_get(first, "digest")))
					other = c;
			rp_errf(err, "%s is in '%s' and '%s' with different content (with "
				"--merge-platforms, different platforms of one image become an index)",
				keys[i], json_string_value(json_object_get(first, "input")),
				json_string_value(json_object_get(other, "input")));
			json_decref(inputs);
			goto out;
		}
		if (differ) {
			if (merge_platforms(b, keys[i], list, &chosen, err) < 0) {
				json_decref(inputs);
				goto out;
			}
		} else {
			chosen = json_incref(first);
		}
		split_key(keys[i], &ref);
		if (layout_set_tag(b->tree, ref.repo, ref.tag,
				   json_string_value(json_object_get(chosen, "digest")) + 7, err) < 0) {
			json_decref(chosen);
			json_decref(inputs);
			goto out;
		}
		json_object_set_new(b->report, keys[i],
				    json_pack("{s:O, s:O, s:o}", "digest",
					      json_object_get(chosen, "digest"), "mediaType",
					      json_object_get(chosen, "mediaType"), "inputs", inputs));
		json_decref(chosen);
	}
	rc = 0;
out:
	free(keys);
	return rc;
}
