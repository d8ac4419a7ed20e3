/*
 * cli.c: the frame the project's command-line programs share (vtpmctl,
 * vtpm-ca, vtpm-attest): a table of commands, the program's --help made
 * from it, dispatch to one command, and usage and failure messages in one
 * form. Each command parses its own options (argv[0] is its name).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

/* "PROG[ CMD]: message", then where help is; returns EXIT_USAGE. */
int
cli_usagev(const char *prog, const char *cmd, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s%s%s: ", prog, cmd ? " " : "", cmd ? cmd : "");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nSee '%s %s%s--help'.\n", prog, cmd ? cmd : "", cmd ? " " : "");
	return EXIT_USAGE;
}

/* "PROG: message"; returns EXIT_RUNTIME. */
int
cli_failv(const char *prog, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	return EXIT_RUNTIME;
}

static int
cli_usage(const struct cli *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
cli_usage(const struct cli *p, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = cli_usagev(p->name, NULL, fmt, ap);
	va_end(ap);
	return ret;
}

/* The program's --help: its head, every command's synopsis and summary,
 * its tail. */
void
cli_help(const struct cli *p)
{
	fputs(p->help_head, stdout);
	for (size_t i = 0; i < p->n; i++)
		printf("    %s\n        %s\n", p->cmds[i].synopsis, p->cmds[i].summary);
	fputs(p->help_tail, stdout);
}

static void
cli_short_usage(const struct cli *p)
{
	fprintf(stderr, "usage: %s\n\ncommands:\n", p->usage);
	for (size_t i = 0; i < p->n; i++)
		fprintf(stderr, "  %-*s %s\n", p->name_width, p->cmds[i].name, p->cmds[i].summary);
	fprintf(stderr, "\nSee '%s --help' or '%s COMMAND --help'.\n", p->name, p->name);
}

static const struct cli_cmd *
cli_find(const struct cli *p, const char *name)
{
	for (size_t i = 0; i < p->n; i++)
		if (strcmp(p->cmds[i].name, name) == 0)
			return &p->cmds[i];
	return NULL;
}

/*
 * Runs the command argv[0] with its arguments (argc 0: the short usage):
 * "help [COMMAND]", "--help" and "-h" show help. Returns the command's exit
 * status, or EXIT_RUNTIME when its output could not be written.
 */
int
cli_dispatch(const struct cli *p, int argc, char **argv)
{
	const struct cli_cmd *cmd;
	char *help_argv[3];
	int ret;

	if (argc < 1) {
		cli_short_usage(p);
		return EXIT_USAGE;
	}
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
	    (strcmp(argv[0], "help") == 0 && argc < 2)) {
		cli_help(p);
		return EXIT_OK;
	}
	if (strcmp(argv[0], "help") == 0) {
		help_argv[0] = argv[1];
		help_argv[1] = (char *)"--help";
		help_argv[2] = NULL;
		argc = 2;
		argv = help_argv;
	}
	if ((cmd = cli_find(p, argv[0])) == NULL)
		return cli_usage(p, "unknown command '%s'", argv[0]);
	optind = 0; /* the command parses its own options from argv[0] on */
	ret = cmd->run(argc, argv);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "%s: cannot write the output: %s\n", p->name, strerror(errno));
		return EXIT_RUNTIME;
	}
	return ret;
}
