/* SPDX-License-Identifier: Apache-2.0 */
/* gpupass-pvd's shared guest table and the supervisor-to-worker hand-over
 * message (plain C, no OpenCL: the unit tests and fuzzers use it too). */
#ifndef GP_PVD_TABLE_H
#define GP_PVD_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Longest guest name the shared table holds (with its NUL). */
#define PVD_NAME_MAX 64
#define PVD_MAX_GUESTS 1024
/* Longest ivshmem file path the table holds (with its NUL); the config
 * parser refuses longer ones (GP_PVD_IVSHMEM_MAX, config.h). */
#define PVD_IVSHMEM_MAX 256
/* What a watched command is, as the watchdog's log line names it. */
#define PVD_CMD_WHAT_MAX 96

/* What the bytes charged to a guest are (quota.c). */
#define PVD_CHARGE_MEM 0u     /* buffers and images */
#define PVD_CHARGE_PROGRAM 1u /* program sources and binaries */
#define PVD_CHARGE_STAGE 2u   /* staged uploads (STAGE) */
#define PVD_CHARGE_WRITE 3u   /* copies held for queued writes */
#define PVD_CHARGE_RECORD 4u  /* events, callbacks, kernels' argument records */
#define PVD_CHARGE_KINDS 5u

/* One [guest NAME] section's slot in the shared table (a MAP_SHARED memfd
 * the supervisor creates and every worker maps; plain data, no pointers,
 * no locks: a worker that dies mid-update must not leave it locked).
 * The supervisor writes the name and limits (reload); the guest's worker
 * writes its usage; the fair scheduler of every worker reads all slots.
 * A slot is never reused: a removed guest keeps it. */
struct pvd_guest {
	char name[PVD_NAME_MAX]; /* constant once published */
	uint32_t own_socket;     /* atomic: it has a listening socket of its own */
	uint32_t removed;        /* atomic: its section left the config */
	uint64_t memory_max;     /* atomic: bytes; 0 = unlimited */
	uint32_t max_objects;    /* atomic: 0 = unlimited */
	uint32_t weight;         /* atomic: >= 1 */
	uint32_t max_sessions;   /* atomic: connections its worker serves; 0 = unlimited */
	uint64_t mem_used;       /* atomic: the sum of charged[] */
	uint64_t charged[PVD_CHARGE_KINDS]; /* atomic: bytes per kind (quota.c) */
	uint32_t objects;        /* atomic */
	uint32_t sessions;       /* atomic */
	int64_t since;           /* atomic: when the oldest live session began */
	uint64_t device_ns;      /* atomic: kernel time measured from profiling */
	uint64_t calls;          /* atomic */
	uint64_t vtime_ns;       /* atomic: device_ns / weight, for fair sharing */
	uint32_t busy;           /* atomic: kernels in flight */
	uint32_t conns;          /* atomic: connections its worker holds */
	uint64_t last_launch_ns; /* atomic: CLOCK_MONOTONIC of the last launch or completion */
	uint64_t idle_since_ns;  /* atomic: CLOCK_MONOTONIC when conns fell to 0 */
	uint64_t received;       /* atomic: connections its worker took over */
	/* The file behind the VM's ivshmem region ("" = none): written by the
	 * supervisor (reload), read by the worker at a hello; a sequence
	 * counter (odd while it is written) instead of a lock, see
	 * pvd_table_set_ivshmem. */
	uint32_t ivshmem_seq;
	char ivshmem[PVD_IVSHMEM_MAX];
	/* The watchdog (issue 10). Limits: written by the supervisor
	 * (load, reload), read by the worker. */
	uint64_t command_timeout_ms; /* atomic */
	uint64_t build_timeout_ms;   /* atomic */
	uint64_t build_memory_max;   /* atomic: bytes */
	/* The worker's oldest unfinished device command: when it began
	 * (CLOCK_MONOTONIC ns, 0 = none) and what it is ("kernel 'spin'"),
	 * under a sequence counter (odd while written, as ivshmem). The
	 * supervisor reads it; a guest's native code may forge it (see
	 * supervisor.c, pvd_workers_watch). */
	uint32_t cmd_seq;
	uint64_t cmd_start_ns;
	char cmd_what[PVD_CMD_WHAT_MAX];
};

