/* SPDX-License-Identifier: Apache-2.0 */
/* TCP channels: GnuTLS sessions (or plain on loopback) and the relay. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tls.h"
#include "transport.h"

struct gp_tls_creds {
	gnutls_certificate_credentials_t x509;
	bool server;
	bool ca; /* server: client certificates must verify against a CA */
};

struct gp_tls {
	gnutls_session_t s; /* NULL: plain TCP */
	int fd;
	int last_err; /* the last GnuTLS error of a read, for messages */
};

/* Relay buffer: a TLS record carries at most 16 KiB (RFC 8446 5.1). */
#define RELAY_BUF (64u * 1024)
/* How long a relay waits for a peer that does not take its data. */
#define WRITE_TIMEOUT_MS 60000

static void say(char *why, size_t cap, const char *what, int err)
{
	if (why && cap)
		snprintf(why, cap, "%s: %s", what, gnutls_strerror(err));
}

static void creds_init(void)
{
	/* Reference-counted inside GnuTLS; its constructor already ran, this
	 * only makes the dependency explicit for static builds. */
	gnutls_global_init();
}

/* Credentials with nothing in them yet (0 or -ENOMEM). */
static int creds_alloc(bool server, struct gp_tls_creds **out, char *why, size_t cap)
{
	struct gp_tls_creds *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	creds_init();
	c->server = server;
	r = gnutls_certificate_allocate_credentials(&c->x509);
	if (r < 0) {
		say(why, cap, "allocating credentials", r);
		free(c);
		gnutls_global_deinit();
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

/* Frees what creds_alloc made after GnuTLS error @r; the errno for it. */
static int creds_fail(struct gp_tls_creds *c, int r)
{
	gp_tls_creds_free(c);
	return r == GNUTLS_E_MEMORY_ERROR ? -ENOMEM : -EINVAL;
}

/* Trust anchors from @ca (NULL: the system's store), named @what in
 * @why: a file without a certificate in it is an error too. */
static int load_trust(struct gp_tls_creds *c, const char *ca, const char *what, char *why,
		      size_t cap)
{
	int r = ca ? gnutls_certificate_set_x509_trust_file(c->x509, ca, GNUTLS_X509_FMT_PEM)
		   : gnutls_certificate_set_x509_system_trust(c->x509);

	if (r > 0)
		return 0;
	if (why && cap)
		snprintf(why, cap, "%s %s: %s", what, ca ? ca : "(system trust store)",
			 r == 0 ? "no certificate in it" : gnutls_strerror(r));
	return r == 0 ? GNUTLS_E_FILE_ERROR : r;
}

/* A certificate and its key, named @cert_what and @key_what in @why. */
static int load_key(struct gp_tls_creds *c, const char *cert, const char *key,
		    const char *cert_what, const char *key_what, char *why, size_t cap)
{
	int r = gnutls_certificate_set_x509_key_file(c->x509, cert, key, GNUTLS_X509_FMT_PEM);

	if (r < 0 && why && cap)
		snprintf(why, cap, "%s %s / %s %s: %s", cert_what, cert, key_what, key,
			 gnutls_strerror(r));
	return r < 0 ? r : 0;
}

int gp_tls_server_creds_new(const char *cert, const char *key, const char *ca,
			    struct gp_tls_creds **out, char *why, size_t cap)
{
	struct gp_tls_creds *c;
	int r = creds_alloc(true, &c, why, cap);

	if (r < 0)
		return r;
	r = load_key(c, cert, key, "tls_cert", "tls_key", why, cap);
	if (r == 0 && ca) {
		r = load_trust(c, ca, "tls_ca", why, cap);
		c->ca = r == 0;
	}
	if (r < 0)
		return creds_fail(c, r);
	*out = c;
	return 0;
}

int gp_tls_client_creds_new(const char *ca, const char *cert, const char *key,
			    struct gp_tls_creds **out, char *why, size_t cap)
{
	struct gp_tls_creds *c;
	int r = creds_alloc(false, &c, why, cap);

	if (r < 0)
		return r;
	r = load_trust(c, ca, "CA", why, cap);
	if (r == 0 && (cert || key)) {
		if (!cert || !key) {
			if (why && cap)
				snprintf(why, cap, "a client certificate needs both GPUPASS_TLS_CERT "
					 "and GPUPASS_TLS_KEY");
			r = GNUTLS_E_INVALID_REQUEST;
		} else {
			r = load_key(c, cert, key, "client certificate", "key", why, cap);
		}
	}
	if (r < 0)
		return creds_fail(c, r);
	*out = c;
	return 0;
}

void gp_tls_creds_free(struct gp_tls_creds *c)
{
	if (!c)
		return;
	gnutls_certificate_free_credentials(c->x509);
	free(c);
	gnutls_global_deinit();
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @deadline (<0: none), for poll(). */
static int left_ms(int64_t deadline)
{
	int64_t l;

	if (deadline < 0)
		return -1;
	l = deadline - now_ms();
	return l < 0 ? 0 : (int)(l > 3600000 ? 3600000 : l);
}

/* Waits for the direction GnuTLS is blocked on. */
static int tls_wait(struct gp_tls *t, int64_t deadline)
{
	short ev = gnutls_record_get_direction(t->s) ? POLLOUT : POLLIN;

	return gp_fd_wait(t->fd, ev, left_ms(deadline));
}

static int tls_new(int fd, struct gp_tls **out)
{
	struct gp_tls *t = calloc(1, sizeof(*t));
	int fl = fcntl(fd, F_GETFL);

	if (!t || fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		free(t);
		close(fd);
		return -ENOMEM;
	}
	t->fd = fd;
	*out = t;
	return 0;
}

static int handshake(struct gp_tls *t, int timeout_ms, char *why, size_t cap)
{
	int64_t deadline = now_ms() + timeout_ms;
	int r;

	for (;;) {
		r = gnutls_handshake(t->s);
		if (r == GNUTLS_E_SUCCESS)
			return 0;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED ||
		    (r < 0 && !gnutls_error_is_fatal(r))) {
			int w = tls_wait(t, deadline);

			if (w == -ETIMEDOUT) {
				if (why && cap)
					snprintf(why, cap, "TLS handshake: no answer within %d ms", timeout_ms);
				return w;
			}
			if (w < 0 && w != -EPIPE) {
				say(why, cap, "TLS handshake", r);
				return w;
			}
			continue;
		}
		break;
	}
	/* Tell the peer why (a TLS 1.3 client learns only from this alert
	 * that we wanted its certificate); best effort. */
	gnutls_alert_send_appropriate(t->s, r);
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		gnutls_datum_t txt = { NULL, 0 };
		unsigned st = gnutls_session_get_verify_cert_status(t->s);

		if (gnutls_certificate_verification_status_print(st, GNUTLS_CRT_X509, &txt, 0) == 0) {
			if (why && cap)
				snprintf(why, cap, "TLS: the peer's certificate does not verify: %s",
					 (const char *)txt.data);
			gnutls_free(txt.data);
		} else {
			say(why, cap, "TLS handshake", r);
		}
		return -EACCES;
	}
	say(why, cap, "TLS handshake", r);
	return r == GNUTLS_E_PREMATURE_TERMINATION || r == GNUTLS_E_PULL_ERROR ||
	       r == GNUTLS_E_PUSH_ERROR ? -EPIPE : -EPROTO;
}

int gp_tls_accept(struct gp_tls_creds *creds, int fd, int timeout_ms, struct gp_tls **out,
		  char *why, size_t cap)
{
	struct gp_tls *t;
	unsigned status = 0;
	int r;

	r = tls_new(fd, &t);
	if (r < 0 || !creds) {
		if (r == 0)
			*out = t;
		return r;
	}
	/* NO_SIGNAL: a peer that hung up is an error, not a SIGPIPE (in the
	 * ICD that would kill the guest's program). */
	r = gnutls_init(&t->s, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
	if (r < 0) {
		say(why, cap, "TLS init", r);
		t->s = NULL;
		gp_tls_free(t);
		return -ENOMEM;
	}
	if (gnutls_set_default_priority(t->s) < 0 ||
	    gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, creds->x509) < 0) {
		say(why, cap, "TLS setup", GNUTLS_E_INTERNAL_ERROR);
		gp_tls_free(t);
		return -EINVAL;
	}
	gnutls_certificate_server_set_request(t->s, creds->ca ? GNUTLS_CERT_REQUIRE
							      : GNUTLS_CERT_REQUEST);
	gnutls_transport_set_int(t->s, t->fd);
	r = handshake(t, timeout_ms, why, cap);
	if (r == 0 && creds->ca) {
		/* GNUTLS_CERT_REQUIRE makes a certificate mandatory; whether
		 * it is signed by tls_ca is ours to check. */
		r = gnutls_certificate_verify_peers2(t->s, &status);
		if (r < 0 || status != 0) {
			gnutls_datum_t txt = { NULL, 0 };

			if (r == 0 && gnutls_certificate_verification_status_print(
					      status, GNUTLS_CRT_X509, &txt, 0) == 0) {
				if (why && cap)
					snprintf(why, cap, "client certificate not accepted: %s",
						 (const char *)txt.data);
				gnutls_free(txt.data);
			} else {
				say(why, cap, "client certificate not accepted", r < 0 ? r : GNUTLS_E_CERTIFICATE_ERROR);
			}
			r = -EACCES;
		}
	}
	if (r < 0) {
		gp_tls_free(t);
		return r;
	}
	*out = t;
	return 0;
}

static int write_all(struct gp_tls *t, const void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	const char *p = buf;
	ssize_t n;
	int r;

	if (!t->s)
		return gp_stream_write(t->fd, buf, len, timeout_ms);
	while (len > 0) {
		n = gnutls_record_send(t->s, p, len);
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
			r = tls_wait(t, deadline);
			if (r < 0)
				return r;
			continue;
		}
		if (n < 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads what is there (at least one byte, at most @len): the count, 0 at
 * an orderly close, or -errno. */
static ssize_t read_some(struct gp_tls *t, void *buf, size_t len, int64_t deadline)
{
	ssize_t n;
	int r;

	for (;;) {
		if (t->s)
			n = gnutls_record_recv(t->s, buf, len);
		else
			n = read(t->fd, buf, len);
		if (n >= 0)
			return n;
		if (t->s ? (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			 : (errno == EAGAIN || errno == EINTR)) {
			r = t->s ? tls_wait(t, deadline) : gp_fd_wait(t->fd, POLLIN, left_ms(deadline));
			if (r < 0)
				return r;
			continue;
		}
		if (!t->s)
			return errno == ECONNRESET ? -EPIPE : -errno;
		t->last_err = (int)n;
		/* A peer that drops the connection without close_notify, or
		 * sends records that do not decrypt. */
		return n == GNUTLS_E_PREMATURE_TERMINATION ? -EPIPE : -EPROTO;
	}
}

int gp_tls_read(struct gp_tls *t, void *buf, size_t len, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = read_some(t, p, len, deadline);
		if (n == 0)
			return -EPIPE;
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int gp_tls_connect(struct gp_tls_creds *creds, int fd, const char *host, const char *token,
		   int timeout_ms, struct gp_tls **out, char *why, size_t cap)
{
	uint8_t pre[sizeof(GP_TLS_AUTH_MAGIC) - 1 + 2 + GP_TLS_TOKEN_MAX];
	size_t tlen = token ? strlen(token) : 0, mlen = sizeof(GP_TLS_AUTH_MAGIC) - 1;
	struct gp_tls *t;
	int r;

	if (tlen > GP_TLS_TOKEN_MAX) {
		close(fd);
		if (why && cap)
			snprintf(why, cap, "the token is longer than %d bytes", GP_TLS_TOKEN_MAX);
		return -EINVAL;
	}
	r = tls_new(fd, &t);
	if (r < 0)
		return r;
	if (creds) {
		r = gnutls_init(&t->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL);
		if (r < 0) {
			t->s = NULL;
			gp_tls_free(t);
			return -ENOMEM;
		}
		if (gnutls_set_default_priority(t->s) < 0 ||
		    gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, creds->x509) < 0) {
			say(why, cap, "TLS setup", GNUTLS_E_INTERNAL_ERROR);
			gp_tls_free(t);
			return -EINVAL;
		}
		/* Names go in SNI; addresses are checked against the
		 * certificate's IP SANs by the verification below. */
		if (host && strspn(host, "0123456789.:abcdefABCDEF") != strlen(host))
			gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, host, strlen(host));
		gnutls_session_set_verify_cert(t->s, host, 0);
		gnutls_transport_set_int(t->s, t->fd);
		r = handshake(t, timeout_ms, why, cap);
		if (r < 0) {
			gp_tls_free(t);
			return r;
		}
	}
	memcpy(pre, GP_TLS_AUTH_MAGIC, mlen);
	pre[mlen] = (uint8_t)(tlen & 0xff);
	pre[mlen + 1] = (uint8_t)(tlen >> 8);
	if (tlen)
		memcpy(pre + mlen + 2, token, tlen);
	r = write_all(t, pre, mlen + 2 + tlen, timeout_ms);
	if (r == 0)
		r = gp_tls_read(t, pre, mlen, timeout_ms);
	if (r == 0 && memcmp(pre, GP_TLS_AUTH_ACK, mlen) != 0)
		r = -EPROTO;
	if (r < 0) {
		/* Under TLS 1.3 a server that refuses our certificate says so
		 * after our handshake has ended: in an alert, or, if it closed
		 * before we wrote, by a reset that loses the alert. */
		if (t->s && t->last_err == GNUTLS_E_FATAL_ALERT_RECEIVED) {
			if (why && cap)
				snprintf(why, cap, "the server refused the TLS connection: %s "
					 "(does it want a client certificate it knows: GPUPASS_TLS_CERT, "
					 "GPUPASS_TLS_KEY?)",
					 gnutls_alert_get_name(gnutls_alert_get(t->s)));
			r = -EACCES;
		} else if (r == -EPIPE) {
			if (why && cap)
				snprintf(why, cap, "the server closed the connection after the TLS "
					 "handshake (does it want a client certificate it knows: "
					 "GPUPASS_TLS_CERT, GPUPASS_TLS_KEY?)");
			r = -EACCES;
		} else if (why && cap) {
			snprintf(why, cap, "the server did not acknowledge the connection: %s",
				 r == -EPROTO ? "not a gpupass-pvd" : strerror(-r));
		}
		gp_tls_free(t);
		return r;
	}
	*out = t;
	return 0;
}

int gp_tls_recv_auth(struct gp_tls *t, char token[GP_TLS_TOKEN_MAX + 1], int timeout_ms)
{
	uint8_t pre[sizeof(GP_TLS_AUTH_MAGIC) - 1 + 2];
	size_t mlen = sizeof(GP_TLS_AUTH_MAGIC) - 1, tlen;
	int r;

	r = gp_tls_read(t, pre, sizeof(pre), timeout_ms);
	if (r < 0)
		return r;
	if (memcmp(pre, GP_TLS_AUTH_MAGIC, mlen) != 0)
		return -EBADMSG;
	tlen = pre[mlen] | (size_t)pre[mlen + 1] << 8;
	if (tlen > GP_TLS_TOKEN_MAX)
		return -EBADMSG;
	r = gp_tls_read(t, token, tlen, timeout_ms);
	if (r < 0)
		return r;
	token[tlen] = '\0';
	if (strlen(token) != tlen)
		return -EBADMSG; /* a NUL inside */
	return write_all(t, GP_TLS_AUTH_ACK, mlen, timeout_ms);
}

int gp_tls_peer_sha256(struct gp_tls *t, uint8_t out[32])
{
	const gnutls_datum_t *certs;
	unsigned n = 0;
	size_t len = 32;

	if (!t->s)
		return -ENOENT;
	certs = gnutls_certificate_get_peers(t->s, &n);
	if (!certs || n == 0)
		return -ENOENT;
	if (gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], out, &len) < 0 || len != 32)
		return -EINVAL;
	return 0;
}

int gp_tls_relay(struct gp_tls *t, int plain_fd)
{
	char *buf = malloc(RELAY_BUF);
	int fl = fcntl(plain_fd, F_GETFL), r = 0;

	if (!buf || fl < 0 || fcntl(plain_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		free(buf);
		close(plain_fd);
		return -ENOMEM;
	}
	while (r == 0) {
		struct pollfd p[2] = { { .fd = t->fd, .events = POLLIN },
				       { .fd = plain_fd, .events = POLLIN } };
		bool pending = t->s && gnutls_record_check_pending(t->s) > 0;
		ssize_t n;

		if (!pending && poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		/* Until GnuTLS has nothing more: records it already took off
		 * the socket do not make the socket readable again. */
		while (r == 0 && (pending || p[0].revents)) {
			n = read_some(t, buf, RELAY_BUF, 0);
			if (n == 0) {
				r = 1; /* orderly close by the network side */
				break;
			}
			if (n > 0)
				r = gp_stream_write(plain_fd, buf, (size_t)n, WRITE_TIMEOUT_MS);
			else if (n != -ETIMEDOUT)
				r = (int)n;
			else
				break;
		}
		if (r == 0 && (p[1].revents & ~POLLOUT)) {
			n = read(plain_fd, buf, RELAY_BUF);
			if (n == 0) {
				r = 1;
				break;
			}
			if (n > 0)
				r = write_all(t, buf, (size_t)n, WRITE_TIMEOUT_MS);
			else if (errno != EAGAIN && errno != EINTR)
				r = errno == ECONNRESET ? -EPIPE : -errno;
		}
	}
	free(buf);
	close(plain_fd);
	return r == 1 ? 0 : r;
}

void gp_tls_free(struct gp_tls *t)
{
	if (!t)
		return;
	if (t->s) {
		/* Best effort: a peer that is gone cannot take close_notify. */
		gnutls_bye(t->s, GNUTLS_SHUT_WR);
		gnutls_deinit(t->s);
	}
	close(t->fd);
	free(t);
}

bool gp_tls_token_equal(const char *a, const char *b)
{
	uint8_t ha[32], hb[32];
	uint8_t diff = 0;

	/* Hashing first makes the time independent of the lengths too. */
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, a, strlen(a), ha) < 0 ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, b, strlen(b), hb) < 0)
		return false;
	for (size_t i = 0; i < sizeof(ha); i++)
		diff |= (uint8_t)(ha[i] ^ hb[i]);
	return diff == 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int gp_tls_parse_sha256(const char *s, uint8_t out[32])
{
	uint8_t v[32];
	size_t i = 0;

	if (!s)
		return -EINVAL;
	while (i < 32) {
		int hi = hexval(s[0]), lo = hi < 0 ? -1 : hexval(s[1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		v[i++] = (uint8_t)(hi << 4 | lo);
		s += 2;
		if (i < 32 && *s == ':')
			s++;
	}
	if (*s)
		return -EINVAL;
	memcpy(out, v, 32);
	return 0;
}
