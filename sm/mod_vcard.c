/* mod_vcard: vcard-temp (XEP-0054) stored in PostgreSQL, and vCard-based
 * avatars (XEP-0153).
 *
 * - get with no 'to' (or to the user's own bare JID): the user's vCard, an
 *   empty <vCard/> when there is none;
 * - get to another user's bare JID: answered by the server on the user's
 *   behalf; service-unavailable when there is no vCard (the same condition
 *   as for an account that does not exist, XEP-0054 §3.3);
 * - set: only on one's own vCard (else forbidden); the whole vCard
 *   replaces the stored one; larger than modules/vcard/max-bytes (the
 *   serialized <vCard/>) is refused with not-acceptable; an empty <vCard/>
 *   removes it. FN, N/GIVEN, N/FAMILY, NICKNAME and EMAIL/USERID are kept
 *   in columns for the user directory (mod_search).
 * - XEP-0153: the SHA-1 of the decoded PHOTO/BINVAL is stored with the
 *   vCard, loaded when a user's first session starts and updated when the
 *   vCard is set; while the user has sessions it is in memory, and every
 *   available presence the user sends without a vcard-temp:x:update child
 *   gets <x xmlns='vcard-temp:x:update'><photo>HASH</photo></x>.
 * Storage failures answer service-unavailable (type wait), the legacy 503
 * that jabberd gave for a failed xdb write. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base64.h"
#include "common/crypto.h"
#include "common/jid.h"
#include "common/log.h"
#include "common/xml_write.h"
#include "sm/module.h"
#include "storage/vcard.h"

#define NS_VCARD "vcard-temp"
#define NS_VCARD_UPDATE "vcard-temp:x:update"
/* Longest copy of a field kept for search (fits in a btree index entry). */
#define SEARCH_FIELD_MAX 255

static struct {
    size_t max_bytes;
    strmap hashes;          /* bare JID -> malloc'd hex hash, "" for no photo; users with sessions only */
} V = {.max_bytes = 64 * 1024, .hashes = STRMAP_INIT};

/* ---- the avatar hash cache ---- */

static void hash_set(const char *bare, const char *hash)
{
    char *v = strdup(hash ? hash : "");
    if (!v) abort();
    free(strmap_put(&V.hashes, bare, v));
}

static void hash_drop(const char *bare) { free(strmap_del(&V.hashes, bare)); }

/* ---- reading a vCard ---- */

/* A trimmed copy of text (at most SEARCH_FIELD_MAX bytes, cut at a
 * character boundary), or NULL when empty. */
static char *field_copy(const char *text)
{
    if (!text) return NULL;
    while (*text && isspace((unsigned char)*text)) text++;
    size_t n = strlen(text);
    while (n && isspace((unsigned char)text[n - 1])) n--;
    if (n > SEARCH_FIELD_MAX) {
        n = SEARCH_FIELD_MAX;
        while (n && ((unsigned char)text[n] & 0xC0) == 0x80) n--;   /* not inside a UTF-8 sequence */
    }
    if (!n) return NULL;
    char *p = strndup(text, n);
    if (!p) abort();
    return p;
}

static const char *child_text(const xnode *el, const char *name)
{
    xnode *c = el ? xnode_child(el, name, NS_VCARD) : NULL;
    return c ? xnode_text(c) : NULL;
}

/* EMAIL/USERID, preferring the one marked PREF; an EMAIL with only text
 * (as some old clients wrote it) counts too. */
static const char *vcard_email(const xnode *vc)
{
    const char *found = NULL;
    for (xnode *e = xnode_child(vc, "EMAIL", NS_VCARD); e; e = xnode_next(e, "EMAIL", NS_VCARD)) {
        const char *v = child_text(e, "USERID");
        if (!v && !xnode_first_element(e)) v = xnode_text(e);
        if (!v || !*v) continue;
        if (xnode_child(e, "PREF", NS_VCARD)) return v;
        if (!found) found = v;
    }
    return found;
}

/* Hex SHA-1 of the decoded PHOTO/BINVAL into out; 0 when there is none
 * (or it is not base64). Whitespace in BINVAL is ignored (XEP-0153 §3.4). */
