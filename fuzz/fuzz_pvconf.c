/* SPDX-License-Identifier: Apache-2.0 */
/* The pvd.conf section editor on arbitrary file contents: finding,
 * replacing and removing [guest fz] never crashes, and after a put the
 * section is there exactly once, after a remove it is gone. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host/pvconf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* tmpfs when there is one: the editor fsyncs every write, which on a
	 * busy disk made 20000 runs take minutes. */
	char path[] = "/dev/shm/gp-fuzz-pvconf-XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0) {
		snprintf(path, sizeof(path), "%s", "/tmp/gp-fuzz-pvconf-XXXXXX");
		fd = mkstemp(path);
	}

	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size) {
		close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	(void)gp_pvconf_has_guest(path, "fz");
	if (gp_pvconf_put_guest(path, "fz", "/run/gpupass/pv/fz.sock", 1u << 30, 3,
				"/run/gpupass/pv/fz.shm") == 0 &&
	    gp_pvconf_has_guest(path, "fz") != 1)
		abort();
	if (gp_pvconf_remove_guest(path, "fz") == 0 && gp_pvconf_has_guest(path, "fz") != 0)
		abort();
	unlink(path);
	return 0;
}
