/* vcard: storage for the sm module of the same name (being written). */
#include "storage/modules.h"

const storage_stmt vcard_stmts[] = {
    {NULL, NULL, 0, 0},
};