static int vcard_photo_hash_of(const xnode *vc, char out[2 * SHA1_LEN + 1])
{
    xnode *photo = xnode_child(vc, "PHOTO", NS_VCARD);
    const char *bin = photo ? child_text(photo, "BINVAL") : NULL;
    if (!bin) return 0;
    size_t len = strlen(bin);
    char *clean = malloc(len + 1);
    unsigned char *raw = malloc(len / 4 * 3 + 3);
    if (!clean || !raw) abort();
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)bin[i])) clean[n++] = bin[i];
    clean[n] = 0;
    long dec = n ? base64_decode(clean, n, raw) : -1;
    int ok = dec > 0;
    if (ok) sha1_hex(raw, (size_t)dec, out);
    free(clean);
    free(raw);
    return ok;
}

/* ---- the iq ---- */

typedef struct vc_ctx {
    sm_iq *iq;
    sm_user *u;
    int own;
    char hash[2 * SHA1_LEN + 1];
    int has_hash;
    int removing;
} vc_ctx;

static void storage_failed(sm_iq *iq, sm_user *u, const char *what, storage_status st)
{
    log_warn("user %s: %s vCard failed: %s", u->bare, what, storage_status_string(st));
    sm_iq_error(iq, "service-unavailable", "wait");
}

static void on_stored(void *ud, storage_status st)
{
    vc_ctx *c = ud;
    sm_user *u = c->u;
    if (st == STORAGE_NOT_FOUND && c->removing) st = STORAGE_OK;
    if (st == STORAGE_OK) {
        log_info("user %s: vCard %s", u->bare, c->removing ? "removed" : "stored");
        if (!u->sm->stopping && u->sessions) hash_set(u->bare, c->has_hash ? c->hash : "");
        sm_iq_reply(c->iq, NULL);
    } else if (st == STORAGE_NOT_FOUND) {
        sm_iq_error(c->iq, "forbidden", NULL);   /* the account is gone */
    } else {
        storage_failed(c->iq, u, "storing the", st);
    }
    free(c);
    sm_user_release(u);
}

static void on_loaded(void *ud, storage_status st, const char *xml)
{
    vc_ctx *c = ud;
    sm_user *u = c->u;
    sm_iq *iq = c->iq;
    if (st == STORAGE_NOT_FOUND) {
        if (c->own) {
            stanza *r = sm_iq_result(iq->st->root);
            xnode_add_child(r->root, "vCard", NS_VCARD);
            sm_iq_reply(iq, r);
        } else {
            sm_iq_error(iq, "service-unavailable", NULL);
        }
    } else if (st != STORAGE_OK) {
        storage_failed(iq, u, "loading the", st);
    } else {
        stanza *stored = sm_parse(xml, strlen(xml));
        if (!stored || !xnode_is(stored->root, "vCard", NS_VCARD)) {
            log_warn("user %s: the stored vCard does not parse", u->bare);
            sm_iq_error(iq, "internal-server-error", NULL);
        } else {
            stanza *r = sm_iq_result(iq->st->root);
            xnode_copy_into(r->root, stored->root);
            sm_iq_reply(iq, r);
        }
        if (stored) stanza_free(stored);
    }
    free(c);
    sm_user_release(u);
}

/* Is the sender the account itself? */
static int from_owner(const sm_iq *iq)
{
    if (iq->session) return 1;
    char *fb = iq->from ? jid_normalize_bare(iq->from) : NULL;
    int own = fb && !strcmp(fb, iq->user->bare);
    free(fb);
    return own;
}

static void vcard_iq(sm_iq *iq)
{
    sm_user *u = iq->user;
    sm *s = iq->sm;
    if (!u) {
        sm_iq_error(iq, "service-unavailable", NULL);
        return;
    }
    if (strcmp(iq->payload->name, "vCard")) {
        sm_iq_error(iq, "bad-request", NULL);
        return;
    }
    vc_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->iq = iq;
    c->u = u;
    c->own = from_owner(iq);
    if (!iq->is_set) {
        sm_user_hold(u);
        vcard_get(s->db, u->domain, u->node, on_loaded, c);
        return;
    }
    if (!c->own) {
        log_info("user %s: %s tried to set the user's vCard", u->bare, iq->from ? iq->from : "?");
        free(c);
        sm_iq_error(iq, "forbidden", NULL);
        return;
    }
    const xnode *vc = iq->payload;
    if (!xnode_first_element(vc)) {
        c->removing = 1;
        sm_user_hold(u);
        vcard_delete(s->db, u->domain, u->node, on_stored, c);
        return;
    }
    char *xml = xml_to_string(vc, "");
    if (!xml) abort();
    size_t len = strlen(xml);
    if (len > V.max_bytes) {
        log_info("user %s: vCard of %zu bytes refused (max-bytes %zu)", u->bare, len, V.max_bytes);
        free(xml);
        free(c);
        sm_iq_error(iq, "not-acceptable", NULL);
        return;
    }
    xnode *n = xnode_child(vc, "N", NS_VCARD);
    char *fn = field_copy(child_text(vc, "FN"));
    char *given = field_copy(child_text(n, "GIVEN"));
    char *family = field_copy(child_text(n, "FAMILY"));
    char *nick = field_copy(child_text(vc, "NICKNAME"));
    char *email = field_copy(vcard_email(vc));
    c->has_hash = vcard_photo_hash_of(vc, c->hash);
    vcard_fields f = {fn, given, family, nick, email, c->has_hash ? c->hash : NULL};
    sm_user_hold(u);
    vcard_put(s->db, u->domain, u->node, xml, &f, on_stored, c);
    free(fn);
    free(given);
    free(family);
    free(nick);
    free(email);
    free(xml);
}

