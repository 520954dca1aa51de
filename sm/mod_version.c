/* mod_version: being written. */
#include "sm/module.h"

const sm_module mod_version = {
    .name = "version",
};
