/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gpupass-pvd's vsock and TCP listeners (issue 5).
 *
 * vsock: the peer CID of an accepted connection is the guest's identity
 * ([guest NAME] cid = N); the connection is handed to pvd_session_start as
 * it is (a byte stream: stream mode).
 *
 * tcp: a thread per connection terminates TLS (GnuTLS, src/transport/tls.c),
 * reads the client's token preamble, identifies the guest by its client
 * certificate (tls_peer_sha256) and/or token, and hands the plaintext end of
 * a socketpair to pvd_session_start, then relays until either side closes.
 * The first frame must be a HELLO: the session code answers a STATUS
 * request to anyone whose socket credentials are the server's own, and a
 * relayed connection's credentials are the server's.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pvd.h"
#include "transport/addr.h"
#include "transport/tls.h"
#include "transport/transport.h"

struct pvd_channels {
	struct gp_tls_creds *creds; /* NULL: no tls_cert (plain TCP on loopback) */
	bool ca;                    /* client certificates verified by tls_ca */
	pthread_mutex_t lock;
	pthread_cond_t done;
	int relays;                 /* under lock: TCP threads alive */
	struct tcp_conn *conns;     /* under lock: their sockets, for shutdown */
};

struct tcp_conn {
	struct pvd_server *srv;
	int fd; /* open while on the list */
	bool pending; /* counted in PVD_PENDING_TCP (until its hand-over to a worker) */
	char peer[64];
	struct tcp_conn *next, **pprev;
};

int pvd_channels_init(struct pvd_server *srv, char *why, size_t cap)
{
	struct pvd_channels *ch = calloc(1, sizeof(*ch));
	int r;

	if (!ch)
		return -ENOMEM;
	pthread_mutex_init(&ch->lock, NULL);
	pthread_cond_init(&ch->done, NULL);
	if (srv->cfg.tls_cert) {
		r = gp_tls_server_creds_new(srv->cfg.tls_cert, srv->cfg.tls_key, srv->cfg.tls_ca,
					    &ch->creds, why, cap);
		if (r < 0) {
			pthread_cond_destroy(&ch->done);
			pthread_mutex_destroy(&ch->lock);
			free(ch);
			return r;
		}
		ch->ca = srv->cfg.tls_ca != NULL;
	}
	srv->chan = ch;
	return 0;
}

void pvd_channels_free(struct pvd_server *srv, int timeout_ms)
{
	struct pvd_channels *ch = srv->chan;
	struct timespec until;
	int left;

	if (!ch)
		return;
	/* The sessions are gone by now, so every relay sees its plaintext
	 * end close; clients still in their handshake or preamble are cut
	 * off. Then wait for the threads to finish. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	pthread_mutex_lock(&ch->lock);
	for (struct tcp_conn *c = ch->conns; c; c = c->next)
		shutdown(c->fd, SHUT_RDWR);
	while (ch->relays > 0 &&
	       pthread_cond_timedwait(&ch->done, &ch->lock, &until) != ETIMEDOUT)
		;
	left = ch->relays;
	pthread_mutex_unlock(&ch->lock);
	if (left) {
		/* Threads still blocked on a dead peer use these: leave them. */
		gp_warn(&srv->log, "%d TCP connection(s) did not close in time", left);
		return;
	}
	gp_tls_creds_free(ch->creds);
	pthread_cond_destroy(&ch->done);
	pthread_mutex_destroy(&ch->lock);
	free(ch);
	srv->chan = NULL;
}

int pvd_channel_listen(const char *text, int *fd)
{
	struct gp_addr a;
	int r = gp_addr_parse(text, true, &a);

	if (r < 0)
		return r;
	if (a.kind != GP_ADDR_VSOCK && a.kind != GP_ADDR_TCP)
		return -EAFNOSUPPORT;
	return gp_addr_listen(&a, fd);
}

/* Guests recognised on shared listeners (no socket of their own). */
static struct pvd_guest *guest_by_cid(struct pvd_server *srv, uint32_t cid)
{
	struct pvd_guest *def = NULL, *found = NULL;
	size_t n = pvd_n_guests(srv);

	pthread_mutex_lock(&srv->sup_lock);
	for (size_t i = 0; i < n && !found; i++) {
		struct pvd_guest *g = &srv->guests[i];
		int64_t gcid = srv->sup[i].cid;

		if (__atomic_load_n(&g->removed, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&g->own_socket, __ATOMIC_RELAXED))
			continue;
		if (gcid >= 0 && (uint32_t)gcid == cid)
			found = g;
		else if (strcmp(g->name, "default") == 0)
			def = g;
	}
	pthread_mutex_unlock(&srv->sup_lock);
	return found ? found : def;
}

