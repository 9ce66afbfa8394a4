/*
 * libFuzzer target for the configuration parser: any bytes as a YAML file.
 * Checks that loading never crashes or leaks, that a failed load reports at
 * least one error line "NAME:..." and returns no configuration, and that a
 * successful one reports no error.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Ilb/core \
 *       test/fuzz/fuzz_config.c lb/core/config.c lb/core/config_tree.c lb/core/config_value.c -lyaml -o /tmp/fuzz_config
 *   mkdir -p /tmp/corpus && /tmp/fuzz_config -max_total_time=120 /tmp/corpus test/fuzz/corpus/config
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lb_config *cfg = NULL;
	struct config_errors errs = { 0 };
	int rc = config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &errs);
	if (rc == 0) {
		if (cfg == NULL || errs.count != 0)
			abort();
		config_free(cfg);
	} else {
		if (cfg != NULL || errs.count == 0)
			abort();
		for (size_t i = 0; i < errs.count; i++)
			if (strncmp(errs.lines[i], "fuzz.yaml", 9) != 0)
				abort();
	}
	config_errors_free(&errs);
	return 0;
}
