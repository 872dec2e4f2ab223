/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The part of gpupass-pvd's configuration that gpupass manages: one
 * `[guest NAME]` section per PV VM (socket, memory_max, weight), edited in
 * place so that every other section and line of the file stays as it was,
 * and the reload signal that makes a running gpupass-pvd apply it.
 */
#ifndef GP_HOST_PVCONF_H
#define GP_HOST_PVCONF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "host/context.h"
#include "host/state.h"

#define GP_PVCONF_NAME "pvd.conf"
#define GP_PVD_PIDFILE "pvd.pid"
#define GP_PVD_LOGFILE "pvd.log"
#define GP_PVD_BINARY "gpupass-pvd"

/* <db_dir>/pvd.conf (the state directory when one was given). */
int gp_pvconf_default_path(const struct gp_ctx *ctx, char *buf, size_t len);
/* <state_dir>/pv/NAME.sock; -ENAMETOOLONG beyond a unix socket's 107 bytes. */
int gp_pv_socket_path(const struct gp_ctx *ctx, const char *vm, char *buf, size_t len);

/* <state_dir>/pv/NAME.shm: the host file of the VM's ivshmem region. */
int gp_pv_shm_path(const struct gp_ctx *ctx, const char *vm, char *buf, size_t len);
/* Creates (or resizes) the region's file: a regular file of @size bytes,
 * sparse (ftruncate: no memory is used until the guest or the server
 * touches it), mode 0660 and, when gpupass runs as root and the group
 * exists, group "gpupass" (the user of gpupass-pvd.service) so that the
 * server can map it. Symlinks are not followed. -errno. */
int gp_pv_shm_create(const char *path, uint64_t size);

/* Adds or replaces the section [guest @vm] of @path (created when missing)
 * with socket, memory_max (bytes, 0: the line is left out), weight and
 * ivshmem (the region's file; NULL or "": left out).
 * The file is replaced atomically (write + rename). -EINVAL for bad values
 * or a file holding NUL bytes (not text: left alone). */
int gp_pvconf_put_guest(const char *path, const char *vm, const char *socket,
			uint64_t memory_max, int weight, const char *ivshmem);
/* Same, with `socket_owner = USER` (the user gpupass-pvd gives the socket
 * to: the VM's QEMU runs as it and reconnects after a server restart);
 * NULL or "": left out. */
int gp_pvconf_put_guest_owned(const char *path, const char *vm, const char *socket,
			      const char *socket_owner, uint64_t memory_max, int weight,
			      const char *ivshmem);
/* Removes the section; 0 when it (or the file) was not there. */
int gp_pvconf_remove_guest(const char *path, const char *vm);
/* 1 when the file has the section, 0 when not (or no file), -errno. */
int gp_pvconf_has_guest(const char *path, const char *vm);

/* The pid in <state_dir>/pvd.pid when that process is alive and is a
 * gpupass-pvd (its /proc comm), else -ESRCH (no file, stale pid, a pid
 * reused by another program after a reboot). */
int gp_pvd_pid(const struct gp_ctx *ctx, pid_t *out);
/* SIGHUP to a running gpupass-pvd: 1 sent, 0 not running, -errno. */
int gp_pvd_reload(const struct gp_ctx *ctx);

/* Which gpupass-pvd to run: @want ($GPUPASS_PVD: a path, or a name looked
 * up on PATH) when given, else the one next to the running gpupass binary
 * (AT_EXECFN: a build tree or one install prefix), else PATH.
 * 0 and the path, -ENOENT. */
int gp_pvd_find(const char *want, char *buf, size_t len);

struct gp_pvd_ensure {
	const char *binary;      /* NULL: gp_pvd_find(NULL) */
	const char *config;      /* its --config */
	const char *wait_socket; /* a socket it must listen on, or NULL */
	int timeout_ms;          /* 0: 60 s (PoCL's first start compiles) */
	/* out */
	pid_t pid;
	bool started;  /* started now (else it was running: reloaded) */
	char log[GP_VM_PATH_LEN]; /* its log when started */
};

/* Makes sure gpupass-pvd serves: when <state_dir>/pvd.pid names a live
 * gpupass-pvd it is sent SIGHUP; otherwise it is started detached (own
 * session, stdin /dev/null, output appended to <state_dir>/pvd.log) as
 * `BINARY --config CONFIG --pidfile <state_dir>/pvd.pid`. Either way it
 * waits until the pidfile names it (gpupass-pvd writes it once it listens)
 * and @wait_socket exists. Serialised by <state_dir>/pvd.lock, so two
 * gpupass never start two servers. -ENOENT (no binary), -ECHILD (it
 * exited: the end of its log in @why), -ETIMEDOUT (it was stopped again),
 * -errno. */
int gp_pvd_ensure(const struct gp_ctx *ctx, struct gp_pvd_ensure *e, struct gp_why *why);

#endif
