/* mod_private: being written. */
#include "sm/module.h"

const sm_module mod_private = {
    .name = "private",
};
