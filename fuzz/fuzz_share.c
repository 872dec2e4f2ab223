/* SPDX-License-Identifier: Apache-2.0 */
/* --share HOSTDIR:TAG[:ro] on arbitrary strings: the parser never crashes
 * or overruns, and what it accepts splits the input exactly (dir, ':', tag,
 * and ":ro"/":rw" when it saw one); the checks before QEMU never accept a
 * tag QEMU would refuse or a path with ','. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host/deploy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gp_vm_share sh;
	struct gp_why why;
	char *s = malloc(size + 1);
	size_t len;

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	len = strlen(s);
	(void)gp_vm_share_tag_valid(s);
	if (gp_vm_share_parse(s, &sh) == 0) {
		size_t dl = strlen(sh.dir), tl = strlen(sh.tag);
		bool mode = len >= 3 && (strcmp(s + len - 3, ":ro") == 0 ||
					 strcmp(s + len - 3, ":rw") == 0);

		if (dl == 0 || tl == 0 || tl > GP_SHARE_TAG_MAX ||
		    dl + 1 + tl + (mode ? 3 : 0) != len || memcmp(s, sh.dir, dl) != 0 ||
		    sh.readonly != (mode && s[len - 2] == 'r' && s[len - 1] == 'o'))
			abort();
		if (gp_deploy_check_share("fz", &sh, &why) == 0 &&
		    (!gp_vm_share_tag_valid(sh.tag) || strchr(sh.dir, ',') || sh.dir[0] != '/'))
			abort();
	}
	free(s);
	return 0;
}
