/*
 * ca_cmd_serve.c: `vtpm-ca serve`, the CA protocol over HTTP on TCP
 * (docs/ca-api.md): one process, one poll loop, the database read for every
 * request. SIGTERM or SIGINT ends it with status 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca.h"

#define SERVE_MAX_POLL (API_MAX_CONNECTIONS + 1)

static volatile sig_atomic_t serve_signalled;

static const char serve_help[] =
    "NAME\n"
    "    vtpm-ca serve - answer the Privacy CA and Virtualization CA protocol\n"
    "\n"
    "SYNOPSIS\n"
    "    vtpm-ca serve --db FILE [--role privacy|virtualization|both]\n"
    "        [--listen HOST:PORT] [--config FILE] [--log-level LEVEL]\n"
    "\n"
    "DESCRIPTION\n"
    "    Serves HTTP/1.1 with JSON bodies (docs/ca-api.md) on a numeric TCP address.\n"
    "    Every peer may call: requests are judged by their cryptographic content.\n"
    "    The privacy role answers /v1/privacy/challenge and /certify with the\n"
    "    Privacy CA's key, the virtualization role /v1/virtualization/ek-certificate\n"
    "    with the Virtualization CA's; any role answers GET /v1/privacy/ca,\n"
    "    /v1/virtualization/ca and /v1/status/SERIAL. Only the keys of the roles\n"
    "    served are loaded. Every request that issues or is refused leaves an audit\n"
    "    row (vtpm-ca list audit). Put a TLS proxy in front for confidentiality;\n"
    "    nothing secret crosses in clear (the challenge secret is encrypted to the\n"
    "    EK), but the requests name hosts and vTPMs.\n"
    "\n"
    "OPTIONS\n"
    "    --role R         privacy, virtualization or both (default both)\n"
    "    --listen A       HOST:PORT (or tcp:HOST:PORT; [::1]:PORT for IPv6)\n"
    "    --config FILE    a JSON object; options given on the command line win:\n"
    "                       \"role\": \"both\", \"listen\": \"127.0.0.1:8440\",\n"
    "                       \"challenge_expiry_seconds\": 300 (0: at once, for tests),\n"
    "                       \"ck_validity_days\": 1825, \"ak_validity_days\": 365,\n"
    "                       \"ek_validity_days\": 0 (0: no expiry, 99991231235959Z)\n"
    "    --log-level L    error, warn, info (default), debug\n"
    "\n"
    "EXIT STATUS\n"
    "    0 stopped by SIGTERM or SIGINT; 1 could not start (address in use, CA files\n"
    "    or database unreadable); 2 usage error.\n";

static void
serve_on_signal(int sig)
{
	serve_signalled = sig;
}

/* Reads one CA certificate file beside the database. */
static int
serve_read_cert(const char *db, const char *which, struct ca_der *out)
{
	char path[1024];
	uint8_t *der = NULL;
	size_t len = 0;

	if (ca_file(db, which, "pem", path, sizeof(path)) == -1 ||
	    certs_read(path, &der, &len) == -1 || len > sizeof(out->der)) {
		free(der);
		return ca_fail("%s: cannot be read: %s (made by 'vtpm-ca init --db %s'?)", path,
		    strerror(errno), db);
	}
	memcpy(out->der, der, len);
	out->len = len;
	free(der);
	return EXIT_OK;
}

static struct certs_ca *
serve_load_ca(const char *db, const char *which)
{
	char key[1024], cert[1024];
	struct err err;
	struct certs_ca *ca;

	if (ca_file(db, which, "key", key, sizeof(key)) == -1 ||
	    ca_file(db, which, "pem", cert, sizeof(cert)) == -1) {
		ca_fail("%s: path too long", db);
		return NULL;
	}
	if ((ca = certs_ca_load(key, cert, &err)) == NULL)
		ca_fail("the %s CA: %s", which, err.msg);
	return ca;
}

static int
serve_open(struct ca_server *s, const char *dbpath)
{
	struct err err;

	if ((s->db = ca_db_open(dbpath, false, &err)) == NULL)
		return ca_fail("%s: %s", dbpath, err.msg);
	if (serve_read_cert(dbpath, "root", &s->root) != EXIT_OK ||
	    serve_read_cert(dbpath, "privacy", &s->privacy_cert) != EXIT_OK ||
	    serve_read_cert(dbpath, "virtualization", &s->virt_cert) != EXIT_OK)
		return EXIT_RUNTIME;
	if ((s->cfg.role & CA_ROLE_PRIVACY) &&
	    (s->privacy = serve_load_ca(dbpath, "privacy")) == NULL)
		return EXIT_RUNTIME;
	if ((s->cfg.role & CA_ROLE_VIRTUALIZATION) &&
	    (s->virt = serve_load_ca(dbpath, "virtualization")) == NULL)
		return EXIT_RUNTIME;
	return EXIT_OK;
}

