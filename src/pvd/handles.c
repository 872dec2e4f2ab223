/* SPDX-License-Identifier: Apache-2.0 */
/* Open addressing with linear probing and tombstones; grows at 50% load. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "handles.h"
#include "proto/proto.h"

#define TOMB UINT32_MAX

struct gp_handles {
	struct gp_handle *slots; /* kind 0: empty, TOMB: deleted */
	size_t cap;
	size_t used;  /* live entries */
	size_t dirty; /* live + tombstones */
	uint32_t max;
};

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

int gp_handles_new(uint32_t max_objects, struct gp_handles **out)
{
	struct gp_handles *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->cap = 64;
	h->slots = calloc(h->cap, sizeof(*h->slots));
	if (!h->slots) {
		free(h);
		return -ENOMEM;
	}
	h->max = max_objects;
	*out = h;
	return 0;
}

void gp_handles_free(struct gp_handles *h)
{
	if (!h)
		return;
	free(h->slots);
	free(h);
}

static struct gp_handle *find(struct gp_handles *h, uint64_t id)
{
	size_t i = mix(id) & (h->cap - 1);

	for (size_t n = 0; n < h->cap; n++, i = (i + 1) & (h->cap - 1)) {
		struct gp_handle *s = &h->slots[i];

		if (s->kind == 0)
			return NULL;
		if (s->kind != TOMB && s->id == id)
			return s;
	}
	return NULL;
}

static void insert(struct gp_handle *slots, size_t cap, const struct gp_handle *e)
{
	size_t i = mix(e->id) & (cap - 1);

	while (slots[i].kind != 0 && slots[i].kind != TOMB)
		i = (i + 1) & (cap - 1);
	slots[i] = *e;
}

static int grow(struct gp_handles *h)
{
	size_t cap = h->used * 4 > h->cap ? h->cap * 2 : h->cap;
	struct gp_handle *ns = calloc(cap, sizeof(*ns));

	if (!ns)
		return -ENOMEM;
	for (size_t i = 0; i < h->cap; i++)
		if (h->slots[i].kind != 0 && h->slots[i].kind != TOMB)
			insert(ns, cap, &h->slots[i]);
	free(h->slots);
	h->slots = ns;
	h->cap = cap;
	h->dirty = h->used;
	return 0;
}

int gp_handles_add(struct gp_handles *h, uint64_t id, uint32_t kind, void *obj,
		   uint64_t bytes)
{
	struct gp_handle e = { .id = id, .kind = kind, .obj = obj, .bytes = bytes };
	int r;

	if (id == 0 || kind == GP_KIND_NONE || kind > GP_KIND_MAX || find(h, id))
		return -EEXIST;
	if (h->max && h->used >= h->max)
		return -ENOSPC;
	if ((h->dirty + 1) * 2 > h->cap) {
		r = grow(h);
		if (r < 0)
			return r;
	}
	insert(h->slots, h->cap, &e);
	h->used++;
	h->dirty++;
	return 0;
}

int gp_handles_get(struct gp_handles *h, uint64_t id, uint32_t kind, struct gp_handle **out)
{
	struct gp_handle *s = find(h, id);

	if (!s)
		return -ENOENT;
	if (kind != GP_KIND_NONE && s->kind != kind)
		return -EPERM;
	*out = s;
	return 0;
}

int gp_handles_remove(struct gp_handles *h, uint64_t id, struct gp_handle *out)
{
	struct gp_handle *s = find(h, id);

	if (!s)
		return -ENOENT;
	if (out)
		*out = *s;
	s->kind = TOMB;
	s->obj = NULL;
	h->used--;
	return 0;
}

size_t gp_handles_count(const struct gp_handles *h)
{
	return h->used;
}

void gp_handles_foreach(struct gp_handles *h, uint32_t kind,
			void (*fn)(struct gp_handle *e, void *data), void *data)
{
	for (size_t i = 0; i < h->cap; i++) {
		struct gp_handle *s = &h->slots[i];

		if (s->kind != 0 && s->kind != TOMB && (kind == GP_KIND_NONE || s->kind == kind))
			fn(s, data);
	}
}
