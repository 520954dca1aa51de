#include "t/unit/tap.h"
int main(void) { ok(1, "placeholder, replaced by the real test"); return tap_done(); }
