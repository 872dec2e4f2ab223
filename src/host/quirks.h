/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What is known about particular devices that sysfs cannot tell: one data
 * table (quirks.c), looked up by vendor and device id. Add a row there when
 * a device is found to misbehave; cite where the knowledge comes from.
 */
#ifndef GP_HOST_QUIRKS_H
#define GP_HOST_QUIRKS_H

#include <stdint.h>

enum gp_quirk_flag {
	/* The device does not come back reliably from a reset between VMs
	 * (the "AMD reset bug"): the second VM start may hang or see a dead
	 * GPU until the host reboots. */
	GP_QUIRK_RESET_UNRELIABLE = 1u << 0,
};

struct gp_quirk {
	uint16_t vendor_id;
	uint16_t device_id;
	uint32_t flags;      /* enum gp_quirk_flag */
	const char *family;  /* "AMD Vega 10" */
	const char *note;    /* why, and what helps */
};

/* The row for vendor:device, or NULL. */
const struct gp_quirk *gp_quirk_find(uint16_t vendor_id, uint16_t device_id);

#endif
