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

#define GP_PVCONF_NAME "pvd.conf"
#define GP_PVD_PIDFILE "pvd.pid"

/* <db_dir>/pvd.conf (the state directory when one was given). */
int gp_pvconf_default_path(const struct gp_ctx *ctx, char *buf, size_t len);
/* <state_dir>/pv/NAME.sock; -ENAMETOOLONG beyond a unix socket's 107 bytes. */
int gp_pv_socket_path(const struct gp_ctx *ctx, const char *vm, char *buf, size_t len);

/* Adds or replaces the section [guest @vm] of @path (created when missing)
 * with socket, memory_max (bytes, 0: the line is left out) and weight.
 * The file is replaced atomically (write + rename). -EINVAL for bad values
 * or a file holding NUL bytes (not text: left alone). */
int gp_pvconf_put_guest(const char *path, const char *vm, const char *socket,
			uint64_t memory_max, int weight);
/* Removes the section; 0 when it (or the file) was not there. */
int gp_pvconf_remove_guest(const char *path, const char *vm);
/* 1 when the file has the section, 0 when not (or no file), -errno. */
int gp_pvconf_has_guest(const char *path, const char *vm);

/* The pid in <state_dir>/pvd.pid when that process is alive, else -ESRCH
 * (no file, stale pid). */
int gp_pvd_pid(const struct gp_ctx *ctx, pid_t *out);
/* SIGHUP to a running gpupass-pvd: 1 sent, 0 not running, -errno. */
int gp_pvd_reload(const struct gp_ctx *ctx);

#endif
