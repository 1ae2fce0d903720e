// Line buffering for the process's standard output, which Swift 6 cannot name from Swift
// (the C global `stdout` is shared mutable state).
#include <stdio.h>
#include "CKernels.h"

void metarl_line_buffer_stdout(void) { setvbuf(stdout, NULL, _IOLBF, 0); }
