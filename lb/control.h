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

#endif
