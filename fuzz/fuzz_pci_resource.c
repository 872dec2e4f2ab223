/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer: the sysfs `resource` parser, and the address and location-path
 * parsers, on any text. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_pci_bar bars[GP_PCI_NUM_RESOURCES];
	struct gp_pci_addr a;
	char *text = malloc(size + 1), *loc = NULL;
	int bad = 0, n;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	n = gp_pci_resource_parse(text, bars, &bad);
	if (n > GP_PCI_NUM_RESOURCES || (n < 0 && bad < 1))
		abort();
	for (int i = 0; i < n; i++)
		if (bars[i].size && bars[i].end < bars[i].start)
			abort();
	if (gp_pci_addr_parse(text, &a) == 0 && (a.dev > 31 || a.func > 7))
		abort();
	if (gp_pci_location_from_path(text, &loc) == 0 && strncmp(loc, "PCIROOT(", 8) != 0)
		abort();
	free(loc);
	free(text);
	return 0;
}
