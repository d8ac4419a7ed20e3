/*
 * sandbox.c: the confinement of a process that reads untrusted input (the
 * vTPM worker, vtpm-ca's network child). The program gives its own
 * allow-list (src/instance/instance_sandbox.c, src/ca/ca_sandbox.c); this
 * file does what every confinement shares. A process opens everything it
 * will ever need while it is still root, then calls sandbox_enter before
 * it reads any input. From then on it:
 *   - sees only its root directory (chroot; descriptors it opened before
 *     stay valid, but none of them may be another directory: checked);
 *   - runs as an unprivileged numeric uid/gid with no supplementary
 *     groups, no capabilities and no way back (checked), not dumpable;
 *   - may make only the system calls of its allow-list (seccomp): anything
 *     else kills the process (SCMP_ACT_KILL_PROCESS), except what the list
 *     says to refuse with an errno.
 * A process that is not root cannot chroot or change identity: with no
 * root directory it gets the allow-list alone (and no_new_privs).
 *
 * libseccomp's types stay in this file: rules name system calls as
 * strings and conditions as a project enum.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <seccomp.h>

#include "common.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

#ifdef SANDBOX_ASAN
#include <sanitizer/lsan_interface.h>

/* What the AddressSanitizer/UBSan runtimes need on top of any program's
 * list to print a report (sanitizer builds only; frames stay
 * unsymbolised in the chroot). */
static const struct sandbox_rule sandbox_asan[] = {
    {.syscall = "readlink"},    /* /proc/self/exe: absent, which it tolerates */
    {.syscall = "sigaltstack"}, /* UBSan's report */
    {.syscall = "pipe2"},       /* its check whether memory is readable */
    {.syscall = "gettid"},      /* its abort(), through tgkill */
    {.syscall = "ioctl", .cmp = SANDBOX_EQ, .arg = 1, .value = TCGETS}, /* isatty(2) for colours */
    /* /proc files for a report (absent in a chroot) */
    {.syscall = "open",
        .cmp = SANDBOX_MASKED_EQ,
        .arg = 1,
        .mask = O_ACCMODE | O_CREAT,
        .value = O_RDONLY},
};
#endif

/* Adds one rule; libseccomp returns -errno. */
static int
sandbox_rule(scmp_filter_ctx ctx, const struct sandbox_rule *r, struct err *err)
{
	struct scmp_arg_cmp cmp = {0};
	uint32_t action = SCMP_ACT_ALLOW;
	unsigned int n = 0;
	int nr, rc;

	nr = seccomp_syscall_resolve_name(r->syscall);
	if (nr == __NR_SCMP_ERROR)
		return err_set(err, ERR_INVALID, "sandbox: no system call named %s", r->syscall);
	if (r->action == SANDBOX_ERRNO)
		action = SCMP_ACT_ERRNO((uint32_t)r->errnum);
	switch (r->cmp) {
	case SANDBOX_ANY: break;
	case SANDBOX_EQ: cmp = (struct scmp_arg_cmp){r->arg, SCMP_CMP_EQ, r->value, 0}; break;
	case SANDBOX_MASKED_EQ:
		cmp = (struct scmp_arg_cmp){r->arg, SCMP_CMP_MASKED_EQ, r->mask, r->value};
		break;
	case SANDBOX_SELF:
		cmp = (struct scmp_arg_cmp){r->arg, SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0};
		break;
	}
	if (r->cmp != SANDBOX_ANY)
		n = 1;
	rc = seccomp_rule_add_array(ctx, action, nr, n, &cmp);
	if (rc < 0) {
		errno = -rc;
		return err_errno(err, "sandbox: seccomp rule for %s", r->syscall);
	}
	return 0;
}

