/*
 * main.c: vtpmd's entry: the service (manager.c), or with `vtpmd instance …`
 * one vTPM worker (src/instance/).
 */
#include <string.h>

#include "manager.h"

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "instance") == 0)
		return instance_main(argc - 1, argv + 1);
	return manager_main(argc, argv);
}
