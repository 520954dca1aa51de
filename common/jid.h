/* JIDs (RFC 7622 form, RFC 3920 §3 / RFC 6122 stringprep profiles via libidn):
 * [ node "@" ] domain [ "/" resource ], each part at most 1023 bytes after
 * preparation; node with Nodeprep, domain with Nameprep (IDNA labels, IP
 * literals allowed, one trailing dot removed), resource with Resourceprep.
 * Anything that fails is jid-malformed. */
#ifndef SB_JID_H
#define SB_JID_H
#include <stddef.h>

#define JID_PART_MAX 1023

typedef struct jid {
    char *node;        /* NULL if none */
    char *domain;      /* never NULL in a valid jid */
    char *resource;    /* NULL if none */
    char *bare;        /* "node@domain" or "domain" */
    char *full;        /* bare plus "/resource" if any */
    char *mem;         /* one allocation that holds all of the above */
} jid;

#define JID_INIT {NULL, NULL, NULL, NULL, NULL, NULL}

/* Parse and prepare s. Returns 0, or -1 if malformed (j left empty). */
int jid_parse(jid *j, const char *s);
/* Build from parts (node and resource may be NULL); each part is prepared. */
int jid_set(jid *j, const char *node, const char *domain, const char *resource);
void jid_copy(jid *dst, const jid *src);
/* Replace the resource (NULL removes it). Returns -1 if it fails Resourceprep. */
int jid_set_resource(jid *j, const char *resource);
void jid_free(jid *j);

/* Comparisons of prepared JIDs. */
int jid_equal(const jid *a, const jid *b);
int jid_equal_bare(const jid *a, const jid *b);

/* Prepare one part into out (size outlen). Returns length, or -1 if invalid. */
int jid_nodeprep(const char *in, char *out, size_t outlen);
int jid_nameprep(const char *in, char *out, size_t outlen);
/* The domain of a JID string (node and resource dropped), prepared, into
 * out; its length, or -1 if malformed. */
int jid_domain_of(const char *jidstr, char *out, size_t outlen);
int jid_resourceprep(const char *in, char *out, size_t outlen);

/* Canonical form of a JID string, malloc'd; NULL if malformed. */
char *jid_normalize(const char *s);
/* Canonical bare form of a JID string, malloc'd; NULL if malformed. */
char *jid_normalize_bare(const char *s);

#endif
