/* The sm's module interface.
 *
 * Every feature of the session manager is a module in its own file
 * (mod_roster.c, mod_presence.c, ...), described by one `sm_module` and
 * listed once in the module table (sm/modules.c). A module may:
 *
 *  - serve iq namespaces, for the server (to='domain') and/or on behalf of
 *    an account (to='user@domain', or no 'to' from the user's own session):
 *    `iqs`, a table of {namespace, targets, handler};
 *  - advertise disco features and identities (XEP-0030): `server_features`,
 *    `account_features`, `identities` (only modules that are on are listed,
 *    so disco shows exactly what works);
 *  - see every stanza a session sends (`out_stanza`) before the core routes
 *    it, and every stanza for a local account (`in_stanza`) before the core
 *    delivers it; a hook returns SM_DONE when it consumed the stanza;
 *  - act when a session starts, becomes available, or ends.
 *
 * Hooks run in the user's queue (see sm.h): a hook that starts a storage
 * request calls sm_user_hold(u) and sm_user_release(u) in its callback, and
 * the user's next stanza waits until then. A write whose order the storage
 * keeps by itself and that nothing later in the queue needs to read back
 * (the offline store) may instead be pipelined with sm_user_write_begin /
 * sm_user_write_end: the queue goes on, and only the confirmations to the
 * c2s wait for the commit.
 *
 * Adding a module: write mod_x.c defining `const sm_module mod_x`, add it to
 * sm/modules.c and sm/meson.build. Every module can be switched with
 * <modules><NAME><enabled>false</enabled></NAME></modules>; a module that
 * is off serves nothing and is not listed in disco. */
#ifndef SB_SM_MODULE_H
#define SB_SM_MODULE_H
#include "common/config.h"
#include "sm/sm.h"

typedef enum { SM_PASS = 0, SM_DONE = 1 } sm_hook_rc;

/* Bits of sm_session.mod_flags, one per module that needs one. */
#define SM_SF_OFFLINE_DONE 0x01   /* mod_offline: stored messages were delivered */

#define SM_IQ_SERVER 0x01   /* iq to the domain */
#define SM_IQ_ACCOUNT 0x02  /* iq to a user's bare JID (or with no 'to' from the user) */

/* An iq the server answers itself. */
typedef struct sm_iq {
    sm *sm;
    stanza *st;                 /* the iq: the handler owns it (sm_iq_reply / sm_iq_error free it) */
    xnode *payload;             /* its first child element */
    int is_set;                 /* type='set' (else 'get') */
    int target;                 /* SM_IQ_SERVER or SM_IQ_ACCOUNT */
    sm_user *user;              /* the account addressed (loaded), NULL for the server */
    sm_session *session;        /* the sender's session when it is that account's own, else NULL */
    const char *from;           /* the sender's JID */
} sm_iq;

typedef void (*sm_iq_fn)(sm_iq *iq);

typedef struct sm_iq_handler {
    const char *ns;
    int targets;                /* SM_IQ_SERVER | SM_IQ_ACCOUNT */
    sm_iq_fn handle;
} sm_iq_handler;

typedef struct sm_identity {
    const char *category, *type, *name;
} sm_identity;

struct sm_module {
    const char *name;
    const sm_iq_handler *iqs;               /* ends with {NULL} */
    const char *const *server_features;     /* NULL-terminated, or NULL */
    const char *const *account_features;
    const sm_identity *identities;          /* server identities, ends with {NULL} */
    int (*init)(sm *s);                     /* before the loop runs; -1 refuses to start */
    void (*shutdown)(sm *s);
    void (*session_started)(sm_session *sess);
    /* The session is going away (its unavailable presence is due). */
    void (*session_ending)(sm_session *sess);
    /* A stanza from a session (from stamped with the full JID). */
    sm_hook_rc (*out_stanza)(sm_session *sess, stanza *st);
    /* A stanza for local account u (u loaded; u->state USER_READY).
     * returned: the stanza was handed back by c2s (docs/sessions.md §3);
     * skip: a session not to deliver it to again (or NULL). */
    sm_hook_rc (*in_stanza)(sm_user *u, stanza *st, int returned, sm_session *skip);
    /* The session sent available presence; initial: the first one. */
    void (*available)(sm_session *sess, int initial);
    /* The module's own settings, paths relative to <modules><NAME>
     * (e.g. {"max-bytes", CFG_INT, 0, "..."}), ending with {NULL}; or NULL.
     * Every module also takes <enabled>true|false</enabled>. */
    const config_key *config_keys;
    /* Off unless the config enables it (default: on). */
    int off_by_default;
    /* User u is coming into memory (before its first work runs): a module
     * that keeps data about users starts loading it here, calling
     * sm_user_load_begin(u) before the request and sm_user_load_end(u, st)
     * in its callback. The user's queue waits for every load; a load that
     * fails fails the user like a roster that cannot be loaded. */
    void (*user_loading)(sm_user *u);
    /* User u leaves memory (also at shutdown): free the module's data about it. */
    void (*user_unloading)(sm_user *u);
    /* Presence the server routes from local user u (its 'from' is u's bare
     * or full JID) outside the user's own out_stanza path: broadcasts,
     * unavailable presence, probes and their answers, subscription stanzas.
     * SM_DONE: the module consumed (dropped) it. */
    sm_hook_rc (*presence_from_user)(sm_user *u, stanza *st);
    /* Identities of an account (disco#info to a bare JID, XEP-0030), ends
     * with {NULL}; or NULL. */
    const sm_identity *account_identities;
    /* disco#items of an account (no node), for a requester mod_disco lets
     * see the account: the first module that has this hook answers the iq
     * (now or later, with sm_iq_reply / sm_iq_error). */
    void (*account_items)(sm_iq *iq);
};

