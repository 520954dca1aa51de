/* mod_ping: being written. */
#include "sm/module.h"

const sm_module mod_ping = {
    .name = "ping",
};
