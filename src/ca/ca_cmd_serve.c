/*
 * ca_cmd_serve.c: `vtpm-ca serve`, the CA protocol over HTTP on TCP
 * (docs/ca-api.md), as two processes:
 *   - this one, the parent: it opens the database, loads the CA keys and
 *     binds the listener, then starts the network child (ca_spawn.c) and
 *     answers its messages (ca_parent.c) in one poll loop; it never
 *     accepts a connection or reads a network byte;
 *   - the network child (`serve --network-child`, ca_child.c), sandboxed,
 *     which serves HTTP on the listener and asks the parent for records
 *     and certificates.
 * A child that ends, or that the parent ends for a malformed message or
 * a request it had no business making, is replaced after a back-off
 * (100 ms doubling to 10 s; reset once a child has served a minute); each
 * end is logged and audited. The parent ends only on SIGTERM or SIGINT
 * (status 0, the child stopped first), or when the first child never
 * becomes ready (status 1).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ca_msg.h"

#define SERVE_READY_MS    30000 /* for a child to be confined and say so */
#define SERVE_BACKOFF_MS  100   /* first delay before a new child */
#define SERVE_BACKOFF_MAX 10000
#define SERVE_SERVED_MS   60000 /* a child that lived this long resets the back-off */
#define SERVE_PURGE_MS    10000 /* expired challenges are deleted this often */

static volatile sig_atomic_t serve_signalled;

static const char serve_help[] =
    "usage: vtpm-ca serve --db FILE [--role privacy|virtualization|both]\n"
    "           [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
    "           [--user NAME|UID[:GID]] [--config FILE] [--crl-url URL]\n"
    "           [--admit-any-manufacturer-ek] [--log-level LEVEL]\n"
    "\n"
    "Answer the Privacy CA and Virtualization CA protocol.\n"
    "The manual: vtpm-ca(8), COMMANDS, serve.\n";

struct serve_opts {
	const char *db, *role, *listen, *config, *user, *chroot, *crl_url, *tls_cert, *tls_key;
	enum log_level level;
	bool network_child;
	bool admit_any;
};

/* The parent's state: its records and keys, its child, its listener. */
struct serve {
	struct ca_parent *p;
	struct ca_child_proc c;
	struct ca_msg *in;
	int listener;
	char spec[96];
	bool ever_ready; /* a child has served: start-up is over */
	bool start_failed;
	int restarts; /* in a row, for the back-off */
	int64_t respawn_at;
	int64_t purge_at; /* mono_ms() of the next purge of expired challenges */
};

static void
serve_on_signal(int sig)
{
	serve_signalled = sig;
}

/* NAME (its primary group), or UID[:GID] (GID defaults to UID); neither
 * root's nor -1. 0, or EXIT_USAGE (the error said). */
static int
serve_parse_user(const char *spec, uid_t *uid, gid_t *gid)
{
	unsigned long u, g;
	struct passwd pwd, *pw = NULL;
	char *end, buf[4096];

	errno = 0;
	u = strtoul(spec, &end, 10);
	if (end != spec && errno == 0 && (*end == '\0' || *end == ':')) {
		g = u;
		if (*end == ':') {
			g = strtoul(end + 1, &end, 10);
			if (errno != 0 || *end != '\0')
				return ca_usage(
				    "serve", "--user: UID[:GID] or a user name, not '%s'", spec);
		}
	} else if (getpwnam_r(spec, &pwd, buf, sizeof(buf), &pw) == 0 && pw != NULL) {
		u = pw->pw_uid;
		g = pw->pw_gid;
	} else {
		return ca_usage(
		    "serve", "--user: no user '%s' (give a name or a numeric UID[:GID])", spec);
	}
	if (u == 0 || g == 0 || u >= UINT_MAX || g >= UINT_MAX)
		return ca_usage("serve",
		    "--user: the network child needs an unprivileged identity, not %lu:%lu", u, g);
	*uid = (uid_t)u;
	*gid = (gid_t)g;
	return 0;
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
	struct certs_ca *ca;
	struct err err;

	if (ca_file(db, which, "key", key, sizeof(key)) == -1 ||
	    ca_file(db, which, "pem", cert, sizeof(cert)) == -1) {
		ca_fail("%s: path too long", db);
		return NULL;
	}
	if ((ca = certs_ca_load(key, cert, &err)) == NULL)
		ca_fail("the %s CA: %s", which, err.msg);
	return ca;
}

