/*
 * control: the control thread. It owns the current generation, starts the
 * workers, handles signals (SIGHUP reload, SIGTERM/SIGINT graceful stop,
 * SIGQUIT immediate stop, SIGUSR1 log reopen) and retires old generations
 * once every worker has moved on. It runs in the main thread.
 */
#ifndef LB_CONTROL_H
#define LB_CONTROL_H

#include "gen.h"

/* Run lb on an already loaded first generation until it is stopped;
 * SIGHUP re-reads config_path. Returns the process exit status (0 clean
 * stop, 3 could not start). */
int control_run(struct gen *first, const char *config_path);

/* Event loops for cfg: global.workers, or one per CPU (at most
 * LB_MAX_WORKERS). */
int control_workers_wanted(const struct lb_config *cfg);

/* When `limit` open files cannot serve cfg with `workers` loops, write
 * the warning to out and return true. */
bool control_descriptor_warning(const struct lb_config *cfg, int workers, unsigned long limit, char *out,
				size_t cap);

#endif
