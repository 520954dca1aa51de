/* ctl_config: what switchboardctl needs from a process's configuration file. */
#ifndef SB_TOOLS_CTL_CONFIG_H
#define SB_TOOLS_CTL_CONFIG_H
#include <stddef.h>

/* The text of <database><conninfo> below the root element of the XML file
 * at path (any other content is ignored), resolved as a secret (env:NAME,
 * file:PATH relative to the file's directory, or the value itself).
 * malloc'd, or NULL with a one-line message in err. */
char *ctl_config_conninfo(const char *path, char *err, size_t errlen);

#endif
