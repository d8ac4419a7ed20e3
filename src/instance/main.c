/*
 * main.c: vtpmd-instance's entry, the executable vtpmd runs for each
 * worker. It is `vtpmd instance` without the manager linked in, so a vTPM
 * process maps only libtpms, libcrypto and libseccomp.
 */
#include "instance.h"

int
main(int argc, char **argv)
{
	return instance_main(argc, argv);
}
