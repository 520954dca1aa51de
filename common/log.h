/* Logging: one line per event, with process name and level, to stderr or
 * syslog. Never pass secrets or message bodies to these functions. */
#ifndef SB_LOG_H
#define SB_LOG_H

typedef enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_NOTICE, LOG_LVL_INFO, LOG_LVL_DEBUG } log_level;

/* ident: process name (e.g. "router"); use_syslog: 0 = stderr. */
void log_open(const char *ident, log_level level, int use_syslog);
void log_set_level(log_level level);
log_level log_get_level(void);
/* "error", "warn", "notice", "info", "debug" -> level; -1 if unknown. */
int log_level_parse(const char *name);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_close(void);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) \
    do { if (log_get_level() >= LOG_LVL_DEBUG) log_msg(LOG_LVL_DEBUG, __VA_ARGS__); } while (0)

#endif
