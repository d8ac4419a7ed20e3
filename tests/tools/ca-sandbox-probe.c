/*
 * ca-sandbox-probe: checks the confinement of vtpm-ca's network child
 * (ca_sandbox_enter, src/ca/ca_sandbox.c and src/common/sandbox.c) from
 * the inside.
 *
 *   ca-sandbox-probe UID GID FILE...
 *
 * Run as root. It sets up what `vtpm-ca serve` gives its child (a fresh
 * empty root directory, a SOCK_SEQPACKET channel, a TCP listener on a
 * free loopback port), then a child of the probe enters the very
 * confinement the network child enters, as UID:GID, and tries what the
 * network child must be able to do (accept on its listener, talk on its
 * channel) and what it must not: each FILE (the CA's database and keys;
 * by absolute path and by ../), the parent's memory and root through
 * /proc, new sockets, connecting, exec, ptrace of the parent, regaining
 * root. Each FILE is first shown to be readable by UID:GID without the
 * sandbox, so a failure inside is the sandbox's doing. More children
 * check that system calls off the list (signalling or reading the parent,
 * mkdir, executable memory) kill the process.
 *
 * Prints "ok NAME" or "FAIL NAME: why" per check, then "N failed"; exits
 * 1 on any failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca/ca.h"

/* What the network child holds when it enters its sandbox. */
struct probe {
	char root[64];
	uid_t uid;
	gid_t gid;
	pid_t parent;
	int channel[2]; /* [0] the parent's end, [1] the child's */
	int listener;
	struct sockaddr_in addr; /* the listener's */
	int spare;               /* a socket made before, to show connect() refused */
	char **files;
	int nfiles;
};

static int failures;

static void
check(const char *name, bool ok, const char *why)
{
	if (ok) {
		printf("ok %s\n", name);
	} else {
		printf("FAIL %s: %s\n", name, why);
		failures++;
	}
	fflush(stdout);
}

/* An operation that must fail (rc -1); err says how it did. */
static void
check_fails(const char *name, int rc, int err)
{
	char why[64];

	if (rc == -1) {
		printf("ok %s (%s)\n", name, strerror(err));
		fflush(stdout);
		return;
	}
	snprintf(why, sizeof(why), "succeeded (%d)", rc);
	check(name, false, why);
}

static int
try_open(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}

static void
become(uid_t uid, gid_t gid)
{
	if (uid == 0) {
		if (seteuid(0) == -1 || setegid(0) == -1)
			fatal(1, "back to root");
		return;
	}
	if (setegid(gid) == -1 || seteuid(uid) == -1)
		fatal(1, "become %lu:%lu", (unsigned long)uid, (unsigned long)gid);
}

/* Without the sandbox, UID:GID reads every FILE. */
static void
controls(const struct probe *p)
{
	char name[PATH_MAX + 16];

	become(p->uid, p->gid);
	for (int i = 0; i < p->nfiles; i++) {
		snprintf(name, sizeof(name), "pre-open %s", p->files[i]);
		check(name, try_open(p->files[i], O_RDONLY) == 0, strerror(errno));
	}
	become(0, 0);
}

