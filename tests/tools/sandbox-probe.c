/*
 * sandbox-probe: checks the worker's sandbox (instance_sandbox_enter,
 * src/instance/instance_sandbox.c and src/common/sandbox.c) from the inside.
 *
 *   sandbox-probe UID GID OWN_DIR LISTEN_PATH OTHER_FILE OTHER_SOCKET [PATH...]
 *
 * Run as root. Like a worker, it opens OWN_DIR and a listening socket at
 * LISTEN_PATH, then enters the sandbox (root OWN_DIR, identity UID:GID)
 * and tries what a worker must be able to do (its own files, accepting on
 * its listener) and what it must not: another instance's state
 * (OTHER_FILE, by absolute path and by ../ from OWN_DIR), the host TPM
 * (each PATH, e.g. stand-ins for /dev/tpmrm0, plus the real device
 * names), new sockets, connecting to another instance (OTHER_SOCKET),
 * exec and regaining root. Each forbidden target is first shown to be
 * reachable by UID:GID without the sandbox, so a failure inside is the
 * sandbox's doing. Two children check that system calls off the list and
 * executable memory kill the process.
 *
 * Prints "ok NAME" or "FAIL NAME: why" per check; exits 1 on any failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "instance/instance.h"

static int failures;

/* What the worker passes to instance_sandbox_enter. */
struct probe_sandbox {
	const char *root;
	uid_t uid;
	gid_t gid;
};

static int
probe_enter(const struct probe_sandbox *sb, struct err *err)
{
	return instance_sandbox_enter(sb->root, sb->uid, sb->gid, err);
}

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

/* Checks that an operation failed; why names what happened instead. */
static void
check_fails(const char *name, int rc, int err)
{
	struct err e;

	err_set(&e, ERR_FAILED, "succeeded (%d)", rc);
	if (rc == -1)
		printf("ok %s (%s)\n", name, strerror(err));
	else
		check(name, false, e.msg);
	fflush(stdout);
}

static int
unix_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -1;
	memcpy(sun->sun_path, path, strlen(path) + 1);
	return 0;
}

/* Opens path read-only (relative to dirfd), closes it; 0 or -1. */
static int
try_open(int dirfd, const char *path, int flags)
{
	int fd;

	fd = openat(dirfd, path, flags | O_CLOEXEC);
	if (fd == -1)
		return -1;
	close(fd);
	return 0;
}

/* Switches the effective identity (root keeps its saved uid). */
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

/* Without the sandbox, UID:GID can reach every forbidden target. */
static void
controls(uid_t uid, gid_t gid, int dirfd, const char *other_file, const char *dotdot,
    const char *other_sock, char **paths, int npaths)
{
	struct sockaddr_un sun;
	char name[PATH_MAX + 32];
	int fd;

	become(uid, gid);
	check("pre-other-state-absolute", try_open(AT_FDCWD, other_file, O_RDONLY) == 0,
	    strerror(errno));
	check("pre-other-state-dotdot", try_open(dirfd, dotdot, O_RDONLY) == 0, strerror(errno));
	for (int i = 0; i < npaths; i++) {
		snprintf(name, sizeof(name), "pre-open %s", paths[i]);
		check(name, try_open(AT_FDCWD, paths[i], O_RDWR) == 0, strerror(errno));
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	check("pre-connect-other-socket",
	    fd != -1 && unix_addr(other_sock, &sun) == 0 &&
	        connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0,
	    strerror(errno));
	if (fd != -1)
		close(fd);
	become(0, 0);
}

/* A child that enters the sandbox and does what must kill it. */
static void
expect_killed(const char *name, const struct probe_sandbox *sb, int what)
{
	struct err err;
	pid_t pid;
	int status;

	pid = fork();
	if (pid == -1)
		fatal(1, "fork");
	if (pid == 0) {
		if (probe_enter(sb, NULL) == -1)
			_exit(2);
		if (what == 0)
			(void)mmap(
			    NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		else
			(void)mkdirat(AT_FDCWD, "/newdir", 0700);
		_exit(0);
	}
	if (waitpid(pid, &status, 0) == -1)
		fatal(1, "waitpid");
	err_set(&err, ERR_FAILED, "status 0x%x, expected SIGSYS", status);
	check(name, WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS, err.msg);
}

/* The helper that connects to our listener once the sandbox is up. */
static pid_t
start_client(const char *listen_path, int *go)
{
	struct sockaddr_un sun;
	int p[2], fd;
	char c, buf[4];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal(1, "pipe");
	pid = fork();
	if (pid == -1)
		fatal(1, "fork");
	if (pid == 0) {
		close(p[1]);
		if (read(p[0], &c, 1) != 1)
			_exit(1);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd == -1 || unix_addr(listen_path, &sun) == -1 ||
		    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
		    write(fd, "ping", 4) != 4 || read(fd, buf, 4) != 4)
			_exit(1);
		_exit(0);
	}
	close(p[0]);
	*go = p[1];
	return pid;
}

/* Inside: a connection to the pre-opened listener is accepted. */
static void
check_accept(int lfd, int go)
{
	struct pollfd pfd = {.fd = lfd, .events = POLLIN};
	char buf[4] = {0};
	int fd = -1;

	if (write(go, "g", 1) != 1 || poll(&pfd, 1, 10000) != 1) {
		check("accept-own-listener", false, "no connection arrived");
		return;
	}
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		check("accept-own-listener", false, strerror(errno));
		return;
	}
	pfd.fd = fd;
	check("accept-own-listener",
	    poll(&pfd, 1, 10000) == 1 && read(fd, buf, 4) == 4 && memcmp(buf, "ping", 4) == 0 &&
	        send(fd, "pong", 4, MSG_NOSIGNAL) == 4,
	    "no exchange on the accepted connection");
	close(fd);
	close(go);
}

