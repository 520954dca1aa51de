/* mod_search: being written. */
#include "sm/module.h"

const sm_module mod_search = {
    .name = "search",
};
