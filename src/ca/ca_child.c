/*
 * ca_child.c: vtpm-ca's network child (`vtpm-ca serve --network-child`,
 * started by the parent, ca_spawn.c): the process that reads the network.
 *
 * It holds its channel to the parent (descriptor 3), the listener (4) and
 * stderr, and reads nothing before it is in its sandbox (ca_sandbox.c):
 * what would come from files (OpenSSL's configuration, a seed for
 * jansson's hash tables; the time zone, which it sets to UTC rather than
 * read, so that no later call of the C library looks for it) is read
 * first, and so are the TLS certificate and key when it serves HTTPS
 * (TLS ends here: the child holds the TLS key, never a CA key), then it is
 * confined, then it reads the
 * parent's HELLO (its role and the CA certificates, all it knows), answers
 * READY and serves HTTP (api.c, ca_api.c) until SIGTERM or until its
 * parent goes (end of file on its channel). Everything that needs a
 * record or a key is asked of the parent (ca_ask.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ca_msg.h"

#define CHILD_MAX_POLL (API_MAX_POLLFDS + 1)

static volatile sig_atomic_t child_signalled;

static void
child_on_signal(int sig)
{
	child_signalled = sig;
}

static void
child_der(struct ca_der *out, const struct ca_msg_cert *in)
{
	out->len = in->len;
	memcpy(out->der, in->der, in->len);
}

/* The parent's HELLO: the role and the CA certificates. */
static void
child_hello(struct ca_server *s)
{
	const struct ca_msg_hello *h = &s->link.msg->u.hello;
	struct err err = {0};
	int rc;

	rc = ca_msg_recv(s->link.fd, s->link.msg, CA_MSG_TO_CHILD, &err);
	if (rc != 1 || s->link.msg->hdr.type != CA_MSG_HELLO)
		fatalx(EXIT_RUNTIME, "no HELLO from the parent: %s",
		    rc == 0    ? "it is gone"
		    : rc == -1 ? err.msg
		               : "another message");
	s->role = (enum ca_role)h->role;
	child_der(&s->root, &h->root);
	child_der(&s->privacy_cert, &h->privacy);
	child_der(&s->virt_cert, &h->virt);
	ca_msg_init(s->link.msg, CA_MSG_READY);
	if (ca_msg_send(s->link.fd, s->link.msg, &err) == -1)
		fatalx(EXIT_RUNTIME, "to the parent: %s", err.msg);
}

/* A message from the parent between requests: only its going away is
 * expected. */
static void
child_parent_spoke(struct ca_server *s)
{
	struct err err = {0};
	int rc = ca_msg_recv(s->link.fd, s->link.msg, CA_MSG_TO_CHILD, &err);

	if (rc == 0) {
		log_info("the parent is gone");
		exit(EXIT_OK);
	}
	fatalx(EXIT_RUNTIME, "from the parent, unasked: %s",
	    rc == -1 ? err.msg : ca_msg_type_name(s->link.msg->hdr.type));
}

static void
child_loop(struct ca_server *s, struct api_server *api)
{
	struct pollfd pfd[CHILD_MAX_POLL];
	struct timespec ts, *tsp;
	sigset_t unblocked;
	int n, timeout;

	sigemptyset(&unblocked);
	while (!child_signalled) {
		pfd[0] = (struct pollfd){.fd = s->link.fd, .events = POLLIN};
		n = 1 + api_pollfds(api, pfd + 1, CHILD_MAX_POLL - 1);
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
		if (pfd[0].revents != 0)
			child_parent_spoke(s);
		api_process(api, pfd + 1, n - 1);
	}
}

int
ca_child_main(
    const char *root, uid_t uid, gid_t gid, const char *tls_cert, const char *tls_key)
{
	struct tls_server *tls = NULL;
	struct sigaction sa = {.sa_handler = child_on_signal};
	struct ca_server *s = calloc(1, sizeof(*s));
	struct api_server *api;
	struct err err = {0};
	sigset_t block;

	if (s == NULL || (s->link.msg = calloc(1, sizeof(*s->link.msg))) == NULL)
		fatalx(EXIT_RUNTIME, "out of memory");
	ca_api_init(s);
	s->link.fd = CA_CHILD_FD_PARENT;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* What the sandbox would keep out: files. */
	if (setenv("TZ", "UTC0", 1) == -1)
		fatal(EXIT_RUNTIME, "setenv");
	tzset();
	if (ca_crypto_init() == -1)
		fatalx(EXIT_RUNTIME, "cannot initialise OpenSSL");
	json_object_seed(0);
	if (tls_cert != NULL && (tls = tls_server_new(tls_cert, tls_key, &err)) == NULL)
		fatalx(EXIT_RUNTIME, "%s", err.msg);
	if (ca_sandbox_enter(root, uid, gid, &err) == -1)
		fatalx(EXIT_RUNTIME, "%s", err.msg);
	child_hello(s);
	if ((api = api_serve_tcp(CA_CHILD_FD_LISTENER, tls, ca_api, s)) == NULL)
		fatal(EXIT_RUNTIME, "serving the listener");
	log_debug("confined%s%s, serving %s", root != NULL ? " in " : " (not root: no chroot)",
	    root != NULL ? root : "", tls != NULL ? "HTTPS (TLS 1.3)" : "plain HTTP");
	child_loop(s, api);
	api_close(api);
	tls_server_free(tls);
	free(s->link.msg);
	free(s);
	return EXIT_OK;
}
