/* The dialback elements of XEP-0220 (db:result and db:verify), read and
 * written. Pure functions over the common stanza model, with no connection
 * state, so that the fuzzer can drive them (fuzz/fuzz_dialback.c).
 *
 * A request carries the key as its text and no 'type'; an answer carries a
 * 'type' of valid, invalid or error (with an <error/> child saying why).
 * 'from' and 'to' are domains (a JID with a node or resource is taken down
 * to its domain, as jid_domain_of does), prepared with Nameprep. */
#ifndef SB_S2S_DIALBACK_ELEMENT_H
#define SB_S2S_DIALBACK_ELEMENT_H
#include "common/buf.h"
#include "common/jid.h"
#include "common/stanza.h"

#define NS_DIALBACK "jabber:server:dialback"

typedef enum { DB_RESULT, DB_VERIFY } db_kind;
typedef enum { DB_REQUEST, DB_VALID, DB_INVALID, DB_ERROR } db_type;

typedef struct {
    db_kind kind;
    db_type type;
    char from[JID_PART_MAX + 1];   /* prepared domain */
    char to[JID_PART_MAX + 1];
    const char *id;                /* db:verify: the stream id (points into the element); db:result: NULL */
    const char *key;               /* requests: the key, "" if empty (points into the element) */
    const char *condition;         /* DB_ERROR: a stanza error condition, never NULL */
} db_element;

typedef enum {
    DB_PARSE_OK = 0,
    DB_PARSE_NOT_DIALBACK,   /* not a db:result or db:verify */
    DB_PARSE_MALFORMED,      /* a dialback element, but unusable: *why says how */
} db_parse_status;

db_parse_status db_element_parse(const xnode *el, db_element *out, const char **why);

/* The condition of a dialback error answer: the first urn:ietf:params:xml:
 * ns:xmpp-stanzas child of its <error/> (not <text/>), or undefined-condition. */
const char *db_error_condition(const xnode *el);

/* Writers (prefix db: is declared on our stream headers). */
void db_write_result_request(buf *out, const char *secret, const char *local, const char *remote,
                             const char *stream_id);
void db_write_verify_request(buf *out, const char *local, const char *remote, const char *id, const char *key);
/* name: "result" or "verify"; type: "valid", "invalid" or "error" (then condition). */
void db_write_answer(buf *out, const char *name, const char *from, const char *to, const char *id,
                     const char *type, const char *condition);

#endif
