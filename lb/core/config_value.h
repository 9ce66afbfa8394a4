/*
 * config_value: the value syntax of lb.yaml (durations, sizes, percentages,
 * addresses, integers), apart from the walk over the file (config.c); pure.
 * config.h includes it: every module may use the parsers.
 */
#ifndef LB_CONFIG_VALUE_H
#define LB_CONFIG_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "HOST:PORT", "[IPV6]:PORT" or "*:PORT". host is "" for "*". */
struct cfg_addr {
	char *text; /* as written in the file: the server's identity */
	char *host; /* without brackets; "" = any address */
	uint16_t port;
};

/* Value parsers, shared with the rest of lb and unit-tested on their own.
 * Each returns 0 on success, -1 on a malformed value. */
int config_parse_duration(const char *text, uint64_t *ms); /* "250ms" "2s" "5m" "1h" */
int config_parse_size(const char *text, size_t *bytes); /* "512" "16k" "1m" "1g" */
int config_parse_percent(const char *text, int *percent); /* "50%" or "50": 0..100 */
int config_parse_addr(const char *text, struct cfg_addr *addr); /* fills host and port, and text */
void config_addr_free(struct cfg_addr *addr);

/* Leading decimal digits (at least one) into *value, *end after them; -1 on
 * none or overflow. */
int config_parse_digits(const char *text, uint64_t *value, const char **end);

/* An optional '-' and digits, the whole text; -1 otherwise. */
int config_parse_integer(const char *text, long long *value);

/* As config_parse_addr, but -2 (addr untouched) when out of memory. */
int config_addr_parse(const char *text, struct cfg_addr *addr);

/* "srv:NAME" (a server taken from DNS SRV records): host = NAME (a final
 * dot, if written, kept: an absolute name), port = 0, text as written. 0,
 * -1 when malformed, -2 out of memory. */
int config_srv_parse(const char *text, struct cfg_addr *addr);

#endif
