/* SPDX-License-Identifier: MIT */
/*
 * test_docs.c - docs/recyclerd.conf.5 documents exactly the keys that
 * config.c accepts, each under its section, with its built-in default.
 *
 * The page lists keys in a fixed form: under `.SS "[recyclerd] section"`
 * and `.SS "[pool NAME] section"`, each key is a `.TP` item whose tag line
 * is exactly `.B key`; the item says `Default: \fBVALUE\fR` when the key
 * has a built-in default, and has no bold default when it has none. Any
 * other .SS or .SH heading ends the key list. The tests compare that list
 * with config_keys[] both ways and name every key that is missing from the
 * page, documented but not accepted, documented twice, under the wrong
 * section, or shown with another default.
 *
 * Its RELOADING section lists, in bullets, the keys whose change needs a
 * respawn, new limits or a restart: each key on a `.B key` or `.BR key ,`
 * line before the bullet's phrase (reload_lists[] below). Those lists must
 * be exactly the keys config_keys[] gives that change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

#ifndef DOCS_DIR
#error "DOCS_DIR must be the absolute path of docs/"
#endif

#define CONF_PAGE	DOCS_DIR "/recyclerd.conf.5"
#define SS_DAEMON	".SS \"[recyclerd] section\""
#define SS_POOL		".SS \"[pool NAME] section\""

/* One documented key: where, and the text of its item (roff unescaped). */
struct doc_key {
	char		*section;	/* "recyclerd" or "pool" */
	char		*name;
	int		 line;
	char		*text;		/* the item's lines after the tag */
};

struct page {
	struct doc_key	*keys;
	size_t		 n;
	bool		 seen_daemon, seen_pool;
};

static struct page page;

/* "\-" -> "-", "\&" -> "", "\e" -> "\": enough to compare plain values. */
static char *
roff_plain(const char *s)
{
	char *out = xmalloc(strlen(s) + 1), *w = out;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] == '-') {
			*w++ = '-';
			s += 2;
		} else if (s[0] == '\\' && s[1] == '&') {
			s += 2;
		} else if (s[0] == '\\' && s[1] == 'e') {
			*w++ = '\\';
			s += 2;
		} else
			*w++ = *s++;
	}
	*w = '\0';
	return out;
}

static void
text_append(char **text, const char *line)
{
	char *plain = roff_plain(line), *joined;

	xasprintf(&joined, "%s%s\n", *text ? *text : "", plain);
	free(*text);
	free(plain);
	*text = joined;
}

/* Read the page into page.keys; 0, or -1 if it cannot be opened. */
static int
page_load(void)
{
	const char *section = NULL;
	struct doc_key *cur = NULL;
	bool after_tp = false;
	char *line = NULL;
	size_t size = 0;
	ssize_t len;
	int lineno = 0;
	FILE *f;

	if ((f = fopen(CONF_PAGE, "re")) == NULL)
		return -1;
	while ((len = getline(&line, &size, f)) != -1) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (strncmp(line, ".SH", 3) == 0 || strncmp(line, ".SS", 3) == 0) {
			section = NULL;
			if (strcmp(line, SS_DAEMON) == 0) {
				section = "recyclerd";
				page.seen_daemon = true;
			} else if (strcmp(line, SS_POOL) == 0) {
				section = "pool";
				page.seen_pool = true;
			}
			cur = NULL;
			after_tp = false;
			continue;
		}
		if (section != NULL && after_tp && strncmp(line, ".B ", 3) == 0) {
			page.keys = xrealloc(page.keys,
			    (page.n + 1) * sizeof *page.keys);
			cur = &page.keys[page.n++];
			cur->section = xstrdup(section);
			cur->name = roff_plain(line + 3);
			cur->line = lineno;
			cur->text = NULL;
			after_tp = false;
			continue;
		}
		after_tp = strcmp(line, ".TP") == 0;
		if (cur != NULL)
			text_append(&cur->text, line);
	}
	free(line);
	fclose(f);
	return 0;
}

