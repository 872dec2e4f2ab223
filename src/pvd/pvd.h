/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass-pvd internals: the server, its guests and their sessions. */
#ifndef GP_PVD_PVD_H
#define GP_PVD_PVD_H

#define CL_TARGET_OPENCL_VERSION 300
/* The ICD implements the deprecated entry points too. */
#define CL_USE_DEPRECATED_OPENCL_1_0_APIS
#define CL_USE_DEPRECATED_OPENCL_1_1_APIS
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#define CL_USE_DEPRECATED_OPENCL_2_0_APIS
#define CL_USE_DEPRECATED_OPENCL_2_1_APIS
#define CL_USE_DEPRECATED_OPENCL_2_2_APIS
#include <CL/cl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "common/log.h"
#include "config.h"
#include "table.h"

struct pvd_dev {
	cl_platform_id platform;
	cl_device_id device;
};

struct pvd_session;
struct pvd_sup;

struct pvd_server {
	struct gp_log log;
	struct gp_pvd_config cfg;
	struct pvd_dev *devs;     /* worker only */
	size_t n_devs;
	char *platform_name;
	struct pvd_table *table;  /* the shared table */
	struct pvd_guest *guests; /* table->guests */
	struct pvd_sup *sup;      /* supervisor only: sockets and workers per slot */
	int *listen_fds;          /* shared sockets from [server] listen */
	char **listen_paths;
	size_t n_listen;
	int wake_pipe[2];         /* sessions that end write here */
	pthread_mutex_t lock;     /* guards the session list */
	struct pvd_session *sessions;
	int stop;                 /* atomic */
	uint64_t spin_ns;
	bool shared_ok; /* devices work in place on host memory (probed) */
	struct pvd_channels *chan; /* vsock / TCP listeners (channels.c) */
	/* supervisor only */
	int table_fd;
	char *state_dir; /* workers' private directories are under it */
	int landlock_abi; /* from the startup probe; 0: none */
	int verbose;
	/* Guards sup[] (identities, workers, hand-overs): the vsock and TCP
	 * listeners identify guests and hand connections over from their
	 * own threads. */
	pthread_mutex_t sup_lock;
	/* Connections held before they are a served guest's (pending.c),
	 * per kind of listener: atomics. */
	uint32_t pending[4];
	uint64_t pending_dropped[4];
	uint64_t pending_logged_ns[4];
};

/* Connections not yet identified, or being refused (pending.c): counted
 * per kind, capped ([server] max_pending), a new one beyond the cap is
 * closed at once (logged at most every 5 s per kind). */
#define PVD_PENDING_UNIX 0u    /* supervisor: refusals and status of unix listeners */
#define PVD_PENDING_VSOCK 1u   /* supervisor: refusals of the vsock listeners */
#define PVD_PENDING_TCP 2u     /* supervisor: TCP/TLS connections before their hand-over */
#define PVD_PENDING_REFUSED 3u /* worker: connections beyond max_sessions being refused */
#define PVD_PENDING_KINDS 4u
/* In a worker: refusals in progress at once beyond max_sessions. */
#define PVD_REFUSING_MAX 8u
bool pvd_pending_enter(struct pvd_server *srv, unsigned kind, uint32_t max, const char *who);
void pvd_pending_leave(struct pvd_server *srv, unsigned kind);
/* [server] max_pending and hello_timeout, or their defaults. */
uint32_t pvd_max_pending(const struct pvd_server *srv);
int pvd_hello_timeout_ms(const struct pvd_server *srv);

static inline size_t pvd_n_guests(const struct pvd_server *srv)
{
	return __atomic_load_n(&srv->table->n_guests, __ATOMIC_ACQUIRE);
}

/* The supervisor's hand-over of an accepted, identified connection: to
 * @guest's worker (started when it has none), or, when @guest is NULL,
 * to a local thread that answers a status request or refuses the hello
 * with @refusal. Takes @fd. Listeners of every kind call this. */
int pvd_session_start(struct pvd_server *srv, struct pvd_guest *guest, int fd,
		      const char *refusal);
/* Runs a session thread in this process for @fd (session.c): in a worker
 * for its guest, in the supervisor only with @guest NULL. Takes @fd. */
