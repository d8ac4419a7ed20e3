/*
 * slowca: a certificate authority that answers too slowly, for tests of a
 * client's deadlines (tests/integration/nonblocking.sh).
 *
 *   slowca --trickle MS [--length N]
 *   slowca --silent
 *
 * Listens on 127.0.0.1, on a port the kernel picks, and prints that port
 * on stdout, alone on the first line. Then it accepts every connection
 * and reads and discards what the client sends. With --trickle it sends,
 * from the moment it accepts, an HTTP 200 answer with a JSON body, N bytes
 * in all (default 4096), one byte every MS milliseconds, so that no
 * single read of the client ever waits long while the whole answer takes
 * N × MS; it closes the connection once the answer is out. With --silent
 * it sends nothing and keeps the connection open. Each event is a line
 * on stdout, flushed at once, for the test to wait on:
 *
 *   accept K                       connection K (from 1) was accepted
 *   request K METHOD TARGET        its request line arrived
 *   closed K sent B after T ms     the client went away (a send failed)
 *                                  after B bytes, T ms after the accept
 *   answered K after T ms          the whole answer went out
 *
 * At most SLOWCA_MAX connections are open; a further client is closed at
 * once ("refused K"). It runs until a signal ends it. Exit status 2 for a
 * usage error, 1 when it cannot listen.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"

#define SLOWCA_MAX  64
#define SLOWCA_LINE 512 /* what is kept of a request to find its first line */

struct slowca_conn {
	int fd; /* -1: free */
	unsigned int id;
	bool eof; /* the client sent all it will send */
	char line[SLOWCA_LINE];
	size_t line_len;
	bool line_done;
	size_t sent;
	int64_t accepted_ms, next_ms;
};

struct slowca {
	long trickle_ms; /* -1: silent */
	char *answer;
	size_t answer_len;
	int lfd;
	unsigned int accepted;
	struct slowca_conn conns[SLOWCA_MAX];
};

static void
slowca_usage(void)
{
	fprintf(stderr, "usage: slowca --trickle MS [--length N]\n"
	                "       slowca --silent\n");
	exit(2);
}

/* The answer: a 200 with a JSON object padded to len bytes in all. */
static char *
slowca_answer(size_t len, size_t *out_len)
{
	static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                           "Connection: close\r\nContent-Length: %05zu\r\n\r\n";
	size_t hlen = sizeof(head) - 1, body; /* "%05zu" prints as many digits */
	char *buf;

	if (len < hlen + 16 || len > 99999 + hlen)
		return NULL;
	body = len - hlen;
	buf = malloc(len + 1);
	if (buf == NULL)
		return NULL;
	snprintf(buf, len + 1, head, body);
	memcpy(buf + hlen, "{\"pad\": \"", 9);
	memset(buf + hlen + 9, 'x', body - 11);
	memcpy(buf + len - 2, "\"}", 2);
	buf[len] = '\0';
	*out_len = len;
	return buf;
}

/* Listens on 127.0.0.1, port 0; prints the port. */
static int
slowca_listen(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sin);
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(fd, SLOWCA_MAX) == -1 || getsockname(fd, (struct sockaddr *)&sin, &sl) == -1)
		fatal(1, "slowca: listen on 127.0.0.1");
	printf("%u\n", (unsigned int)ntohs(sin.sin_port));
	fflush(stdout);
	return fd;
}

static void
slowca_close(struct slowca_conn *c)
{
	close(c->fd);
	c->fd = -1;
}

static void
slowca_accept(struct slowca *s)
{
	struct slowca_conn *c;
	int fd;

	while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		s->accepted++;
		c = NULL;
		for (int i = 0; i < SLOWCA_MAX && c == NULL; i++)
			if (s->conns[i].fd == -1)
				c = &s->conns[i];
		if (c == NULL) {
			printf("refused %u\n", s->accepted);
			close(fd);
			continue;
		}
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->id = s->accepted;
		c->accepted_ms = mono_ms();
		c->next_ms = c->accepted_ms;
		printf("accept %u\n", c->id);
	}
	fflush(stdout);
}

