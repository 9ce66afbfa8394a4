/*
 * main: the command line (SPEC 2). Loads the configuration, binds, detaches
 * when asked, and hands over to the control loop.
 *
 * Exit status: 0 clean exit; 1 invalid configuration; 2 usage error;
 * 3 could not start (a bind failed, a file could not be opened, privileges).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "control.h"
#include "daemon.h"
#include "evmem.h"
#include "gen.h"
#include "log.h"
#include "resolve.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/lb/lb.yaml"

enum exit_status { EXIT_OK = 0, EXIT_BAD_CONFIG = 1, EXIT_USAGE = 2, EXIT_CANNOT_START = 3 };

static void print_error_line(const char *line, void *arg)
{
	(void)arg;
	fprintf(stderr, "%s\n", line);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: lb [-c FILE] [-t] [-d] [-p PIDFILE] [-V] [-h]\n"
		     "  -c FILE     configuration file (default " DEFAULT_CONFIG ")\n"
		     "  -t          check the configuration and exit\n"
		     "  -d          run in the background\n"
		     "  -p PIDFILE  write the process id here (overrides global.pidfile)\n"
		     "  -V          print the version\n"
		     "  -h          this help\n");
}

/* libevent's own messages (accept
 * warnings) go through log_msg, with lb's level, target and timestamp,
 * instead of to raw stderr. */
static void on_libevent_message(int severity, const char *msg)
{
	enum log_level level = severity >= EVENT_LOG_ERR    ? LOG_LEVEL_ERROR
			       : severity == EVENT_LOG_WARN ? LOG_LEVEL_WARN
			       : severity == EVENT_LOG_MSG  ? LOG_LEVEL_INFO
							    : LOG_LEVEL_DEBUG;
	log_msg(level, "libevent: %s", msg);
}

int main(int argc, char **argv)
{
	const char *config_path = DEFAULT_CONFIG;
	const char *pidfile_arg = NULL; /* -p overrides global.pidfile */
	bool check_only = false, daemonize = false;
	int opt;

	while ((opt = getopt(argc, argv, "c:tdp:Vh")) != -1) {
		switch (opt) {
		case 'c':
			config_path = optarg;
			break;
		case 't':
			check_only = true;
			break;
		case 'd':
			daemonize = true;
			break;
		case 'p':
			pidfile_arg = optarg;
			break;
		case 'V':
			printf("lb %s\n", LB_VERSION);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "lb: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}

	struct lb_config *cfg = NULL;
	struct config_errors errs = { 0 };
	int loaded = config_load_file(config_path, &cfg, &errs);
	if (loaded < 0) {
		for (size_t i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.lines[i]);
		config_errors_free(&errs);
		/* A file that could not be opened is "could not start" (SPEC 2);
		 * with -t, whatever is wrong is an invalid configuration. */
		return !check_only && loaded == CONFIG_UNREADABLE ? EXIT_CANNOT_START : EXIT_BAD_CONFIG;
	}
	config_errors_free(&errs);
	/* Certificates and keys are part of the configuration: a bad one is
	 * reported as such, with the key's place. */
	if (tls_check_config(cfg, print_error_line, NULL) > 0) {
		config_free(cfg);
		return EXIT_BAD_CONFIG;
	}
	if (check_only) {
		char warning[512];
		if (control_descriptor_warning(cfg, control_workers_wanted(cfg), daemon_descriptor_hard_limit(), warning,
					       sizeof(warning)))
			fprintf(stderr, "%s: warning: %s\n", config_path, warning);
		printf("configuration OK\n");
		config_free(cfg);
		return EXIT_OK;
	}

	signal(SIGPIPE, SIG_IGN);
	daemon_tune_malloc();
	evmem_install(); /* without it libevent keeps malloc: only memory after bursts suffers */
	event_set_log_callback(on_libevent_message);
	if (log_configure(cfg->global.log.level, cfg->global.log.target, cfg->global.access_log) < 0) {
		fprintf(stderr, "lb: cannot open log target %s or %s: %m\n", cfg->global.log.target,
			cfg->global.access_log);
		config_free(cfg);
		return EXIT_CANNOT_START;
	}
	const char *pidfile = pidfile_arg ? pidfile_arg : cfg->global.pidfile;
	char *pidfile_copy = strdup(pidfile);

	/* Bind before detaching, so that failures are reported on the
	 * terminal. Host names are resolved once the control loop runs
	 * (resolve.h): listening never waits on DNS. */
	char err[512];
	struct resolution res;
	if (resolve_config_literals(cfg, &res) < 0) {
		log_error("cannot start: out of memory");
		config_free(cfg);
		free(pidfile_copy);
		return EXIT_CANNOT_START;
	}
	struct gen *first = gen_create(cfg, &res, (struct gen_lineage){ 0 }, control_workers_wanted(cfg), err, sizeof(err));
	resolution_free(&res);
	if (first == NULL || pidfile_copy == NULL) {
		log_error("cannot start: %s", first == NULL ? err : "out of memory");
		free(pidfile_copy);
		gen_release(first);
		return EXIT_CANNOT_START;
	}
	if (daemonize && daemon_detach() < 0) {
		log_error("cannot detach: %m");
		return EXIT_CANNOT_START;
	}
	if (daemon_write_pidfile(pidfile_copy) < 0) {
		log_error("cannot write pid file %s: %m", pidfile_copy);
		free(pidfile_copy);
		gen_release(first);
		return EXIT_CANNOT_START;
	}
	free(pidfile_copy);

	int status = control_run(first, config_path);
	daemon_remove_pidfile();
	log_shutdown();
	return status;
}
