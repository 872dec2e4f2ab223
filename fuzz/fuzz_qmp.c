/* SPDX-License-Identifier: Apache-2.0 */
/*
 * QMP replies and guest-agent output are outside data: a QEMU we do not
 * control, a guest that may be hostile. Feeds arbitrary bytes through the
 * reply classifier, the query-pci walker and the base64 decoder.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/vm/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *ret = NULL;
	char err[256], *text, *out = NULL;
	size_t n = 0;

	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (gp_qmp_parse_reply(text, size, &ret, err, sizeof(err)) == 0) {
		struct gp_qmp_pci_dev *devs = NULL;

		/* Whatever came back, walk it as a query-pci result. */
		if (gp_qmp_parse_pci(ret, &devs, &n) == 0)
			free(devs);
		json_object_put(ret);
	}
	{
		struct json_object *whole = json_tokener_parse(text);
		struct gp_qmp_pci_dev *devs = NULL;

		if (whole && gp_qmp_parse_pci(whole, &devs, &n) == 0)
			free(devs);
		json_object_put(whole);
	}
	if (gp_base64_decode(text, &out, &n) == 0)
		free(out);
	free(text);
	return 0;
}