/* The database, the CA certificates and the keys of the roles served. */
static int
serve_open(struct ca_parent *p, const char *dbpath)
{
	struct err err;

	if ((p->db = ca_db_open(dbpath, false, &err)) == NULL)
		return ca_fail("%s: %s", dbpath, err.msg);
	if (serve_read_cert(dbpath, "root", &p->root) != EXIT_OK ||
	    serve_read_cert(dbpath, "privacy", &p->privacy_cert) != EXIT_OK ||
	    serve_read_cert(dbpath, "virtualization", &p->virt_cert) != EXIT_OK)
		return EXIT_RUNTIME;
	if ((p->cfg.role & CA_ROLE_PRIVACY) &&
	    (p->privacy = serve_load_ca(dbpath, "privacy")) == NULL)
		return EXIT_RUNTIME;
	if ((p->cfg.role & CA_ROLE_VIRTUALIZATION) &&
	    (p->virt = serve_load_ca(dbpath, "virtualization")) == NULL)
		return EXIT_RUNTIME;
	return EXIT_OK;
}

/* Starts a child and sends it HELLO (it reads it once confined). */
static void
serve_start_child(struct serve *sv)
{
	struct err err = {0};

	if (ca_spawn(&sv->c, sv->listener, &err) == -1) {
		log_warnx("the network child cannot be started: %s", err.msg);
		sv->respawn_at = mono_ms() + SERVE_BACKOFF_MAX;
		if (!sv->ever_ready)
			sv->start_failed = true;
		return;
	}
	ca_parent_reset(sv->p, sv->c.fd);
	ca_parent_hello(sv->p, sv->p->out);
	if (ca_msg_send(sv->c.fd, sv->p->out, &err) == -1) {
		log_warnx("network child: %s", err.msg);
		ca_spawn_end(&sv->c, true, NULL, 0);
		sv->respawn_at = mono_ms() + SERVE_BACKOFF_MAX;
	}
}

/* The child ended, or must: it is reaped, its end logged and audited, and
 * the next one scheduled. seen: what the parent saw (NULL: it just ended). */
static void
serve_child_ended(struct serve *sv, bool kill_it, const char *seen)
{
	int64_t lived = mono_ms() - sv->c.started, delay;
	char how[160];

	ca_spawn_end(&sv->c, kill_it, how, sizeof(how));
	log_warnx("the network child ended (%s%s%s)", seen != NULL ? seen : "",
	    seen != NULL ? "; " : "", how);
	ca_parent_audit(sv->p, "serve", "child ended", "%s%s%s", seen != NULL ? seen : "",
	    seen != NULL ? "; " : "", how);
	if (!sv->ever_ready) {
		sv->start_failed = true;
		return;
	}
	if (lived >= SERVE_SERVED_MS)
		sv->restarts = 0;
	delay = SERVE_BACKOFF_MS << (sv->restarts < 7 ? sv->restarts : 7);
	sv->respawn_at = mono_ms() + (delay < SERVE_BACKOFF_MAX ? delay : SERVE_BACKOFF_MAX);
	sv->restarts++;
}

/* The child's READY: it is confined. */
static void
serve_ready(struct serve *sv)
{
	ca_spawn_confined(&sv->c);
	if (sv->ever_ready) {
		log_info("a new network child (%ld) serves", (long)sv->c.pid);
		return;
	}
	sv->ever_ready = true;
	ca_parent_audit(sv->p, "serve", "started", "%s", sv->spec);
	log_info("serving the %s on %s",
	    sv->p->cfg.role == CA_ROLE_BOTH      ? "Privacy CA and the Virtualization CA"
	    : sv->p->cfg.role == CA_ROLE_PRIVACY ? "Privacy CA"
	                                         : "Virtualization CA",
	    sv->p->cfg.listen);
}