int pvd_session_run(struct pvd_server *srv, struct pvd_guest *guest, int fd,
		    const char *refusal);
/* Joins and frees sessions that have ended; all of them when @all. */
void pvd_session_reap(struct pvd_server *srv, bool all);
/* Ends every session (server shutdown); returns how many did not end
 * within @timeout_ms (stuck in a device call). */
int pvd_session_stop_all(struct pvd_server *srv, int timeout_ms);
/* A connection of @g's worker is gone (session.c calls it). */
void pvd_conn_end(struct pvd_server *srv, struct pvd_guest *g);

/* vsock and TCP(+TLS) listeners (channels.c). _init loads the TLS
 * credentials of [server] (@why says what failed); _free waits up to
 * @timeout_ms for the TCP relays once the sessions are gone (a client in
 * its handshake may take PVD_TCP_SETUP_MS). */
#define PVD_TCP_SETUP_MS 10000
int pvd_channels_init(struct pvd_server *srv, char *why, size_t cap);
void pvd_channels_free(struct pvd_server *srv, int timeout_ms);
/* Listens on a vsock: or tcp: address; -EAFNOSUPPORT for other kinds. */
int pvd_channel_listen(const char *addr, int *fd);
/* Accepts on @lfd if it is a vsock or TCP listener (true), else false. */
bool pvd_channel_accept(struct pvd_server *srv, int lfd);

/* Fair sharing of device time between guests (scheduler.c). */
void pvd_sched_before_launch(struct pvd_server *srv, struct pvd_guest *g);
void pvd_sched_account(struct pvd_guest *g, uint64_t ns);

/* Worker mode (worker.c): the hidden `gpupass-pvd --worker ...`, and
 * the startup probe `gpupass-pvd --probe-devices [DEVICE...]`. */
#define PVD_PROBE_ARG "--probe-devices"
int pvd_worker_main(int argc, char **argv);
int pvd_probe_main(int argc, char **argv);

/* The supervisor's side of the workers (supervisor.c). */
struct pvd_sup {
	char *socket;   /* its own listening socket, or NULL */
	int64_t uid;    /* recognised by SO_PEERCRED; -1 */
	int listen_fd;  /* or -1 */
	ino_t ino;      /* of its listening socket, to remove only ours */
	pid_t pid;      /* its current worker, or 0 */
	pid_t retired;  /* a worker told to leave (idle), not yet reaped */
	int chan;       /* the current worker's hand-over channel, or -1 */
	uint64_t sent;  /* hand-overs sent to the current worker */
	/* Channel identities (issue 5; channels.c), under sup_lock. */
	int64_t cid;    /* vsock: the peer CID that is this guest; -1 */
	bool has_peer_sha256;
	uint8_t peer_sha256[32]; /* tcp: SHA-256 of its TLS client certificate */
	char token[257];         /* tcp: its token ("" = none) */
};
_Static_assert(PVD_IVSHMEM_MAX == GP_PVD_IVSHMEM_MAX, "the table holds every ivshmem path");
/* SIGCHLD: reaps workers, logs how each ended; a crashed worker's guest
 * usage is cleared. */
void pvd_workers_reap(struct pvd_server *srv);
/* Tells workers idle for @grace_ns to leave. */
void pvd_workers_idle(struct pvd_server *srv, uint64_t grace_ns);
/* Server stop: SIGTERM to every worker, waits up to @timeout_ms, then
 * SIGKILL. */
void pvd_workers_stop(struct pvd_server *srv, int timeout_ms);

/* Landlock sandbox of a worker (sandbox.c): read/execute the OpenCL
 * stack's paths, write only @private_dir (and read/write @rw_file, the
 * guest's ivshmem region file, when not NULL). 0 when enforced, -ENOSYS /
 * -EOPNOTSUPP when the kernel has no Landlock (the caller warns), other
 * -errno on failure. @abi gets the kernel's Landlock ABI version. */
int pvd_sandbox_enter(const char *private_dir, const char *rw_file, int *abi);
/* The kernel's Landlock ABI version, or -EOPNOTSUPP when it cannot be
 * used (no Landlock, or a seccomp filter refuses it). */
int pvd_sandbox_abi(void);

#endif
