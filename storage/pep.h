/* pep: personal eventing (XEP-0163) nodes and items per account, for the
 * sm's mod_pep. Payloads are stored serialized (the item's one child
 * element, with its namespace declared). Every call completes later on the
 * loop; rows are valid only during the callback. */
#ifndef SB_STORAGE_PEP_H
#define SB_STORAGE_PEP_H
#include <stddef.h>
#include "storage/storage.h"

typedef struct pep_node_cfg {
    const char *access_model;       /* "open", "presence" or "whitelist" */
    int max_items;                  /* >= 1 */
    int persist_items;
} pep_node_cfg;

/* One row of an answer; which fields are set depends on the call. */
typedef struct pep_row {
    const char *node;
    pep_node_cfg cfg;
    const char *const *whitelist;   /* bare JIDs */
    size_t nwhitelist;
    const char *item_id;            /* NULL for a node without items (pep_last_items) */
    const char *payload;
} pep_row;

typedef void (*pep_rows_cb)(void *ud, storage_status st, const pep_row *rows, size_t n);

/* The node's configuration (node, cfg, whitelist): one row, or none when it does not exist. */
void pep_node_get(storage *s, const char *domain, const char *username, const char *node, pep_rows_cb cb,
                  void *ud);
/* Every node of the user (node, cfg, whitelist), by name. */
void pep_nodes_list(storage *s, const char *domain, const char *username, pep_rows_cb cb, void *ud);
/* Every node of the user with its newest item (item_id NULL when it has none). */
void pep_last_items(storage *s, const char *domain, const char *username, pep_rows_cb cb, void *ud);
/* Items of a node, newest first: those named in ids (nids > 0), else at most max (0: all). */
void pep_items_get(storage *s, const char *domain, const char *username, const char *node,
                   const char *const *ids, size_t nids, unsigned max, pep_rows_cb cb, void *ud);

/* Publish (see switchboard_pep_publish in 005_pep.sql): created is 1 when
 * the node was created with cfg. STORAGE_QUOTA when the user has max_nodes
 * nodes already; STORAGE_NOT_FOUND when there is no such user. */
void pep_publish(storage *s, const char *domain, const char *username, const char *node, const char *item_id,
                 const char *payload, const pep_node_cfg *cfg, unsigned max_nodes,
                 void (*cb)(void *ud, storage_status st, int created), void *ud);
/* Create an empty node; STORAGE_CONFLICT when it exists, STORAGE_QUOTA at max_nodes. */
void pep_node_create(storage *s, const char *domain, const char *username, const char *node,
                     const pep_node_cfg *cfg, unsigned max_nodes, storage_status_cb cb, void *ud);
/* Change a node's configuration and whitelist (items beyond max_items are
 * dropped); STORAGE_NOT_FOUND when there is no such node. */
void pep_node_configure(storage *s, const char *domain, const char *username, const char *node,
                        const pep_node_cfg *cfg, const char *const *whitelist, size_t nwhitelist,
                        storage_status_cb cb, void *ud);
/* Delete a node and its items; STORAGE_NOT_FOUND when there is no such node. */
void pep_node_delete(storage *s, const char *domain, const char *username, const char *node,
                     storage_status_cb cb, void *ud);
/* Delete every item of a node; STORAGE_NOT_FOUND when there is no such node. */
void pep_node_purge(storage *s, const char *domain, const char *username, const char *node,
                    storage_status_cb cb, void *ud);
/* Delete one item: STORAGE_NOT_FOUND when the node does not exist,
 * STORAGE_CONFLICT when it exists but has no such item. */
void pep_retract(storage *s, const char *domain, const char *username, const char *node, const char *item_id,
                 storage_status_cb cb, void *ud);

#endif
