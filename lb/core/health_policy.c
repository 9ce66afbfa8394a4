/* health_policy: ejection backoff and limits, panic. See health_policy.h. */
#include "health_policy.h"

unsigned health_backoff_multiplier(unsigned previous, uint64_t since_previous_ms, uint64_t cooldown_ms)
{
	if (previous == 0 || since_previous_ms >= cooldown_ms * HEALTH_BACKOFF_WINDOW)
		return 1;
	return previous >= HEALTH_BACKOFF_MAX ? HEALTH_BACKOFF_MAX : previous + 1;
}

bool health_eject_allowed(size_t out, size_t servers, int max_ejected_percent)
{
	size_t allowed = max_ejected_percent > 0 ? servers * (size_t)max_ejected_percent / 100 : 0;
	return out + 1 <= allowed;
}

bool health_panic(size_t healthy, size_t eligible, int threshold_percent)
{
	if (threshold_percent <= 0 || eligible == 0)
		return false;
	/* healthy / eligible < threshold / 100, in integers */
	return healthy * 100 < eligible * (size_t)threshold_percent;
}
