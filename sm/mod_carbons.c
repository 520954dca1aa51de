/* mod_carbons: being written. */
#include "sm/module.h"

const sm_module mod_carbons = {
    .name = "carbons",
};
