/* A tree's state while a writer changes it: the snapshot's records (snapshot.h), with an index by
 * key, so that recording a blob, a manifest or a tag, retagging and removing are constant-time,
 * and the canonical order is settled once, when the snapshot text is made. Internal to layout/. */
#ifndef RP_STATE_H
#define RP_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "snapshot.h"

struct strmap;

struct state {
	struct snap_rec *v;  /* removed records have line NULL until state_sort compacts */
	size_t n, cap;
	struct strmap *keys; /* record key -> index in v */
	int sorted;	     /* v is in snapshot order with nothing removed */
};

int state_init(struct state *st, struct rp_err *err);
void state_free(struct state *st);
/* Take over the records of snap (left empty), or copy them. */
int state_take(struct state *st, struct snapshot *snap, struct rp_err *err);
int state_copy(struct state *st, const struct snapshot *snap, struct rp_err *err);
/* Record that repo serves blob/manifest/missing hex. A record with the same kind, repo and digest
 * stays once: the one whose line sorts first, so the result does not depend on the order. */
int state_put(struct state *st, enum snap_kind kind, const char *repo, const char *hex,
	      uint64_t size, const char *media_type, struct rp_err *err);
/* repo:tag names manifest hex (replacing what it named). */
int state_set_tag(struct state *st, const char *repo, const char *tag, const char *hex,
		  struct rp_err *err);
/* The index of a record, or -1: kind and repo, and the digest (or, for SNAP_TAG, the tag). */
long state_find(const struct state *st, enum snap_kind kind, const char *repo, const char *what);
void state_remove(struct state *st, size_t i);
/* Snapshot order, removed records dropped (indexes change). */
int state_sort(struct state *st, struct rp_err *err);
/* The snapshot text (sorts first); malloc'd. */
char *state_text(struct state *st, size_t *len, struct rp_err *err);
/* The sorted records as a snapshot of text (its id set), borrowing them: the state must not
 * change, and out must not be freed, while out is in use. */
void state_view(const struct state *st, const char *text, size_t len, struct snapshot *out);
/* Hand the records over to out (which owns them then); the state is left empty. */
void state_give(struct state *st, const char *text, size_t len, struct snapshot *out);

#endif
