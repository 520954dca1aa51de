/* mod_privacy: being written. */
#include "sm/module.h"

const sm_module mod_privacy = {
    .name = "privacy",
};