static void accept_vsock(struct pvd_server *srv, int lfd)
{
	struct pvd_guest *g;
	char why[160] = "";
	uint32_t cid = 0;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (gp_addr_vsock_peer(fd, &cid) < 0) {
		close(fd);
		return;
	}
	g = guest_by_cid(srv, cid);
	if (!g) {
		snprintf(why, sizeof(why), "no [guest] section has cid = %u and there is no "
			 "[guest default]", (unsigned)cid);
		gp_warn(&srv->log, "vsock connection from CID %u refused: %s", (unsigned)cid, why);
	} else {
		gp_info(&srv->log, "vsock connection from CID %u: guest %s", (unsigned)cid,
			g->name);
	}
	if (pvd_session_start(srv, g, fd, why) < 0)
		gp_err(&srv->log, "cannot start a session: out of resources");
}

/* The guest whose credentials all match: a certificate fingerprint and/or
 * a token. [guest default] only for clients whose certificate tls_ca
 * vouched for, or on plain loopback TCP (like any local user on unix:). */
static struct pvd_guest *guest_by_tls(struct pvd_server *srv, const uint8_t *fp,
				      const char *token, bool vouched)
{
	struct pvd_guest *def = NULL, *found = NULL;
	size_t n = pvd_n_guests(srv);

	pthread_mutex_lock(&srv->sup_lock);
	for (size_t i = 0; i < n && !found; i++) {
		struct pvd_guest *g = &srv->guests[i];
		const struct pvd_sup *sup = &srv->sup[i];
		bool match, any;

		if (__atomic_load_n(&g->removed, __ATOMIC_RELAXED) ||
		    __atomic_load_n(&g->own_socket, __ATOMIC_RELAXED))
			continue;
		any = sup->has_peer_sha256 || sup->token[0];
		match = any && (!sup->has_peer_sha256 ||
				(fp && memcmp(fp, sup->peer_sha256, 32) == 0));
		/* Always compared, so that the time says nothing. */
		if (!gp_tls_token_equal(token, sup->token) && sup->token[0])
			match = false;
		if (match)
			found = g;
		else if (!any && strcmp(g->name, "default") == 0)
			def = g;
	}
	pthread_mutex_unlock(&srv->sup_lock);
	return found ? found : vouched ? def : NULL;
}

static void conn_unlist(struct pvd_channels *ch, struct tcp_conn *c)
{
	pthread_mutex_lock(&ch->lock);
	if (c->pprev) {
		*c->pprev = c->next;
		if (c->next)
			c->next->pprev = c->pprev;
		c->pprev = NULL;
	}
	pthread_mutex_unlock(&ch->lock);
}

static void relay_done(struct pvd_channels *ch)
{
	pthread_mutex_lock(&ch->lock);
	ch->relays--;
	pthread_cond_broadcast(&ch->done);
	pthread_mutex_unlock(&ch->lock);
}

/* Milliseconds left until @deadline_ns (CLOCK_MONOTONIC), at least 1. */
static int ms_left(uint64_t deadline_ns)
{
	uint64_t now = pvd_now_ns();

	return now >= deadline_ns ? 1 : (int)((deadline_ns - now + 999999) / 1000000);
}

static void tcp_unpend(struct pvd_server *srv, struct tcp_conn *c)
{
	if (c->pending)
		pvd_pending_leave(srv, PVD_PENDING_TCP);
	c->pending = false;
}

