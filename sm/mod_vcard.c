/* mod_vcard: being written. */
#include "sm/module.h"

const sm_module mod_vcard = {
    .name = "vcard",
};
