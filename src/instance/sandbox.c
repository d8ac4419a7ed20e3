/*
 * sandbox.c: the confinement of a worker.
 *
 * A worker opens everything it will ever need (its state directory, its
 * lock, its listening sockets) while it is still root, then calls
 * sandbox_enter before it reads any input, its state files included (a
 * worker taken over could have written them). From then on it:
 *   - sees only its own state directory (chroot; it keeps using the
 *     directory descriptor it opened before, which stays valid);
 *   - runs as an unprivileged numeric uid/gid with no supplementary
 *     groups, no capabilities and no way back (checked);
 *   - may make only the system calls on the allow-list below (seccomp):
 *     I/O on descriptors it holds, accepting on its listeners, files in
 *     its directory, memory, time, randomness and its own exit.
 *
 * Anything off the list kills the process (SCMP_ACT_KILL_PROCESS): a
 * worker that tries it is either buggy or taken over, and the manager
 * sees the SIGSYS. A few operations a library might try on an error path,
 * and that the tests probe, fail with an errno instead: creating,
 * connecting or binding sockets, exec, ptrace and changing identity.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <seccomp.h>

#include "instance.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

#ifdef SANDBOX_ASAN
#include <sanitizer/lsan_interface.h>
#endif

/* System calls allowed without condition: what the worker's loop, its
 * state store, libtpms, OpenSSL and glibc were seen to make (strace of
 * the integration flows), plus abort(). Their arguments are not checked:
 * the descriptors, paths and memory they reach are the worker's own, and
 * paths are confined by the chroot. */
static const int sandbox_allow[] = {
    /* I/O on descriptors already held: state files, sockets, stderr. */
    SCMP_SYS(read),    /* state files */
    SCMP_SYS(write),   /* state files, log lines, --ready-fd */
    SCMP_SYS(writev),  /* glibc's fatal-error messages (fortify, malloc) */
    SCMP_SYS(recvmsg), /* both channels, with SET_DATAFD's descriptor */
    SCMP_SYS(sendto),  /* send() of answers */
    SCMP_SYS(poll),    /* instance_send waiting for a slow reader */
    SCMP_SYS(ppoll),   /* the main loop */
    SCMP_SYS(close),
    /* The state directory (store.c), through its descriptor. */
    SCMP_SYS(newfstatat), /* glibc's fstat() */
    SCMP_SYS(fdatasync),
    SCMP_SYS(fsync),
    SCMP_SYS(renameat),
    SCMP_SYS(renameat2), /* renameat() where the kernel has only this */
    SCMP_SYS(unlinkat),
    /* Memory: malloc, OpenSSL, and secret.c wiping locked pages. */
    SCMP_SYS(brk),
    SCMP_SYS(munmap),
    SCMP_SYS(mremap),  /* realloc of large buffers (state blobs) */
    SCMP_SYS(madvise), /* malloc trimming; only ever the worker's own pages */
    SCMP_SYS(munlock),
    SCMP_SYS(futex),
    /* Randomness (OpenSSL's DRBG) and time (libtpms: clock(),
     * gettimeofday(); the vDSO answers most of them). */
    SCMP_SYS(getrandom),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(gettimeofday),
    /* Signals (SIGTERM ends the loop), abort(), exit. */
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(getpid), /* OpenSSL's fork check, raise() */
    SCMP_SYS(exit_group),
};

/* What the AddressSanitizer/UBSan runtimes need on top to print a report
 * (sanitizer builds only; frames stay unsymbolised in the chroot). */
#ifdef SANDBOX_ASAN
static const int sandbox_allow_asan[] = {
    SCMP_SYS(readlink),    /* /proc/self/exe: absent, which it tolerates */
    SCMP_SYS(sigaltstack), /* UBSan's report */
    SCMP_SYS(pipe2),       /* its check whether memory is readable */
    SCMP_SYS(gettid),      /* its abort(), through tgkill */
};
#endif

