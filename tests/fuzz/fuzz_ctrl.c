/*
 * fuzz_ctrl: the control-channel codec (ctrl.c) on arbitrary bytes, as a
 * peer of the control socket could send them: framing, then decoding of
 * each complete request, consuming the buffer like the instance does.
 */
#include <stdlib.h>
#include <string.h>

#include "instance/instance.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctrl_request req;
	size_t off = 0, need;

	while (off < size) {
		enum ctrl_parse p = ctrl_request_size(data + off, size - off, &need);
		if (p != CTRL_COMPLETE)
			break;
		if (need < 4 || need > size - off)
			abort(); /* a complete request lies within the buffer */
		if (ctrl_decode(data + off, need, &req) == 0) {
			if (req.cmd == 0x0d && req.u.setstate.data + req.u.setstate.length >
						   data + off + need)
				abort();
			if (req.cmd == 0x07 && req.u.hash.data + req.u.hash.length >
						   data + off + need)
				abort();
		}
		(void)ctrl_cmd_name(req.cmd);
		off += need;
	}
	return 0;
}
