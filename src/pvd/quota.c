/* SPDX-License-Identifier: Apache-2.0 */
/* Charges of what a guest makes its worker hold, against its limits. */
#include <errno.h>

#include "quota.h"

/* The slot lives in the shared table: compare-and-swap instead of a
 * lock, so that a worker that dies never leaves it locked. */
int pvd_quota_charge(struct pvd_guest *g, uint64_t bytes, unsigned kind)
{
	uint64_t max = __atomic_load_n(&g->memory_max, __ATOMIC_RELAXED);
	uint64_t used = __atomic_load_n(&g->mem_used, __ATOMIC_RELAXED);

	if (kind >= PVD_CHARGE_KINDS)
		return -EINVAL;
	if (bytes == 0)
		return 0;
	do {
		if (max && (bytes > max || used > max - bytes))
			return -EDQUOT;
	} while (!__atomic_compare_exchange_n(&g->mem_used, &used, used + bytes, false,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	__atomic_add_fetch(&g->charged[kind], bytes, __ATOMIC_RELAXED);
	return 0;
}

void pvd_quota_refund(struct pvd_guest *g, uint64_t bytes, unsigned kind)
{
	if (bytes == 0 || kind >= PVD_CHARGE_KINDS)
		return;
	__atomic_sub_fetch(&g->charged[kind], bytes, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&g->mem_used, bytes, __ATOMIC_RELAXED);
}

int pvd_quota_take_object(struct pvd_guest *g)
{
	uint32_t max = __atomic_load_n(&g->max_objects, __ATOMIC_RELAXED);
	uint32_t n = __atomic_load_n(&g->objects, __ATOMIC_RELAXED);

	do {
		if (max && n >= max)
			return -ENOSPC;
	} while (!__atomic_compare_exchange_n(&g->objects, &n, n + 1, false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return 0;
}

void pvd_quota_put_object(struct pvd_guest *g)
{
	__atomic_sub_fetch(&g->objects, 1, __ATOMIC_RELAXED);
}

int pvd_quota_take_record(struct pvd_guest *g, uint64_t bytes, unsigned kind)
{
	int r = pvd_quota_take_object(g);

	if (r < 0)
		return r;
	r = pvd_quota_charge(g, bytes, kind);
	if (r < 0)
		pvd_quota_put_object(g);
	return r;
}

void pvd_quota_put_record(struct pvd_guest *g, uint64_t bytes, unsigned kind)
{
	pvd_quota_refund(g, bytes, kind);
	pvd_quota_put_object(g);
}

const char *pvd_quota_kind_name(unsigned kind)
{
	static const char *const names[PVD_CHARGE_KINDS] = {
		[PVD_CHARGE_MEM] = "memory objects",
		[PVD_CHARGE_PROGRAM] = "programs",
		[PVD_CHARGE_STAGE] = "staged uploads",
		[PVD_CHARGE_WRITE] = "queued writes",
		[PVD_CHARGE_RECORD] = "records",
	};

	return kind < PVD_CHARGE_KINDS ? names[kind] : "?";
}
