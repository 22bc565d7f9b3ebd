#include "names.h"

#include <ctype.h>
#include <string.h>

#include "digest.h"

static int is_alnum_lower(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static int component_valid(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0 || !is_alnum_lower((unsigned char)s[0]))
		return 0;
	while (i < len) {
		while (i < len && is_alnum_lower((unsigned char)s[i]))
			i++;
		if (i == len)
			return 1;
		if (s[i] == '.') {
			i++;
		} else if (s[i] == '_') {
			i++;
			if (i < len && s[i] == '_')
				i++;
		} else if (s[i] == '-') {
			while (i < len && s[i] == '-')
				i++;
		} else {
			return 0;
		}
		if (i == len || !is_alnum_lower((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* A registry host: labels of [A-Za-z0-9-] separated by '.', optional :port. We store it lowercased. */
static int host_valid(const char *s, size_t len)
{
	size_t i = 0, label = 0;

	while (i < len && s[i] != ':') {
		if (isalnum((unsigned char)s[i])) {
			label++;
		} else if (s[i] == '-') {
			if (label == 0)
				return 0;
			label++;
		} else if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
		} else {
			return 0;
		}
		i++;
	}
	if (label == 0 || s[i - 1] == '-')
		return 0;
	if (i < len) { /* port */
		size_t digits = 0;

		for (i++; i < len; i++, digits++)
			if (!isdigit((unsigned char)s[i]))
				return 0;
		if (digits == 0 || digits > 5)
			return 0;
	}
	return 1;
}

static int first_is_host(const char *s, size_t len)
{
	size_t i;

	if (len == 9 && !memcmp(s, "localhost", 9))
		return 1;
	for (i = 0; i < len; i++)
		if (s[i] == '.' || s[i] == ':' || isupper((unsigned char)s[i]))
			return 1;
	return 0;
}

static int path_valid(const char *s)
{
	const char *p = s;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);

		if (!component_valid(p, len))
			return 0;
		if (!slash)
			return 1;
		p = slash + 1;
	}
}

int layout_repo_valid(const char *repo)
{
	const char *slash = strchr(repo, '/');
	size_t len = strlen(repo);

	if (len == 0 || len > RP_REPO_MAX)
		return 0;
	if (slash && first_is_host(repo, (size_t)(slash - repo))) {
		size_t i;

		for (i = 0; i < (size_t)(slash - repo); i++)
			if (isupper((unsigned char)repo[i]))
				return 0; /* normalised names have lowercase hosts */
		return host_valid(repo, (size_t)(slash - repo)) && path_valid(slash + 1);
	}
	return path_valid(repo);
}

int layout_tag_valid(const char *tag)
{
	size_t i, len = strlen(tag);

	if (len == 0 || len > RP_TAG_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)tag[i];

		if (!(isalnum(c) || c == '_' || (i > 0 && (c == '.' || c == '-'))))
			return 0;
	}
	return 1;
}

int layout_ref_parse(const char *s, struct rp_ref *ref, struct rp_err *err)
{
	char buf[RP_REPO_MAX + RP_TAG_MAX + 96];
	char *at, *colon, *slash, *name;
	size_t len = strlen(s);

	memset(ref, 0, sizeof(*ref));
	if (len == 0 || len >= sizeof(buf))
		return rp_errf(err, "invalid image reference '%.300s': %s", s,
			       len ? "too long" : "empty");
	memcpy(buf, s, len + 1);

	at = strchr(buf, '@');
	if (at) {
		*at = '\0';
		if (!rp_digest_parse(at + 1, NULL))
			return rp_errf(err, "invalid image reference '%.300s': bad digest", s);
		strcpy(ref->digest, at + 1);
	}
	slash = strrchr(buf, '/');
	colon = strrchr(buf, ':');
	if (colon && (!slash || colon > slash)) {
		*colon = '\0';
		if (!layout_tag_valid(colon + 1))
			return rp_errf(err, "invalid tag in image reference '%.300s'", s);
		strcpy(ref->tag, colon + 1);
	}

	name = buf;
	slash = strchr(name, '/');
	if (slash && first_is_host(name, (size_t)(slash - name))) {
		size_t i;

		for (i = 0; name + i < slash; i++)
			name[i] = (char)tolower((unsigned char)name[i]);
		if ((slash - name == 9 && !memcmp(name, "docker.io", 9)) ||
		    (slash - name == 15 && !memcmp(name, "index.docker.io", 15))) {
			name = slash + 1;
			slash = strchr(name, '/');
			/* "docker.io/example.com/x" would be stored as the repository of another
			 * registry (and "docker.io/index.docker.io/x" read back as "x"): Docker Hub
			 * namespaces have no dots, so refuse it. */
			if (slash && first_is_host(name, (size_t)(slash - name)))
				return rp_errf(err, "invalid repository name in image reference '%.300s': "
					       "'%.*s' after docker.io names a registry", s,
					       (int)(slash - name), name);
			slash = NULL; /* fall through to the docker.io rules below */
		} else {
			if (!host_valid(name, (size_t)(slash - name)) || !path_valid(slash + 1))
				return rp_errf(err, "invalid repository name in image reference '%.300s'", s);
			goto done;
		}
	}
	if (!path_valid(name))
		return rp_errf(err, "invalid repository name in image reference '%.300s'", s);
	if (!strchr(name, '/')) {
		if (strlen(name) + 8 > RP_REPO_MAX)
			return rp_errf(err, "repository name too long in '%.300s'", s);
		strcpy(ref->repo, "library/");
		strcat(ref->repo, name);
		return 0;
	}
done:
	if (strlen(name) > RP_REPO_MAX)
		return rp_errf(err, "repository name too long in '%.300s'", s);
	strcpy(ref->repo, name);
	return 0;
}

void layout_repo_path(const char *repo, char *out, size_t outsz)
{
	size_t i;

	for (i = 0; repo[i] && i + 1 < outsz; i++)
		out[i] = repo[i] == ':' ? '+' : repo[i];
	out[i] = '\0';
}
