/*
 * vtpmd.c: the vtpmd program: the service (manager.c), or with
 * `vtpmd instance …` one vTPM worker (instance.c).
 */
#include <string.h>

#include "vtpmd.h"

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "instance") == 0)
		return instance_main(argc - 1, argv + 1);
	return manager_main(argc, argv);
}
