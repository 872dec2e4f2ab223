/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Logging through a callback owned by a context. Library code never prints:
 * it hands a level and a message to whatever the caller installed (the CLI
 * prints to stderr, the daemon to stderr or the journal, tests capture).
 */
#ifndef GP_COMMON_LOG_H
#define GP_COMMON_LOG_H

#include <stdarg.h>

enum gp_log_level {
	GP_LOG_ERR = 3,
	GP_LOG_WARN = 4,
	GP_LOG_INFO = 6,
	GP_LOG_DEBUG = 7,
};

typedef void (*gp_log_fn)(void *data, enum gp_log_level level, const char *msg);

struct gp_log {
	gp_log_fn fn;
	void *data;
	enum gp_log_level max_level; /* messages above this are dropped */
};

void gp_log_msg(const struct gp_log *log, enum gp_log_level level,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void gp_log_vmsg(const struct gp_log *log, enum gp_log_level level,
		 const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* A ready-made sink that writes "gpupass: <level>: msg" to stderr. */
void gp_log_stderr(void *data, enum gp_log_level level, const char *msg);

const char *gp_log_level_name(enum gp_log_level level);

#define gp_err(log, ...) gp_log_msg((log), GP_LOG_ERR, __VA_ARGS__)
#define gp_warn(log, ...) gp_log_msg((log), GP_LOG_WARN, __VA_ARGS__)
#define gp_info(log, ...) gp_log_msg((log), GP_LOG_INFO, __VA_ARGS__)
#define gp_dbg(log, ...) gp_log_msg((log), GP_LOG_DEBUG, __VA_ARGS__)

#endif
