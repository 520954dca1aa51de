/* mod_last: being written. */
#include "sm/module.h"

const sm_module mod_last = {
    .name = "last",
};
