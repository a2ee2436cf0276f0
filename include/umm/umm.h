/*
 * <umm/umm.h>: the same as <umm.h> (libumm's API), for programs that keep
 * a library's headers in a directory of its own, beside <umm/posix.h>.
 */
#include "../umm.h"
