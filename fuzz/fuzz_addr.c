/* SPDX-License-Identifier: Apache-2.0 */
/* Channel addresses (GPUPASS_SERVER, [server] listen), certificate
 * fingerprints from the config, and the TCP token preamble a remote client
 * sends (plain mode: the bytes as they come after the TLS layer). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport/addr.h"
#include "transport/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_addr(const char *s, bool listen)
{
	struct gp_addr a;

	if (gp_addr_parse(s, listen, &a) != 0)
		return;
	/* what parsed is whole and bounded */
	if (strnlen(a.text, sizeof(a.text)) >= sizeof(a.text))
		abort();
	if (a.kind == GP_ADDR_TCP && (a.port == 0 || a.port > 65535 || !a.text[0]))
		abort();
	if (a.kind == GP_ADDR_VSOCK && a.port == UINT32_MAX)
		abort();
	if (!listen && a.kind == GP_ADDR_VSOCK && a.cid == GP_ADDR_CID_ANY)
		abort();
	(void)gp_addr_is_loopback(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char token[GP_TLS_TOKEN_MAX + 1];
	uint8_t fp[32];
	struct gp_tls *t;
	int sv[2];

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	check_addr(s, false);
	check_addr(s, true);
	(void)gp_tls_parse_sha256(s, fp);
	free(s);
	if (size > 4096 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 0;
	if (size && write(sv[0], data, size) != (ssize_t)size)
		abort();
	shutdown(sv[0], SHUT_WR);
	if (gp_tls_accept(NULL, sv[1], 0, &t, NULL, 0) == 0) {
		if (gp_tls_recv_auth(t, token, 0) == 0 && strlen(token) > GP_TLS_TOKEN_MAX)
			abort();
		gp_tls_free(t);
	}
	close(sv[0]);
	return 0;
}
