/*
 * instance_sandbox.c: the worker's confinement (src/common/sandbox.c does
 * the chroot, the change of identity and the loading of this list).
 *
 * A worker opens everything it will ever need (its state directory, its
 * lock, its listening sockets) while it is still root, then enters its
 * sandbox before it reads any input, its state files included (a worker
 * taken over could have written them). From then on it sees only its own
 * state directory (it keeps using the directory descriptor it opened
 * before, which stays valid), runs as its own uid, and may make only the
 * system calls below: I/O on descriptors it holds, accepting on its
 * listeners, files in its directory, memory, time, randomness and its own
 * exit.
 *
 * Anything off the list kills the process: a worker that tries it is
 * either buggy or taken over, and the manager sees the SIGSYS. A few
 * operations a library might try on an error path, and that the tests
 * probe, fail with an errno instead: creating, connecting or binding
 * sockets, exec, ptrace and changing identity.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "instance.h"

/* What the worker's loop, its state store, libtpms, OpenSSL and glibc were
 * seen to make (strace of the integration flows), plus abort(). Arguments
 * are checked where they matter; otherwise the descriptors, paths and
 * memory reached are the worker's own, and paths are confined by the
 * chroot. */
static const struct sandbox_rule instance_allow[] = {
    /* I/O on descriptors already held: state files, sockets, stderr. */
    {.syscall = "read"},    /* state files */
    {.syscall = "write"},   /* state files, log lines, --ready-fd */
    {.syscall = "writev"},  /* glibc's fatal-error messages (fortify, malloc) */
    {.syscall = "recvmsg"}, /* both channels, with SET_DATAFD's descriptor */
    {.syscall = "sendto"},  /* send() of answers */
    {.syscall = "poll"},    /* instance_send waiting for a slow reader */
    {.syscall = "ppoll"},   /* the main loop */
    {.syscall = "close"},
    /* Accepted connections are non-blocking and close-on-exec. */
    {.syscall = "accept4", .cmp = SANDBOX_EQ, .arg = 3, .value = SOCK_NONBLOCK | SOCK_CLOEXEC},
    /* A descriptor passed with SET_DATAFD is made non-blocking. */
    {.syscall = "fcntl", .cmp = SANDBOX_EQ, .arg = 1, .value = F_GETFL},
    {.syscall = "fcntl", .cmp = SANDBOX_EQ, .arg = 1, .value = F_SETFL},
    /* The state directory (store.c), through its descriptor. New files
     * are private data: never set-id or sticky. */
    {.syscall = "openat",
        .cmp = SANDBOX_MASKED_EQ,
        .arg = 3,
        .mask = S_ISUID | S_ISGID | S_ISVTX,
        .value = 0},
    {.syscall = "newfstatat"}, /* glibc's fstat() */
    {.syscall = "fdatasync"},
    {.syscall = "fsync"},
    {.syscall = "renameat"},
    {.syscall = "renameat2"}, /* renameat() where the kernel has only this */
    {.syscall = "unlinkat"},
    /* Memory: malloc, OpenSSL, and secret.c wiping locked pages. Memory may
     * be mapped, but never executable: no code is loaded once the worker
     * runs, and no page may become code. */
    {.syscall = "mmap", .cmp = SANDBOX_MASKED_EQ, .arg = 2, .mask = PROT_EXEC, .value = 0},
    {.syscall = "mprotect", .cmp = SANDBOX_MASKED_EQ, .arg = 2, .mask = PROT_EXEC, .value = 0},
    {.syscall = "brk"},
    {.syscall = "munmap"},
    {.syscall = "mremap"},  /* realloc of large buffers (state blobs) */
    {.syscall = "madvise"}, /* malloc trimming; only ever the worker's own pages */
    {.syscall = "munlock"},
    {.syscall = "futex"},
    /* Randomness (OpenSSL's DRBG) and time (libtpms: clock(),
     * gettimeofday(); the vDSO answers most of them). */
    {.syscall = "getrandom"},
    {.syscall = "clock_gettime"},
    {.syscall = "gettimeofday"},
    /* Signals (SIGTERM ends the loop), abort() to itself only, exit. */
    {.syscall = "rt_sigreturn"},
    {.syscall = "rt_sigprocmask"},
    {.syscall = "rt_sigaction"},
    {.syscall = "restart_syscall"},
    {.syscall = "getpid"}, /* OpenSSL's fork check, raise() */
    {.syscall = "tgkill", .cmp = SANDBOX_SELF, .arg = 0},
    {.syscall = "exit_group"},
    /* Refused with an errno rather than killing the worker. */
    {.syscall = "socket", .action = SANDBOX_ERRNO, .errnum = EACCES},
    {.syscall = "socketpair", .action = SANDBOX_ERRNO, .errnum = EACCES},
    {.syscall = "connect", .action = SANDBOX_ERRNO, .errnum = EACCES},
    {.syscall = "bind", .action = SANDBOX_ERRNO, .errnum = EACCES},
    {.syscall = "listen", .action = SANDBOX_ERRNO, .errnum = EACCES},
    {.syscall = "execve", .action = SANDBOX_ERRNO, .errnum = EACCES},
    {.syscall = "execveat", .action = SANDBOX_ERRNO, .errnum = EACCES},
    {.syscall = "ptrace", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setuid", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setgid", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setreuid", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setregid", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setresuid", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setresgid", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setgroups", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setfsuid", .action = SANDBOX_ERRNO, .errnum = EPERM},
    {.syscall = "setfsgid", .action = SANDBOX_ERRNO, .errnum = EPERM},
};

