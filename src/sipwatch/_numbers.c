/*
 * The dialled numbers that need no phonenumbers, told apart in C: `NumberClassifier._work_out` (numbers.py, the
 * specification) answers an extension (a short number with no `+`) and, where no country is configured, a number
 * with no international prefix ("unknown") from the text alone, before it parses anything. Most numbers of a CDR
 * file are one or the other, and each is distinct: a parse worker spent ~1 us a number in Python on those steps,
 * and the main process filed, looked up and dropped each one's classification that the worker sent. Here both
 * tell them in ~50 ns and the worker sends none of them (see `_calls.worked_out` and the call book's `classify`).
 * Only a text of ASCII digits, `+`, `*` and `#` is told here (nothing to strip or drop from it); anything else
 * is Python's. A test holds the answers to `_work_out`'s on random texts and settings.
 */
#include "_numbers.h"

static PyObject *s_extension, *s_unknown;

/* A prefix of a tuple of str (ASCII, short) copied into `into`: 0, 1 when it cannot be held, -1 with an error */
static int prefixes_of(PyObject *tuple, char into[][PLAIN_PREFIX_LEN], int *lengths, int *count) {
    if (!PyTuple_Check(tuple)) {
        PyErr_SetString(PyExc_TypeError, "plain numbers: the prefixes are a tuple of str");
        return -1;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tuple);
    if (n > PLAIN_PREFIXES) return 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *prefix = PyTuple_GET_ITEM(tuple, i);
        if (!PyUnicode_Check(prefix)) {
            PyErr_SetString(PyExc_TypeError, "plain numbers: the prefixes are a tuple of str");
            return -1;
        }
        Py_ssize_t len = PyUnicode_GET_LENGTH(prefix);
        if (!PyUnicode_IS_COMPACT_ASCII(prefix) || len > PLAIN_PREFIX_LEN) return 1;
        memcpy(into[i], PyUnicode_1BYTE_DATA(prefix), (size_t)len);
        lengths[i] = (int)len;
    }
    *count = (int)n;
    return 0;
}

int plain_rules_of(PyObject *spec, PlainRules *rules) {
    memset(rules, 0, sizeof(*rules));
    if (s_extension == NULL) {
        s_extension = PyUnicode_InternFromString("extension");
        s_unknown = PyUnicode_InternFromString("unknown");
        if (s_extension == NULL || s_unknown == NULL) return -1;
    }
    if (spec == Py_None) return 0;
    PyObject *intl, *access;
    int has_country;
    if (!PyArg_ParseTuple(spec, "OOnp", &intl, &access, &rules->internal_digits, &has_country)) return -1;
    rules->has_country = has_country;
    int rc = prefixes_of(intl, rules->intl, rules->intl_len, &rules->n_intl);
    if (rc == 0) rc = prefixes_of(access, rules->access, rules->access_len, &rules->n_access);
    if (rc < 0) return -1;
    rules->enabled = rc == 0;
    return 0;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* An international prefix of `rules` at the start of s[0:n], 7 characters or more after it, then `+`s, then
 * digits to the end: the international form's regex (`_international_regex`) matches from here. */
static int after_prefix(const PlainRules *rules, const char *s, Py_ssize_t n) {
    for (int i = 0; i < rules->n_intl; i++) {
        Py_ssize_t len = rules->intl_len[i], at = len;
        if (n - len < 7 || memcmp(s, rules->intl[i], (size_t)len) != 0) continue;
        while (at < n && s[at] == '+') at++;
        if (at == n) continue;
        while (at < n && is_digit(s[at])) at++;
        if (at == n) return 1;
    }
    return 0;
}

/* The text dialled with an international prefix, directly or after an outside-line code (`_international_form`) */
static int international(const PlainRules *rules, const char *s, Py_ssize_t n) {
    if (after_prefix(rules, s, n)) return 1;
    for (int i = 0; i < rules->n_access; i++) {
        Py_ssize_t len = rules->access_len[i];
        if (n >= len && memcmp(s, rules->access[i], (size_t)len) == 0 && after_prefix(rules, s + len, n - len))
            return 1;
    }
    return 0;
}

int plain_kind(const PlainRules *rules, PyObject *dialled) {
    if (!rules->enabled || !PyUnicode_CheckExact(dialled) || !PyUnicode_IS_COMPACT_ASCII(dialled))
        return PLAIN_PYTHON;
    Py_ssize_t n = PyUnicode_GET_LENGTH(dialled);
    const char *s = (const char *)PyUnicode_1BYTE_DATA(dialled);
    if (n == 0) return PLAIN_PYTHON;
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_digit(s[i]) && s[i] != '+' && s[i] != '*' && s[i] != '#') return PLAIN_PYTHON;
    if (s[0] != '+' && n <= rules->internal_digits) return PLAIN_EXTENSION;
    if (international(rules, s, n)) return PLAIN_PYTHON;
    return rules->has_country ? PLAIN_PYTHON : PLAIN_UNKNOWN;
}

void plain_fields(PyObject *dialled, int kind, PyObject *fields[8]) {
    int extension = kind == PLAIN_EXTENSION;
    PyObject *values[8] = {dialled, Py_None, Py_None, extension ? s_extension : s_unknown, Py_False, Py_None,
                           Py_None, extension ? Py_True : Py_False};
    memcpy(fields, values, sizeof(values));
}
