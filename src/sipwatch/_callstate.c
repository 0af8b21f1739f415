/*
 * _calls.CallState: calls.CallState (the dataclass, its specification) as a C record (see _callstate.h). To Python
 * it is the dataclass: the same constructor, fields, `answered`, `talk` and `open_at`, equal only to itself; but
 * its `keys` are a tuple, added to with `add_key` (as the dataclass's are), and its times are floats whatever
 * number they were given as.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_callstate.h"

/* The call of one record, put aside with no time known: what CallState() fills in before its arguments. */
static void blank(CallStateObject *c) {
    PyObject **objects[] = {&c->account, &c->number, &c->classified, &c->disposition, &c->ip, &c->record};
    for (size_t i = 0; i < sizeof objects / sizeof *objects; i++) *objects[i] = Py_NewRef(Py_None);
    for (int k = 0; k < CALL_KEYS; k++) c->key[k] = NULL;
    c->more_keys = NULL;
    c->start = c->answer = c->end = c->billsec = c->learned_minutes = 0.0;
    c->judged = 0;
    c->known = 0;
}

CallStateObject *call_state_new(PyObject *account, double start) {
    CallStateObject *c = PyObject_GC_New(CallStateObject, &CallStateType);
    if (c == NULL) return NULL;
    blank(c);
    Py_SETREF(c->account, Py_NewRef(account));
    c->start = start;
    PyObject_GC_Track(c);
    return c;
}

int call_has_key(const CallStateObject *c, PyObject *key) {
    for (int k = 0; k < CALL_KEYS && c->key[k] != NULL; k++) {
        PyObject *held = c->key[k];
        if (held == key) return 1;
        int same = PyObject_RichCompareBool(held, key, Py_EQ);
        if (same != 0) return same;
    }
    return c->more_keys == NULL ? 0 : PySequence_Contains(c->more_keys, key);
}

int call_add_key(CallStateObject *c, PyObject *key) {
    for (int k = 0; k < CALL_KEYS; k++)
        if (c->key[k] == NULL) {
            c->key[k] = Py_NewRef(key);
            return 0;
        }
    if (c->more_keys == NULL && (c->more_keys = PyList_New(0)) == NULL) return -1;
    return PyList_Append(c->more_keys, key);
}

Py_ssize_t call_key_count(const CallStateObject *c) {
    Py_ssize_t n = 0;
    while (n < CALL_KEYS && c->key[n] != NULL) n++;
    return n + (c->more_keys == NULL ? 0 : PyList_GET_SIZE(c->more_keys));
}

PyObject *call_key(const CallStateObject *c, Py_ssize_t k) {
    return k < CALL_KEYS ? c->key[k] : PyList_GET_ITEM(c->more_keys, k - CALL_KEYS);
}

static void clear_keys(CallStateObject *c) {
    for (int k = 0; k < CALL_KEYS; k++) Py_CLEAR(c->key[k]);
    Py_CLEAR(c->more_keys);
}

static int traverse(CallStateObject *c, visitproc visit, void *arg) {
    Py_VISIT(c->account); Py_VISIT(c->number); Py_VISIT(c->classified); Py_VISIT(c->disposition);
    Py_VISIT(c->ip); Py_VISIT(c->record); Py_VISIT(c->more_keys);
    return 0;  /* (the keys are str) */
}

static int clear(CallStateObject *c) {
    Py_CLEAR(c->account); Py_CLEAR(c->number); Py_CLEAR(c->classified); Py_CLEAR(c->disposition);
    Py_CLEAR(c->ip); Py_CLEAR(c->record);
    clear_keys(c);
    return 0;
}

static void dealloc(CallStateObject *c) {
    PyObject_GC_UnTrack(c);
    Py_TRASHCAN_BEGIN(c, dealloc)
    clear(c);
    PyObject_GC_Del(c);
    Py_TRASHCAN_END
}

/* A number given for a time, as a double (-1 with an error). */
static int time_of(PyObject *value, double *out, const char *name) {
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "CallState.%s cannot be deleted", name);
        return -1;
    }
    *out = PyFloat_AsDouble(value);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* An optional time (None: unknown), its bit in `known` set or cleared. */
static int set_optional(CallStateObject *c, PyObject *value, double *field, int bit, const char *name) {
    if (value == Py_None) {
        c->known &= ~bit;
        *field = 0.0;
        return 0;
    }
    if (time_of(value, field, name) < 0) return -1;
    c->known |= bit;
    return 0;
}