/* A child that enters the sandbox, then does what must kill it. */
static void
expect_killed(const struct probe *p, const char *name, int what)
{
	char why[64], buf[8];
	void *code;
	struct iovec local = {buf, sizeof(buf)}, remote = {buf, sizeof(buf)};
	pid_t pid;
	int status;

	fflush(stdout);
	if ((pid = fork()) == -1)
		fatal(1, "fork");
	if (pid == 0) {
		if (ca_sandbox_enter(p->root, p->uid, p->gid, NULL) == -1)
			_exit(2);
		switch (what) {
		case 0: (void)kill(p->parent, 0); break;
		case 1: (void)process_vm_readv(p->parent, &local, 1, &remote, 1, 0); break;
		case 2: (void)mkdirat(AT_FDCWD, "/newdir", 0700); break;
		default:
			code = mmap(
			    NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (code != MAP_FAILED)
				munmap(code, 4096);
		}
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1)
		fatal(1, "waitpid");
	snprintf(why, sizeof(why), "status 0x%x, expected SIGSYS", status);
	check(name, WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, why);
}

/* Inside: the parent connects once told on the channel; the child accepts
 * and answers. */
static void
inside_listener(const struct probe *p)
{
	struct pollfd pfd = {.fd = p->listener, .events = POLLIN};
	char buf[4] = {0};
	int fd;

	if (send(p->channel[1], "go", 2, 0) != 2 || poll(&pfd, 1, 10000) != 1) {
		check("accept-own-listener", false, "no connection arrived");
		return;
	}
	fd = accept4(p->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	pfd.fd = fd;
	check("accept-own-listener",
	    fd != -1 && poll(&pfd, 1, 10000) == 1 && recv(fd, buf, 4, 0) == 4 &&
	        memcmp(buf, "ping", 4) == 0 && send(fd, "pong", 4, MSG_NOSIGNAL) == 4,
	    strerror(errno));
	if (fd != -1)
		close(fd);
}

/* Inside: what the network child must not reach. */
static void
inside_refusals(const struct probe *p)
{
	char name[PATH_MAX + 32], path[2 * PATH_MAX];
	int rc;

	for (int i = 0; i < p->nfiles; i++) {
		snprintf(name, sizeof(name), "open %s", p->files[i]);
		rc = try_open(p->files[i], O_RDONLY);
		check_fails(name, rc, errno);
		snprintf(path, sizeof(path), "../../../../../../../..%s", p->files[i]);
		snprintf(name, sizeof(name), "open-dotdot %s", p->files[i]);
		rc = try_open(path, O_RDONLY);
		check_fails(name, rc, errno);
	}
	snprintf(path, sizeof(path), "/proc/%ld/mem", (long)p->parent);
	rc = try_open(path, O_RDONLY);
	check_fails("parent-memory", rc, errno);
	snprintf(path, sizeof(path), "/proc/%ld/root%s", (long)p->parent, p->files[0]);
	rc = try_open(path, O_RDONLY);
	check_fails("parent-root", rc, errno);
	rc = socket(AF_UNIX, SOCK_STREAM, 0);
	check_fails("socket-unix", rc, errno);
	rc = socket(AF_INET, SOCK_STREAM, 0);
	check_fails("socket-inet", rc, errno);
	rc = connect(p->spare, (const struct sockaddr *)&p->addr, sizeof(p->addr));
	check_fails("connect", rc, errno);
	{
		char arg0[] = "true";
		char *const args[] = {arg0, NULL}, *const env[] = {NULL};
		rc = execve("/bin/true", args, env);
		check_fails("execve", rc, errno);
	}
	rc = (int)ptrace(PTRACE_ATTACH, p->parent, NULL, NULL);
	check_fails("ptrace-parent", rc, errno);
	rc = setuid(0);
	check_fails("setuid-0", rc, errno);
}

/* The probe's child: confined as the network child is. Exits with its
 * number of failures. */
static void
inside(const struct probe *p)
{
	struct err err = {0};
	char buf[8] = {0};

	if (ca_sandbox_enter(p->root, p->uid, p->gid, &err) == -1) {
		check("sandbox-enter", false, err.msg);
		_exit(1);
	}
	check("sandbox-enter", true, "");
	inside_listener(p);
	check("parent-channel",
	    send(p->channel[1], "ask", 3, 0) == 3 &&
	        recv(p->channel[1], buf, sizeof(buf), 0) == 6 && memcmp(buf, "answer", 6) == 0,
	    "no exchange with the parent");
	inside_refusals(p);
	_exit(failures > 100 ? 100 : failures);
}

/* The parent's side of inside(): connect when told, answer on the channel. */
static void
parent_side(const struct probe *p)
{
	char buf[8] = {0};
	int fd;

	if (recv(p->channel[0], buf, sizeof(buf), 0) != 2)
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd != -1 && connect(fd, (const struct sockaddr *)&p->addr, sizeof(p->addr)) == 0 &&
	    send(fd, "ping", 4, MSG_NOSIGNAL) == 4)
		(void)recv(fd, buf, 4, 0);
	if (fd != -1)
		close(fd);
	if (recv(p->channel[0], buf, sizeof(buf), 0) == 3)
		(void)send(p->channel[0], "answer", 6, 0);
}

static unsigned long
number(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v == 0 || v >= UINT_MAX)
		fatalx(2, "not a uid/gid: %s", s);
	return v;
}

static void
setup(struct probe *p)
{
	socklen_t len = sizeof(p->addr);

	snprintf(p->root, sizeof(p->root), "/tmp/ca-sandbox-probe.XXXXXX");
	if (mkdtemp(p->root) == NULL)
		fatal(1, "mkdtemp");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p->channel) == -1)
		fatal(1, "socketpair");
	memset(&p->addr, 0, sizeof(p->addr));
	p->addr.sin_family = AF_INET;
	p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p->listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	p->spare = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->listener == -1 || p->spare == -1 ||
	    bind(p->listener, (const struct sockaddr *)&p->addr, sizeof(p->addr)) == -1 ||
	    listen(p->listener, 4) == -1 ||
	    getsockname(p->listener, (struct sockaddr *)&p->addr, &len) == -1)
		fatal(1, "listener");
}

int
main(int argc, char **argv)
{
	struct probe p = {0};
	struct err err = {0};
	pid_t pid;
	int status;

	if (argc < 4) {
		fprintf(stderr, "usage: ca-sandbox-probe UID GID FILE...\n");
		return 2;
	}
	log_init("ca-sandbox-probe", LOG_LEVEL_INFO);
	if (geteuid() != 0)
		fatalx(2, "must run as root, like vtpm-ca serve when it starts its child");
	p.uid = (uid_t)number(argv[1]);
	p.gid = (gid_t)number(argv[2]);
	p.parent = getpid();
	p.files = argv + 3;
	p.nfiles = argc - 3;
	setup(&p);
	controls(&p);
	check("refuses-uid-0",
	    ca_sandbox_enter(p.root, 0, p.gid, &err) == -1 && err.kind == ERR_INVALID,
	    "uid 0 was accepted");
	expect_killed(&p, "kill-signal-parent", 0);
	expect_killed(&p, "kill-process-vm-readv", 1);
	expect_killed(&p, "kill-mkdir", 2);
	expect_killed(&p, "kill-exec-memory", 3);
	fflush(stdout);
	if ((pid = fork()) == -1)
		fatal(1, "fork");
	if (pid == 0)
		inside(&p);
	parent_side(&p);
	if (waitpid(pid, &status, 0) == -1)
		fatal(1, "waitpid");
	if (!WIFEXITED(status))
		check("inside", false, "the confined child was killed");
	else
		failures += WEXITSTATUS(status);
	if (rmdir(p.root) == -1)
		check("root-left-empty", false, strerror(errno));
	printf("%d failed\n", failures);
	return failures == 0 ? 0 : 1;
}
