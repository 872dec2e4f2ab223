/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for gpupass-pvd's INI configuration parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pvd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_pvd_config c = { 0 };
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	gp_pvd_config_parse(s, &c);
	gp_pvd_config_clear(&c);
	free(s);
	return 0;
}
