/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A session's handle table: wire ids (u64) -> host objects of one kind.
 * Guests never see host pointers; an id that is unknown, or names an
 * object of another kind, is refused. Ids of objects the guest creates are
 * chosen by the guest (so creation can be pipelined) and must be fresh.
 */
#ifndef GP_PVD_HANDLES_H
#define GP_PVD_HANDLES_H

#include <stddef.h>
#include <stdint.h>

struct gp_handles;

struct gp_handle {
	uint64_t id;
	uint32_t kind;  /* GP_KIND_* */
	void *obj;      /* the host OpenCL object */
	uint64_t bytes; /* device memory charged to the guest */
	void *aux;      /* per-kind extra, owned (a kernel's argument classes) */
	uint32_t aux_n;
};

int gp_handles_new(uint32_t max_objects, struct gp_handles **out);
void gp_handles_free(struct gp_handles *h);
/* -EEXIST (id in use or 0), -ENOSPC (max_objects reached), -ENOMEM. */
int gp_handles_add(struct gp_handles *h, uint64_t id, uint32_t kind, void *obj,
		   uint64_t bytes);
/* -ENOENT if absent, -EPERM if the kind differs (GP_KIND_NONE: any). */
int gp_handles_get(struct gp_handles *h, uint64_t id, uint32_t kind, struct gp_handle **out);
/* Removes and copies out the entry; -ENOENT if absent. */
int gp_handles_remove(struct gp_handles *h, uint64_t id, struct gp_handle *out);
size_t gp_handles_count(const struct gp_handles *h);
/* Calls @fn for every entry of @kind (the table must not change meanwhile). */
void gp_handles_foreach(struct gp_handles *h, uint32_t kind,
			void (*fn)(struct gp_handle *e, void *data), void *data);

#endif
