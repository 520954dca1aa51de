/* Logging: one line per event to stderr or syslog.
 *
 * A line on stderr looks like
 *   2026-11-21T14:30:00.123Z router[1234] warn: text
 * and is written with a single write(), so lines from several processes
 * sharing one stderr (supervisord, a terminal) never interleave.
 *
 * Text often carries what a peer sent (a JID, a stream error), so every
 * control character in the formatted message is replaced by '?': a peer
 * cannot end the line early and forge another one. Messages longer than
 * LOG_TEXT_MAX bytes are cut (on a UTF-8 character boundary) and marked. */
#include "common/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Longest message text kept, in bytes, before the marker. */
#define LOG_TEXT_MAX 2048
#define LOG_TRUNCATED_MARK "...[truncated]"
/* The ident is the process name; longer ones are cut in the line prefix. */
#define LOG_IDENT_SHOWN 64

static struct {
    char *ident;        /* NULL: program_invocation_short_name */
    log_level level;
    int use_syslog;
} log_state = { NULL, LOG_LVL_INFO, 0 };

static const char *const level_names[] = { "error", "warn", "notice", "info", "debug" };

static const char *log_ident(void)
{
    return log_state.ident ? log_state.ident : program_invocation_short_name;
}

void log_open(const char *ident, log_level level, int use_syslog)
{
    log_close();
    log_state.ident = ident ? strdup(ident) : NULL;
    log_state.level = level;
    log_state.use_syslog = use_syslog;
    /* openlog keeps the pointer, so it must be our copy, alive until log_close. */
    if (use_syslog) openlog(log_ident(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_close(void)
{
    if (log_state.use_syslog) closelog();
    free(log_state.ident);
    log_state.ident = NULL;
    log_state.use_syslog = 0;
}

void log_set_level(log_level level)
{
    log_state.level = level;
}

log_level log_get_level(void)
{
    return log_state.level;
}

int log_level_parse(const char *name)
{
    if (!name) return -1;
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcasecmp(name, level_names[i]) == 0) return (int)i;
    if (strcasecmp(name, "warning") == 0) return LOG_LVL_WARN;
    return -1;
}

static int syslog_priority(log_level level)
{
    switch (level) {
    case LOG_LVL_ERROR: return LOG_ERR;
    case LOG_LVL_WARN: return LOG_WARNING;
    case LOG_LVL_NOTICE: return LOG_NOTICE;
    case LOG_LVL_INFO: return LOG_INFO;
    case LOG_LVL_DEBUG: return LOG_DEBUG;
    }
    return LOG_INFO;
}

/* Replace control characters (and DEL) so the text stays on one line. */
static void neutralize_controls(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f) s[i] = '?';
    }
}

/* Length of the first len bytes of s without a UTF-8 sequence cut in half. */
static size_t utf8_boundary(const char *s, size_t len)
{
    size_t end = len;
    /* Step back over continuation bytes (10xxxxxx) to the lead byte. */
    while (end > 0 && ((unsigned char)s[end - 1] & 0xC0) == 0x80) end--;
    if (end == 0) return len;
    unsigned char lead = (unsigned char)s[end - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    /* Keep the character if it is complete, drop its lead byte otherwise. */
    return (len - (end - 1) >= need) ? len : end - 1;
}

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return;     /* nowhere left to report a logging failure */
        }
        p += n;
        len -= (size_t)n;
    }
}

static void format_timestamp(char *out, size_t outlen)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void log_msg(log_level level, const char *fmt, ...)
{
    if (level > log_state.level) return;
    int saved_errno = errno;    /* callers often log, then look at errno */

    char text[LOG_TEXT_MAX + sizeof LOG_TRUNCATED_MARK];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, LOG_TEXT_MAX + 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        snprintf(text, sizeof text, "(unformattable log message)");
        n = (int)strlen(text);
    }
    size_t len = (size_t)n;
    if (len > LOG_TEXT_MAX) {
        len = utf8_boundary(text, LOG_TEXT_MAX);
        memcpy(text + len, LOG_TRUNCATED_MARK, sizeof LOG_TRUNCATED_MARK);
        len += sizeof LOG_TRUNCATED_MARK - 1;
    }
    neutralize_controls(text, len);

    unsigned lvl = (unsigned)level < sizeof level_names / sizeof level_names[0] ? (unsigned)level : LOG_LVL_INFO;
    if (log_state.use_syslog) {
        syslog(syslog_priority((log_level)lvl), "%s: %.*s", level_names[lvl], (int)len, text);
    } else {
        char stamp[40];
        format_timestamp(stamp, sizeof stamp);
        char line[sizeof text + 160];
        int m = snprintf(line, sizeof line, "%s %.*s[%ld] %s: %.*s\n", stamp, LOG_IDENT_SHOWN,
                         log_ident(), (long)getpid(), level_names[lvl], (int)len, text);
        if (m > 0) {
            size_t mlen = (size_t)m < sizeof line ? (size_t)m : sizeof line - 1;
            if (line[mlen - 1] != '\n') line[mlen - 1] = '\n';
            write_all(STDERR_FILENO, line, mlen);
        }
    }
    errno = saved_errno;
}
