/*
 * calls.CallState as a C record (the type is `_calls.CallState`, made in _calls.c; calls.py's dataclass is its
 * specification and the pure-Python build's). Its times are doubles and its first keys are held in the record:
 * a CDR row is a call of its own, and each call's float objects and list of keys were made, read back through
 * PyFloat_AsDouble in three modules, and freed an hour later, cold, with the call. _rules.c and _learned.c read
 * the same record through this header, once the type they were given is checked to be this one (`is_call_type`).
 */
#ifndef SIPWATCH_CALLSTATE_H
#define SIPWATCH_CALLSTATE_H

#include <Python.h>
#include <string.h>

enum { CALL_KEYS = 3 };                                   /* keys held in the record; any more go to a list */
enum { HAS_ANSWER = 1, HAS_END = 2, HAS_BILLSEC = 4 };   /* which optional times are known (else None) */

typedef struct {
    PyObject_HEAD
    PyObject *account, *number, *classified, *disposition, *ip, *record;  /* objects, None when unknown */
    PyObject *key[CALL_KEYS];  /* the call's first keys, in the order they came (NULL: no more) */
    PyObject *more_keys;       /* a list of the keys beyond CALL_KEYS, or NULL */
    double start, answer, end, billsec, learned_minutes;
    long judged;
    int known;                 /* HAS_ANSWER | HAS_END | HAS_BILLSEC */
} CallStateObject;

#define CALL_STATE_NAME "sipwatch._calls.CallState"
#define CALL_MAX_OPEN (12 * 3600.0)  /* calls.MAX_OPEN (a test holds them equal) */

/* Made in _callstate.c, part of the _calls module (the other modules are given the type and check it). */
extern PyTypeObject CallStateType;
CallStateObject *call_state_new(PyObject *account, double start);  /* tracked, its other fields None or none */
int call_has_key(const CallStateObject *c, PyObject *key);         /* 1, 0, or -1 with an error */
int call_add_key(CallStateObject *c, PyObject *key);               /* appended, 0; or -1 with an error */
Py_ssize_t call_key_count(const CallStateObject *c);
PyObject *call_key(const CallStateObject *c, Py_ssize_t k);        /* borrowed; k < call_key_count(c) */

/* Whether `type` is _calls.CallState (the layout above), as given to a module that reads calls. */
static inline int is_call_type(PyTypeObject *type) {
    return type->tp_basicsize == (Py_ssize_t)sizeof(CallStateObject) && strcmp(type->tp_name, CALL_STATE_NAME) == 0;
}

/* CallState.answered */
static inline int call_answered(const CallStateObject *c) {
    return (c->known & HAS_ANSWER) || ((c->known & HAS_BILLSEC) && c->billsec != 0.0);
}

/* CallState.talk(now): the CDR's billsec once known, else since the answer. */
static inline double call_talk(const CallStateObject *c, double now) {
    if (c->known & HAS_BILLSEC) return c->billsec;
    if (!(c->known & HAS_ANSWER)) return 0.0;
    double spent = ((c->known & HAS_END) ? c->end : now) - c->answer;
    return spent > 0.0 ? spent : 0.0;
}

#endif