static int
group_setup(void **state)
{
	(void)state;
	if (page_load() == -1) {
		print_error("cannot open %s\n", CONF_PAGE);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < page.n; i++) {
		free(page.keys[i].section);
		free(page.keys[i].name);
		free(page.keys[i].text);
	}
	free(page.keys);
	return 0;
}

static const struct doc_key *
page_find(const char *name)
{
	size_t i;

	for (i = 0; i < page.n; i++)
		if (strcmp(page.keys[i].name, name) == 0)
			return &page.keys[i];
	return NULL;
}

static const struct config_key *
table_find_key(const char *name)
{
	const struct config_key *k;

	for (k = config_keys; k->name != NULL; k++)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* The page parsed into something: both sections and some keys. */
static void
test_page_form(void **state)
{
	(void)state;
	if (!page.seen_daemon)
		fail_msg("%s: no line %s", CONF_PAGE, SS_DAEMON);
	if (!page.seen_pool)
		fail_msg("%s: no line %s", CONF_PAGE, SS_POOL);
	if (page.n == 0)
		fail_msg("%s: no key (.TP then .B key) under either section",
		    CONF_PAGE);
}

/* Every key config.c accepts is on the page, under its section. */
static void
test_keys_documented(void **state)
{
	const struct config_key *k;
	const struct doc_key *d;
	unsigned int bad = 0;

	(void)state;
	for (k = config_keys; k->name != NULL; k++) {
		if ((d = page_find(k->name)) == NULL) {
			print_error("%s: key %s of [%s] is not documented "
			    "(add .TP and .B %s under the section)\n",
			    CONF_PAGE, k->name, k->section, k->name);
			bad++;
		} else if (strcmp(d->section, k->section) != 0) {
			print_error("%s:%d: key %s is documented under [%s] but "
			    "belongs to [%s]\n", CONF_PAGE, d->line, k->name,
			    d->section, k->section);
			bad++;
		}
	}
	if (bad > 0)
		fail_msg("%u key(s) of config_keys[] missing or misplaced in "
		    "%s", bad, CONF_PAGE);
}

/* Every key on the page is accepted, and documented once. */
static void
test_keys_accepted(void **state)
{
	unsigned int bad = 0;
	size_t i, j;

	(void)state;
	for (i = 0; i < page.n; i++) {
		if (table_find_key(page.keys[i].name) == NULL) {
			print_error("%s:%d: key %s is documented but not "
			    "accepted by the configuration parser\n", CONF_PAGE,
			    page.keys[i].line, page.keys[i].name);
			bad++;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(page.keys[i].name, page.keys[j].name) == 0) {
				print_error("%s:%d: key %s is documented twice "
				    "(first at line %d)\n", CONF_PAGE,
				    page.keys[i].line, page.keys[i].name,
				    page.keys[j].line);
				bad++;
				break;
			}
		}
	}
	if (bad > 0)
		fail_msg("%u key(s) of %s not accepted or repeated", bad,
		    CONF_PAGE);
}

/* "Default: \fBVALUE\fR" is the built-in default, or absent without one. */
static void
test_defaults(void **state)
{
	const struct config_key *k;
	const struct doc_key *d;
	unsigned int bad = 0;
	char *want;

	(void)state;
	for (k = config_keys; k->name != NULL; k++) {
		if ((d = page_find(k->name)) == NULL)
			continue;	/* test_keys_documented says it */
		if (k->def == NULL) {
			if (d->text != NULL &&
			    strstr(d->text, "Default: \\fB") != NULL) {
				print_error("%s:%d: key %s has no built-in "
				    "default, but the page shows one\n",
				    CONF_PAGE, d->line, k->name);
				bad++;
			}
			continue;
		}
		xasprintf(&want, "Default: \\fB%s\\fR", k->def);
		if (d->text == NULL || strstr(d->text, want) == NULL) {
			print_error("%s:%d: key %s: the page must say "
			    "\"%s\" (the default of config.c)\n", CONF_PAGE,
			    d->line, k->name, want);
			bad++;
		}
		free(want);
	}
	if (bad > 0)
		fail_msg("%u default(s) in %s differ from config.c", bad,
		    CONF_PAGE);
}

