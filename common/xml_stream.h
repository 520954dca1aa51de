/* Incremental, namespace-aware XML stream parser on expat.
 *
 * Bytes arrive in arbitrary chunks. The opening tag of the outermost element
 * (the stream header) is reported as soon as it is complete; then every
 * complete child of it (a stanza or any other top-level element) is reported
 * as its own `stanza`, with its original bytes; then the end of the stream.
 *
 * Restricted XML (RFC 6120 §11.1): a DOCTYPE, entity declaration, reference
 * to an undeclared entity, comment or processing instruction is refused with
 * XML_ERR_RESTRICTED. Entities are never expanded beyond the five predefined
 * ones and character references.
 *
 * Handlers run inside xml_stream_feed and must not free or reset the parser.
 * A handler that needs the parser to stop right after the current element
 * (STARTTLS, SASL success, closing) returns XS_PAUSE: feed then returns with
 * *consumed at the end of that element, and the caller must xml_stream_reset
 * (or free) before feeding again.
 *
 * Memory: a stream that sits between two top-level elements with nothing
 * pending gives its expat parser (several KB) and its input buffers back
 * once it has been idle for xml_stream_set_parser_idle_ms (checked whenever
 * any stream of the thread is fed, and by xml_stream_release_idle). The
 * next byte builds a parser again and replays the saved start tag of the
 * root to it, so namespaces in scope and byte offsets carry on as before;
 * whitespace alone (keepalives) is taken without a parser at all. */
#ifndef SB_XML_STREAM_H
#define SB_XML_STREAM_H
#include <stddef.h>
#include "common/stanza.h"

typedef struct xml_limits {
    size_t max_stanza_bytes;   /* bytes of one top-level element (and of the header); default 65536 */
    unsigned max_depth;        /* element depth below the stream root; default 32 */
    unsigned max_attrs;        /* attributes on one element; default 64 */
} xml_limits;

void xml_limits_default(xml_limits *lim);

typedef enum {
    XML_OK = 0,
    XML_ERR_NOT_WELL_FORMED,   /* not-well-formed (also invalid UTF-8, NUL bytes) */
    XML_ERR_RESTRICTED,        /* restricted-xml */
    XML_ERR_BAD_PREFIX,        /* bad-namespace-prefix: prefix never declared */
    XML_ERR_TOO_BIG,           /* policy-violation: stanza over max_stanza_bytes */
    XML_ERR_TOO_DEEP,          /* policy-violation: nesting over max_depth */
    XML_ERR_TOO_MANY_ATTRS,    /* policy-violation */
    XML_ERR_AFTER_END,         /* data after the end of the stream root: not-well-formed */
    XML_ERR_NOMEM,             /* resource-constraint */
    XML_ERR_STREAM_REOPENED,   /* unsupported-stanza-type: a stream header inside the open stream */
} xml_err;

/* The RFC 6120 stream error condition for an error (e.g. "restricted-xml"). */
const char *xml_err_condition(xml_err err);
const char *xml_err_string(xml_err err);

typedef enum { XS_CONTINUE = 0, XS_PAUSE = 1 } xs_action;

typedef struct xml_stream_handler {
    /* The root element's start tag. `header` has no children; the callee owns it. */
    xs_action (*stream_open)(void *ud, stanza *header);
    /* A complete top-level element; the callee owns it. */
    xs_action (*element)(void *ud, stanza *st);
    /* The root element was closed (</stream:stream>). */
    void (*stream_close)(void *ud);
} xml_stream_handler;

typedef struct xml_stream xml_stream;

xml_stream *xml_stream_new(const xml_limits *lim, const xml_stream_handler *h, void *ud);
/* Feed bytes. On XML_OK, *consumed is len unless a handler paused. On an
 * error the stream is dead until reset; xml_stream_error_text says more. */
xml_err xml_stream_feed(xml_stream *xs, const char *data, size_t len, size_t *consumed);
/* Start over: the next byte begins a new stream (stream restart, RFC 6120 §4.3.3). */
void xml_stream_reset(xml_stream *xs);
const char *xml_stream_error_text(const xml_stream *xs);
/* The default namespace declared on the stream header, or NULL. */
const char *xml_stream_default_ns(const xml_stream *xs);
/* Bytes of a top-level element that have arrived but are not complete yet. */
size_t xml_stream_pending_bytes(const xml_stream *xs);
void xml_stream_free(xml_stream *xs);

/* How long a stream of this thread must sit idle between elements before
 * its parser is freed (0: as soon as it is idle). Default
 * XML_PARSER_IDLE_MS_DEFAULT. */
#define XML_PARSER_IDLE_MS_DEFAULT 250
void xml_stream_set_parser_idle_ms(unsigned ms);
/* Free the parsers of the streams idle for that long now (call it from a
 * periodic timer: without traffic nothing else does). Returns how many. */
size_t xml_stream_release_idle(void);
/* 1 while the stream holds an expat parser (tests, accounting). */
int xml_stream_has_parser(const xml_stream *xs);

/* Parse a whole document (config files, tests). Returns NULL on error with
 * *err set and a message "line N: ..." in errtext. */
stanza *xml_parse_document(const char *data, size_t len, const xml_limits *lim,
                           xml_err *err, char *errtext, size_t errlen);

#endif
