/* SPDX-License-Identifier: MIT */
/*
 * units.c - the value syntax of the configuration: sizes, durations,
 * percentages, signals, booleans and counts, and their short human form.
 *
 * Pure functions with no state beyond one static buffer for unnamed signals.
 * Every parser takes the whole string (no leading or trailing blanks: inih
 * strips them), rejects anything it does not understand and never writes
 * its output on failure, so a bad value cannot half-apply.
 */
#include "units.h"

#include <ctype.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>

#include "util.h"

/*
 * A decimal number "123" or "1.25": the integer part, and the fraction as
 * frac / 10^frac_digits (at most 9 digits kept; more are read and dropped).
 * Returns the end of the number, or NULL when there is no digit first or
 * the integer part overflows (*overflow then says which).
 */
static const char *
scan_decimal(const char *s, uint64_t *ip, uint64_t *frac,
    unsigned int *frac_digits, bool *overflow)
{
	uint64_t v = 0;

	*overflow = false;
	if (!isdigit((unsigned char)*s))
		return NULL;
	for (; isdigit((unsigned char)*s); s++) {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v)) {
			*overflow = true;
			return NULL;
		}
	}
	*ip = v;
	*frac = 0;
	*frac_digits = 0;
	if (*s != '.')
		return s;
	s++;
	if (!isdigit((unsigned char)*s))
		return NULL;		/* "1." is a typo, not a number */
	for (; isdigit((unsigned char)*s); s++) {
		if (*frac_digits < 9) {
			*frac = *frac * 10 + (uint64_t)(*s - '0');
			(*frac_digits)++;
		}
	}
	return s;
}

static uint64_t
pow10_u64(unsigned int n)
{
	uint64_t p = 1;

	while (n-- > 0)
		p *= 10;
	return p;
}

/*
 * (ip + frac / 10^digits) * mult, truncated; false when it does not fit in
 * 64 bits. The 128-bit intermediate keeps "1.5E" style inputs exact.
 */
static bool
scale_decimal(uint64_t ip, uint64_t frac, unsigned int digits, uint64_t mult,
    uint64_t *out)
{
	unsigned __int128 v = (unsigned __int128)ip * mult;

	v += (unsigned __int128)frac * mult / pow10_u64(digits);
	if (v > UINT64_MAX)
		return false;
	*out = (uint64_t)v;
	return true;
}

static const struct {
	char		 letter;
	unsigned int	 shift;
} size_units[] = {
	{ 'K', 10 }, { 'M', 20 }, { 'G', 30 }, { 'T', 40 }, { 'P', 50 },
	{ 'E', 60 },
};

/* Parse a size with optional binary suffix into bytes. */
const char *
units_parse_size(const char *s, uint64_t *bytes)
{
	static const char bad[] = "invalid size (use K, M or G)";
	uint64_t ip, frac, mult = 1, v;
	unsigned int digits;
	const char *p;
	bool overflow;
	size_t i;

	p = scan_decimal(s, &ip, &frac, &digits, &overflow);
	if (p == NULL)
		return overflow ? "size too large" : bad;
	if (*p != '\0' && strcasecmp(p, "B") != 0) {
		for (i = 0; i < nitems(size_units); i++)
			if (toupper((unsigned char)*p) == size_units[i].letter)
				break;
		if (i == nitems(size_units))
			return bad;
		mult = (uint64_t)1 << size_units[i].shift;
		p++;
		/* "K", "KB", "KiB": all binary, as "free" and "top" mean it. */
		if (*p != '\0' && strcasecmp(p, "B") != 0 &&
		    strcasecmp(p, "iB") != 0)
			return bad;
	}
	if (mult == 1 && frac != 0)
		return "invalid size (a byte count has no fraction)";
	if (!scale_decimal(ip, frac, digits, mult, &v))
		return "size too large";
	*bytes = v;
	return NULL;
}

static const struct {
	const char	*name;
	uint64_t	 msec;
} duration_units[] = {
	/* Longest first, so "ms" and "min" win over "m". */
	{ "ms", 1 },
	{ "min", 60 * 1000 },
	{ "sec", 1000 },
	{ "s", 1000 },
	{ "m", 60 * 1000 },
	{ "h", 3600 * 1000 },
	{ "d", 86400 * 1000 },
};