/* The phrase of each RELOADING bullet, after the keys it lists. */
static const struct {
	const char		*phrase;
	enum config_change	 change;
} reload_lists[] = {
	{ "alters how workers are started", CHANGE_RESPAWN },
	{ "are new limits, applied at once", CHANGE_LIMITS },
	{ "take effect at the next start only", CHANGE_RESTART },
};

#define RELOAD_MAX	64

/*
 * The bold words before the phrase of reload_lists[which] in its bullet of
 * RELOADING, into words[]; their count, or -1 when the phrase is missing.
 */
static int
reload_list(size_t which, char **words, int *lineno)
{
	char *line = NULL, *w;
	size_t size = 0;
	ssize_t len;
	bool in = false;
	int n = 0, found = -1, i;
	FILE *f;

	*lineno = 0;
	if ((f = fopen(CONF_PAGE, "re")) == NULL)
		fail_msg("cannot open %s", CONF_PAGE);
	while (found == -1 && (len = getline(&line, &size, f)) != -1) {
		++*lineno;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (strncmp(line, ".SH", 3) == 0)
			in = strcmp(line, ".SH RELOADING") == 0;
		if (!in)
			continue;
		if (strncmp(line, ".IP", 3) == 0) {
			for (i = 0; i < n; i++)
				free(words[i]);
			n = 0;
		} else if ((strncmp(line, ".B ", 3) == 0 ||
		    strncmp(line, ".BR ", 4) == 0) && n < RELOAD_MAX) {
			w = roff_plain(line + (line[2] == ' ' ? 3 : 4));
			w[strcspn(w, " ")] = '\0';
			words[n++] = w;
		} else if (strstr(line, reload_lists[which].phrase) != NULL)
			found = n;
	}
	free(line);
	fclose(f);
	if (found == -1)
		for (i = 0; i < n; i++)
			free(words[i]);
	return found;
}

/* RELOADING lists exactly the keys of each change config.c gives them. */
static void
test_reload_lists(void **state)
{
	const struct config_key *k;
	char *words[RELOAD_MAX];
	unsigned int bad = 0;
	size_t l;
	int i, n, lineno;
	bool listed;

	(void)state;
	for (l = 0; l < nitems(reload_lists); l++) {
		if ((n = reload_list(l, words, &lineno)) == -1)
			fail_msg("%s: no \"%s\" in RELOADING", CONF_PAGE,
			    reload_lists[l].phrase);
		for (k = config_keys; k->name != NULL; k++) {
			listed = false;
			for (i = 0; i < n; i++)
				listed |= strcmp(words[i], k->name) == 0;
			if (listed == (k->change == reload_lists[l].change))
				continue;
			print_error("%s:%d: key %s %s the list before \"%s\"\n",
			    CONF_PAGE, lineno, k->name, listed ?
			    "must not be in" : "is missing from",
			    reload_lists[l].phrase);
			bad++;
		}
		for (i = 0; i < n; i++) {
			for (k = config_keys; k->name != NULL; k++)
				if (strcmp(words[i], k->name) == 0)
					break;
			if (k->name == NULL) {
				print_error("%s:%d: %s before \"%s\" is no "
				    "key\n", CONF_PAGE, lineno, words[i],
				    reload_lists[l].phrase);
				bad++;
			}
			free(words[i]);
		}
	}
	if (bad > 0)
		fail_msg("%u key(s) misplaced in RELOADING of %s", bad,
		    CONF_PAGE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_form),
		cmocka_unit_test(test_keys_documented),
		cmocka_unit_test(test_keys_accepted),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_reload_lists),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
