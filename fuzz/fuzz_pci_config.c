/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the config-space capability walk (standard and extended lists)
 * on any bytes of any length. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_pci_config_info ci;
	/* An exact-size heap copy, so ASan sees any read past the end. */
	uint8_t *cfg = malloc(size ? size : 1);

	if (!cfg)
		return 0;
	memcpy(cfg, data, size);
	if (gp_pci_config_parse(cfg, size, &ci) == 0) {
		/* What the walk reports must be consistent with what it read. */
		if (ci.ext_caps_known && !(ci.caps & GP_PCI_CAP_PCIE))
			abort();
		if (!ci.caps_known && size >= GP_PCI_CFG_LEGACY)
			abort();
	} else if (size >= GP_PCI_CFG_MIN && (data[0] | data[1] << 8) != 0xffff &&
		   (data[0] | data[1] << 8) != 0) {
		abort(); /* a header with a vendor id must parse */
	}
	free(cfg);
	return 0;
}
