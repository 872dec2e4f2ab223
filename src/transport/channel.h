/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The ICD's one way to reach gpupass-pvd: parses the address (addr.h) and
 * opens the channel, whatever its kind. For tcp: the TLS session lives in
 * a relay thread (tls.h); the caller gets the plaintext end of a
 * socketpair, in stream mode like every channel but unix:.
 */
#ifndef GP_TRANSPORT_CHANNEL_H
#define GP_TRANSPORT_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>

struct gp_dial_opts {
	const char *sysroot;  /* for serial: (GPUPASS_SYSROOT), may be NULL */
	const char *tls_ca;   /* GPUPASS_TLS_CA: NULL = the system trust store */
	const char *tls_cert; /* GPUPASS_TLS_CERT / GPUPASS_TLS_KEY: a client certificate */
	const char *tls_key;
	const char *token;    /* GPUPASS_TOKEN */
	bool tls_off;         /* GPUPASS_TLS=off: plain TCP, loopback hosts only */
};

struct gp_channel {
	int fd;
	bool stream; /* no descriptor passing: everything inline */
	bool serial; /* a virtio-serial port (persistent, shared by programs) */
};

/* Opens @addr. On failure @why (may be NULL) says what went wrong for a
 * person, without the address. */
int gp_channel_dial(const char *addr, const struct gp_dial_opts *o, struct gp_channel *out,
		    char *why, size_t cap);

#endif
