/* counters: see counters.h. */
#include "counters.h"

struct lb_counters lb_counters;