/* Operations that fail with an errno rather than killing the worker. */
static const struct {
	int nr;
	int errnum;
} sandbox_refuse[] = {
    {SCMP_SYS(socket), EACCES},
    {SCMP_SYS(socketpair), EACCES},
    {SCMP_SYS(connect), EACCES},
    {SCMP_SYS(bind), EACCES},
    {SCMP_SYS(listen), EACCES},
    {SCMP_SYS(execve), EACCES},
    {SCMP_SYS(execveat), EACCES},
    {SCMP_SYS(ptrace), EPERM},
    {SCMP_SYS(setuid), EPERM},
    {SCMP_SYS(setgid), EPERM},
    {SCMP_SYS(setreuid), EPERM},
    {SCMP_SYS(setregid), EPERM},
    {SCMP_SYS(setresuid), EPERM},
    {SCMP_SYS(setresgid), EPERM},
    {SCMP_SYS(setgroups), EPERM},
    {SCMP_SYS(setfsuid), EPERM},
    {SCMP_SYS(setfsgid), EPERM},
};

/* Adds one rule; libseccomp returns -errno. */
static int
sandbox_rule(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned int argc,
    const struct scmp_arg_cmp *args)
{
	int rc;

	rc = seccomp_rule_add_array(ctx, action, nr, argc, args);
	if (rc < 0) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		log_warnx("sandbox: seccomp rule for %s: %s", name ? name : "?", strerror(-rc));
		free(name);
		errno = -rc;
		return -1;
	}
	return 0;
}

/* The rules whose arguments are checked. */
static int
sandbox_rules_checked(scmp_filter_ctx ctx)
{
	/* Memory may be mapped, but never executable: no code is loaded
	 * once the worker runs, and no page may become code. */
	const struct scmp_arg_cmp no_exec[] = {SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)};
	/* New files are private data: never set-id or sticky. */
	const struct scmp_arg_cmp plain_mode[] = {
	    SCMP_A3(SCMP_CMP_MASKED_EQ, S_ISUID | S_ISGID | S_ISVTX, 0)};
	/* Accepted connections are non-blocking and close-on-exec. */
	const struct scmp_arg_cmp accept_flags[] = {
	    SCMP_A3(SCMP_CMP_EQ, SOCK_NONBLOCK | SOCK_CLOEXEC)};
	/* Signals only to this process (abort). */
	const struct scmp_arg_cmp self[] = {SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid())};
	/* A descriptor passed with SET_DATAFD is made non-blocking. */
	const int fcntl_cmds[] = {F_GETFL, F_SETFL};
	struct scmp_arg_cmp cmd;

	if (sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, no_exec) == -1 ||
	    sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, no_exec) == -1 ||
	    sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, plain_mode) == -1 ||
	    sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(accept4), 1, accept_flags) == -1 ||
	    sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, self) == -1)
		return -1;
	for (size_t i = 0; i < sizeof(fcntl_cmds) / sizeof(fcntl_cmds[0]); i++) {
		cmd = (struct scmp_arg_cmp)SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i]);
		if (sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1, &cmd) == -1)
			return -1;
	}
#ifdef SANDBOX_ASAN
	{
		/* isatty(2) for colours; /proc files for a report (absent). */
		const struct scmp_arg_cmp tty[] = {SCMP_A1(SCMP_CMP_EQ, TCGETS)};
		const struct scmp_arg_cmp rdonly[] = {
		    SCMP_A1(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT, O_RDONLY)};
		if (sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, tty) == -1 ||
		    sandbox_rule(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1, rdonly) == -1)
			return -1;
	}
#endif
	return 0;
}

/* Loads the allow-list filter. Returns 0, or -1 with errno (logged). */
static int
sandbox_filter(void)
{
	scmp_filter_ctx ctx;
	int rc, ret = -1;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL) {
		log_warnx("sandbox: seccomp_init failed");
		errno = ENOMEM;
		return -1;
	}
	/* A system call of another ABI (x32, i386) is never legitimate; a
	 * thread, if there were one, is filtered too. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		errno = -rc;
		log_warn("sandbox: seccomp attributes");
		goto out;
	}
	for (size_t i = 0; i < sizeof(sandbox_allow) / sizeof(sandbox_allow[0]); i++)
		if (sandbox_rule(ctx, SCMP_ACT_ALLOW, sandbox_allow[i], 0, NULL) == -1)
			goto out;
#ifdef SANDBOX_ASAN
	for (size_t i = 0; i < sizeof(sandbox_allow_asan) / sizeof(sandbox_allow_asan[0]); i++)
		if (sandbox_rule(ctx, SCMP_ACT_ALLOW, sandbox_allow_asan[i], 0, NULL) == -1)
			goto out;
#endif
	for (size_t i = 0; i < sizeof(sandbox_refuse) / sizeof(sandbox_refuse[0]); i++)
		if (sandbox_rule(ctx, SCMP_ACT_ERRNO((uint32_t)sandbox_refuse[i].errnum),
		        sandbox_refuse[i].nr, 0, NULL) == -1)
			goto out;
	if (sandbox_rules_checked(ctx) == -1)
		goto out;
	if ((rc = seccomp_load(ctx)) < 0) {
		errno = -rc;
		log_warn("sandbox: seccomp_load");
		goto out;
	}
	ret = 0;
out:
	seccomp_release(ctx);
	return ret;
}

/* Checks that the only directories the process holds open are root
 * itself: openat() on any other would reach outside the chroot. */