static PyObject *get_optional(const CallStateObject *c, double value, int bit) {
    if (!(c->known & bit)) Py_RETURN_NONE;
    return PyFloat_FromDouble(value);
}

static int set_keys(CallStateObject *c, PyObject *keys) {
    if (keys == NULL) {
        PyErr_SetString(PyExc_AttributeError, "CallState.keys cannot be deleted");
        return -1;
    }
    PyObject *items = PySequence_Fast(keys, "CallState.keys: an iterable of str");
    if (items == NULL) return -1;
    clear_keys(c);
    int rc = 0;
    for (Py_ssize_t k = 0; rc == 0 && k < PySequence_Fast_GET_SIZE(items); k++)
        rc = call_add_key(c, PySequence_Fast_GET_ITEM(items, k));
    Py_DECREF(items);
    return rc;
}

/* CallState(account, start, number=None, classified=None, answer=None, end=None, billsec=None, disposition=None,
 *           ip=None, record=None, keys=(), judged=0, learned_minutes=0.0) */
static PyObject *call_state_create(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *names[] = {"account", "start", "number", "classified", "answer", "end", "billsec", "disposition",
                            "ip", "record", "keys", "judged", "learned_minutes", NULL};
    PyObject *account, *start, *number = Py_None, *classified = Py_None, *answer = Py_None, *end = Py_None;
    PyObject *billsec = Py_None, *disposition = Py_None, *ip = Py_None, *record = Py_None, *keys = NULL;
    long judged = 0;
    double learned = 0.0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOOOOOOOOld:CallState", names, &account, &start, &number,
                                     &classified, &answer, &end, &billsec, &disposition, &ip, &record, &keys,
                                     &judged, &learned))
        return NULL;
    CallStateObject *c = (CallStateObject *)type->tp_alloc(type, 0);
    if (c == NULL) return NULL;
    blank(c);
    Py_SETREF(c->account, Py_NewRef(account));
    Py_SETREF(c->number, Py_NewRef(number));
    Py_SETREF(c->classified, Py_NewRef(classified));
    Py_SETREF(c->disposition, Py_NewRef(disposition));
    Py_SETREF(c->ip, Py_NewRef(ip));
    Py_SETREF(c->record, Py_NewRef(record));
    c->judged = judged;
    c->learned_minutes = learned;
    if (time_of(start, &c->start, "start") < 0 || set_optional(c, answer, &c->answer, HAS_ANSWER, "answer") < 0
        || set_optional(c, end, &c->end, HAS_END, "end") < 0
        || set_optional(c, billsec, &c->billsec, HAS_BILLSEC, "billsec") < 0
        || (keys != NULL && set_keys(c, keys) < 0)) {
        Py_DECREF(c);
        return NULL;
    }
    return (PyObject *)c;
}

/* The object fields: read as they are, set to anything (as the dataclass's), never deleted. */
#define OBJECT_FIELD(name)                                                                          \
    static PyObject *get_##name(CallStateObject *c, void *unused) { return Py_NewRef(c->name); }   \
    static int set_##name(CallStateObject *c, PyObject *value, void *unused) {                     \
        if (value == NULL) {                                                                        \
            PyErr_SetString(PyExc_AttributeError, "CallState." #name " cannot be deleted");        \
            return -1;                                                                              \
        }                                                                                           \
        Py_SETREF(c->name, Py_NewRef(value));                                                       \
        return 0;                                                                                   \
    }
OBJECT_FIELD(account)
OBJECT_FIELD(number)
OBJECT_FIELD(classified)
OBJECT_FIELD(disposition)
OBJECT_FIELD(ip)
OBJECT_FIELD(record)

#define OPTIONAL_TIME(name, bit)                                                                    \
    static PyObject *get_##name(CallStateObject *c, void *unused) { return get_optional(c, c->name, bit); } \
    static int set_##name(CallStateObject *c, PyObject *value, void *unused) {                     \
        return set_optional(c, value, &c->name, bit, #name);                                       \
    }
OPTIONAL_TIME(answer, HAS_ANSWER)
OPTIONAL_TIME(end, HAS_END)
OPTIONAL_TIME(billsec, HAS_BILLSEC)

