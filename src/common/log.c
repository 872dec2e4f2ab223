/* SPDX-License-Identifier: Apache-2.0 */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>

const char *gp_log_level_name(enum gp_log_level level)
{
	switch (level) {
	case GP_LOG_ERR:
		return "error";
	case GP_LOG_WARN:
		return "warning";
	case GP_LOG_INFO:
		return "info";
	case GP_LOG_DEBUG:
		return "debug";
	}
	return "log";
}

void gp_log_vmsg(const struct gp_log *log, enum gp_log_level level,
		 const char *fmt, va_list ap)
{
	char *msg;

	if (!log || !log->fn || level > log->max_level)
		return;
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	log->fn(log->data, level, msg);
	free(msg);
}

void gp_log_msg(const struct gp_log *log, enum gp_log_level level,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	gp_log_vmsg(log, level, fmt, ap);
	va_end(ap);
}

void gp_log_stderr(void *data, enum gp_log_level level, const char *msg)
{
	const char *prog = data ? data : "gpupass";

	fprintf(stderr, "%s: %s: %s\n", prog, gp_log_level_name(level), msg);
}
