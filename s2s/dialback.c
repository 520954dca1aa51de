/* Server dialback (XEP-0220): the elements, and the verification requests
 * that an incoming db:result starts (a db:verify to the authoritative
 * server of the sender domain, over one of our outgoing streams). Keys are
 * XEP-0185 HMACs of our secret (common/dialback_key.h): nothing about the
 * streams we opened needs to be remembered to answer a db:verify. */
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/dialback_key.h"
#include "common/stanza_error.h"
#include "common/xml_write.h"
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

static void attr(buf *out, const char *name, const char *value)
{
    if (!value) return;
    buf_printf(out, " %s='", name);
    xml_escape_attr(out, value, strlen(value));
    buf_append_str(out, "'");
}

void db_write_result_request(buf *out, const char *secret, const char *local, const char *remote,
                             const char *stream_id)
{
    char key[DIALBACK_KEY_LEN + 1];
    dialback_key(secret, remote, local, stream_id, key);
    buf_append_str(out, "<db:result");
    attr(out, "from", local);
    attr(out, "to", remote);
    buf_printf(out, ">%s</db:result>", key);
    crypto_wipe(key, sizeof key);
}

void db_write_answer(buf *out, const char *name, const char *from, const char *to, const char *id,
                     const char *type, const char *condition)
{
    buf_printf(out, "<db:%s", name);
    attr(out, "from", from);
    attr(out, "to", to);
    attr(out, "id", id);
    attr(out, "type", type);
    if (!condition) {
        buf_append_str(out, "/>");
        return;
    }
    const stanza_error_info *info = stanza_error_lookup(condition);
    buf_printf(out, "><error type='%s' code='%d'><%s xmlns='" NS_XMPP_STANZAS "'/></error></db:%s>",
               info ? info->type : "cancel", info ? info->code : 500, condition, name);
}

void db_write_verify_request(buf *out, const verify_req *vr)
{
    buf_append_str(out, "<db:verify");
    attr(out, "from", vr->local);
    attr(out, "to", vr->remote);
    attr(out, "id", vr->id);
    buf_append_str(out, ">");
    xml_escape_text(out, vr->key, strlen(vr->key));
    buf_append_str(out, "</db:verify>");
}