/* Parse "250ms", "1.5s", "1m30s" or a bare number of seconds. */
const char *
units_parse_duration(const char *s, uint64_t *msec)
{
	static const char bad[] =
	    "invalid duration (use ms, s, m, h or d, e.g. 30s)";
	uint64_t ip, frac, total = 0, part;
	unsigned int digits;
	const char *p = s;
	bool overflow;
	size_t i, len;

	/* A bare number is seconds. */
	p = scan_decimal(s, &ip, &frac, &digits, &overflow);
	if (p != NULL && *p == '\0') {
		if (!scale_decimal(ip, frac, digits, 1000, &part))
			return "duration too large";
		*msec = part;
		return NULL;
	}
	p = s;
	if (*p == '\0')
		return bad;
	while (*p != '\0') {
		p = scan_decimal(p, &ip, &frac, &digits, &overflow);
		if (p == NULL)
			return overflow ? "duration too large" : bad;
		for (i = 0; i < nitems(duration_units); i++) {
			len = strlen(duration_units[i].name);
			if (strncasecmp(p, duration_units[i].name, len) == 0 &&
			    !isalpha((unsigned char)p[len]))
				break;
		}
		if (i == nitems(duration_units))
			return bad;
		p += strlen(duration_units[i].name);
		if (!scale_decimal(ip, frac, digits, duration_units[i].msec,
		    &part) || __builtin_add_overflow(total, part, &total))
			return "duration too large";
	}
	*msec = total;
	return NULL;
}

/* Parse "10%" or "2.5%" (or a bare "0") into parts per million. */
const char *
units_parse_percent(const char *s, uint32_t *ppm)
{
	static const char bad[] = "invalid percentage (e.g. 10%)";
	uint64_t ip, frac, v;
	unsigned int digits;
	const char *p;
	bool overflow;

	if (strcmp(s, "0") == 0) {
		*ppm = 0;
		return NULL;
	}
	p = scan_decimal(s, &ip, &frac, &digits, &overflow);
	if (p == NULL)
		return overflow ? "percentage above 100%" : bad;
	if (strcmp(p, "%") != 0)
		return bad;
	if (ip > 100 || !scale_decimal(ip, frac, digits, 10000, &v) ||
	    v > 1000000)
		return "percentage above 100%";
	*ppm = (uint32_t)v;
	return NULL;
}

/* Standard signals by number; real-time ones have no name here. */
static const char *const signal_names[] = {
	[SIGHUP] = "SIGHUP",	[SIGINT] = "SIGINT",	[SIGQUIT] = "SIGQUIT",
	[SIGILL] = "SIGILL",	[SIGTRAP] = "SIGTRAP",	[SIGABRT] = "SIGABRT",
	[SIGBUS] = "SIGBUS",	[SIGFPE] = "SIGFPE",	[SIGKILL] = "SIGKILL",
	[SIGUSR1] = "SIGUSR1",	[SIGSEGV] = "SIGSEGV",	[SIGUSR2] = "SIGUSR2",
	[SIGPIPE] = "SIGPIPE",	[SIGALRM] = "SIGALRM",	[SIGTERM] = "SIGTERM",
	[SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT",
	[SIGSTOP] = "SIGSTOP",	[SIGTSTP] = "SIGTSTP",	[SIGTTIN] = "SIGTTIN",
	[SIGTTOU] = "SIGTTOU",	[SIGURG] = "SIGURG",	[SIGXCPU] = "SIGXCPU",
	[SIGXFSZ] = "SIGXFSZ",	[SIGVTALRM] = "SIGVTALRM",
	[SIGPROF] = "SIGPROF",	[SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO",
	[SIGPWR] = "SIGPWR",	[SIGSYS] = "SIGSYS",
};

/* Other names the kernel headers give the same signals. */
static const struct {
	const char	*name;
	int		 signum;
} signal_aliases[] = {
	{ "IOT", SIGABRT }, { "CLD", SIGCHLD }, { "POLL", SIGIO },
};

#define SIGNUM_MAX	64	/* SIGRTMAX on Linux */

/* Parse a signal name (with or without SIG, any case) or number 1..64. */
const char *
units_parse_signal(const char *s, int *signum)
{
	static const char bad[] = "unknown signal (e.g. SIGTERM or 15)";
	const char *name = s;
	uint64_t n;
	size_t i;

	if (isdigit((unsigned char)*s)) {
		if (units_parse_uint(s, 1, SIGNUM_MAX, &n) != NULL)
			return "invalid signal number (1..64)";
		*signum = (int)n;
		return NULL;
	}
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	if (*name == '\0')
		return bad;
	for (i = 1; i < nitems(signal_names); i++) {
		if (signal_names[i] != NULL &&
		    strcasecmp(name, signal_names[i] + 3) == 0) {
			*signum = (int)i;
			return NULL;
		}
	}
	for (i = 0; i < nitems(signal_aliases); i++) {
		if (strcasecmp(name, signal_aliases[i].name) == 0) {
			*signum = signal_aliases[i].signum;
			return NULL;
		}
	}
	return bad;
}

/* Parse yes/no, true/false, on/off, 1/0 (any case). */
const char *
units_parse_bool(const char *s, bool *b)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < nitems(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b = true;
			return NULL;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b = false;
			return NULL;
		}
	}
	return "invalid boolean (use yes or no)";
}