int
instance_sandbox_enter(const char *root, uid_t uid, gid_t gid, struct err *err)
{
	const struct sandbox sb = {
	    .root = root,
	    .uid = uid,
	    .gid = gid,
	    .root_writable = true,
	    .rules = instance_allow,
	    .n_rules = sizeof(instance_allow) / sizeof(instance_allow[0]),
	};

	return sandbox_enter(&sb, err);
}

/*
 * The worker's resource limits, set before it reads any input, so that a
 * worker taken over (or a guest that found a leak) cannot take the host's
 * memory, disk or process table. Measured against real use (docs/
 * architecture.md, "A worker's limits"): a TPM 2.0 worker whose NV is full
 * (68 indices of 2 KB), with RSA-3072 and RSA-2048 primaries and
 * persistent keys, peaked at 9.1 MB of address space, 6.7 MB resident, a
 * 146 KB state file and 9 descriptors. The limits leave room many times
 * over, and none is near what a healthy worker could reach.
 */
int
instance_limit_resources(struct err *err)
{
	static const struct {
		int resource;
		const char *name;
		rlim_t value;
	} limits[] = {
#ifndef __SANITIZE_ADDRESS__
	    /* AddressSanitizer reserves terabytes of shadow memory: the
	     * sanitizer build (the one the tests run) goes without. */
	    {RLIMIT_AS, "address space", INSTANCE_LIMIT_AS},
#endif
	    {RLIMIT_FSIZE, "file size", INSTANCE_LIMIT_FSIZE},
	    {RLIMIT_NOFILE, "open files", INSTANCE_LIMIT_NOFILE},
	    {RLIMIT_NPROC, "processes", 0}, /* a worker never forks */
	    {RLIMIT_CORE, "core size", 0},  /* its memory holds the state key */
	};

	for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
		struct rlimit rl = {limits[i].value, limits[i].value}, old;

		if (setrlimit(limits[i].resource, &rl) == 0)
			continue;
		/* Some supervisors (valgrind, for descriptors) let a process
		 * lower only its soft limit: that one binds a sandboxed worker
		 * too, whose seccomp list has no way to raise it. */
		if (errno != EPERM || getrlimit(limits[i].resource, &old) == -1)
			return err_errno(err, "setrlimit (%s)", limits[i].name);
		rl.rlim_max = old.rlim_max;
		if (rl.rlim_cur > old.rlim_max)
			rl.rlim_cur = old.rlim_max;
		if (setrlimit(limits[i].resource, &rl) == -1)
			return err_errno(err, "setrlimit (%s)", limits[i].name);
	}
	return 0;
}
