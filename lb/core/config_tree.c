/* config_tree: libyaml's event stream as a tree of positioned nodes. See
 * config_tree.h. */
#include "config_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

void config_error(struct config_ctx *ctx, unsigned line, unsigned col, const char *path, const char *fmt, ...)
{
	char msg[CONFIG_MSG_MAX];
	va_list ap;
	char *text;
	int n;

	if (ctx->nerrors >= CONFIG_ERRORS_MAX) {
		ctx->too_many = true;
		return;
	}
	if (ctx->nerrors == ctx->errors_cap) {
		size_t cap = ctx->errors_cap ? ctx->errors_cap * 2 : 8;
		struct config_error_line *grown = realloc(ctx->errors, cap * sizeof *grown);

		if (!grown) {
			ctx->oom = true;
			return;
		}
		ctx->errors = grown;
		ctx->errors_cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (line == 0)
		n = asprintf(&text, "%s: %s", ctx->name, msg);
	else if (path && *path)
		n = asprintf(&text, "%s:%u:%u: %s: %s", ctx->name, line, col, path, msg);
	else
		n = asprintf(&text, "%s:%u:%u: %s", ctx->name, line, col, msg);
	if (n < 0) {
		ctx->oom = true;
		return;
	}
	ctx->errors[ctx->nerrors] = (struct config_error_line){ line, col, ctx->nerrors, text };
	ctx->nerrors++;
}

void config_node_free(struct config_node *node)
{
	if (!node)
		return;
	/* depth is bounded by CONFIG_DEPTH_MAX, so the recursion is too */
	for (size_t i = 0; i < node->count; i++)
		config_node_free(node->items[i]);
	free(node->items);
	free(node->text);
	free(node);
}

static struct config_node *config_node_new(struct config_ctx *ctx, enum config_node_kind kind,
					   const yaml_mark_t *mark)
{
	struct config_node *node = calloc(1, sizeof *node);

	if (!node) {
		ctx->oom = true;
		return NULL;
	}
	node->kind = kind;
	node->line = (unsigned)mark->line + 1;
	node->col = (unsigned)mark->column + 1;
	return node;
}

static struct config_node *config_node_scalar(struct config_ctx *ctx, const yaml_event_t *event)
{
	const char *value = (const char *)event->data.scalar.value;
	size_t len = event->data.scalar.length;
	struct config_node *node = config_node_new(ctx, CONFIG_NODE_SCALAR, &event->start_mark);

	if (!node)
		return NULL;
	node->plain = event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	/* "\0" in a double-quoted scalar would silently cut a C string short */
	if (memchr(value, '\0', len)) {
		config_error(ctx, node->line, node->col, NULL, "a value must not contain a NUL byte");
		node->kind = CONFIG_NODE_BAD;
		len = 0;
	}
	node->text = malloc(len + 1);
	if (!node->text) {
		ctx->oom = true;
		free(node);
		return NULL;
	}
	memcpy(node->text, value, len);
	node->text[len] = '\0';
	return node;
}

static int config_node_append(struct config_ctx *ctx, struct config_node *parent,
			      struct config_node *child)
{
	if (parent->count == parent->cap) {
		size_t cap = parent->cap ? parent->cap * 2 : 4;
		struct config_node **grown = realloc(parent->items, cap * sizeof *grown);

		if (!grown) {
			ctx->oom = true;
			return -1;
		}
		parent->items = grown;
		parent->cap = cap;
	}
	parent->items[parent->count++] = child;
	return 0;
}

/* Reader errors carry a byte offset, not a mark: count lines up to it. */
static void config_offset_to_pos(const struct config_ctx *ctx, size_t offset, unsigned *line,
				 unsigned *col)
{
	size_t start = 0;

	*line = 1;
	if (offset > ctx->len)
		offset = ctx->len;
	for (size_t i = 0; i < offset; i++) {
		if (ctx->text[i] == '\n') {
			(*line)++;
			start = i + 1;
		}
	}
	*col = (unsigned)(offset - start) + 1;
}

static void config_error_yaml(struct config_ctx *ctx, const yaml_parser_t *parser)
{
	const char *problem = parser->problem ? parser->problem : "malformed YAML";
	unsigned line, col;

	switch (parser->error) {
	case YAML_MEMORY_ERROR:
		ctx->oom = true;
		return;
	case YAML_READER_ERROR:
		config_offset_to_pos(ctx, parser->problem_offset, &line, &col);
		if (parser->problem_value != -1)
			config_error(ctx, line, col, NULL, "YAML syntax error: %s (byte 0x%02x)", problem,
				     (unsigned)parser->problem_value & 0xffu);
		else
			config_error(ctx, line, col, NULL, "YAML syntax error: %s", problem);
		return;
	default:
		line = (unsigned)parser->problem_mark.line + 1;
		col = (unsigned)parser->problem_mark.column + 1;
		if (parser->context)
			config_error(ctx, line, col, NULL, "YAML syntax error: %s (%s at %zu:%zu)%s",
				     problem, parser->context, parser->context_mark.line + 1,
				     parser->context_mark.column + 1,
				     /* an unquoted *:PORT is read as an alias */
				     strstr(parser->context, "alias")
					     ? "; quote values starting with *, e.g. \"*:8080\""
					     : "");
		else
			config_error(ctx, line, col, NULL, "YAML syntax error: %s", problem);
		return;
	}
}

/*
 * One event: becomes a node attached to the open collection on top of the
 * stack (or the root), or closes that collection. Returns -1 to stop.
 */
static int config_tree_event(struct config_ctx *ctx, const yaml_event_t *event,
			     struct config_node **stack, size_t *depth, struct config_node **root,
			     unsigned *documents)
{
	struct config_node *node = NULL;
	const yaml_mark_t *mark = &event->start_mark;

	switch (event->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (++*documents > 1) {
			config_error(ctx, (unsigned)mark->line + 1, (unsigned)mark->column + 1, NULL,
				     "expected one YAML document, found a second one");
			return -1;
		}
		return 0;
	case YAML_MAPPING_END_EVENT:
	case YAML_SEQUENCE_END_EVENT:
		if (*depth > 0)
			(*depth)--;
		return 0;
	case YAML_SCALAR_EVENT:
		node = config_node_scalar(ctx, event);
		break;
	case YAML_ALIAS_EVENT:
		node = config_node_new(ctx, CONFIG_NODE_BAD, mark);
		if (node)
			config_error(ctx, node->line, node->col, NULL,
				     "aliases (*name) are not supported, write the value out");
		break;
	case YAML_MAPPING_START_EVENT:
		node = config_node_new(ctx, CONFIG_NODE_MAPPING, mark);
		break;
	case YAML_SEQUENCE_START_EVENT:
		node = config_node_new(ctx, CONFIG_NODE_SEQUENCE, mark);
		break;
	default:
		return 0;
	}
	if (!node)
		return -1;
	if (*depth == 0) {
		*root = node;
	} else if (config_node_append(ctx, stack[*depth - 1], node) < 0) {
		config_node_free(node);
		return -1;
	}
	if (node->kind == CONFIG_NODE_MAPPING || node->kind == CONFIG_NODE_SEQUENCE) {
		if (*depth == CONFIG_DEPTH_MAX) {
			config_error(ctx, node->line, node->col, NULL,
				     "expected at most %d nested levels, got more", CONFIG_DEPTH_MAX);
			return -1;
		}
		stack[(*depth)++] = node;
	}
	return 0;
}

/* Returns 0 and the root (NULL for an empty stream), or -1 after reporting. */
int config_tree_read(struct config_ctx *ctx, struct config_node **out)
{
	struct config_node *stack[CONFIG_DEPTH_MAX];
	struct config_node *root = NULL;
	size_t depth = 0;
	unsigned documents = 0;
	yaml_parser_t parser;
	yaml_event_t event;
	bool done = false;

	*out = NULL;
	if (!yaml_parser_initialize(&parser)) {
		ctx->oom = true;
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)ctx->text, ctx->len);
	while (!done) {
		int rc;

		if (!yaml_parser_parse(&parser, &event)) {
			config_error_yaml(ctx, &parser);
			goto fail;
		}
		done = event.type == YAML_STREAM_END_EVENT;
		rc = config_tree_event(ctx, &event, stack, &depth, &root, &documents);
		yaml_event_delete(&event);
		if (rc < 0)
			goto fail;
	}
	yaml_parser_delete(&parser);
	*out = root;
	return 0;
fail:
	yaml_parser_delete(&parser);
	config_node_free(root);
	return -1;
}

/* An unquoted empty value, "~" or "null": a section written but left empty. */
bool config_node_is_null(const struct config_node *node)
{
	return node->kind == CONFIG_NODE_SCALAR && node->plain &&
	       (node->text[0] == '\0' || strcmp(node->text, "~") == 0 ||
		strcmp(node->text, "null") == 0 || strcmp(node->text, "Null") == 0 ||
		strcmp(node->text, "NULL") == 0);
}

