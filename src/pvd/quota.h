/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a guest makes its worker hold, charged to the guest's slot of the
 * shared table (plain C, no OpenCL: unit tests use it): bytes against
 * memory_max, records against max_objects, one counter per kind of
 * holding so that the status can say where the bytes are.
 */
#ifndef GP_PVD_QUOTA_H
#define GP_PVD_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

#include "table.h"

/* What the platform and the server hold per event, callback record or
 * queued command besides its data (PoCL 3: the event, the command node
 * and the callback record come to a few hundred bytes; rounded up). */
#define PVD_RECORD_BYTES 1024u

/* Refuses a charge beyond the guest's memory_max (0: unlimited). Other
 * kinds than memory objects are refused with CL_OUT_OF_RESOURCES by the
 * caller. The kinds are the table's (PVD_CHARGE_*, table.h). */
int pvd_quota_charge(struct pvd_guest *g, uint64_t bytes, unsigned kind);
void pvd_quota_refund(struct pvd_guest *g, uint64_t bytes, unsigned kind);
/* One more object (a handle, or a record the server holds for the guest)
 * unless max_objects is reached: 0 or -ENOSPC. */
int pvd_quota_take_object(struct pvd_guest *g);
void pvd_quota_put_object(struct pvd_guest *g);
/* Both at once, undone together on failure (-ENOSPC: objects, -EDQUOT:
 * bytes). */
int pvd_quota_take_record(struct pvd_guest *g, uint64_t bytes, unsigned kind);
void pvd_quota_put_record(struct pvd_guest *g, uint64_t bytes, unsigned kind);
/* Name of a kind for logs and status ("memory", "programs", ...). */
const char *pvd_quota_kind_name(unsigned kind);

#endif
