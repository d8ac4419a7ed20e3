/*
 * ca_spawn.c: the network child's life, seen from the parent of
 * `vtpm-ca serve`: its empty root, its start and its end.
 *
 * The child is this program again (posix_spawn of /proc/self/exe, as
 * `vtpm-ca serve --network-child`), not a fork of the parent: a fork
 * would carry a copy of the parent's memory, CA keys and SQLite's pages
 * included, into the process that parses the network. It gets descriptors
 * 0 and 1 on /dev/null, 2 (stderr) kept, 3 its end of a SOCK_SEQPACKET
 * socketpair, 4 the listener, and nothing else; default signals. For
 * HTTPS it is told where the TLS certificate and key are, which it reads
 * itself before its sandbox closes: the TLS key is the network's, and
 * lives in the process that faces it (never a CA key).
 *
 * Its root, when the parent is root, is a fresh empty directory (mkdtemp,
 * mode 0700 and root's: the child cannot even list it), which the parent
 * removes once the child says it is in: an unlinked directory can hold no
 * entry, so the child's root stays empty for good.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ca.h"

/* A descriptor moved to 5 or above, where the spawn's dup2s to 3 and 4
 * cannot overwrite it before it is read. */
static int
ca_spawn_high(int fd, struct err *err)
{
	int high;

	if (fd >= 5)
		return fd;
	high = fcntl(fd, F_DUPFD_CLOEXEC, 5);
	if (high == -1)
		return err_errno(err, "fcntl");
	close(fd);
	return high;
}

static int
ca_spawn_exec(struct ca_child_proc *c, int channel, int listener, struct err *err)
{
	static const char *const levels[] = {"error", "warn", "info", "debug"};
	char user[32];
	const char *argv[16];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dfl;
	int n = 0, rc;

	argv[n++] = "vtpm-ca";
	argv[n++] = "serve";
	argv[n++] = "--network-child";
	argv[n++] = "--log-level";
	argv[n++] = levels[c->log_level];
	if (c->root[0] != '\0') {
		snprintf(
		    user, sizeof(user), "%lu:%lu", (unsigned long)c->uid, (unsigned long)c->gid);
		argv[n++] = "--user";
		argv[n++] = user;
		argv[n++] = "--chroot";
		argv[n++] = c->root;
	}
	if (c->tls_cert[0] != '\0') {
		argv[n++] = "--tls-cert";
		argv[n++] = c->tls_cert;
		argv[n++] = "--tls-key";
		argv[n++] = c->tls_key;
	}
	argv[n] = NULL;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGINT);
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return err_set(err, ERR_IO, "posix_spawn: %s", strerror(rc));
	if ((rc = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return err_set(err, ERR_IO, "posix_spawn: %s", strerror(rc));
	}
	if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDWR, 0)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, 0, 1)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, channel, CA_CHILD_FD_PARENT)) == 0 &&
	    (rc = posix_spawn_file_actions_adddup2(&fa, listener, CA_CHILD_FD_LISTENER)) == 0 &&
	    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, CA_CHILD_FD_LISTENER + 1)) == 0 &&
	    (rc = posix_spawnattr_setflags(
	         &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) == 0 &&
	    (rc = posix_spawnattr_setsigmask(&attr, &none)) == 0 &&
	    (rc = posix_spawnattr_setsigdefault(&attr, &dfl)) == 0)
		rc = posix_spawn(
		    &c->pid, "/proc/self/exe", &fa, &attr, (char *const *)argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return err_set(err, ERR_IO, "posix_spawn /proc/self/exe: %s", strerror(rc));
	return 0;
}

int
ca_spawn(struct ca_child_proc *c, int listener, struct err *err)
{
	int sv[2] = {-1, -1};

	c->pid = -1;
	c->fd = -1;
	c->ready = false;
	c->root[0] = '\0';
	if (c->confine) {
		snprintf(c->root, sizeof(c->root), "/tmp/vtpm-ca.XXXXXX");
		if (mkdtemp(c->root) == NULL) {
			c->root[0] = '\0';
			return err_errno(err, "mkdtemp /tmp/vtpm-ca.XXXXXX");
		}
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		err_errno(err, "socketpair");
		goto fail;
	}
	if ((sv[1] = ca_spawn_high(sv[1], err)) == -1 ||
	    (listener = ca_spawn_high(dup(listener), err)) == -1 ||
	    ca_spawn_exec(c, sv[1], listener, err) == -1) {
		if (listener >= 0)
			close(listener);
		goto fail;
	}
	close(listener);
	close(sv[1]);
	/* The parent never blocks on a child that does not read. */
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1) {
		err_errno(err, "fcntl");
		c->fd = sv[0];
		ca_spawn_end(c, true, NULL, 0);
		return -1;
	}
	c->fd = sv[0];
	c->started = mono_ms();
	return 0;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (c->root[0] != '\0')
		rmdir(c->root);
	c->root[0] = '\0';
	return -1;
}

void
ca_spawn_confined(struct ca_child_proc *c)
{
	c->ready = true;
	if (c->root[0] != '\0' && rmdir(c->root) == -1)
		log_warn("%s", c->root);
	c->root[0] = '\0';
}

/* "exit status N", "signal N (NAME)". */
static void
ca_spawn_status(int status, char *out, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(out, len, "signal %d (%s%s)", WTERMSIG(status),
		    strsignal(WTERMSIG(status)),
		    WTERMSIG(status) == SIGSYS ? ": a system call outside its allow-list" : "");
	else
		snprintf(out, len, "exit status %d", WEXITSTATUS(status));
}

int
ca_spawn_end(struct ca_child_proc *c, bool kill_it, char *how, size_t how_len)
{
	int status = 0;

	if (c->pid > 0) {
		if (kill_it)
			kill(c->pid, SIGKILL);
		while (waitpid(c->pid, &status, 0) == -1 && errno == EINTR)
			;
		if (how != NULL)
			ca_spawn_status(status, how, how_len);
	}
	if (c->fd >= 0)
		close(c->fd);
	if (c->root[0] != '\0')
		rmdir(c->root);
	c->root[0] = '\0';
	c->pid = -1;
	c->fd = -1;
	c->ready = false;
	return status;
}

void
ca_spawn_stop(struct ca_child_proc *c)
{
	struct pollfd pfd = {.events = POLLIN};
	int n;

	if (c->pid <= 0)
		return;
	pfd.fd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	kill(c->pid, SIGTERM);
	if (pfd.fd >= 0) {
		do
			n = poll(&pfd, 1, CA_CHILD_STOP_MS);
		while (n == -1 && errno == EINTR);
		close(pfd.fd);
	}
	ca_spawn_end(c, true, NULL, 0);
}