#define PVD_TABLE_MAGIC 0x47505654u /* "GPVT" */

struct pvd_table {
	uint32_t magic;
	uint32_t n_guests; /* atomic: slots in use, published after the slot is whole */
	struct pvd_guest guests[PVD_MAX_GUESTS];
};

/* The shared table (table.c): a memfd of struct pvd_table. */
int pvd_table_create(int *fd, struct pvd_table **out);
/* Maps a table passed by the supervisor; checks size and magic. */
int pvd_table_map(int fd, struct pvd_table **out);
void pvd_table_unmap(struct pvd_table *t);
/* A worker died: its guest's usage is void (its objects died with it). */
void pvd_table_clear_usage(struct pvd_guest *g);
uint64_t pvd_now_ns(void);
/* The guest's ivshmem file (NULL: none; longer than PVD_IVSHMEM_MAX - 1:
 * -ENAMETOOLONG, unchanged). Supervisor only (one writer). */
int pvd_table_set_ivshmem(struct pvd_guest *g, const char *path);
/* Copies it out (torn reads retried): @buf gets "" when there is none. */
void pvd_table_get_ivshmem(const struct pvd_guest *g, char buf[PVD_IVSHMEM_MAX]);
/* The worker's oldest command (watch.c publishes it): its start, 0 when
 * none; @what gets its description. Torn reads retried a few times (a
 * worker that keeps the counter odd gets what was read). */
uint64_t pvd_table_get_cmd(const struct pvd_guest *g, char what[PVD_CMD_WHAT_MAX]);
/* Worker only: publishes @start (0 = none) and @what. */
void pvd_table_set_cmd(struct pvd_guest *g, uint64_t start, const char *what);

/* The hand-over message on a worker's channel (SOCK_SEQPACKET), with the
 * connection's fd in SCM_RIGHTS. */
#define PVD_HANDOVER_MAGIC 0x47504856u /* "GPHV" */
struct pvd_handover {
	uint32_t magic;
	uint32_t slot; /* the worker's own slot: anything else is refused */
	uint64_t seq;  /* 1, 2, ...: the worker counts them in its slot */
};
/* Both ends are the same binary (workers are exec'd from /proc/self/exe,
 * the supervisor's own file even if it was replaced on disk since), so
 * the layout needs no versioning; the size is fixed all the same. */
_Static_assert(sizeof(struct pvd_handover) == 16, "hand-over message size");

/* Checks a received hand-over: 0, or -EBADMSG / -EBADF (why it is refused). */
int pvd_handover_check(const void *buf, size_t len, int fd, uint32_t slot, uint64_t last_seq);

/* Sends one hand-over of @fd (not closed) on @chan. */
int pvd_handover_send(int chan, uint32_t slot, uint64_t seq, int fd);
/* Receives one hand-over: 0 and *fd (a connected socket, the caller's);
 * -EBADMSG / -EBADF for a malformed message or descriptor (anything it
 * carried is closed); -EPIPE when the supervisor's end is closed;
 * -EAGAIN when nothing is there. Updates *last_seq. */
int pvd_handover_recv(int chan, uint32_t slot, uint64_t *last_seq, int *fd);

/* The hidden worker mode's arguments (outside data: checked):
 * gpupass-pvd --worker SLOT PPID VERBOSE SPIN_NS SHARED DIR [DEVICE...]
 * SHARED: the startup probe found that the devices compute on host memory
 * in place (1) or not (0): workers do not probe again. */
#define PVD_WORKER_ARG "--worker"
struct pvd_worker_args {
	uint32_t slot;
	pid_t ppid;
	int verbose;
	uint64_t spin_ns;
	bool shared_ok;
	const char *dir;
	char **devices;
	size_t n_devices;
};
int pvd_worker_args_parse(int argc, char **argv, struct pvd_worker_args *a);

#endif