/* Reads what the client sent; notes its request line once whole. */
static void
slowca_read(struct slowca_conn *c)
{
	char buf[4096], *eol;
	ssize_t n;
	size_t take;

	while ((n = recv(c->fd, buf, sizeof(buf), 0)) > 0) {
		if (c->line_done)
			continue;
		take = (size_t)n < sizeof(c->line) - 1 - c->line_len
		           ? (size_t)n
		           : sizeof(c->line) - 1 - c->line_len;
		memcpy(c->line + c->line_len, buf, take);
		c->line_len += take;
		c->line[c->line_len] = '\0';
		eol = strstr(c->line, " HTTP/");
		if (eol != NULL || c->line_len == sizeof(c->line) - 1) {
			if (eol != NULL)
				*eol = '\0';
			c->line_done = true;
			printf("request %u %s\n", c->id, c->line);
			fflush(stdout);
		}
	}
	if (n == 0)
		c->eof = true;
}

/* Sends the next byte of the answer when it is due. */
static void
slowca_trickle(struct slowca *s, struct slowca_conn *c, int64_t now)
{
	if (s->trickle_ms < 0 || now < c->next_ms)
		return;
	if (send(c->fd, s->answer + c->sent, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		printf("closed %u sent %zu after %lld ms\n", c->id, c->sent,
		    (long long)(now - c->accepted_ms));
		fflush(stdout);
		slowca_close(c);
		return;
	}
	c->sent++;
	c->next_ms = now + s->trickle_ms;
	if (c->sent == s->answer_len) {
		printf("answered %u after %lld ms\n", c->id, (long long)(now - c->accepted_ms));
		fflush(stdout);
		slowca_close(c);
	}
}

/* Milliseconds until the next byte is due on any connection, or -1. */
static int
slowca_timeout(const struct slowca *s, int64_t now)
{
	int64_t next = -1;

	if (s->trickle_ms < 0)
		return -1;
	for (int i = 0; i < SLOWCA_MAX; i++)
		if (s->conns[i].fd != -1 && (next == -1 || s->conns[i].next_ms < next))
			next = s->conns[i].next_ms;
	if (next == -1)
		return -1;
	return next > now ? (int)(next - now) : 0;
}

static void
slowca_serve(struct slowca *s)
{
	struct pollfd pfd[SLOWCA_MAX + 1];
	struct slowca_conn *owner[SLOWCA_MAX + 1];
	int n;

	for (;;) {
		n = 0;
		pfd[n++] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
		for (int i = 0; i < SLOWCA_MAX; i++) {
			if (s->conns[i].fd == -1 || s->conns[i].eof)
				continue;
			owner[n] = &s->conns[i];
			pfd[n++] = (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
		}
		if (poll(pfd, (nfds_t)n, slowca_timeout(s, mono_ms())) == -1 && errno != EINTR)
			fatal(1, "slowca: poll");
		for (int i = 1; i < n; i++)
			if (pfd[i].revents != 0)
				slowca_read(owner[i]);
		for (int i = 0; i < SLOWCA_MAX; i++)
			if (s->conns[i].fd != -1)
				slowca_trickle(s, &s->conns[i], mono_ms());
		if (pfd[0].revents != 0)
			slowca_accept(s);
	}
}

int
main(int argc, char **argv)
{
	static struct slowca s = {.trickle_ms = -2};
	long length = 4096;
	char *end;

	log_init("slowca", LOG_LEVEL_WARN);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--silent") == 0 && s.trickle_ms == -2) {
			s.trickle_ms = -1;
		} else if (strcmp(argv[i], "--trickle") == 0 && i + 1 < argc &&
		           s.trickle_ms == -2) {
			s.trickle_ms = strtol(argv[++i], &end, 10);
			if (*end != '\0' || s.trickle_ms < 1 || s.trickle_ms > 600000)
				slowca_usage();
		} else if (strcmp(argv[i], "--length") == 0 && i + 1 < argc) {
			length = strtol(argv[++i], &end, 10);
			if (*end != '\0')
				slowca_usage();
		} else {
			slowca_usage();
		}
	}
	if (s.trickle_ms == -2)
		slowca_usage();
	s.answer = slowca_answer((size_t)(length > 0 ? length : 0), &s.answer_len);
	if (s.answer == NULL)
		slowca_usage();
	for (int i = 0; i < SLOWCA_MAX; i++)
		s.conns[i].fd = -1;
	s.lfd = slowca_listen();
	slowca_serve(&s);
	return 0;
}
