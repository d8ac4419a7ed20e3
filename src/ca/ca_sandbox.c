/*
 * ca_sandbox.c: the confinement of vtpm-ca's network child
 * (docs/ca-api.md, "Processes"; src/common/sandbox.c does the chroot, the
 * change of identity and the loading of this list).
 *
 * The child holds, when it enters its sandbox, its channel to the parent
 * and the listening socket, both inherited, and stderr; nothing of the
 * database or the keys, which live in the parent. Its root is an empty
 * directory the parent made (and removes once the child is in), so
 * there is no file for it to reach; the list makes sure it could not
 * reach one anyway: it may accept on its listener, talk on the sockets it
 * holds, compute (memory, time, randomness) and exit. Opening files,
 * making or connecting sockets, exec, ptrace and changing identity fail
 * with an errno (a library may try them on an error path; the tests probe
 * them); anything else off the list kills it, and the parent starts
 * another.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "ca.h"

/* What the child's loop (api.c), its checks (OpenSSL, jansson,
 * http-parser) and glibc were seen to make under the integration tests
 * (strace -f), plus abort(). */
static const struct sandbox_rule ca_allow[] = {
    /* Connections: accepted non-blocking and close-on-exec, then read,
     * answered, half-closed and closed. */
    {.syscall = "accept4", .cmp = SANDBOX_EQ, .arg = 3, .value = SOCK_NONBLOCK | SOCK_CLOEXEC},
    {.syscall = "recvfrom"}, /* recv() of requests and of the parent's answers */
    {.syscall = "sendto"},   /* send() of answers and of the parent's requests */
    {.syscall = "shutdown"}, /* the end of an answer */
    {.syscall = "close"},
    {.syscall = "ppoll"},   /* the loop */
    {.syscall = "poll"},    /* waiting for room to send to the parent */
    {.syscall = "geteuid"}, /* api.c's peer check (not applied to TCP) */
    {.syscall = "write"},   /* log lines on stderr */
    {.syscall = "writev"},  /* glibc's fatal-error messages (fortify, malloc) */
    /* Memory, never executable. */
    {.syscall = "mmap", .cmp = SANDBOX_MASKED_EQ, .arg = 2, .mask = PROT_EXEC, .value = 0},
    {.syscall = "mprotect", .cmp = SANDBOX_MASKED_EQ, .arg = 2, .mask = PROT_EXEC, .value = 0},
    {.syscall = "brk"},
    {.syscall = "munmap"},
    {.syscall = "mremap"},
    {.syscall = "madvise"},
    {.syscall = "futex"},
    /* Randomness (challenge secrets, OpenSSL's DRBG) and time. */
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
    /* Refused with an errno rather than killing the child. */
    {.syscall = "openat", .action = SANDBOX_ERRNO, .errnum = EACCES},
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
ca_sandbox_enter(const char *root, uid_t uid, gid_t gid, struct err *err)
{
	const struct sandbox sb = {
	    .root = root,
	    .uid = uid,
	    .gid = gid,
	    .rules = ca_allow,
	    .n_rules = sizeof(ca_allow) / sizeof(ca_allow[0]),
	};

	return sandbox_enter(&sb, err);
}
