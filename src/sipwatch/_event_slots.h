/*
 * Where the fields of event.Event (a dataclass with slots) live in its instances, for the C parts that
 * build events (_drain.c) or read them (_core.c) slot by slot; the fields of other slotted classes
 * (CallState, Profile, _Tracked: _calls.c, _learned.c, _rules.c); and the module setup these C parts share.
 * If Event's slots differ from this list, `event_slots` says so and the callers fall back to Python.
 */
#ifndef SIPWATCH_EVENT_SLOTS_H
#define SIPWATCH_EVENT_SLOTS_H
#include <Python.h>
#include <structmember.h>

/* The fields of event.Event (a dataclass with slots), in the order of its __slots__: an Event is built here
 * by filling its slots directly, as its __init__ would. If Event's slots differ, `event_of` builds them. */
static const char *const EVENT_FIELDS[] = {"time", "kind", "service", "ip", "port", "transport", "account", "target",
                                     "user_agent", "evidence", "file", "line", "raw", "form", "session", "reason",
                                     "extra", "repeat", "blocked", "call", NULL};
enum { F_TIME, F_KIND, F_SERVICE, F_IP, F_PORT, F_TRANSPORT, F_ACCOUNT, F_TARGET, F_UA, F_EVIDENCE, F_FILE, F_LINE,
       F_RAW, F_FORM, F_SESSION, F_REASON, F_EXTRA, F_REPEAT, F_BLOCKED, F_CALL, N_FIELDS };

/* Where each of `n` named fields lives in instances of `type` (a dataclass with slots, in this order);
 * 0 when its slots are not these. */
static inline int named_slots(PyTypeObject *type, const char *const *fields, int n, Py_ssize_t *offsets) {
    PyObject *slots = PyObject_GetAttrString((PyObject *)type, "__slots__");
    if (slots == NULL) { PyErr_Clear(); return 0; }
    int ok = PyTuple_Check(slots) && PyTuple_GET_SIZE(slots) == n;
    for (int i = 0; ok && i < n; i++) {
        ok = PyUnicode_Check(PyTuple_GET_ITEM(slots, i))
             && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(slots, i), fields[i]) == 0;
        PyObject *descr = ok ? PyObject_GetAttrString((PyObject *)type, fields[i]) : NULL;
        if (descr == NULL) { PyErr_Clear(); ok = 0; break; }
        ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX;
        if (ok) offsets[i] = ((PyMemberDescrObject *)descr)->d_member->offset;
        Py_DECREF(descr);
    }
    Py_DECREF(slots);
    return ok && (type->tp_flags & Py_TPFLAGS_HAVE_GC);
}

/* Where the field `name` lives in instances of `type` (a class with __slots__), or -1. */
static inline Py_ssize_t member_offset(PyTypeObject *type, const char *name) {
    PyObject *descr = PyObject_GetAttrString((PyObject *)type, name);
    if (descr == NULL) { PyErr_Clear(); return -1; }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type) && ((PyMemberDescrObject *)descr)->d_member->type == T_OBJECT_EX)
        offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    Py_DECREF(descr);
    return offset;
}

/* Where each of Event's fields lives in its instances; 0 when `type` is not the Event this file knows. */
static inline int event_slots(PyTypeObject *type, Py_ssize_t *offsets) {
    return named_slots(type, EVENT_FIELDS, N_FIELDS, offsets);
}


#define SLOT(obj, offset) (*(PyObject **)((char *)(obj) + (offset)))

/* Replace the value of a slot (an Event or CallState field). */
static inline void set_slot(PyObject *obj, Py_ssize_t offset, PyObject *value) {
    PyObject *old = SLOT(obj, offset);
    Py_INCREF(value);
    SLOT(obj, offset) = value;
    Py_XDECREF(old);
}

/* `value += amount` in `value` itself, when nobody else can see it change: `value` is held by its container only
 * (a reference count of 1: not a small int, not a constant, not a number someone else took), and it is an exact
 * float, or an exact int of one digit that stays one (CPython 3.11's layout; later versions add the usual way).
 * 1 when done, 0 when the caller must add the usual way. A count or a sum that goes up a million times no longer
 * makes and frees a million numbers (a tenth of a CDR scan's main process went there). */
static inline int add_in_place(PyObject *value, PyObject *amount) {
    if (Py_REFCNT(value) != 1) return 0;
    if (PyFloat_CheckExact(value) && PyFloat_CheckExact(amount)) {
        ((PyFloatObject *)value)->ob_fval += PyFloat_AS_DOUBLE(amount);
        return 1;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyLong_CheckExact(value) && PyLong_CheckExact(amount) && Py_SIZE(value) == 1 && Py_SIZE(amount) == 1) {
        digit sum = ((PyLongObject *)value)->ob_digit[0] + ((PyLongObject *)amount)->ob_digit[0];
        if (sum <= PyLong_MASK) {
            ((PyLongObject *)value)->ob_digit[0] = sum;
            return 1;
        }
    }
#endif
    return 0;
}

/* counts[key] += amount (a dict of numbers; a missing key counts from 0). 0, or -1 with an error. */
static inline int count_up(PyObject *counts, PyObject *key, PyObject *amount) {
    PyObject *n = PyDict_GetItemWithError(counts, key);  /* borrowed */
    if (n == NULL && PyErr_Occurred()) return -1;
    if (n != NULL && add_in_place(n, amount)) return 0;
    PyObject *more = n ? PyNumber_Add(n, amount) : Py_NewRef(amount);
    if (more == NULL) return -1;
    int rc = PyDict_SetItem(counts, key, more);
    Py_DECREF(more);
    return rc;
}

/* The module of `def` with `type` in it under `name` (the one type of a C part of the scan), or NULL. */
/* Add a type to a module (0, or -1 with an error). */
static inline int add_type(PyObject *m, const char *name, PyTypeObject *type) {
    if (PyType_Ready(type) < 0) return -1;
    Py_INCREF(type);
    if (PyModule_AddObject(m, name, (PyObject *)type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static inline PyObject *module_with_type(PyModuleDef *def, const char *name, PyTypeObject *type) {
    if (PyType_Ready(type) < 0) return NULL;
    PyObject *m = PyModule_Create(def);
    if (m == NULL) return NULL;
    if (add_type(m, name, type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* b `op` a (Py_LT or Py_GT) as Python compares them (1, 0, or -1 with an error), two floats (times, most often)
 * compared here: a generic rich compare costs ~100 instructions. (A NaN compares false, in C as in Python.) */
static inline int compare(PyObject *b, PyObject *a, int op) {
    if (PyFloat_CheckExact(a) && PyFloat_CheckExact(b)) {
        double x = PyFloat_AS_DOUBLE(b), y = PyFloat_AS_DOUBLE(a);
        return op == Py_LT ? x < y : x > y;
    }
    return PyObject_RichCompareBool(b, a, op);
}

/* detectors/base.py's forget_oldest: the `n` oldest keys of a bounded memory (a dict keeps the order its keys
 * came in) go, gathered first (nothing is deleted while the dict is walked). 0, or -1 with an error. */
static inline int forget_oldest(PyObject *dict, Py_ssize_t n) {
    PyObject *gone = PyList_New(0), *key, *value;
    Py_ssize_t pos = 0;
    if (gone == NULL) return -1;
    int rc = 0;
    while (rc == 0 && PyList_GET_SIZE(gone) < n && PyDict_Next(dict, &pos, &key, &value)) rc = PyList_Append(gone, key);
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(gone); i++) rc = PyDict_DelItem(dict, PyList_GET_ITEM(gone, i));
    Py_DECREF(gone);
    return rc;
}

#endif
