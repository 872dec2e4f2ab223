/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small QMP client (QEMU Machine Protocol, docs/interop/qmp-spec.txt):
 * one JSON object per line over a unix socket; the server greets, the
 * client negotiates with qmp_capabilities, then each command gets exactly
 * one "return" or "error" reply, with asynchronous "event" messages in
 * between. The same framing serves qemu-guest-agent, which has no greeting.
 *
 * What comes from QEMU or from a guest agent is outside data: every parser
 * here checks types and sizes and has a fuzz target (fuzz/fuzz_qmp.c).
 */
#ifndef GP_HOST_VM_QMP_H
#define GP_HOST_VM_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

struct gp_qmp;

/* Connects to a QMP monitor socket, reads the greeting and negotiates.
 * -ENOENT/-ECONNREFUSED while nobody listens, -ETIMEDOUT, -EPROTO when the
 * peer does not speak QMP. */
int gp_qmp_connect(const char *path, int timeout_ms, struct gp_qmp **out);
/* Connects without a greeting (qemu-guest-agent). */
int gp_qmp_connect_agent(const char *path, int timeout_ms, struct gp_qmp **out);
void gp_qmp_close(struct gp_qmp *q);

/* Runs @cmd with @args (borrowed, may be NULL). On success *ret (may be
 * NULL) owns the "return" value. A QMP error reply gives -EREMOTEIO with its
 * class and desc in @err; -ETIMEDOUT; -ECONNRESET when the peer closed. */
int gp_qmp_execute(struct gp_qmp *q, const char *cmd, struct json_object *args,
		   int timeout_ms, struct json_object **ret, char *err, size_t errlen);

/* Waits until the peer closes the connection (QEMU exited). 0 or
 * -ETIMEDOUT. */
int gp_qmp_wait_closed(struct gp_qmp *q, int timeout_ms);

/* Classifies one message. Returns:
 *  0        a "return": *ret (if not NULL) gets a new reference;
 *  -EREMOTEIO an "error": "class: desc" in @err;
 *  -EAGAIN  an event or the greeting (skip it);
 *  -EPROTO  not JSON, not an object, or none of the above. */
int gp_qmp_parse_reply(const char *text, size_t len, struct json_object **ret,
		       char *err, size_t errlen);

/* A device of the guest's PCI tree (query-pci), bridges walked. */
struct gp_qmp_pci_dev {
	int bus, slot, function;
	uint16_t vendor_id, device_id;
	uint32_t class_code; /* base << 8 | sub, as query-pci gives it */
	char qdev_id[64];
};

/* Flattens a query-pci "return" (a list of buses, each with devices that
 * may hold a "pci_bridge" with more devices). Malformed entries are
 * skipped; depth is bounded. *out is malloc'd (free()). -EPROTO when @ret
 * is not a list. */
int gp_qmp_parse_pci(struct json_object *ret, struct gp_qmp_pci_dev **out, size_t *n);

/* Runs @prog (with one @arg, may be NULL) in the guest through the guest
 * agent at @path: guest-sync (within @timeout_ms: -ETIMEDOUT when no agent
 * answers), guest-exec with capture-output, guest-exec-status until it
 * exits (30 s). *out gets its decoded stdout (malloc'd). */
int gp_qmp_agent_exec(const char *path, int timeout_ms, const char *prog, const char *arg,
		      char **out);

/* Decodes standard base64 (guest-exec-status "out-data") into a malloc'd
 * NUL-terminated buffer. -EINVAL on bad input. */
int gp_base64_decode(const char *in, char **out, size_t *len);

#endif