/* One message from the child. */
static void
serve_message(struct serve *sv)
{
	const size_t most = sizeof(*sv->in) - sizeof(sv->in->hdr);
	struct err err = {0};
	char seen[ERR_MSG_MAX + 32];
	int rc;

	rc = ca_msg_recv(sv->c.fd, sv->in, CA_MSG_TO_PARENT, &err);
	if (rc == -1 && err.kind == ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (rc == 0) {
		/* The end of the channel, or an empty record (recv cannot tell
		 * them apart), or a half-close: a child that goes on living
		 * after it must not hold the parent in waitpid. SIGKILL leaves
		 * the status of a child that had exited as it was. */
		serve_child_ended(sv, true, NULL);
	} else if (rc == -1) {
		snprintf(seen, sizeof(seen), "%s: %s",
		    err.kind == ERR_INVALID ? "malformed message" : "its channel", err.msg);
		serve_child_ended(sv, true, seen);
	} else if (!sv->c.ready && sv->in->hdr.type == CA_MSG_READY) {
		serve_ready(sv);
	} else if (!sv->c.ready) {
		serve_child_ended(sv, true, "a request before READY");
	} else if (ca_parent_handle(sv->p, sv->in, &err) == -1) {
		snprintf(seen, sizeof(seen), "protocol: %s", err.msg);
		serve_child_ended(sv, true, seen);
	}
	/* What was read, the secrets of challenge answers included. */
	ca_cleanse(sv->in, sizeof(sv->in->hdr) + (sv->in->hdr.len < most ? sv->in->hdr.len : most));
}

/* Expired challenges deleted (docs/ca-api.md, "Limits"), on a timer as
 * well as at every new challenge, so that a flood leaves no rows behind. */
static void
serve_purge(struct serve *sv)
{
	struct err err;
	int64_t n;

	sv->purge_at = mono_ms() + SERVE_PURGE_MS;
	if ((sv->p->cfg.role & CA_ROLE_PRIVACY) == 0)
		return;
	if ((n = ca_db_challenges_purge(sv->p->db, time(NULL), &err)) == -1)
		log_warnx("purging expired challenges: %s", err.msg);
	else if (n > 0)
		log_debug("purged %lld expired challenges", (long long)n);
}

static void
serve_loop(struct serve *sv)
{
	struct pollfd pfd = {.events = POLLIN};
	struct timespec ts, *tsp;
	sigset_t unblocked;
	int64_t now, timeout;
	int n;

	sigemptyset(&unblocked);
	while (!serve_signalled && !sv->start_failed) {
		now = mono_ms();
		timeout = -1;
		if (sv->c.fd < 0)
			timeout = sv->respawn_at > now ? sv->respawn_at - now : 0;
		else if (!sv->c.ready)
			timeout = sv->c.started + SERVE_READY_MS > now
			              ? sv->c.started + SERVE_READY_MS - now
			              : 0;
		if (timeout < 0 || timeout > sv->purge_at - now)
			timeout = sv->purge_at > now ? sv->purge_at - now : 0;
		tsp = NULL;
		if (timeout >= 0) {
			ts.tv_sec = timeout / 1000;
			ts.tv_nsec = (long)(timeout % 1000) * 1000000;
			tsp = &ts;
		}
		pfd.fd = sv->c.fd;
		n = ppoll(&pfd, sv->c.fd >= 0 ? 1 : 0, tsp, &unblocked);
		if (n == -1 && errno != EINTR)
			fatal(EXIT_RUNTIME, "poll");
		if (n == -1)
			continue;
		if (mono_ms() >= sv->purge_at)
			serve_purge(sv);
		if (sv->c.fd < 0 && mono_ms() >= sv->respawn_at)
			serve_start_child(sv);
		else if (sv->c.fd >= 0 && n == 1)
			serve_message(sv);
		else if (sv->c.fd >= 0 && !sv->c.ready &&
		         mono_ms() >= sv->c.started + SERVE_READY_MS)
			serve_child_ended(sv, true, "not ready in time");
	}
}

static int
serve_run(struct serve *sv, const struct serve_opts *o)
{
	struct sigaction sa = {.sa_handler = serve_on_signal};
	struct endpoint ep;
	sigset_t block;
	int ret;

	snprintf(sv->spec, sizeof(sv->spec), "%s%s",
	    strncmp(sv->p->cfg.listen, "tcp:", 4) == 0 ? "" : "tcp:", sv->p->cfg.listen);
	if (endpoint_parse(sv->spec, &ep) == -1 || ep.kind != ENDPOINT_TCP)
		return ca_usage("serve",
		    "--listen: a numeric HOST:PORT such as 127.0.0.1:8440, "
		    "not '%s'",
		    sv->p->cfg.listen);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Keys in this process: no core files, no ptrace by its own uid. */
	secret_harden_process();
	if ((ret = serve_open(sv->p, o->db)) != EXIT_OK)
		return ret;
	if ((sv->listener = endpoint_listen(&ep)) == -1)
		return ca_fail("listening on %s: %s%s", sv->p->cfg.listen, strerror(errno),
		    errno == EADDRINUSE ? ": choose another --listen port" : "");
	serve_start_child(sv);
	serve_loop(sv);
	if (sv->start_failed)
		return ca_fail("the network child could not start (see above)");
	log_info("stopping on signal %d", (int)serve_signalled);
	ca_spawn_stop(&sv->c);
	return EXIT_OK;
}

static int
serve_parse(int argc, char **argv, struct serve_opts *o)
{
	static const struct option opts[] = {
	    {"db", required_argument, NULL, 'd'},
	    {"role", required_argument, NULL, 'r'},
	    {"listen", required_argument, NULL, 'l'},
	    {"config", required_argument, NULL, 'c'},
	    {"user", required_argument, NULL, 'u'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"network-child", no_argument, NULL, 'N'},
	    {"chroot", required_argument, NULL, 'C'},
	    {"admit-any-manufacturer-ek", no_argument, NULL, 'A'},
	    {"crl-url", required_argument, NULL, 'U'},
	    {"tls-cert", required_argument, NULL, 'T'},
	    {"tls-key", required_argument, NULL, 'K'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	memset(o, 0, sizeof(*o));
	o->level = LOG_LEVEL_INFO;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': o->db = optarg; break;
		case 'r': o->role = optarg; break;
		case 'l': o->listen = optarg; break;
		case 'c': o->config = optarg; break;
		case 'u': o->user = optarg; break;
		case 'N': o->network_child = true; break;
		case 'C': o->chroot = optarg; break;
		case 'A': o->admit_any = true; break;
		case 'U': o->crl_url = optarg; break;
		case 'T': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		case 'L':
			if (log_parse_level(optarg, &o->level) == -1)
				return ca_usage("serve", "--log-level: error, warn, info or debug");
			break;
		case 'h': fputs(serve_help, stdout); return -1;
		case ':': return ca_usage("serve", "%s needs a value", argv[optind - 1]);
		default: return ca_usage("serve", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return ca_usage("serve", "unexpected argument '%s'", argv[optind]);
	return EXIT_OK;
}

/* The child's side: `serve --network-child [--user UID:GID --chroot DIR]`. */
static int
serve_child(const struct serve_opts *o)
{
	uid_t uid = 0;
	gid_t gid = 0;

	log_init("vtpm-ca[network]", o->level);
	if ((o->user == NULL) != (o->chroot == NULL))
		return ca_usage("serve", "--network-child: --user and --chroot go together");
	if (o->user != NULL && serve_parse_user(o->user, &uid, &gid) != 0)
		return EXIT_USAGE;
	if ((o->tls_cert == NULL) != (o->tls_key == NULL))
		return ca_usage("serve", "--network-child: --tls-cert and --tls-key go together");
	return ca_child_main(o->chroot, uid, gid, o->tls_cert, o->tls_key);
}

/* Whether a --listen address (HOST:PORT, tcp:HOST:PORT) is a loopback
 * one: 127.0.0.0/8 or [::1]. */
static bool
serve_listen_loopback(const char *spec)
{
	const char *host = strncmp(spec, "tcp:", 4) == 0 ? spec + 4 : spec;

	return strncmp(host, "127.", 4) == 0 || strncmp(host, "[::1]:", 6) == 0 ||
	       strncmp(host, "localhost:", 10) == 0;
}

/* HTTPS: the certificate and key must load and match now (the child loads
 * them again, by absolute path, before its sandbox). Plain HTTP only on a
 * loopback address. */
static int
serve_tls_settings(const struct serve_opts *o, struct serve *sv)
{
	const char *cert = o->tls_cert ? o->tls_cert : sv->p->cfg.tls_cert;
	const char *key = o->tls_key ? o->tls_key : sv->p->cfg.tls_key;
	struct tls_server *probe;
	struct err err;

	if (cert[0] == '\0' && key[0] == '\0') {
		if (!serve_listen_loopback(sv->p->cfg.listen))
			return ca_usage("serve",
			    "plain HTTP is served on loopback addresses only, and %s is not one: "
			    "give --tls-cert FILE and --tls-key FILE (HTTPS)",
			    sv->p->cfg.listen);
		return EXIT_OK;
	}
	if (cert[0] == '\0' || key[0] == '\0')
		return ca_usage("serve", "--tls-cert and --tls-key go together");
	if (realpath(cert, sv->c.tls_cert) == NULL)
		return ca_fail("--tls-cert %s: %s", cert, strerror(errno));
	if (realpath(key, sv->c.tls_key) == NULL)
		return ca_fail("--tls-key %s: %s", key, strerror(errno));
	if ((probe = tls_server_new(sv->c.tls_cert, sv->c.tls_key, &err)) == NULL)
		return ca_fail("%s", err.msg);
	tls_server_free(probe);
	return EXIT_OK;
}

/* The parent's settings: --config, then the command line. */
static int
serve_settings(const struct serve_opts *o, struct serve *sv)
{
	struct err err;

	if (o->db == NULL)
		return ca_usage("serve", "--db is required");
	if (o->chroot != NULL)
		return ca_usage("serve", "--chroot is the network child's (serve makes its root)");
	if (o->config != NULL && ca_settings_load(o->config, &sv->p->cfg, &err) == -1)
		return ca_fail("%s", err.msg);
	if (o->role != NULL && ca_role_parse(o->role, &sv->p->cfg.role) == -1)
		return ca_usage("serve", "--role: privacy, virtualization or both");
	if (o->listen != NULL)
		snprintf(sv->p->cfg.listen, sizeof(sv->p->cfg.listen), "%s", o->listen);
	sv->p->cfg.admit_any_manufacturer_ek = o->admit_any;
	if (sv->p->cfg.listen[0] == '\0')
		return ca_usage("serve", "give --listen HOST:PORT (or \"listen\" in --config)");
	if (o->crl_url != NULL && ca_settings_crl_url_ok(o->crl_url) == -1)
		return ca_usage("serve", "--crl-url: an http:// or https:// URL without a trailing "
		                         "'/', query or fragment");
	if (o->crl_url != NULL)
		snprintf(sv->p->cfg.crl_url, sizeof(sv->p->cfg.crl_url), "%s", o->crl_url);
	sv->c.confine = geteuid() == 0;
	sv->c.log_level = o->level;
	if (sv->c.confine && o->user == NULL)
		return ca_usage("serve",
		    "started as root, serve needs --user NAME|UID[:GID]: the unprivileged "
		    "identity of its network child (an account of its own, not root)");
	if (!sv->c.confine && o->user != NULL)
		return ca_usage(
		    "serve", "--user needs root; without it the network child keeps your uid");
	if (o->user != NULL && serve_parse_user(o->user, &sv->c.uid, &sv->c.gid) != 0)
		return EXIT_USAGE;
	return serve_tls_settings(o, sv);
}

int
ca_cmd_serve(int argc, char **argv)
{
	struct serve sv = {.listener = -1, .c = {.pid = -1, .fd = -1}};
	struct serve_opts o;
	int ret;

	if ((ret = serve_parse(argc, argv, &o)) != EXIT_OK)
		return ret == -1 ? EXIT_OK : ret;
	if (o.network_child)
		return serve_child(&o);
	sv.p = calloc(1, sizeof(*sv.p));
	sv.in = calloc(1, sizeof(*sv.in));
	if (sv.p == NULL || sv.in == NULL || (sv.p->out = calloc(1, sizeof(*sv.p->out))) == NULL) {
		ret = ca_fail("out of memory");
		goto out;
	}
	sv.p->fd = -1;
	ca_settings_defaults(&sv.p->cfg);
	if ((ret = serve_settings(&o, &sv)) != EXIT_OK)
		goto out;
	log_init("vtpm-ca", o.level);
	if (!sv.c.confine)
		log_warnx("not root: the network child keeps uid %lu and gets no chroot, only its "
		          "allow-list",
		    (unsigned long)geteuid());
	if (sv.p->cfg.admit_any_manufacturer_ek)
		log_warnx(
		    "--admit-any-manufacturer-ek: a lab switch: any machine whose TPM has an EK "
		    "certificate from a trusted manufacturer can enrol a CK under any host name "
		    "not yet taken; production admits hosts with 'vtpm-ca host add'");
	ret = serve_run(&sv, &o);
out:
	if (sv.listener >= 0)
		close(sv.listener);
	if (sv.p != NULL) {
		certs_ca_free(sv.p->privacy);
		certs_ca_free(sv.p->virt);
		ca_db_close(sv.p->db);
		free(sv.p->out);
		secret_free(sv.p->nonce_key, CA_NONCE_KEY_LEN);
	}
	free(sv.p);
	free(sv.in);
	return ret;
}