/* ---- XEP-0153: the hash in the user's presence ---- */

typedef struct hash_ctx {
    sm_user *u;
} hash_ctx;

static void on_hash(void *ud, storage_status st, const char *hash)
{
    hash_ctx *c = ud;
    sm_user *u = c->u;
    if (st != STORAGE_OK)
        log_warn("user %s: loading the avatar hash failed: %s", u->bare, storage_status_string(st));
    else if (!u->sm->stopping && u->sessions && !strmap_get(&V.hashes, u->bare))
        hash_set(u->bare, hash);
    free(c);
    sm_user_release(u);
}

static void vcard_session_started(sm_session *sess)
{
    sm_user *u = sess->user;
    if (strmap_get(&V.hashes, u->bare)) return;
    hash_ctx *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->u = u;
    /* The user's next stanza (its initial presence) waits for the hash. */
    sm_user_hold(u);
    vcard_photo_hash(u->sm->db, u->domain, u->node, on_hash, c);
}

static void vcard_session_ending(sm_session *sess)
{
    sm_user *u = sess->user;
    if (u->nsessions <= 1) hash_drop(u->bare);
}

static sm_hook_rc vcard_out(sm_session *sess, stanza *st)
{
    xnode *el = st->root;
    if (strcmp(el->name, "presence") || sm_type(el)) return SM_PASS;
    if (xnode_child(el, "x", NS_VCARD_UPDATE)) return SM_PASS;   /* the client says it itself */
    const char *hash = strmap_get(&V.hashes, sess->user->bare);
    if (!hash || !*hash) return SM_PASS;
    xnode *x = xnode_add_child(el, "x", NS_VCARD_UPDATE);
    xnode_add_text_child(x, "photo", NULL, hash);
    stanza_touch(st);
    return SM_PASS;
}

/* ---- the module ---- */

static int vcard_init(sm *s)
{
    const xnode *cfg = sm_module_config(s, "vcard");
    long long max = config_node_int(cfg, "max-bytes", 64 * 1024);
    if (max < 256 || max > 16 * 1024 * 1024) {
        log_error("modules/vcard/max-bytes must be between 256 and 16M (got %lld)", max);
        return -1;
    }
    V.max_bytes = (size_t)max;
    V.hashes = (strmap)STRMAP_INIT;
    return 0;
}

static void vcard_shutdown(sm *s)
{
    (void)s;
    size_t pos = 0;
    const char *key;
    void *val;
    while (strmap_next(&V.hashes, &pos, &key, &val)) free(val);
    strmap_free(&V.hashes);
    V.hashes = (strmap)STRMAP_INIT;
}

static const sm_iq_handler vcard_iqs[] = {
    {NS_VCARD, SM_IQ_ACCOUNT, vcard_iq},
    {NULL, 0, NULL},
};

static const char *const vcard_features[] = {NS_VCARD, NULL};

static const config_key vcard_keys[] = {
    {"max-bytes", CFG_INT, 0, "largest vCard stored, serialized (default 64k)"},
    {NULL, 0, 0, NULL},
};

const sm_module mod_vcard = {
    .name = "vcard",
    .iqs = vcard_iqs,
    .server_features = vcard_features,
    .account_features = vcard_features,
    .init = vcard_init,
    .shutdown = vcard_shutdown,
    .session_started = vcard_session_started,
    .session_ending = vcard_session_ending,
    .out_stanza = vcard_out,
    .config_keys = vcard_keys,
};
