/* SPDX-License-Identifier: MIT */
/*
 * units.h - the value syntax of the configuration: sizes, durations,
 * percentages, signals, booleans, counts. Pure functions, no state.
 *
 * Every parser returns NULL on success and stores the result, or returns a
 * static string saying what is wrong (lower case, no period) and leaves the
 * output untouched.
 */
#ifndef RECYCLERD_UNITS_H
#define RECYCLERD_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "512K", "300M", "1.5G", "2T", "4096" (bytes), "0"; binary multiples. */
const char *units_parse_size(const char *, uint64_t *bytes);
/* "250ms", "30s", "5m", "6h", "1d", "1.5s", "0"; a bare number is seconds. */
const char *units_parse_duration(const char *, uint64_t *msec);
/* "10%", "2.5%", "0" -> parts per million of the whole (10% = 100000). */
const char *units_parse_percent(const char *, uint32_t *ppm);
/* "SIGTERM", "TERM", "sigterm", "15" -> signal number. */
const char *units_parse_signal(const char *, int *signum);
/* yes/no, true/false, on/off, 1/0. */
const char *units_parse_bool(const char *, bool *);
/* Unsigned decimal within [min, max]. */
const char *units_parse_uint(const char *, uint64_t min, uint64_t max,
    uint64_t *);

/* "212M", "1.5G", "512K", "100B": short human size into buf. */
char	*units_format_size(uint64_t bytes, char *buf, size_t size);
/* "250ms", "30s", "5m12s", "2h3m", "3d4h": short human duration. */
char	*units_format_duration(uint64_t msec, char *buf, size_t size);
/* "SIGTERM" (static string), "SIG42" into a static buffer if unnamed. */
const char *units_signal_name(int signum);
/* A wait status: "exited with status 3", "killed by SIGKILL (core
 * dumped)". */
char	*units_format_status(int status, char *buf, size_t size);

#endif /* RECYCLERD_UNITS_H */
