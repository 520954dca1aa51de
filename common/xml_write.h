/* Serialising elements, and writing the original bytes where that is safe. */
#ifndef SB_XML_WRITE_H
#define SB_XML_WRITE_H
#include "common/buf.h"
#include "common/stanza.h"

/* Escape text for element content (&, <, >) or attribute values (also ' and "). */
void xml_escape_text(buf *out, const char *s, size_t len);
void xml_escape_attr(buf *out, const char *s, size_t len);

/* Serialise el into out. context_ns is the default namespace in scope where
 * the bytes will be written (e.g. "jabber:client" inside a client stream);
 * xmlns is emitted only where el's namespace differs, and prefixes are
 * declared where they are used. Attributes are written with single quotes. */
void xml_serialize(buf *out, const xnode *el, const char *context_ns);

/* Like xml_serialize, but writes the element's original bytes when they are
 * known (the stanza is unchanged) and mean the same thing in context_ns. */
void xml_write(buf *out, const xnode *el, const char *context_ns);

/* Convenience: serialise into a malloc'd NUL-terminated string (free() it). */
char *xml_to_string(const xnode *el, const char *context_ns);

#endif
