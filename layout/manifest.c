#include "manifest.h"

#include <stdlib.h>
#include <string.h>

static void ref_of(json_t *desc, struct manifest_ref *r)
{
	const char *dg = json_string_value(json_object_get(desc, "digest")), *hex;

	r->desc = desc;
	r->hex = dg && rp_digest_parse(dg, &hex) ? hex : NULL;
	r->media_type = json_string_value(json_object_get(desc, "mediaType"));
}

static struct manifest_ref *refs_of(json_t *arr, size_t *n)
{
	struct manifest_ref *v = calloc(json_array_size(arr) + 1, sizeof(*v));
	size_t i;

	*n = 0;
	if (!v)
		return NULL;
	for (i = 0; i < json_array_size(arr); i++)
		ref_of(json_array_get(arr, i), &v[(*n)++]);
	return v;
}

int manifest_from_json(json_t *json, struct manifest_info *m)
{
	json_t *children, *layers, *config, *subject;
	const char *hex, *sd;

	memset(m, 0, sizeof(*m));
	if (!json_is_object(json)) {
		json_decref(json);
		return -1;
	}
	m->json = json;
	m->media_type = json_string_value(json_object_get(json, "mediaType"));
	children = json_object_get(json, "manifests");
	m->is_index = json_is_array(children);
	if (m->is_index && !(m->children = refs_of(children, &m->nchildren)))
		goto oom;
	config = json_object_get(json, "config");
	if (json_is_object(config))
		ref_of(config, &m->config);
	layers = json_object_get(json, "layers");
	m->layers_is_array = json_is_array(layers);
	if (m->layers_is_array && !(m->layers = refs_of(layers, &m->nlayers)))
		goto oom;
	subject = json_object_get(json, "subject");
	sd = json_string_value(json_object_get(subject, "digest"));
	m->subject = sd && rp_digest_parse(sd, &hex) ? hex : NULL;
	m->artifact_type = json_string_value(json_object_get(json, "artifactType"));
	if (!m->artifact_type)
		m->artifact_type = m->config.media_type;
	return 0;
oom:
	manifest_info_free(m);
	return -1;
}

int manifest_parse(const void *buf, size_t len, size_t flags, struct manifest_info *m)
{
	return manifest_from_json(json_loadb(buf, len, flags, NULL), m);
}

void manifest_info_free(struct manifest_info *m)
{
	if (!m)
		return;
	free(m->children);
	free(m->layers);
	json_decref(m->json);
	memset(m, 0, sizeof(*m));
}