static void
serve_loop(struct api_server *api)
{
	struct pollfd pfd[SERVE_MAX_POLL];
	struct timespec ts, *tsp;
	sigset_t unblocked;
	int n, timeout;

	sigemptyset(&unblocked);
	while (!serve_signalled) {
		n = api_pollfds(api, pfd, SERVE_MAX_POLL);
		timeout = api_next_timeout(api);
		tsp = NULL;
		if (timeout >= 0) {
			ts.tv_sec = timeout / 1000;
			ts.tv_nsec = (long)(timeout % 1000) * 1000000;
			tsp = &ts;
		}
		if (ppoll(pfd, (nfds_t)n, tsp, &unblocked) == -1) {
			if (errno == EINTR)
				continue;
			fatal(EXIT_RUNTIME, "poll");
		}
		api_process(api, pfd, n);
	}
}

static int
serve_run(struct ca_server *s, const char *dbpath)
{
	struct sigaction sa = {.sa_handler = serve_on_signal};
	struct api_server *api = NULL;
	struct endpoint ep;
	char spec[96];
	sigset_t block;
	int ret;

	snprintf(spec, sizeof(spec), "%s%s",
	    strncmp(s->cfg.listen, "tcp:", 4) == 0 ? "" : "tcp:", s->cfg.listen);
	if (endpoint_parse(spec, &ep) == -1 || ep.kind != ENDPOINT_TCP)
		return ca_usage("serve",
		    "--listen: a numeric HOST:PORT such as 127.0.0.1:8440, "
		    "not '%s'",
		    s->cfg.listen);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((ret = serve_open(s, dbpath)) != EXIT_OK)
		return ret;
	if ((api = api_listen_tcp(&ep, ca_api, s)) == NULL)
		return ca_fail("listening on %s: %s%s", s->cfg.listen, strerror(errno),
		    errno == EADDRINUSE ? ": choose another --listen port" : "");
	ca_db_audit(s->db, time(NULL), "serve", "started", spec);
	log_info("serving the %s on %s (database %s)",
	    s->cfg.role == CA_ROLE_BOTH      ? "Privacy CA and the Virtualization CA"
	    : s->cfg.role == CA_ROLE_PRIVACY ? "Privacy CA"
	                                     : "Virtualization CA",
	    s->cfg.listen, dbpath);
	serve_loop(api);
	log_info("stopping on signal %d", (int)serve_signalled);
	api_close(api);
	return EXIT_OK;
}

int
ca_cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"role", required_argument, NULL, 'r'},
	    {"listen", required_argument, NULL, 'l'},
	    {"config", required_argument, NULL, 'c'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *db = NULL, *role = NULL, *listen = NULL, *config = NULL;
	struct ca_server *s = calloc(1, sizeof(*s));
	enum log_level level = LOG_LEVEL_INFO;
	struct err err;
	int c, ret = EXIT_USAGE;

	if (s == NULL)
		return ca_fail("out of memory");
	ca_settings_defaults(&s->cfg);
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': db = optarg; break;
		case 'r': role = optarg; break;
		case 'l': listen = optarg; break;
		case 'c': config = optarg; break;
		case 'L':
			if (log_parse_level(optarg, &level) == -1) {
				ca_usage("serve", "--log-level: error, warn, info or debug");
				goto out;
			}
			break;
		case 'h':
			fputs(serve_help, stdout);
			ret = EXIT_OK;
			goto out;
		case ':': ca_usage("serve", "%s needs a value", argv[optind - 1]); goto out;
		default: ca_usage("serve", "unknown option '%s'", argv[optind - 1]); goto out;
		}
	}
	if (optind < argc) {
		ca_usage("serve", "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (db == NULL) {
		ca_usage("serve", "--db is required");
		goto out;
	}
	if (config != NULL && ca_settings_load(config, &s->cfg, &err) == -1) {
		ret = ca_fail("%s", err.msg);
		goto out;
	}
	if (role != NULL && ca_role_parse(role, &s->cfg.role) == -1) {
		ca_usage("serve", "--role: privacy, virtualization or both");
		goto out;
	}
	if (listen != NULL)
		snprintf(s->cfg.listen, sizeof(s->cfg.listen), "%s", listen);
	if (s->cfg.listen[0] == '\0') {
		ca_usage("serve", "give --listen HOST:PORT (or \"listen\" in --config)");
		goto out;
	}
	log_init("vtpm-ca", level);
	ret = serve_run(s, db);
out:
	certs_ca_free(s->privacy);
	certs_ca_free(s->virt);
	ca_db_close(s->db);
	free(s);
	return ret;
}