static int
sandbox_check_dirs(const char *root)
{
	struct stat rs, st;
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	if (stat(root, &rs) == -1) {
		log_warn("sandbox: %s", root);
		return -1;
	}
	if ((d = opendir("/proc/self/fd")) == NULL) {
		log_warn("sandbox: /proc/self/fd");
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* NOLINTNEXTLINE(cert-err34-c): the kernel's own descriptor numbers */
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode))
			continue;
		if (st.st_dev != rs.st_dev || st.st_ino != rs.st_ino) {
			log_warnx("sandbox: descriptor %d is a directory other than %s", fd, root);
			errno = EBADF;
			ret = -1;
		}
	}
	closedir(d);
	return ret;
}

/* Switches to uid/gid for good and checks that root cannot come back. */
static int
sandbox_drop(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (setgroups(0, NULL) == -1) {
		log_warn("sandbox: setgroups");
		return -1;
	}
	if (setresgid(gid, gid, gid) == -1) {
		log_warn("sandbox: setresgid %lu", (unsigned long)gid);
		return -1;
	}
	if (setresuid(uid, uid, uid) == -1) {
		log_warn("sandbox: setresuid %lu", (unsigned long)uid);
		return -1;
	}
	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 || ru != uid ||
	    eu != uid || su != uid || rg != gid || eg != gid || sg != gid ||
	    getgroups(0, NULL) != 0) {
		log_warnx("sandbox: identity is not %lu:%lu after the switch", (unsigned long)uid,
		    (unsigned long)gid);
		errno = EPERM;
		return -1;
	}
	if (setuid(0) != -1 || setgid(0) != -1) {
		log_warnx("sandbox: root could be regained after dropping privileges");
		errno = EPERM;
		return -1;
	}
	return 0;
}

/*
 * Confines the calling process, which must be root and single-threaded,
 * to sb->root as sb->uid:sb->gid (neither 0) under the seccomp allow-list.
 * Descriptors opened before stay usable; the only directory among them
 * may be sb->root itself (checked). sb->root must be writable and
 * searchable by sb->uid (the manager chowns a worker's state directory to
 * the worker's uid). Returns 0, or -1 with errno (logged); after a
 * failure the process is in an unspecified state and must exit.
 */
int
sandbox_enter(const struct sandbox *sb)
{
	if (sb->root == NULL || sb->uid == 0 || sb->gid == 0 || sb->uid == (uid_t)-1 ||
	    sb->gid == (gid_t)-1) {
		log_warnx("sandbox: needs a root directory and a uid and gid other than 0 and -1");
		errno = EINVAL;
		return -1;
	}
#ifdef SANDBOX_ASAN
	/* LeakSanitizer's check needs /proc and ptrace, which the sandbox
	 * takes away: run it now, which also cancels the one at exit. */
	__lsan_do_leak_check();
#endif
	if (sandbox_check_dirs(sb->root) == -1)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		log_warn("sandbox: prctl(PR_SET_NO_NEW_PRIVS)");
		return -1;
	}
	if (chroot(sb->root) == -1 || chdir("/") == -1) {
		log_warn("sandbox: chroot %s", sb->root);
		return -1;
	}
	if (sandbox_drop(sb->uid, sb->gid) == -1)
		return -1;
	if (access("/", W_OK | X_OK) == -1) {
		log_warn(
		    "sandbox: %s is not writable by uid %lu", sb->root, (unsigned long)sb->uid);
		return -1;
	}
	/* Changing identity may have reset this; keep the worker undumpable. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1) {
		log_warn("sandbox: prctl(PR_SET_DUMPABLE)");
		return -1;
	}
	return sandbox_filter();
}
