/* A tiny TAP producer for the C unit tests (meson runs them with protocol 'tap'). */
#ifndef SB_TAP_H
#define SB_TAP_H
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((unused)) static int tap_count, tap_failed;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)

__attribute__((format(printf, 4, 5)))
__attribute__((unused)) static int tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_count++;
    if (!pass) tap_failed++;
    printf("%s %d - ", pass ? "ok" : "not ok", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!pass) printf("#   failed at %s:%d\n", file, line);
    fflush(stdout);
    return pass;
}

#define TAP_DESC_MAX 512
__attribute__((format(printf, 5, 6)))
__attribute__((unused)) static int tap_is_str(const char *got, const char *want, const char *file, int line, const char *fmt, ...)
{
    char desc[TAP_DESC_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    int pass = (got == NULL && want == NULL) || (got && want && strcmp(got, want) == 0);
    tap_ok(pass, file, line, "%s", desc);
    if (!pass) printf("#   got:      '%s'\n#   expected: '%s'\n", got ? got : "(null)", want ? want : "(null)");
    return pass;
}

__attribute__((format(printf, 5, 6)))
__attribute__((unused)) static int tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
{
    char desc[TAP_DESC_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    int pass = got == want;
    tap_ok(pass, file, line, "%s", desc);
    if (!pass) printf("#   got:      %lld\n#   expected: %lld\n", got, want);
    return pass;
}

/* Print the plan and return the exit status for main(). */
__attribute__((unused)) static int tap_done(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif
