/* SPDX-License-Identifier: Apache-2.0 */
/* Dialing any channel address (see channel.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addr.h"
#include "channel.h"
#include "tls.h"
#include "transport.h"

struct relay {
	struct gp_tls_creds *creds; /* GnuTLS needs them while the session lives */
	struct gp_tls *tls;
	int plain;
};

static void *relay_main(void *arg)
{
	struct relay *rl = arg;

	gp_tls_relay(rl->tls, rl->plain);
	gp_tls_free(rl->tls);
	gp_tls_creds_free(rl->creds);
	free(rl);
	return NULL;
}

/* TCP: connect, handshake, preamble, then a relay thread. */
static int dial_tcp(const struct gp_addr *a, const struct gp_dial_opts *o, int *out_fd,
		    char *why, size_t cap)
{
	struct gp_tls_creds *creds = NULL;
	struct gp_tls *tls = NULL;
	struct relay *rl;
	pthread_attr_t attr;
	pthread_t th;
	int fd, sv[2], r;

	if (o->tls_off && !gp_addr_is_loopback(a)) {
		snprintf(why, cap, "GPUPASS_TLS=off is only allowed for a loopback address "
			 "(127.0.0.0/8, ::1)");
		return -EPERM;
	}
	if (!o->tls_off) {
		r = gp_tls_client_creds_new(o->tls_ca, o->tls_cert, o->tls_key, &creds, why, cap);
		if (r < 0)
			return r;
	}
	r = gp_addr_dial(a, &fd);
	if (r < 0) {
		snprintf(why, cap, "%s", strerror(-r));
		goto err_creds;
	}
	r = gp_tls_connect(creds, fd, a->text, o->token, 10000, &tls, why, cap);
	if (r < 0)
		goto err_creds;
	rl = calloc(1, sizeof(*rl));
	if (!rl || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = rl ? -errno : -ENOMEM;
		snprintf(why, cap, "%s", strerror(-r));
		free(rl);
		goto err_tls;
	}
	rl->tls = tls;
	rl->creds = creds;
	rl->plain = sv[1];
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = -pthread_create(&th, &attr, relay_main, rl);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		snprintf(why, cap, "cannot start the TLS relay thread: %s", strerror(-r));
		close(sv[0]);
		close(sv[1]);
		free(rl);
		goto err_tls;
	}
	*out_fd = sv[0];
	return 0;

err_tls:
	gp_tls_free(tls);
err_creds:
	gp_tls_creds_free(creds);
	return r;
}

int gp_channel_dial(const char *addr, const struct gp_dial_opts *o, struct gp_channel *out,
		    char *why, size_t cap)
{
	static const struct gp_dial_opts none = { 0 };
	struct gp_channel ch = { .fd = -1, .stream = true };
	struct gp_addr a;
	char path[512], dummy[8];
	int r;

	if (!why || !cap) {
		why = dummy;
		cap = sizeof(dummy);
	}
	why[0] = '\0';
	if (!o)
		o = &none;
	r = gp_addr_parse(addr, false, &a);
	if (r < 0) {
		snprintf(why, cap, "not an address: expected unix:PATH, unix-stream:PATH, "
			 "serial:NAME, vsock:CID:PORT or tcp:HOST:PORT");
		return r == -EAFNOSUPPORT ? r : -EINVAL;
	}
	switch (a.kind) {
	case GP_ADDR_UNIX:
		ch.stream = false;
		/* fall through */
	case GP_ADDR_UNIX_STREAM:
	case GP_ADDR_VSOCK:
		r = gp_addr_dial(&a, &ch.fd);
		if (r < 0)
			snprintf(why, cap, "%s", strerror(-r));
		break;
	case GP_ADDR_SERIAL:
		ch.serial = true;
		r = gp_serial_find(o->sysroot, a.text, path, sizeof(path));
		if (r == 0) {
			ch.fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
			r = ch.fd < 0 ? -errno : 0;
		}
		if (r < 0)
			snprintf(why, cap, "%s", strerror(-r));
		break;
	case GP_ADDR_TCP:
		r = dial_tcp(&a, o, &ch.fd, why, cap);
		break;
	}
	if (r < 0)
		return r;
	*out = ch;
	return 0;
}
