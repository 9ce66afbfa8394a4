/* ticket_keys: session ticket keys as a list. See ticket_keys.h. */
#include "ticket_keys.h"

#include <string.h>

_Static_assert(sizeof(struct ticket_key) == TICKET_KEY_BYTES, "a key is 80 bytes, no padding");

int ticket_keys_parse(struct ticket_keys *k, const unsigned char *bytes, size_t len)
{
	if (len == 0 || len % TICKET_KEY_BYTES != 0 || len / TICKET_KEY_BYTES > TICKET_KEYS_MAX)
		return -1;
	memset(k, 0, sizeof(*k));
	k->count = len / TICKET_KEY_BYTES;
	for (size_t i = 0; i < k->count; i++) {
		const unsigned char *p = bytes + i * TICKET_KEY_BYTES;
		memcpy(k->keys[i].name, p, 16);
		memcpy(k->keys[i].hmac, p + 16, 32);
		memcpy(k->keys[i].aes, p + 48, 32);
	}
	return 0;
}

bool ticket_keys_due(const struct ticket_keys *k, uint64_t now_s, uint64_t period_s)
{
	return k->count == 0 || now_s < k->made_s || now_s - k->made_s >= period_s;
}

void ticket_keys_rotate(struct ticket_keys *k, const struct ticket_key *fresh, uint64_t now_s)
{
	if (k->count > 0)
		k->keys[1] = k->keys[0];
	k->keys[0] = *fresh;
	k->count = k->count > 0 ? 2 : 1;
	k->made_s = now_s;
}

/* Key i of a rotated list is still good at now_s. */
static bool fresh_enough(const struct ticket_keys *k, size_t i, uint64_t now_s, uint64_t period_s)
{
	if (period_s == 0)
		return true;
	if (now_s < k->made_s)
		return false; /* the clock went back: trust nothing */
	return now_s - k->made_s < (i == 0 ? 2 * period_s : period_s);
}

int ticket_keys_find(const struct ticket_keys *k, const unsigned char *name, uint64_t now_s, uint64_t period_s,
		     struct ticket_key *out)
{
	for (size_t i = 0; i < k->count; i++) {
		if (memcmp(k->keys[i].name, name, sizeof(k->keys[i].name)) == 0) {
			if (!fresh_enough(k, i, now_s, period_s))
				return 0;
			*out = k->keys[i];
			return i == 0 ? 1 : 2;
		}
	}
	return 0;
}
