/* SPDX-License-Identifier: MIT */
/*
 * fuzz_control.c - libFuzzer target for the control socket's request path:
 * control_split() with its invariants checked, then the whole request
 * (parsing, argument checks, command, JSON encoding) through
 * control_execute() against the in-memory daemon of fake_daemon.c. Every
 * answer must be one line holding one JSON object with a boolean "ok".
 *
 *	clang -fsanitize=fuzzer,address,undefined ... (see Makefile.am)
 *	tests/fuzz/fuzz_control -max_total_time=600 CORPUS_DIR
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "control.h"
#include "fake_daemon.h"

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_control: invariant broken: %s\n", what);
		abort();
	}
}

/* Words are non-empty slices of the line with no separator inside. */
static void
fuzz_split(const char *data, size_t size, int max)
{
	char *line = malloc(size + 1), *words[CONTROL_WORDS_MAX + 1];
	size_t len;
	int n, i;

	memcpy(line, data, size);
	line[size] = '\0';
	len = strlen(line);
	n = control_split(line, words, max);
	check(n >= -1 && n <= max, "word count within [-1, max]");
	for (i = 0; i < n; i++) {
		check(words[i] >= line && words[i] < line + len, "word in line");
		check(*words[i] != '\0', "word not empty");
		check(strpbrk(words[i], " \t\r\n") == NULL, "no separator");
	}
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct recyclerd *rd;
	struct control_peer peer = { .uid = 0, .pid = 1, .allowed = true };
	json_object *o, *ok;
	char *line, *answer;

	if (rd == NULL)
		rd = fake_daemon_new();
	if (size > CONTROL_LINE_MAX)
		return 0;	/* the server refuses longer lines unread */
	fuzz_split((const char *)data, size, CONTROL_WORDS_MAX);
	fuzz_split((const char *)data, size, size > 0 ? data[0] % 4 : 0);

	/* A leading 0xff byte plays an unauthorised peer. */
	if (size > 0 && data[0] == 0xff) {
		peer.uid = 65534;
		peer.allowed = false;
	}
	line = malloc(size + 1);
	memcpy(line, data, size);
	line[size] = '\0';
	answer = control_execute(rd, &peer, line);
	free(line);
	check(strchr(answer, '\n') == NULL, "answer on one line");
	o = json_tokener_parse(answer);
	check(o != NULL && json_object_is_type(o, json_type_object),
	    "answer is a JSON object");
	check(json_object_object_get_ex(o, "ok", &ok) &&
	    json_object_is_type(ok, json_type_boolean), "answer has ok");
	if (!json_object_get_boolean(ok))
		check(json_object_object_get_ex(o, "error", NULL),
		    "a failure has an error");
	json_object_put(o);
	free(answer);
	return 0;
}
