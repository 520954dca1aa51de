/* mod_mam: being written. */
#include "sm/module.h"

const sm_module mod_mam = {
    .name = "mam",
};
