/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: what an OpenCL driver answers, as the probe decodes it: an
 * extension list (CL_DEVICE_EXTENSIONS) and the raw PCI location answers of
 * cl_khr_pci_bus_info, cl_nv_device_attribute_query and
 * cl_amd_device_attribute_query, of any size and content. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/clprobe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void valid(const struct gp_pci_addr *a)
{
	if (a->dev > 31 || a->func > 7)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {
		"cl_khr_pci_bus_info", "cl_nv_device_attribute_query",
		"cl_amd_device_attribute_query", "x",
	};
	struct gp_pci_addr a;
	uint32_t bus = 0, slot = 0;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		/* A word found must really be in the text. */
		if (gp_cl_ext_has(text, names[i]) && !strstr(text, names[i]))
			abort();
	}
	free(text);
	if (gp_cl_pci_from_khr(data, size, &a) == 0) {
		if (size != 16)
			abort();
		valid(&a);
	}
	if (gp_cl_pci_from_amd(data, size, &a) == 0) {
		if (size != 24)
			abort();
		valid(&a);
	}
	if (size >= 8) {
		memcpy(&bus, data, 4);
		memcpy(&slot, data + 4, 4);
	}
	if (gp_cl_pci_from_nv(bus, slot, &a) == 0)
		valid(&a);
	return 0;
}
