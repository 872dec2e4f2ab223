/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Devices known to misbehave under passthrough, in one table.
 *
 * Reset: AMD's Polaris, Vega 10, Vega 20 and Navi 10/12/14 GPUs do not
 * recover from the resets the kernel can do (bus/FLR): after the first VM
 * stops, the next start finds the GPU hung until the host reboots. This is
 * the widely reported "AMD reset bug"; the out-of-tree vendor-reset module
 * exists for exactly these chips. The device ids are those pci.ids lists for
 * each family.
 */
#include "quirks.h"

#include <stddef.h>

#include "common/util.h"

#define AMD 0x1002
#define RESET GP_QUIRK_RESET_UNRELIABLE
#define VR_NOTE "no reliable reset between VMs; the vendor-reset kernel module " \
		"works around it, otherwise reboot the host between VM runs"

static const struct gp_quirk quirks[] = {
	/* Polaris 10/20/30 (Ellesmere), Polaris 11 (Baffin), Polaris 12 (Lexa) */
	{ AMD, 0x67df, RESET, "AMD Polaris 10", VR_NOTE },
	{ AMD, 0x67ef, RESET, "AMD Polaris 11", VR_NOTE },
	{ AMD, 0x699f, RESET, "AMD Polaris 12", VR_NOTE },
	/* Vega 10: RX Vega 56/64, Vega Frontier, Radeon Pro WX 9100, MI25 */
	{ AMD, 0x6860, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x6861, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x6862, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x6863, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x6864, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x6867, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x6868, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x686c, RESET, "AMD Vega 10", VR_NOTE },
	{ AMD, 0x687f, RESET, "AMD Vega 10", VR_NOTE },
	/* Vega 20: Radeon VII, Radeon Pro VII / Vega II, Instinct MI50/MI60 */
	{ AMD, 0x66a0, RESET, "AMD Vega 20", VR_NOTE },
	{ AMD, 0x66a1, RESET, "AMD Vega 20", VR_NOTE },
	{ AMD, 0x66a2, RESET, "AMD Vega 20", VR_NOTE },
	{ AMD, 0x66a3, RESET, "AMD Vega 20", VR_NOTE },
	{ AMD, 0x66a7, RESET, "AMD Vega 20", VR_NOTE },
	{ AMD, 0x66af, RESET, "AMD Vega 20", VR_NOTE },
	/* Navi 10: RX 5600/5700 (XT), Radeon Pro W5700 */
	{ AMD, 0x7310, RESET, "AMD Navi 10", VR_NOTE },
	{ AMD, 0x7312, RESET, "AMD Navi 10", VR_NOTE },
	{ AMD, 0x7318, RESET, "AMD Navi 10", VR_NOTE },
	{ AMD, 0x7319, RESET, "AMD Navi 10", VR_NOTE },
	{ AMD, 0x731a, RESET, "AMD Navi 10", VR_NOTE },
	{ AMD, 0x731b, RESET, "AMD Navi 10", VR_NOTE },
	{ AMD, 0x731e, RESET, "AMD Navi 10", VR_NOTE },
	{ AMD, 0x731f, RESET, "AMD Navi 10", VR_NOTE },
	/* Navi 12 (Radeon Pro V520), Navi 14 (RX 5500, Pro W5500) */
	{ AMD, 0x7360, RESET, "AMD Navi 12", VR_NOTE },
	{ AMD, 0x7362, RESET, "AMD Navi 12", VR_NOTE },
	{ AMD, 0x7340, RESET, "AMD Navi 14", VR_NOTE },
	{ AMD, 0x7341, RESET, "AMD Navi 14", VR_NOTE },
	{ AMD, 0x7347, RESET, "AMD Navi 14", VR_NOTE },
	{ AMD, 0x734f, RESET, "AMD Navi 14", VR_NOTE },
};

const struct gp_quirk *gp_quirk_find(uint16_t vendor_id, uint16_t device_id)
{
	for (size_t i = 0; i < GP_ARRAY_SIZE(quirks); i++)
		if (quirks[i].vendor_id == vendor_id && quirks[i].device_id == device_id)
			return &quirks[i];
	return NULL;
}