/* Inside: the worker's own directory works for reads and crash-safe writes. */
static void
check_own_dir(int dirfd, uid_t uid)
{
	struct stat sb;
	char buf[16] = {0};
	bool ok;
	int fd;

	fd =
	    openat(dirfd, "probe.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	ok = fd != -1 && write(fd, "state", 5) == 5 && fdatasync(fd) == 0;
	if (fd != -1 && close(fd) != 0) /* closed even when a write failed */
		ok = false;
	check("own-dir-write",
	    ok && renameat(dirfd, "probe.tmp", dirfd, "probe.state") == 0 && fsync(dirfd) == 0,
	    strerror(errno));
	fd = openat(dirfd, "probe.state", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	check("own-dir-read",
	    fd != -1 && read(fd, buf, sizeof(buf)) == 5 && memcmp(buf, "state", 5) == 0,
	    strerror(errno));
	check("own-file-owner", fd != -1 && fstat(fd, &sb) == 0 && sb.st_uid == uid,
	    "new files do not belong to the sandbox uid");
	if (fd != -1)
		close(fd);
	check("own-dir-unlink", unlinkat(dirfd, "probe.state", 0) == 0, strerror(errno));
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

int
main(int argc, char **argv)
{
	static const char *const host_tpm[] = {"/dev/tpmrm0", "/dev/tpm0"};
	struct probe_sandbox sb = {0};
	struct err err = {0};
	struct endpoint ep;
	struct sockaddr_un sun;
	char own[PATH_MAX], dotdot[2 * PATH_MAX], name[PATH_MAX + 32];
	const char *other_file, *other_sock;
	size_t up = 0;
	int dirfd, lfd, sfd, xfd, go, rc;

	if (argc < 7) {
		fprintf(stderr, "usage: sandbox-probe UID GID OWN_DIR LISTEN_PATH OTHER_FILE "
		                "OTHER_SOCKET [PATH...]\n");
		return 2;
	}
	log_init("sandbox-probe", LOG_LEVEL_INFO);
	if (geteuid() != 0)
		fatalx(2, "must run as root, like the manager that starts workers");
	sb.uid = (uid_t)number(argv[1]);
	sb.gid = (gid_t)number(argv[2]);
	if (realpath(argv[3], own) == NULL)
		fatal(2, "%s", argv[3]);
	other_file = argv[5];
	other_sock = argv[6];
	if (other_file[0] != '/')
		fatalx(2, "OTHER_FILE must be an absolute path");
	/* From OWN_DIR, enough ../ to reach / and then OTHER_FILE. */
	for (const char *p = own; *p != '\0'; p++)
		if (*p == '/')
			up++;
	if (3 * up + strlen(other_file + 1) >= sizeof(dotdot))
		fatalx(2, "OTHER_FILE: too long a path from OWN_DIR");
	for (size_t i = 0; i < up; i++)
		snprintf(dotdot + 3 * i, sizeof(dotdot) - 3 * i, "../");
	snprintf(dotdot + 3 * up, sizeof(dotdot) - 3 * up, "%s", other_file + 1);
	if (setgroups(0, NULL) == -1)
		fatal(1, "setgroups");

	/* What a worker holds when it enters the sandbox. */
	dirfd = open(own, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd == -1)
		fatal(1, "%s", own);
	memset(&ep, 0, sizeof(ep));
	ep.kind = ENDPOINT_UNIX;
	if (strlen(argv[4]) >= sizeof(ep.path))
		fatalx(2, "LISTEN_PATH too long");
	memcpy(ep.path, argv[4], strlen(argv[4]) + 1);
	lfd = endpoint_listen(&ep);
	if (lfd == -1)
		fatal(1, "listen %s", argv[4]);
	/* A socket made before the sandbox, to show connect itself is refused. */
	sfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	xfd = open("/bin/true", O_PATH | O_CLOEXEC);
	if (sfd == -1 || xfd == -1)
		fatal(1, "socket, /bin/true");

	controls(sb.uid, sb.gid, dirfd, other_file, dotdot, other_sock, argv + 7, argc - 7);
	sb.root = own;
	{
		struct probe_sandbox bad = sb;
		bad.uid = 0;
		rc = probe_enter(&bad, &err);
		check("refuses-uid-0", rc == -1 && err.kind == ERR_INVALID, "uid 0 was accepted");
	}
	{
		/* A directory outside the root would lead out of the chroot. */
		int outside = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = probe_enter(&sb, &err);
		check("refuses-outside-directory",
		    outside != -1 && rc == -1 && err.kind == ERR_INVALID &&
		        strstr(err.msg, "a directory other than") != NULL,
		    "entered while holding a descriptor of /");
		close(outside);
	}
	expect_killed("kill-exec-memory", &sb, 0);
	expect_killed("kill-unlisted-syscall", &sb, 1);
	go = -1;
	(void)start_client(argv[4], &go);

	if (probe_enter(&sb, &err) == -1) {
		check("sandbox-enter", false, err.msg);
		return 1;
	}
	check("sandbox-enter", true, "");

	check_own_dir(dirfd, sb.uid);
	check_accept(lfd, go);

	errno = 0;
	rc = try_open(AT_FDCWD, other_file, O_RDONLY);
	check_fails("other-state-absolute", rc, errno);
	rc = try_open(dirfd, other_file, O_RDONLY);
	check_fails("other-state-absolute-at-dirfd", rc, errno);
	rc = try_open(dirfd, dotdot, O_RDONLY);
	check_fails("other-state-dotdot", rc, errno);
	for (int i = 7; i < argc; i++) {
		snprintf(name, sizeof(name), "open %s", argv[i]);
		rc = try_open(AT_FDCWD, argv[i], O_RDWR);
		check_fails(name, rc, errno);
	}
	for (size_t i = 0; i < sizeof(host_tpm) / sizeof(host_tpm[0]); i++) {
		snprintf(name, sizeof(name), "open %s", host_tpm[i]);
		rc = try_open(AT_FDCWD, host_tpm[i], O_RDWR);
		check_fails(name, rc, errno);
	}
	rc = socket(AF_UNIX, SOCK_STREAM, 0);
	check_fails("socket-unix", rc, errno);
	rc = socket(AF_INET, SOCK_STREAM, 0);
	check_fails("socket-inet", rc, errno);
	rc = socket(AF_INET6, SOCK_DGRAM, 0);
	check_fails("socket-inet6", rc, errno);
	rc = unix_addr(other_sock, &sun) == 0 ? connect(sfd, (struct sockaddr *)&sun, sizeof(sun))
	                                      : 0;
	check_fails("connect-other-socket", rc, errno);
	rc = bind(sfd, (struct sockaddr *)&sun, sizeof(sun));
	check_fails("bind", rc, errno);
	{
		char arg0[] = "true";
		char *const args[] = {arg0, NULL}, *const env[] = {NULL};
		rc = execve("/bin/true", args, env);
		check_fails("execve", rc, errno);
		rc = execveat(xfd, "", args, env, AT_EMPTY_PATH);
		check_fails("execveat-preopened", rc, errno);
	}
	rc = setuid(0);
	check_fails("setuid-0", rc, errno);
	rc = setresuid(0, 0, 0);
	check_fails("setresuid-0", rc, errno);

	printf("%d failed\n", failures);
	return failures == 0 ? 0 : 1;
}
