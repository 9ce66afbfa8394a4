/*
 * config_tree: the first pass of the loader (config.c): libyaml's event
 * stream becomes a small tree of nodes (scalars, mappings, sequences), each
 * with its 1-based line and column, so that a message can point at any node
 * and checks spanning the file can run once everything is read. Also the
 * loader's context and its error reporting, which both passes share.
 * Internal to config.c and config_tree.c.
 */
#ifndef LB_CONFIG_TREE_H
#define LB_CONFIG_TREE_H

#include <stdbool.h>
#include <stddef.h>

struct lb_config;

#define CONFIG_DEPTH_MAX 64
#define CONFIG_ERRORS_MAX 100 /* then one line saying there were more */
#define CONFIG_MSG_MAX 640

enum config_node_kind {
	CONFIG_NODE_SCALAR,
	CONFIG_NODE_MAPPING,
	CONFIG_NODE_SEQUENCE,
	CONFIG_NODE_BAD, /* already reported (alias, NUL byte): skipped silently */
};

struct config_node {
	enum config_node_kind kind;
	unsigned line, col; /* 1-based */
	bool plain; /* an unquoted scalar: only those can mean null */
	char *text; /* scalar value, NUL-terminated, no NUL inside */
	struct config_node **items; /* mapping: key, value, key, value... */
	size_t count, cap;
};

struct config_pos {
	unsigned line, col; /* line 0 = not seen */
};

struct config_error_line {
	unsigned line, col;
	size_t seq; /* keeps errors at one position in the order found */
	char *text;
};

struct config_ctx {
	const char *name; /* the file, as the caller calls it */
	const char *dir; /* its directory, where relative file names start; NULL = as written */
	const char *text;
	size_t len;
	struct lb_config *cfg;
	struct config_error_line *errors;
	size_t nerrors, errors_cap;
	bool too_many, oom;
	bool listeners_malformed; /* already reported: no "no listeners" on top */
	/* value positions of each listener's / backend's keys, CONFIG_KEYS_MAX
	 * per item, for the cross-section checks */
	struct config_pos *listener_marks, *backend_marks;
};

/* One error line at LINE:COL (line 0: about the whole file); path may be "". */
void config_error(struct config_ctx *ctx, unsigned line, unsigned col, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* Read ctx->text into a tree (*out; NULL for an empty document). 0, or -1
 * after reporting the error (also ctx->oom). */
int config_tree_read(struct config_ctx *ctx, struct config_node **out);
void config_node_free(struct config_node *node);

/* A plain (unquoted) empty or "null"/"~" scalar. */
bool config_node_is_null(const struct config_node *node);

#endif
