/* Private XML storage (XEP-0049): per user and namespace, the XML of the
 * elements of that namespace the user stored last. */
#ifndef SB_STORAGE_PRIVATE_H
#define SB_STORAGE_PRIVATE_H
#include <stddef.h>
#include "storage/storage.h"

/* The stored XML for ns (valid during the callback), NULL when nothing is stored. */
void private_get(storage *s, const char *domain, const char *username, const char *ns,
                 void (*cb)(void *ud, storage_status st, const char *xml), void *ud);
/* Store n namespaces at once (all or none; namespaces distinct). The user
 * may hold at most max_namespaces namespaces afterwards, else
 * STORAGE_QUOTA and nothing changes. STORAGE_NOT_FOUND if no such account. */
void private_put(storage *s, const char *domain, const char *username, const char *const *namespaces,
                 const char *const *xml, size_t n, unsigned max_namespaces, storage_status_cb cb, void *ud);

#endif
