/* modules: the statement tables of the storage modules in this library.
 * storage_new registers each of them, so every connection prepares them
 * before it takes requests (a statement not registered is prepared on first
 * use instead). A new module (storage/vcard.c...) defines its table
 * non-static, declares it here and adds it to builtin_tables in storage.c. */
#ifndef SB_STORAGE_MODULES_H
#define SB_STORAGE_MODULES_H
#include "storage/query.h"

extern const storage_stmt account_stmts[];
extern const storage_stmt roster_stmts[];
extern const storage_stmt offline_stmts[];
extern const storage_stmt vcard_stmts[];
extern const storage_stmt private_stmts[];
extern const storage_stmt privacy_stmts[];
extern const storage_stmt last_stmts[];
extern const storage_stmt pep_stmts[];
extern const storage_stmt mam_stmts[];

#endif
