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
struct pvd_sandbox;
struct gp_ivshmem;
struct pvd_watch;

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
	struct pvd_sandbox *sandbox; /* worker confinement (sandbox.c) */
	/* supervisor only */
	int table_fd;
	char *state_dir; /* workers' private directories are under it */
	int landlock_abi; /* from the startup probe; 0: none */
	int verbose;
	/* Guards sup[] (identities, workers, hand-overs): the vsock and TCP
	 * listeners identify guests and hand connections over from their
	 * own threads. */
	pthread_mutex_t sup_lock;
	struct pvd_watch *watch; /* worker only: its commands (watch.c) */
	struct pvd_builds *builds; /* worker only: build checks passed (build.c) */
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

/* The worker's half of the watchdog (watch.c): the device commands it
 * runs, the oldest published in the guest's table slot. Without
 * pvd_watch_init (the supervisor's own sessions) they are not watched. */
struct pvd_cmd {
	struct pvd_cmd *prev, *next;
	uint64_t start_ns;
	bool listed, done;
	char what[PVD_CMD_WHAT_MAX];
};
int pvd_watch_init(struct pvd_server *srv, struct pvd_guest *g);
void pvd_watch_free(struct pvd_server *srv);
/* A blocking command of a session thread, from begin to end (@c is the
 * caller's, e.g. on its stack). */
