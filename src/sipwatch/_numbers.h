/* The dialled numbers that need no phonenumbers (see _numbers.c and NumberClassifier._work_out in numbers.py). */
#ifndef SIPWATCH_NUMBERS_H
#define SIPWATCH_NUMBERS_H

#include <Python.h>

#define PLAIN_PREFIXES 8   /* international prefixes, and outside-line codes, at most (more: Python's turn) */
#define PLAIN_PREFIX_LEN 8 /* characters of one, at most */

/* What `_work_out` of a number tells without phonenumbers: an extension, a number with no international prefix
 * and no country configured ("unknown"), or Python's turn (an international number, a national one to parse, a
 * text other than digits, `+`, `*` and `#`). */
enum { PLAIN_PYTHON = -1, PLAIN_EXTENSION = 0, PLAIN_UNKNOWN = 1 };

typedef struct {
    int enabled;
    int has_country;
    Py_ssize_t internal_digits;
    int n_intl, n_access;
    char intl[PLAIN_PREFIXES][PLAIN_PREFIX_LEN], access[PLAIN_PREFIXES][PLAIN_PREFIX_LEN];
    int intl_len[PLAIN_PREFIXES], access_len[PLAIN_PREFIXES];
} PlainRules;

/* The rules of `spec`: (the classifier's `intl`, its `access`, `internal_digits`, whether it has a country), its
 * prefixes in its order (longest first), or None (never enabled). 0, or -1 with an error; prefixes it cannot hold
 * leave it disabled. */
int plain_rules_of(PyObject *spec, PlainRules *rules);

/* PLAIN_EXTENSION, PLAIN_UNKNOWN or PLAIN_PYTHON for a dialled text (any object: not a str is Python's). */
int plain_kind(const PlainRules *rules, PyObject *dialled);

/* The fields (`Classified.to_tuple()`'s, borrowed) of a number of kind PLAIN_EXTENSION or PLAIN_UNKNOWN. */
void plain_fields(PyObject *dialled, int kind, PyObject *fields[8]);

#endif