static void *tcp_main(void *arg)
{
	struct tcp_conn *c = arg;
	struct pvd_server *srv = c->srv;
	struct pvd_channels *ch = srv->chan;
	struct gp_proto_hdr hello = { .magic = GP_PROTO_MAGIC, .version = GP_PROTO_VERSION,
				      .opcode = GP_OP_HELLO };
	uint8_t hdr[GP_PROTO_HDR_SIZE], sig[GP_PROTO_HDR_SIZE], fp[32];
	char token[GP_TLS_TOKEN_MAX + 1], why[300] = "", fptext[20] = "none";
	struct pvd_guest *g;
	struct gp_tls *t = NULL;
	bool has_fp;
	int sv[2], r;
	/* The handshake, the preamble and the hello's header together
	 * within [server] hello_timeout: a client that trickles bytes is
	 * not given that time per step. */
	uint64_t deadline = pvd_now_ns() + (uint64_t)pvd_hello_timeout_ms(srv) * 1000000ull;

	r = gp_tls_accept(ch->creds, c->fd, ms_left(deadline), &t, why, sizeof(why));
	if (r < 0) {
		gp_warn(&srv->log, "tcp client %s refused: %s", c->peer,
			*why ? why : strerror(-r));
		goto out;
	}
	r = gp_tls_recv_auth(t, token, ms_left(deadline));
	if (r == 0)
		r = gp_tls_read(t, hdr, sizeof(hdr), ms_left(deadline));
	gp_proto_hdr_pack(&hello, sig);
	/* magic, version, opcode: the first 8 bytes of a HELLO frame */
	if (r == 0 && memcmp(hdr, sig, 8) != 0)
		r = -EBADMSG;
	if (r < 0) {
		gp_warn(&srv->log, "tcp client %s: session ended before it began: %s", c->peer,
			r == -EBADMSG ? "not a token preamble and a HELLO (garbage, or not gpupass)"
				      : strerror(-r));
		goto out_tls;
	}
	has_fp = gp_tls_peer_sha256(t, fp) == 0;
	if (has_fp)
		snprintf(fptext, sizeof(fptext), "%02x%02x%02x%02x%02x%02x%02x%02x", fp[0], fp[1],
			 fp[2], fp[3], fp[4], fp[5], fp[6], fp[7]);
	g = guest_by_tls(srv, has_fp ? fp : NULL, token, ch->creds ? ch->ca && has_fp : true);
	explicit_bzero(token, sizeof(token));
	if (!g) {
		snprintf(why, sizeof(why), "no [guest] section matches the client certificate "
			 "(sha256 %s...) and token of %s", fptext, c->peer);
		gp_warn(&srv->log, "tcp client %s refused: %s", c->peer, why);
	} else {
		gp_info(&srv->log, "tcp client %s (certificate %s...): guest %s", c->peer, fptext,
			g->name);
	}
	if (__atomic_load_n(&srv->stop, __ATOMIC_ACQUIRE))
		goto out_tls; /* the server is going away: no new sessions */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		gp_err(&srv->log, "tcp client %s: socketpair: %s", c->peer, strerror(errno));
		goto out_tls;
	}
	if (pvd_session_start(srv, g, sv[0], why) < 0) {
		gp_err(&srv->log, "cannot start a session: out of resources");
		close(sv[1]);
		goto out_tls;
	}
	/* A guest's connection now: its worker's max_sessions bounds it.
	 * A refused one stays counted until its refusal is over. */
	if (g)
		tcp_unpend(srv, c);
	r = gp_stream_write(sv[1], hdr, sizeof(hdr), 5000);
	if (r < 0) {
		close(sv[1]);
		goto out_tls;
	}
	r = gp_tls_relay(t, sv[1]);
	/* -EPIPE: a client that ended without a TLS goodbye (a program that
	 * exits does), the usual way. */
	if (r < 0 && r != -EPIPE)
		gp_info(&srv->log, "tcp client %s: connection ended: %s", c->peer, strerror(-r));
out_tls:
	conn_unlist(ch, c); /* before its socket closes */
	gp_tls_free(t);
out: /* gp_tls_accept took c->fd, also on failure */
	conn_unlist(ch, c);
	tcp_unpend(srv, c);
	free(c);
	relay_done(ch);
	return NULL;
}

static void accept_tcp(struct pvd_server *srv, int lfd)
{
	struct pvd_channels *ch = srv->chan;
	struct tcp_conn *c;
	pthread_attr_t attr;
	pthread_t th;
	int fd, r, one = 1;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	if (gp_addr_tcp_peer(fd, c->peer, sizeof(c->peer)) < 0)
		snprintf(c->peer, sizeof(c->peer), "?");
	/* Not yet identified: a thread each, so they are capped. */
	if (!pvd_pending_enter(srv, PVD_PENDING_TCP, pvd_max_pending(srv), c->peer)) {
		close(fd);
		free(c);
		return;
	}
	c->pending = true;
	/* Small replies must go out at once, not wait for the client's
	 * delayed ACK (Nagle): 40 ms per round trip otherwise. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_mutex_lock(&ch->lock);
	ch->relays++;
	c->next = ch->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &ch->conns;
	ch->conns = c;
	pthread_mutex_unlock(&ch->lock);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = pthread_create(&th, &attr, tcp_main, c);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		gp_err(&srv->log, "tcp client %s: cannot start its thread: %s", c->peer, strerror(r));
		conn_unlist(ch, c);
		close(fd);
		tcp_unpend(srv, c);
		free(c);
		relay_done(ch);
	}
}

bool pvd_channel_accept(struct pvd_server *srv, int lfd)
{
	int domain = 0;
	socklen_t len = sizeof(domain);

	if (getsockopt(lfd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return false;
	if (domain == AF_VSOCK) {
		accept_vsock(srv, lfd);
		return true;
	}
	if ((domain == AF_INET || domain == AF_INET6) && srv->chan) {
		accept_tcp(srv, lfd);
		return true;
	}
	return false;
}