/* Parse an unsigned decimal integer and check it against [min, max]. */
const char *
units_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	const char *p;

	if (*s == '\0')
		return "invalid number";
	for (p = s; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return "invalid number";
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return "number out of range";
	}
	if (v < min || v > max)
		return "number out of range";
	*out = v;
	return NULL;
}

/* Write "212M", "1.5G" or "100B" into buf: one decimal only when needed. */
char *
units_format_size(uint64_t bytes, char *buf, size_t size)
{
	static const char letters[] = "KMGTPE";
	unsigned __int128 tenths;
	unsigned int u;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 "B", bytes);
		return buf;
	}
	for (u = 1; u < 6 && bytes >= (uint64_t)1 << (10 * (u + 1)); u++)
		;
	/* Rounded to tenths; "1023.96K" rounds up into the next unit. */
	tenths = ((unsigned __int128)bytes * 10 + ((uint64_t)1 << (10 * u)) / 2)
	    >> (10 * u);
	if (tenths >= 10240 && u < 6) {
		u++;
		tenths = ((unsigned __int128)bytes * 10 +
		    ((uint64_t)1 << (10 * u)) / 2) >> (10 * u);
	}
	if (tenths % 10 == 0)
		snprintf(buf, size, "%" PRIu64 "%c", (uint64_t)(tenths / 10),
		    letters[u - 1]);
	else
		snprintf(buf, size, "%" PRIu64 ".%u%c", (uint64_t)(tenths / 10),
		    (unsigned int)(tenths % 10), letters[u - 1]);
	return buf;
}

/*
 * Write "250ms", "1.5s", "5m12s", "2h3m" or "3d4h" into buf: under a minute
 * exactly (it parses back), above it the two largest units, truncated.
 */
char *
units_format_duration(uint64_t msec, char *buf, size_t size)
{
	static const struct {
		char		 unit;
		uint64_t	 msec;
	} steps[] = {
		{ 'd', 86400000 }, { 'h', 3600000 }, { 'm', 60000 },
		{ 's', 1000 },
	};
	uint64_t hi, lo;
	size_t i;
	int frac_len;
	char frac[8];

	if (msec < 1000) {
		snprintf(buf, size, "%" PRIu64 "ms", msec);
		return buf;
	}
	if (msec < 60000) {
		if (msec % 1000 == 0) {
			snprintf(buf, size, "%" PRIu64 "s", msec / 1000);
			return buf;
		}
		frac_len = snprintf(frac, sizeof frac, "%03u",
		    (unsigned int)(msec % 1000));
		while (frac_len > 0 && frac[frac_len - 1] == '0')
			frac[--frac_len] = '\0';
		snprintf(buf, size, "%" PRIu64 ".%ss", msec / 1000, frac);
		return buf;
	}
	for (i = 0; msec < steps[i].msec; i++)
		;
	hi = msec / steps[i].msec;
	lo = (msec % steps[i].msec) / steps[i + 1].msec;
	if (lo == 0)
		snprintf(buf, size, "%" PRIu64 "%c", hi, steps[i].unit);
	else
		snprintf(buf, size, "%" PRIu64 "%c%" PRIu64 "%c", hi,
		    steps[i].unit, lo, steps[i + 1].unit);
	return buf;
}

/* "SIGTERM" for named signals, else "SIG42" in a static buffer. */
const char *
units_signal_name(int signum)
{
	static char buf[16];

	if (signum > 0 && (size_t)signum < nitems(signal_names) &&
	    signal_names[signum] != NULL)
		return signal_names[signum];
	snprintf(buf, sizeof buf, "SIG%d", signum);
	return buf;
}

char *
units_format_status(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by %s%s",
		    units_signal_name(WTERMSIG(status)),
		    WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, size, "ended with wait status %#x", status);
	return buf;
}
