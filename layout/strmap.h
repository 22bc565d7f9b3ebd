/* A hash table from strings to numbers (indexes into an array the caller keeps), so that the tree
 * writer finds a record, a tag or a blob in constant time instead of scanning. Keys are copied. */
#ifndef RP_STRMAP_H
#define RP_STRMAP_H

#include <stddef.h>

struct strmap;

struct strmap *strmap_new(void);
void strmap_free(struct strmap *m);
/* 0 with *val set when key is there, -1 when not. */
int strmap_get(const struct strmap *m, const char *key, size_t *val);
/* Insert or replace; -1 out of memory. */
int strmap_put(struct strmap *m, const char *key, size_t val);
/* Remove key if there. */
void strmap_del(struct strmap *m, const char *key);
size_t strmap_count(const struct strmap *m);
/* Every entry, in no particular order: start with *pos = 0; 0 and key/val set per entry, -1 at
 * the end. The map must not change meanwhile. */
int strmap_next(const struct strmap *m, size_t *pos, const char **key, size_t *val);

#endif
