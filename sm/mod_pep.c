/* mod_pep: being written. */
#include "sm/module.h"

const sm_module mod_pep = {
    .name = "pep",
};
