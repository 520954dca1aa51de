/* The sm's config keys: its own, plus <modules><NAME>...</NAME></modules>
 * for every module in the table, so that a typo in a module's settings is
 * refused at start like any other unknown key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sm/module.h"

static char *key_path(const char *module, const char *rest)
{
    size_t n = strlen("modules/") + strlen(module) + (rest ? 1 + strlen(rest) : 0) + 1;
    char *p = malloc(n);
    if (!p) abort();
    snprintf(p, n, "modules/%s%s%s", module, rest ? "/" : "", rest ? rest : "");
    return p;
}

config_key *sm_config_keys(const config_key *base)
{
    size_t n = 0, extra = 1;   /* "modules" */
    while (base[n].path) n++;
    for (size_t i = 0; i < sm_nmodules; i++) {
        extra += 2;            /* modules/NAME and modules/NAME/enabled */
        for (const config_key *k = sm_modules[i]->config_keys; k && k->path; k++) extra++;
    }
    config_key *keys = calloc(n + extra + 1, sizeof *keys);
    if (!keys) abort();
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        keys[j] = base[i];
        keys[j].path = strdup(base[i].path);
        if (!keys[j++].path) abort();
    }
    keys[j++] = (config_key){strdup("modules"), CFG_SECTION, 0, "settings of the sm's modules"};
    for (size_t i = 0; i < sm_nmodules; i++) {
        const sm_module *m = sm_modules[i];
        keys[j++] = (config_key){key_path(m->name, NULL), CFG_SECTION, 0, "a module's settings"};
        keys[j++] = (config_key){key_path(m->name, "enabled"), CFG_BOOL, 0, "switch the module on or off"};
        for (const config_key *k = m->config_keys; k && k->path; k++)
            keys[j++] = (config_key){key_path(m->name, k->path), k->type, k->flags, k->help};
    }
    return keys;
}

void sm_config_keys_free(config_key *keys)
{
    if (!keys) return;
    for (size_t i = 0; keys[i].path; i++) free((char *)keys[i].path);
    free(keys);
}
