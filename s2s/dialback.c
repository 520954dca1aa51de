/* Server dialback (XEP-0220): the verification requests that an incoming
 * db:result starts (a db:verify to the authoritative
 * server of the sender domain, over one of our outgoing streams). Keys are
 * XEP-0185 HMACs of our secret (common/dialback_key.h): nothing about the
 * streams we opened needs to be remembered to answer a db:verify. */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "s2s/s2s.h"

static char *xstrdup(const char *s)
{
    char *d = strdup(s ? s : "");
    if (!d) abort();
    return d;
}

verify_req *verify_new(in_conn *ic, const char *remote, const char *local, const char *id, const char *key)
{
    verify_req *vr = calloc(1, sizeof *vr);
    if (!vr) abort();
    vr->s = ic->s;
    vr->ic = ic;
    vr->remote = xstrdup(remote);
    vr->local = xstrdup(local);
    vr->id = xstrdup(id);
    /* The key is character data that peers may pretty-print. */
    while (*key == ' ' || *key == '\n' || *key == '\r' || *key == '\t') key++;
    size_t n = strlen(key);
    while (n > 0 && (key[n - 1] == ' ' || key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == '\t')) n--;
    vr->key = strndup(key, n);
    if (!vr->key) abort();
    vr->ic_next = ic->verifies;
    ic->verifies = vr;
    ic->pending++;
    return vr;
}

void verify_finish(verify_req *vr, const char *type, const char *condition)
{
    in_conn *ic = vr->ic;
    if (ic) {
        for (verify_req **pp = &ic->verifies; *pp; pp = &(*pp)->ic_next) {
            if (*pp == vr) {
                *pp = vr->ic_next;
                break;
            }
        }
        if (ic->pending) ic->pending--;
        in_dialback_done(ic, vr->remote, vr->local, type, condition);
    }
    crypto_wipe(vr->key, strlen(vr->key));
    free(vr->key);
    free(vr->remote);
    free(vr->local);
    free(vr->id);
    free(vr);
}

void verify_detach_all(in_conn *ic)
{
    for (verify_req *vr = ic->verifies; vr; vr = vr->ic_next) vr->ic = NULL;
    ic->verifies = NULL;
    ic->pending = 0;
}
