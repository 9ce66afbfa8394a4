/*
 * srv: which DNS SRV records become servers, and with what weight (pure).
 *
 * A client uses the records of the lowest priority value (RFC 2782; lb has
 * no backup servers, so the others are not used until the records
 * change). A lone record whose target is "." says the service is not
 * offered: no server. SRV weights (0..65535) become lb weights (0..256)
 * keeping their ratios: unchanged when none is above 256, else scaled so
 * the largest is 256 (a non-zero weight never rounds down to 0). When
 * every record has weight 0 they share equally (weight 1 each), as the
 * RFC says; a weight 0 beside non-zero ones stays 0: no new requests.
 */
#ifndef LB_SRV_H
#define LB_SRV_H

#include <stddef.h>
#include <stdint.h>

struct srv_record {
	const char *target; /* host name, without a final dot; "" or "." = none */
	uint16_t priority, weight, port;
};

/* Marks the records in use: weights[i] is record i's lb weight 0..256,
 * or -1 when it is not used. Returns how many are used. */
size_t srv_select(const struct srv_record *records, size_t n, int *weights);

#endif
