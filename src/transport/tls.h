/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TCP channels, with TLS (GnuTLS) or, on loopback only, plain.
 *
 * Both ends terminate TLS in a relay: a thread copies plaintext between
 * the TLS session and one end of a unix socketpair whose other end is an
 * ordinary stream-mode connection (src/transport/stream.c) — the server's
 * session code and the ICD's stream code run unchanged over it, and the
 * TLS session is used by one thread only (GnuTLS sessions are not safe to
 * use from two threads at once).
 *
 * Right after the handshake the client sends an authentication preamble
 * (GP_TLS_AUTH_MAGIC, a u16 LE length, the token bytes: possibly none);
 * see src/proto/PROTOCOL.md "vsock and TCP channels".
 *
 * Functions return 0 or -errno; where a reason helps a person (a
 * certificate that does not verify, a file that does not load) it goes to
 * @why (may be NULL).
 */
#ifndef GP_TRANSPORT_TLS_H
#define GP_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GP_TLS_AUTH_MAGIC "GPPVAUTH"
/* The server's answer to the preamble: in TLS 1.3 the client's handshake
 * ends before the server has checked the client's certificate, so the
 * client waits for this to tell "refused" from "connected". */
#define GP_TLS_AUTH_ACK "GPPVOKAY"
#define GP_TLS_TOKEN_MAX 256

struct gp_tls_creds;
struct gp_tls;

/* Server credentials: certificate chain and key (PEM files), and an
 * optional CA file: with it, clients must present a certificate signed by
 * it; without it a client certificate is asked for but optional (a guest
 * pinned by tls_peer_sha256 may use a self-signed one). */
int gp_tls_server_creds_new(const char *cert, const char *key, const char *ca,
			    struct gp_tls_creds **out, char *why, size_t cap);
/* Client credentials: the CA that signed the server's certificate (NULL:
 * the system's trust store), and an optional client certificate + key. */
int gp_tls_client_creds_new(const char *ca, const char *cert, const char *key,
			    struct gp_tls_creds **out, char *why, size_t cap);
void gp_tls_creds_free(struct gp_tls_creds *c);

/* Server side of a connection on @fd (taken, also on error): the TLS
 * handshake within @timeout_ms, or nothing when @creds is NULL (plain
 * TCP on loopback). */
int gp_tls_accept(struct gp_tls_creds *creds, int fd, int timeout_ms, struct gp_tls **out,
		  char *why, size_t cap);
/* Client side: the handshake, the server's certificate checked against
 * the CA and @host; then the preamble with @token (NULL: none), and the
 * server's GP_TLS_AUTH_ACK (-EACCES with the TLS alert in @why when the
 * server refused our certificate). */
int gp_tls_connect(struct gp_tls_creds *creds, int fd, const char *host, const char *token,
		   int timeout_ms, struct gp_tls **out, char *why, size_t cap);
/* Reads the client's preamble and answers GP_TLS_AUTH_ACK: @token gets
 * up to GP_TLS_TOKEN_MAX bytes, NUL-terminated. -EBADMSG if it is not one. */
int gp_tls_recv_auth(struct gp_tls *t, char token[GP_TLS_TOKEN_MAX + 1], int timeout_ms);
/* SHA-256 of the peer's certificate (DER). -ENOENT when it sent none. */
int gp_tls_peer_sha256(struct gp_tls *t, uint8_t out[32]);
/* Reads exactly @len plaintext bytes. */
int gp_tls_read(struct gp_tls *t, void *buf, size_t len, int timeout_ms);
/* Copies both ways between @t and @plain_fd until either side closes or
 * fails; returns why it ended (0: an orderly close). Takes @plain_fd. */
int gp_tls_relay(struct gp_tls *t, int plain_fd);
/* Ends the session (close_notify when TLS) and closes the socket. */
void gp_tls_free(struct gp_tls *t);

/* Constant-time comparison of two tokens (SHA-256 of each, compared
 * without an early exit): true when equal. */
bool gp_tls_token_equal(const char *a, const char *b);
/* Parses a SHA-256 fingerprint: 64 hex digits, optionally with ':'
 * between the bytes. */
int gp_tls_parse_sha256(const char *s, uint8_t out[32]);

#endif