/* Loads the allow-list: rules, then the sanitizer's. 0, or -1 with err. */
static int
sandbox_filter(const struct sandbox *sb, struct err *err)
{
	scmp_filter_ctx ctx;
	int rc, ret = -1;

	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (ctx == NULL)
		return err_set(err, ERR_FAILED, "sandbox: seccomp_init failed");
	/* A system call of another ABI (x32, i386) is never legitimate; a
	 * thread, if there were one, is filtered too. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		errno = -rc;
		err_errno(err, "sandbox: seccomp attributes");
		goto out;
	}
	for (size_t i = 0; i < sb->n_rules; i++)
		if (sandbox_rule(ctx, &sb->rules[i], err) == -1)
			goto out;
#ifdef SANDBOX_ASAN
	for (size_t i = 0; i < sizeof(sandbox_asan) / sizeof(sandbox_asan[0]); i++)
		if (sandbox_rule(ctx, &sandbox_asan[i], err) == -1)
			goto out;
#endif
	if ((rc = seccomp_load(ctx)) < 0) {
		errno = -rc;
		err_errno(err, "sandbox: seccomp_load");
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
sandbox_check_dirs(const char *root, struct err *err)
{
	struct stat rs, st;
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	if (stat(root, &rs) == -1)
		return err_errno(err, "sandbox: %s", root);
	if ((d = opendir("/proc/self/fd")) == NULL)
		return err_errno(err, "sandbox: /proc/self/fd");
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		/* NOLINTNEXTLINE(cert-err34-c): the kernel's own descriptor numbers */
		fd = atoi(de->d_name);
		if (fd == dirfd(d) || fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode))
			continue;
		if (st.st_dev != rs.st_dev || st.st_ino != rs.st_ino) {
			ret = err_set(err, ERR_INVALID,
			    "sandbox: descriptor %d is a directory other than %s", fd, root);
			break;
		}
	}
	closedir(d);
	return ret;
}

/* Switches to uid/gid for good and checks that root cannot come back. */
static int
sandbox_drop(uid_t uid, gid_t gid, struct err *err)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (setgroups(0, NULL) == -1)
		return err_errno(err, "sandbox: setgroups");
	if (setresgid(gid, gid, gid) == -1)
		return err_errno(err, "sandbox: setresgid %lu", (unsigned long)gid);
	if (setresuid(uid, uid, uid) == -1)
		return err_errno(err, "sandbox: setresuid %lu", (unsigned long)uid);
	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 || ru != uid ||
	    eu != uid || su != uid || rg != gid || eg != gid || sg != gid ||
	    getgroups(0, NULL) != 0)
		return err_set(err, ERR_FAILED, "sandbox: identity is not %lu:%lu after the switch",
		    (unsigned long)uid, (unsigned long)gid);
	if (setuid(0) != -1 || setgid(0) != -1)
		return err_set(
		    err, ERR_FAILED, "sandbox: root could be regained after dropping privileges");
	return 0;
}

/* chroot to sb->root and become sb->uid:sb->gid. */
static int
sandbox_chroot_drop(const struct sandbox *sb, struct err *err)
{
	if (sandbox_check_dirs(sb->root, err) == -1)
		return -1;
	if (chroot(sb->root) == -1 || chdir("/") == -1)
		return err_errno(err, "sandbox: chroot %s", sb->root);
	if (sandbox_drop(sb->uid, sb->gid, err) == -1)
		return -1;
	if (sb->root_writable && access("/", W_OK | X_OK) == -1)
		return err_errno(err, "sandbox: %s is not writable by uid %lu", sb->root,
		    (unsigned long)sb->uid);
	return 0;
}

int
sandbox_enter(const struct sandbox *sb, struct err *err)
{
	if (sb->root != NULL &&
	    (sb->uid == 0 || sb->gid == 0 || sb->uid == (uid_t)-1 || sb->gid == (gid_t)-1))
		return err_set(err, ERR_INVALID,
		    "sandbox: needs a uid and gid other than 0 and -1 to switch to");
#ifdef SANDBOX_ASAN
	/* LeakSanitizer's check needs /proc and ptrace, which the sandbox
	 * takes away: run it now, which also cancels the one at exit. */
	__lsan_do_leak_check();
#endif
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		return err_errno(err, "sandbox: prctl(PR_SET_NO_NEW_PRIVS)");
	if (sb->root != NULL && sandbox_chroot_drop(sb, err) == -1)
		return -1;
	/* Changing identity may have reset this; keep the process undumpable. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		return err_errno(err, "sandbox: prctl(PR_SET_DUMPABLE)");
	return sandbox_filter(sb, err);
}
