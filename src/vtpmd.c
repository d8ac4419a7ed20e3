/*
 * vtpmd.c: the vtpmd program. `vtpmd instance …` runs one vTPM worker.
 */
#include <stdio.h>
#include <string.h>

#include "vtpmd.h"

static void
vtpmd_usage(FILE *f)
{
	fprintf(f,
	    "usage: vtpmd instance --state DIR --ctrl ENDPOINT [OPTIONS]   (see vtpmd instance --help)\n"
	    "\n"
	    "vtpmd gives each virtual machine its own virtual TPM.\n"
	    "  instance   run one virtual TPM behind the swtpm socket protocol\n");
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "instance") == 0)
		return instance_main(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		vtpmd_usage(stdout);
		return EXIT_OK;
	}
	vtpmd_usage(stderr);
	return EXIT_USAGE;
}