static PyObject *get_start(CallStateObject *c, void *unused) { return PyFloat_FromDouble(c->start); }
static int set_start(CallStateObject *c, PyObject *value, void *unused) { return time_of(value, &c->start, "start"); }
static PyObject *get_learned(CallStateObject *c, void *unused) { return PyFloat_FromDouble(c->learned_minutes); }
static int set_learned(CallStateObject *c, PyObject *value, void *unused) {
    return time_of(value, &c->learned_minutes, "learned_minutes");
}
static PyObject *get_judged(CallStateObject *c, void *unused) { return PyLong_FromLong(c->judged); }
static int set_judged(CallStateObject *c, PyObject *value, void *unused) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "CallState.judged cannot be deleted");
        return -1;
    }
    long judged = PyLong_AsLong(value);
    if (judged == -1 && PyErr_Occurred()) return -1;
    c->judged = judged;
    return 0;
}

static PyObject *get_keys(CallStateObject *c, void *unused) {
    Py_ssize_t n = call_key_count(c);
    PyObject *keys = PyTuple_New(n);
    if (keys == NULL) return NULL;
    for (Py_ssize_t k = 0; k < n; k++) PyTuple_SET_ITEM(keys, k, Py_NewRef(call_key(c, k)));
    return keys;
}
static int set_keys_attribute(CallStateObject *c, PyObject *value, void *unused) { return set_keys(c, value); }

static PyObject *get_answered(CallStateObject *c, void *unused) { return PyBool_FromLong(call_answered(c)); }

#define FIELD(name, doc) {#name, (getter)get_##name, (setter)set_##name, doc, NULL}
static PyGetSetDef getset[] = {
    FIELD(account, NULL), FIELD(start, "when the call began (a float)"), FIELD(number, NULL), FIELD(classified, NULL),
    FIELD(answer, NULL), FIELD(end, NULL), FIELD(billsec, NULL), FIELD(disposition, NULL), FIELD(ip, NULL),
    FIELD(record, NULL), FIELD(judged, NULL),
    {"learned_minutes", (getter)get_learned, (setter)set_learned, NULL, NULL},
    {"keys", (getter)get_keys, (setter)set_keys_attribute, "the call's keys, as a tuple (add_key adds one)", NULL},
    {"answered", (getter)get_answered, NULL, "CallState.answered", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *add_key(CallStateObject *c, PyObject *key) {
    int known = call_has_key(c, key);
    if (known < 0 || (!known && call_add_key(c, key) < 0)) return NULL;
    Py_RETURN_NONE;
}

static PyObject *talk(CallStateObject *c, PyObject *now) {
    double at;
    if (time_of(now, &at, "talk") < 0) return NULL;
    return PyFloat_FromDouble(call_talk(c, at));
}

static PyObject *open_at(CallStateObject *c, PyObject *when) {
    double at;
    if (time_of(when, &at, "open_at") < 0) return NULL;
    return PyBool_FromLong(c->start <= at && (!(c->known & HAS_END) || at < c->end) && at - c->start < CALL_MAX_OPEN);
}

static PyMethodDef methods[] = {
    {"add_key", (PyCFunction)add_key, METH_O, "Add a key the call is known by, unless it has it."},
    {"talk", (PyCFunction)talk, METH_O, "Seconds talked (billed) by `now`: the CDR's billsec once known, else since "
                                        "the answer."},
    {"open_at", (PyCFunction)open_at, METH_O, "Whether the call was open at `when`."},
    {NULL, NULL, 0, NULL},
};

static PyObject *repr(CallStateObject *c) {
    PyObject *start = PyFloat_FromDouble(c->start);
    PyObject *text = start ? PyUnicode_FromFormat("CallState(account=%R, start=%R, number=%R)", c->account, start,
                                                  c->number) : NULL;
    Py_XDECREF(start);
    return text;
}

PyTypeObject CallStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = CALL_STATE_NAME,
    .tp_basicsize = sizeof(CallStateObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = call_state_create,
    .tp_dealloc = (destructor)dealloc,
    .tp_traverse = (traverseproc)traverse,
    .tp_clear = (inquiry)clear,
    .tp_getset = getset,
    .tp_methods = methods,
    .tp_repr = (reprfunc)repr,
    .tp_doc = "One call, as far as its records have told (calls.CallState, in C).",
};
