/* Whether a volume set comes from the release team: its snapshot.sig and release.sig verified
 * against the keys the enclave trusts (never a key the set brings), and its release, which the
 * import compares with the tree's so that no disc takes the enclave back (docs/media.md,
 * "Trust"; ../shared/notes/trust.md). */
#include "media_int.h"

#include <stdio.h>
#include <string.h>

#include "sign.h"

/* msg signed by any one of the trusted keys: 0, or -1 with the reason (naming the file). */
static int signed_by_trusted(const struct volume *v, const struct media_trust *trust,
			     enum layout_signed sig, const char *msg, size_t len, struct rp_err *err)
{
	char name[4096];
	struct rp_err e = { "" };
	size_t i;

	fsat_name(&v->dir, layout_signed_name(sig), name, sizeof(name));
	for (i = 0; i < trust->npubkeys; i++)
		if (sign_verify(trust->pubkeys[i], msg, len, v->signed_buf[sig], &e) == 0)
			return 0;
	if (trust->npubkeys == 1)
		return rp_errf(err, "'%s': %s", name, e.msg);
	return rp_errf(err, "'%s': not signed by any of the %zu trusted keys (the last said: %s)",
		       name, trust->npubkeys, e.msg);
}

int volume_trust(const struct volume *v, const struct media_trust *trust, int *signed_ok,
		 struct release *rel, int *has_release, struct rp_err *err)
{
	const char *rtext = v->signed_buf[LAYOUT_RELEASE];
	char name[4096];

	*signed_ok = 0;
	*has_release = 0;
	memset(rel, 0, sizeof(*rel));
	fsat_name(&v->dir, layout_signed_name(LAYOUT_RELEASE), name, sizeof(name));
	if (rtext) {
		if (release_parse(rtext, v->signed_len[LAYOUT_RELEASE], name, rel, err) < 0)
			return -1;
		if (strcmp(rel->snapshot, v->m.snapshot_id))
			return rp_errf(err, "'%s': release %llu is of snapshot sha256:%s, not of the "
				       "set's sha256:%s", name, (unsigned long long)rel->number,
				       rel->snapshot, v->m.snapshot_id);
	}
	if (!trust || !trust->npubkeys) {
		/* Unchecked, but an unsigned release still only goes forward. */
		*has_release = rtext != NULL;
		return 0;
	}
	if (!v->signed_buf[LAYOUT_SNAPSHOT_SIG])
		return rp_errf(err, "'%s': the volume set is not signed (it was made from a tree "
			       "without 'regpress snapshot --sign')", v->path);
	if (signed_by_trusted(v, trust, LAYOUT_SNAPSHOT_SIG, v->snapshot, v->snapshot_len, err) < 0)
		return -1;
	if (!rtext || !v->signed_buf[LAYOUT_RELEASE_SIG])
		return rp_errf(err, "'%s': the snapshot is signed, but without a signed release "
			       "number, so it cannot be told from an older release (sign it with "
			       "'regpress snapshot --sign')", v->path);
	if (signed_by_trusted(v, trust, LAYOUT_RELEASE_SIG, rtext, v->signed_len[LAYOUT_RELEASE],
			      err) < 0)
		return -1;
	*signed_ok = 1;
	*has_release = 1;
	return 0;
}