void pvd_cmd_begin(struct pvd_server *srv, struct pvd_cmd *c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void pvd_cmd_end(struct pvd_server *srv, struct pvd_cmd *c);
/* An enqueued command, watched from when pvd_watch_tick sees it run to
 * its completion (pvd_on_complete); with @kernel_of, a kernel of that
 * guest: its busy count and measured device time are kept too (the
 * scheduler's). */
int pvd_watch_event(struct pvd_server *srv, struct pvd_guest *kernel_of, cl_event ev,
		    const char *what);
/* From the worker's loop: the queued commands that run now start their
 * clock. True while some are still queued (tick again in
 * PVD_WATCH_TICK_MS). */
#define PVD_WATCH_TICK_MS 100
bool pvd_watch_tick(struct pvd_server *srv);

/* Completion callbacks that also come for failed commands (done.c):
 * @fn(ev, status, data) once, when @ev completes or fails, from the
 * platform's thread or from pvd_done_poll. -ENOMEM / -EINVAL: not
 * registered. */
typedef void(CL_CALLBACK *pvd_done_fn)(cl_event ev, cl_int status, void *data);
int pvd_on_complete(cl_event ev, pvd_done_fn fn, void *data);
/* The loop's wake pipe (pvd_done_failed and full batches write to it). */
void pvd_done_init(int wake_fd);
/* A user event was set to an error: the loop sweeps soon. */
void pvd_done_failed(void);
/* From the loop's thread only: calls the functions of failed events the
 * platform skips (when asked, once a second, or @force), and releases the
 * events of records done. */
void pvd_done_poll(bool force);
/* Records still waiting (tests, exit). */
size_t pvd_done_pending(void);

/* Bounded builds (build.c): the guest's build first runs in a child
 * (`gpupass-pvd --build-check`) under build_timeout and a memory cap.
 * Returns 0; *@why is NULL when the real build may go on, else a
 * malloc'd reason for the program's build log (the build then fails). */
#define PVD_BUILD_CHECK_ARG "--build-check"
struct pvd_build_req {
	cl_program prog;
	const cl_device_id *devs; /* as the guest named them; none: the program's */
	uint32_t n_devs;
	const char *options;      /* exactly those of the real build */
	bool compile;             /* clCompileProgram with these headers */
	const cl_program *headers;
	const char *const *header_names;
	uint32_t n_headers;
	int conn_fd;              /* the guest's connection: its hang-up stops the check */
};
int pvd_build_check(struct pvd_server *srv, struct pvd_guest *g, const struct pvd_build_req *req,
		    char **why);
int pvd_build_check_main(int argc, char **argv);
/* The worker's memory of checks passed (a repeated build is not checked
 * again). */
int pvd_builds_init(struct pvd_server *srv);
void pvd_builds_free(struct pvd_server *srv);
/* The host's OpenCL devices, as a worker finds them (worker.c). */
int pvd_backend_open(struct pvd_server *srv);

/* Worker mode (worker.c): the hidden `gpupass-pvd --worker ...`, and
 * the startup probe `gpupass-pvd --probe-devices [DEVICE...]`. */
#define PVD_PROBE_ARG "--probe-devices"
int pvd_worker_main(int argc, char **argv);
int pvd_probe_main(int argc, char **argv);

/* The supervisor's side of the workers (supervisor.c). */
struct pvd_sup {
	char *socket;   /* its own listening socket, or NULL */
	int64_t uid;    /* recognised by SO_PEERCRED; -1 */
	int64_t socket_uid; /* its socket is chowned to this user (QEMU's); -1 */
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
	/* A per-user guest of [guest default] (main.c): the slot of default
	 * and the local user it is for; -1 for a guest of the config. */
	ssize_t parent;
	int64_t for_uid;
	/* The watchdog (pvd_workers_watch), under sup_lock: the supervisor's
	 * own duplicates of the connections handed to the current worker
	 * (the guest's side cannot be hidden by the worker), and samples of
	 * the worker's CPU time while none is live. */
	int *conns;
	size_t n_conns, cap_conns;
	uint32_t untracked;     /* connections it could not duplicate */
	uint64_t all_closed_ns; /* when the last one hung up; 0: one is live or none came */
	uint64_t cpu_mark_ns, cpu_mark;
	uint64_t retired_ns;    /* when @retired was told to leave */
	char killed[256];       /* why the watchdog ended @pid ("" = it did not) */
};
_Static_assert(PVD_IVSHMEM_MAX == GP_PVD_IVSHMEM_MAX, "the table holds every ivshmem path");
/* SIGCHLD: reaps workers, logs how each ended; a crashed worker's guest
 * usage is cleared. */
void pvd_workers_reap(struct pvd_server *srv);
/* Tells workers idle for @grace_ns to leave. */
void pvd_workers_idle(struct pvd_server *srv, uint64_t grace_ns);
/* The watchdog, every PVD_WATCH_MS at most: ends (SIGKILL) a worker whose
 * oldest command ran longer than its guest's command_timeout, and one
 * still busy PVD_HANGUP_GRACE_MS after every connection of its guest
 * hung up. */
#define PVD_WATCH_MS 200
#define PVD_HANGUP_GRACE_MS 1000
void pvd_workers_watch(struct pvd_server *srv);
/* Server stop: SIGTERM to every worker, waits up to @timeout_ms, then
 * SIGKILL. */
void pvd_workers_stop(struct pvd_server *srv, int timeout_ms);

/* Landlock sandbox of a worker (sandbox.c): read/execute the OpenCL
 * stack's paths and @read_paths (colon-separated, or NULL), write only
 * @private_dir (and read/write @rw_file, the guest's ivshmem region file,
 * when not NULL), open only the GPU's device nodes. 0 when enforced,
 * -ENOSYS / -EOPNOTSUPP when the kernel has no Landlock (the caller
 * warns), other -errno on failure. @abi gets the kernel's Landlock ABI. */
int pvd_sandbox_enter(const char *private_dir, const char *rw_file, const char *read_paths,
		      int *abi);
/* The kernel's Landlock ABI version, or -EOPNOTSUPP when it cannot be
 * used (no Landlock, or a seccomp filter refuses it). */
int pvd_sandbox_abi(void);

/* Worker confinement (sandbox.c; see its opening comment). Descriptors a
 * worker gets besides the table (3) and its channel (4): the read end of
 * a pipe whose write end only the supervisor holds (hung up: the
 * supervisor is gone), and the guest's ivshmem file when it has one. */
#define PVD_WORKER_LIFE_FD 5
#define PVD_WORKER_REGION_FD 6
/* [server] sandbox_paths, passed to the workers (internal). */
#define PVD_SANDBOX_PATHS_ENV "GPUPASS_PVD_SANDBOX_PATHS"
_Static_assert(GP_PVD_WORKER_UIDS_MIN == PVD_MAX_GUESTS, "one worker uid per guest slot");
/* Supervisor: the workers' confinement from the config and the kernel
 * (logs once what is missing); srv->sandbox. */
int pvd_sandbox_new(struct pvd_server *srv);
void pvd_sandbox_free(struct pvd_sandbox *sb);
/* Supervisor: starts the worker of @slot (exec of this binary with
 * @argv) confined, its private directory @dir chowned to its uid, the
 * hand-over channel @chan_fd as descriptor 4; *@pid on success. */
int pvd_sandbox_spawn(struct pvd_server *srv, size_t slot, const char *dir, int chan_fd,
		      char **argv, pid_t *pid);
/* Worker, before OpenCL starts: Landlock, then the seccomp filter last
 * (GPUPASS_PVD_SECCOMP=log: log instead of refusing); sets srv->sandbox. */
int pvd_sandbox_worker(struct pvd_server *srv, const struct pvd_guest *g, const char *dir);
/* Worker: true when its supervisor is gone (or it has none). */
bool pvd_sandbox_supervisor_gone(void);
/* Worker: maps the guest's ivshmem file @path (gp_ivshmem_host_open) from
 * the descriptor the supervisor passed when it is that file. */
int pvd_sandbox_region_open(struct pvd_server *srv, const char *path, uint64_t size,
			    struct gp_ivshmem **out);

#endif
