/* config_value: the value syntax of lb.yaml. See config.h (the public
 * parsers). Pure. */
#include "config_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* Leading decimal digits (at least one) into *value; -1 on none or overflow. */
int config_parse_digits(const char *text, uint64_t *value, const char **end)
{
	uint64_t v = 0;
	const char *p = text;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	*value = v;
	*end = p;
	return 0;
}

int config_parse_integer(const char *text, long long *value)
{
	bool negative = text[0] == '-';
	uint64_t v;
	const char *end;

	if (config_parse_digits(text + negative, &v, &end) < 0 || *end != '\0')
		return -1;
	if (v > (uint64_t)LLONG_MAX)
		return -1;
	*value = negative ? -(long long)v : (long long)v;
	return 0;
}

int config_parse_duration(const char *text, uint64_t *ms)
{
	static const struct {
		const char *suffix;
		uint64_t ms;
	} units[] = { { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 } };
	uint64_t v;
	const char *end;

	if (!text || config_parse_digits(text, &v, &end) < 0)
		return -1;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -1;
		*ms = v * units[i].ms;
		return 0;
	}
	return -1;
}

int config_parse_percent(const char *text, int *percent)
{
	uint64_t v;
	const char *end;

	if (!text || config_parse_digits(text, &v, &end) < 0 || v > 100)
		return -1;
	if (*end == '%')
		end++;
	if (*end != '\0')
		return -1;
	*percent = (int)v;
	return 0;
}

int config_parse_size(const char *text, size_t *bytes)
{
	uint64_t v, unit;
	const char *end;

	if (!text || config_parse_digits(text, &v, &end) < 0)
		return -1;
	switch (tolower((unsigned char)*end)) {
	case '\0':
		unit = 1;
		break;
	case 'k':
		unit = 1024;
		break;
	case 'm':
		unit = 1024 * 1024;
		break;
	case 'g':
		unit = 1024 * 1024 * 1024;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > SIZE_MAX / unit)
		return -1;
	*bytes = (size_t)(v * unit);
	return 0;
}

/* A DNS name or dotted IPv4: letters, digits, '-', '.', '_'. */
static bool config_host_valid(const char *host, size_t len)
{
	bool only_ipv4_chars = true;
	char copy[INET_ADDRSTRLEN];
	struct in_addr in4;

	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)host[i];

		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return false;
		if (!isdigit(c) && c != '.')
			only_ipv4_chars = false;
	}
	if (!only_ipv4_chars)
		return true;
	/* all digits and dots: it must be a real IPv4 address, not 1.2.3.999 */
	if (len >= sizeof copy)
		return false;
	memcpy(copy, host, len);
	copy[len] = '\0';
	return inet_pton(AF_INET, copy, &in4) == 1;
}

/* 0 ok, -1 malformed, -2 out of memory. addr is untouched unless 0. */
int config_addr_parse(const char *text, struct cfg_addr *addr)
{
	const char *host, *port_text, *end;
	size_t host_len;
	uint64_t port;
	char *text_copy, *host_copy;

	if (!text)
		return -1;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		char copy[INET6_ADDRSTRLEN];
		struct in6_addr in6;

		if (!close || close[1] != ':')
			return -1;
		host = text + 1;
		host_len = (size_t)(close - host);
		if (host_len == 0 || host_len >= sizeof copy)
			return -1;
		memcpy(copy, host, host_len);
		copy[host_len] = '\0';
		if (inet_pton(AF_INET6, copy, &in6) != 1)
			return -1;
		port_text = close + 2;
	} else {
		const char *colon = strrchr(text, ':');

		if (!colon)
			return -1;
		host = text;
		host_len = (size_t)(colon - text);
		port_text = colon + 1;
		if (host_len == 1 && host[0] == '*')
			host_len = 0;
		else if (!config_host_valid(host, host_len)) /* also refuses unbracketed IPv6 */
			return -1;
	}
	if (config_parse_digits(port_text, &port, &end) < 0 || *end != '\0' || end - port_text > 5 ||
	    port < 1 || port > 65535)
		return -1;
	text_copy = strdup(text);
	host_copy = strndup(host, host_len);
	if (!text_copy || !host_copy) {
		free(text_copy);
		free(host_copy);
		return -2;
	}
	addr->text = text_copy;
	addr->host = host_copy;
	addr->port = (uint16_t)port;
	return 0;
}

int config_srv_parse(const char *text, struct cfg_addr *addr)
{
	static const char prefix[] = "srv:";
	const char *name;
	size_t len;

	if (!text || strncmp(text, prefix, sizeof(prefix) - 1) != 0)
		return -1;
	name = text + sizeof(prefix) - 1;
	len = strlen(name);
	size_t bare = len > 0 && name[len - 1] == '.' ? len - 1 : len; /* "name." is absolute: kept so */
	if (!config_host_valid(name, bare) || strspn(name, "0123456789.") == len)
		return -1; /* an SRV owner is a name, never an address */
	addr->text = strdup(text);
	addr->host = strndup(name, len);
	if (!addr->text || !addr->host) {
		free(addr->text);
		free(addr->host);
		return -2;
	}
	addr->port = 0;
	return 0;
}

int config_parse_addr(const char *text, struct cfg_addr *addr)
{
	return config_addr_parse(text, addr) == 0 ? 0 : -1;
}

void config_addr_free(struct cfg_addr *addr)
{
	if (!addr)
		return;
	free(addr->text);
	free(addr->host);
	addr->text = NULL;
	addr->host = NULL;
	addr->port = 0;
}

