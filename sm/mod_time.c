/* mod_time: being written. */
#include "sm/module.h"

const sm_module mod_time = {
    .name = "time",
};
