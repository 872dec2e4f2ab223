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

struct pvd_dev {
	cl_platform_id platform;
	cl_device_id device;
};

/* Run-time state of one [guest NAME] section, shared by its sessions.
 * Lives as long as the server (event callbacks may still add device time
 * after a session is gone). */
struct pvd_guest {
	const struct gp_pvd_guest_cfg *cfg; /* &own */
	struct gp_pvd_guest_cfg own; /* a copy: reloads update its limits in place */
	bool removed;  /* its section left the config (SIGHUP): no new sessions */
	ino_t ino;     /* of its listening socket, to remove only ours */
	int listen_fd; /* its own socket, or -1 */
	pthread_mutex_t lock;
	uint64_t mem_used;  /* under lock */
	uint32_t objects;   /* under lock */
	uint32_t sessions;  /* under lock */
	time_t since;       /* under lock: when the oldest live session began */
	uint64_t device_ns; /* atomic: kernel time measured from profiling */
	uint64_t calls;     /* atomic */
	uint64_t vtime_ns;  /* atomic: device_ns / weight, for fair sharing */
	uint32_t busy;      /* atomic: kernels in flight */
	uint64_t last_launch_ns; /* atomic: CLOCK_MONOTONIC of the last launch or completion */
};

#define PVD_MAX_GUESTS 1024

struct pvd_session;

struct pvd_server {
	struct gp_log log;
	struct gp_pvd_config cfg;
	struct pvd_dev *devs;
	size_t n_devs;
	char *platform_name; /* the first host platform's name */
	/* Fixed slots (PVD_MAX_GUESTS) so that sessions' pointers stay valid
	 * when a reload adds guests; a removed guest keeps its slot. */
	struct pvd_guest *guests;
	size_t n_guests;          /* atomic: slots in use */
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
};

/* Starts a session thread for an accepted connection of @guest (NULL:
 * refuse it with a reason). Takes @fd. */
int pvd_session_start(struct pvd_server *srv, struct pvd_guest *guest, int fd,
		      const char *refusal);
/* Joins and frees sessions that have ended; all of them when @all. */
void pvd_session_reap(struct pvd_server *srv, bool all);
/* Ends every session (server shutdown); returns how many did not end
 * within @timeout_ms (stuck in a device call). */
int pvd_session_stop_all(struct pvd_server *srv, int timeout_ms);

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

#endif
