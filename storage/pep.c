/* pep: storage for the sm module of the same name (being written). */
#include "storage/modules.h"

const storage_stmt pep_stmts[] = {
    {NULL, NULL, 0, 0},
};
