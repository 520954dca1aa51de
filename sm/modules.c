/* The module table: every feature of the sm, in the order its hooks run.
 * presence and message consume their stanzas in the in/out hooks, so
 * modules that need to see stanzas first (privacy lists, carbons, ...)
 * go before them. */
#include "sm/module.h"

extern const sm_module mod_roster, mod_presence, mod_message, mod_offline, mod_disco;
extern const sm_module mod_privacy, mod_vcard, mod_private, mod_search, mod_last, mod_version, mod_time, mod_ping, mod_pep, mod_mam, mod_carbons;

const sm_module *const sm_modules[] = {
    &mod_roster,
    &mod_disco,
    &mod_privacy,   /* first: a blocked stanza goes no further */
    &mod_vcard,
    &mod_private,
    &mod_search,
    &mod_last,
    &mod_version,
    &mod_time,
    &mod_ping,
    &mod_pep,
    &mod_mam,       /* archives before delivery */
    &mod_carbons,   /* copies before delivery */
    &mod_presence,
    &mod_offline,
    &mod_message,
};

const size_t sm_nmodules = sizeof sm_modules / sizeof sm_modules[0];
