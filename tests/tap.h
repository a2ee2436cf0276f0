/*
 * tap.h: a tiny TAP producer for the automake TAP driver.
 *
 * ok(cond, "name") records one test point; is_int/is_uint print both values
 * when they differ; tap_skip(why, "name") records a point that is not run
 * here ("ok N - name # SKIP why").  tap_done() prints the plan and returns
 * the exit code.
 * A child of fork() calls tap_quiet() so only the parent speaks TAP.
 */
#ifndef UMM_TAP_H
#define UMM_TAP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

extern int tap_count, tap_failed, tap_silent;

int tap_ok(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int tap_is_int(long long got, long long want, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tap_skip_all(const char *why) __attribute__((noreturn));
void tap_skip(const char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void tap_bail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
int tap_done(void);
void tap_quiet(void);

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)

#endif
