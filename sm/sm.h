/* The session manager's core: hosted domains, users (loaded rosters),
 * sessions, the per-user work queue and stanza routing (RFC 6121 §8).
 *
 * Every stanza for or from a local user is processed in that user's queue,
 * one at a time: while a storage request of the user is in flight
 * (sm_user_hold), the next stanza waits. So a user's roster and offline
 * store change in the order stanzas arrived, and pushes carry versions in
 * order, without locks. Offline stores are the exception that keeps the
 * order anyway: they are pipelined (sm_user_write_begin), in order on the
 * user's storage connection, and only the confirmations wait for them.
 * A user is in memory while it has sessions, queued work or requests in
 * flight; the roster is loaded when it comes into
 * memory and dropped when it leaves. */
#ifndef SB_SM_H
#define SB_SM_H
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "common/component.h"
#include "common/stanza.h"
#include "common/strmap.h"
#include "storage/roster.h"
#include "storage/storage.h"

#define NS_SB_SESSION "urn:switchboard:session"
#define NS_ROSTER "jabber:iq:roster"

typedef struct sm sm;
typedef struct sm_user sm_user;
typedef struct sm_session sm_session;
typedef struct sm_item sm_item;
typedef struct sm_work sm_work;
typedef struct sm_module sm_module;
typedef struct sm_copy sm_copy;
typedef struct sm_confirm sm_confirm;
typedef struct sm_parked sm_parked;
typedef struct sm_remote sm_remote;

typedef struct sm_limits {
    unsigned max_roster_items;      /* limits/max-roster-items (1000) */
    unsigned offline_quota;         /* limits/offline-quota (1000 messages) */
    unsigned max_sessions;          /* limits/max-sessions-per-user (10) */
    unsigned max_queue;             /* limits/max-queue-per-user (1000 stanzas waiting) */
    unsigned max_item_name_bytes;   /* limits/max-item-name-bytes (1023) */
    unsigned max_groups;            /* limits/max-groups-per-item (64) */
    unsigned max_group_bytes;       /* limits/max-group-name-bytes (1023) */
    unsigned park_timeout_s;        /* limits/park-timeout (60 s): unacknowledged copies kept
                                       after the router was lost, for the c2s to report on */
} sm_limits;

/* A message sent to a session and not yet acknowledged by its client
 * (docs/sessions.md §7): redelivered if the session ends first. */
struct sm_copy {
    sm_copy *next;
    uint32_t seq;
    size_t len;
    char data[];                /* the stanza, jabber:client */
};

/* A client stanza of a session in the sm's care: confirmed to the c2s
 * ('handled') once nothing that carries it is still in progress. */
struct sm_confirm {
    uint64_t sess_id;
    uint32_t seq;
    unsigned refs;
};

/* The copies of a session ended because the router was lost, waiting for
 * its c2s to say what the client acknowledged. */
struct sm_parked {
    char *c2s;
    sm_copy *copies;
    uint64_t deadline;          /* loop time */
};

/* A confirmation of processed work, released once the user is idle and
 * every pipelined write started up to then (token `after`) has committed. */
typedef struct sm_deferred {
    sm_confirm *c;
    uint64_t after;
} sm_deferred;

typedef struct sm_inflight {
    uint32_t seq;
    int done;
} sm_inflight;

/* One roster item in memory (mirror of storage's roster_row). */
struct sm_item {
    char *jid;
    char *name;
    char **groups;
    size_t ngroups;
    roster_subscription sub;
    int ask_out, pending_in, approved;
    char *pending_in_stanza;    /* the subscribe request kept for re-delivery, or NULL */
};

struct sm_session {
    uint64_t id;
    char id_str[24];            /* sm-id */
    char *c2s;                  /* the c2s component that holds it */
    char *c2s_id;               /* its connection id there */
    char *full;                 /* full JID */
    const char *resource;       /* points into full */
    sm_user *user;
    sm_session *next;
    int available;              /* sent available presence (and not unavailable since) */
    int priority;
    time_t started;             /* when it started (switchboardctl sessions) */
    stanza *presence;           /* last available presence broadcast, or NULL */
    int interested;             /* requested the roster: gets pushes */
    strmap directed;            /* JIDs that got directed available presence */
    uint32_t mod_flags;         /* bits for modules (SM_SF_* in module.h) */
    /* delivery guarantees (docs/sessions.md §7); only when the c2s asked (acks='true') */
    int custody;
    uint32_t out_seq;           /* seq of the last message sent to the session */
    sm_copy *copies, **copies_tail;  /* sent, not acknowledged by the client, oldest first */
    size_t ncopies;
    sm_inflight *inflight;      /* client stanzas not yet confirmed, in arrival order */
    size_t ninflight, capinflight;
    uint32_t handled;           /* the last seq confirmed (all before it too) */
    int handled_due;            /* 'handled' to send at the end of this loop iteration */
};

typedef enum { USER_LOADING = 0, USER_READY, USER_MISSING, USER_FAILED } sm_user_state;

struct sm_user {
    sm *sm;
    char *bare, *node, *domain;
    sm_user_state state;
    int load_pending;
    storage_status load_exists, load_roster;
    strmap roster;              /* contact bare JID -> sm_item* */
    int64_t roster_version;
    sm_session *sessions;
    size_t nsessions;
    sm_work *qhead, *qtail;
    size_t qlen;
    int busy;                   /* requests in flight that hold the queue */
    int running;                /* inside user_run */
    storage_status load_modules;    /* the modules' loads (user_loading): the first failure */
    sm_deferred *done;          /* confirmations of processed work, oldest first (user_release_confirms) */
    size_t ndone, capdone;
    /* pipelined writes (sm_user_write_begin): started, not yet committed */
    uint64_t writes_started;    /* tokens handed out so far (the last one) */
    uint64_t *writes;           /* tokens of the writes in flight, in start order */
    size_t nwrites, capwrites;
};

struct sm {
    uv_loop_t *loop;
    component *comp;
    storage *db;
    char **hosts;
    size_t nhosts;
    sm_limits limits;
    strmap users;               /* bare JID -> sm_user* */
    strmap sessions;            /* sm-id -> sm_session* */
    uint64_t next_session_id;
    uint64_t next_id;           /* for ids of stanzas the server originates */
    int stopping;
    void (*on_stopped)(sm *s);
    const sm_module **modules;  /* the modules that are on, in table order */
    size_t nmodules;
    const struct config *cfg;   /* for the modules' own settings */
    /* delivery guarantees (docs/sessions.md §7) */
    uint64_t session_id_base;   /* random, low 32 bits zero: tells this process's sm-ids from a predecessor's */
    sm_confirm *cur_confirm;    /* the client stanza being processed (W_OUT) */
    uv_check_t confirm_check;   /* sends the due 'handled' once per loop iteration */
    uv_timer_t park_timer;
    int handles_on;
    uint64_t *confirm_due;      /* sm-ids with a 'handled' due */
    size_t nconfirm_due, capconfirm_due;
    strmap parked;              /* sm-id -> sm_parked* */
    /* messages to remote domains, held until s2s confirms them (§7, sm.c
     * "messages to remote domains") */
    char *s2s_name;             /* the s2s that said hello; NULL: none yet */
    char *s2s_instance;         /* its process instance */
    int s2s_ready;              /* hello seen since s2s (or the router) was last lost */
    uint64_t remote_seq;        /* s2s-seq of the latest message sent (from session_id_base: unique per process) */
    sm_remote *remote_head, *remote_tail;   /* unconfirmed, in s2s-seq order */
    strmap remote_by_seq;       /* s2s-seq -> sm_remote* */
    strmap router_names;        /* names the router announced: components, never remote domains */
};

/* ---- life cycle (sm.c) ---- */
/* Start the modules that cfg switches on (cfg may be NULL: all defaults). */
int sm_init(sm *s, uv_loop_t *loop, const struct config *cfg);
void sm_set_component(sm *s, component *c);
extern const component_handler sm_component_handler;
/* End every session (reason 'shutdown') and drop all users. */
void sm_shutdown(sm *s);
void sm_free(sm *s);

/* ---- addressing ---- */
int sm_is_local(const sm *s, const char *domain);
/* An id for a stanza the server originates ("sm12"). Static buffer. */
const char *sm_new_id(sm *s);

/* ---- sending ---- */
/* Route a stanza by its 'to' as the server would after the sender's own
 * rules: to a local user's queue, the server itself, or out through the
 * router. Takes ownership of st. */
void sm_route(sm *s, stanza *st);
/* Write el (jabber:client) to a session through its c2s. */
void sm_session_send(sm_session *sess, const xnode *el);
/* Turn st into an error (with the legacy code) and route it to its sender;
 * type_override e.g. "wait" (NULL: the condition's usual type). Takes
 * ownership; drops it when an error is not allowed (errors, results). */
void sm_bounce(sm *s, stanza *st, const char *condition, const char *type_override, const char *text);
/* A new iq result answering iq (swapped addresses, same id). */
stanza *sm_iq_result(const xnode *iq);
/* Send a session control element to c2s. */
void sm_session_end(sm_session *sess, const char *reason);

/* ---- users ---- */
sm_user *sm_user_find(sm *s, const char *bare);
/* Hold the user's queue until sm_user_release (one per storage request). */
void sm_user_hold(sm_user *u);
void sm_user_release(sm_user *u);
/* A pipelined write of the user (an offline store): the queue does not wait
 * for it, but the confirmations of the work processed meanwhile are released
 * only once it and every write of the user started before it have completed,
 * and work other than a stanza for the user (a session's own stanzas, start,
 * end) waits until no write is in flight. The storage keeps one user's
 * requests in order (keyed by user), so writes commit in the order started.
 * Returns a token for sm_user_write_end, called from the request's callback. */
uint64_t sm_user_write_begin(sm_user *u);
void sm_user_write_end(sm_user *u, uint64_t token);
sm_session *sm_user_session(sm_user *u, const char *resource);
sm_item *sm_roster_item(sm_user *u, const char *contact);

/* ---- stanza helpers ---- */
void sm_stanza_set_ns(xnode *el, const char *from_ns, const char *to_ns);
/* Parse a serialized stanza; NULL if it does not parse. */
stanza *sm_parse(const char *data, size_t len);
/* Presence type: NULL for available. */
static inline const char *sm_type(const xnode *el) { return xnode_attr(el, "type"); }
time_t sm_now(void);

#endif