/* The module's config section (<modules><NAME>), or NULL when there is
 * none: read settings with config_node_int(node, "max-bytes", default). */
const xnode *sm_module_config(const sm *s, const char *module_name);
/* Is the module with this name running? */
int sm_module_on(const sm *s, const char *module_name);
/* Build the config key table for the sm: base keys plus modules/NAME/...
 * for every module in the table. Free with sm_config_keys_free. */
config_key *sm_config_keys(const config_key *base);
void sm_config_keys_free(config_key *keys);

/* Module loads of a user (see user_loading above). */
void sm_user_load_begin(sm_user *u);
void sm_user_load_end(sm_user *u, storage_status st);

/* The module table (sm/modules.c). */
extern const sm_module *const sm_modules[];
extern const size_t sm_nmodules;

/* Answer an iq: result with payload (may be NULL), or an error. Both free iq->st. */
void sm_iq_reply(sm_iq *iq, stanza *result);
void sm_iq_error(sm_iq *iq, const char *condition, const char *type_override);

/* ---- what modules offer each other ---- */

/* mod_roster.c */
/* A detached copy of an item (or a new one for jid) to change and commit. */
sm_item *roster_item_clone(const sm_item *it);
sm_item *roster_item_make(const char *jid);
void roster_item_free(sm_item *it);
/* Persist next (owned; a changed copy of the item, or a new one), or
 * delete the contact when remove; on success put it in memory and, when
 * push, push it to the user's interested resources (unless hidden). Then done(u, status,
 * ud) (may be NULL); memory is unchanged when storing failed. Holds the
 * user's queue meanwhile. */
void roster_commit(sm_user *u, sm_item *next, int remove, int push,
                   void (*done)(sm_user *u, storage_status st, void *ud), void *ud);
/* Hidden items hold only a Pending In the user has not answered yet; they
 * are not part of what a client sees (RFC 6121 §3.1.3). An item the user
 * has seen always has a name ("" for none); a NULL name marks hidden ones. */
int roster_item_hidden(const sm_item *it);
void roster_item_xml(xnode *query, const sm_item *it, int removed);
void roster_load_rows(sm_user *u, const roster_row *rows, size_t n, int64_t version);
void roster_clear(sm_user *u);

/* mod_presence.c */
/* Deliver to every available resource (presence, subscription requests). */
void presence_to_available(sm_user *u, const xnode *el);
/* Send st's copy from every available resource of u to jid. */
void presence_send_current(sm_user *u, const char *to);
void presence_send_unavailable(sm_user *u, const char *to);

/* mod_offline.c */
/* Store a message for u (XEP-0160), acknowledging it only when it is
 * durable; answers the sender with an error when it cannot be stored.
 * Takes ownership of st. Holds the user's queue meanwhile. */
void offline_store_message(sm_user *u, stanza *st);

/* mod_privacy.c */
/* Do u's privacy lists (and blocklist) let stanza through? inbound: a
 * stanza for u (checked against its 'from'), else one from u (its 'to').
 * sess: the session it is for or from (its active list, else the default
 * list), or NULL for the user as a whole (the default list: offline
 * delivery, ...). 1 when allowed (always, when the module is off). */
int privacy_allows(sm_user *u, sm_session *sess, const xnode *stanza, int inbound);

/* mod_message.c */
/* Deliver a message addressed to u's bare JID by the rules of RFC 6121
 * §8.5.2 (or offline). skip: a session to leave out. Takes ownership. */
void message_to_bare(sm_user *u, stanza *st, sm_session *skip);

#endif
