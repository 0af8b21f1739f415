/*
 * Address hashes read in C (see sipwatch/netaddr.py, `_CachedHash`). netaddr's address classes compute their
 * hash once and keep it in a `_hash` slot, but a hash defined in Python costs a Python call each time a dict
 * keyed by address is asked: the detectors, the tally and the merge loop ask about 760,000 times in a scan of
 * a million attack lines. `read_hash_in_c(cls)` makes the class's hash slot read that `_hash` slot directly:
 * the same value (`hash(addr) == ipaddress's hash of the same address`), no Python frame. A value that is not
 * there yet, or an unexpected one, goes to the class's own Python `__hash__`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define MAX_CLASSES 4

static PyTypeObject *classes[MAX_CLASSES];
static Py_ssize_t offsets[MAX_CLASSES];
static int nclasses;
static PyObject *s_hash_method;

static Py_hash_t python_hash(PyObject *self) {  /* what slot_tp_hash does: the class's own __hash__ */
    PyObject *value = PyObject_CallMethodNoArgs(self, s_hash_method);
    if (value == NULL) return -1;
    Py_hash_t h = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    if (h == -1 && PyErr_Occurred()) return -1;
    return h == -1 ? -2 : h;
}

static Py_hash_t cached_hash(PyObject *self) {
    for (int i = 0; i < nclasses; i++) {
        if (Py_TYPE(self) != classes[i]) continue;
        PyObject *value = *(PyObject **)((char *)self + offsets[i]);
        if (value == NULL || !PyLong_CheckExact(value)) break;
        Py_hash_t h = PyLong_AsSsize_t(value);
        if (h == -1 && PyErr_Occurred()) { PyErr_Clear(); break; }
        return h == -1 ? -2 : h;
    }
    return python_hash(self);
}

/* read_hash_in_c(cls): cls (a heap type with a `_hash` slot and a Python __hash__ returning it) hashes in C. */
static PyObject *read_hash_in_c(PyObject *module, PyObject *cls) {
    (void)module;
    if (!PyType_Check(cls) || !(((PyTypeObject *)cls)->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        PyErr_SetString(PyExc_TypeError, "read_hash_in_c() takes a class defined in Python");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)cls;
    for (int i = 0; i < nclasses; i++)
        if (classes[i] == type) Py_RETURN_NONE;
    PyObject *slot = PyDict_GetItemString(type->tp_dict, "_hash");
    if (slot == NULL || !Py_IS_TYPE(slot, &PyMemberDescr_Type)
        || ((PyMemberDescrObject *)slot)->d_member->type != T_OBJECT_EX) {
        PyErr_SetString(PyExc_TypeError, "the class has no `_hash` slot");
        return NULL;
    }
    if (nclasses == MAX_CLASSES) { PyErr_SetString(PyExc_ValueError, "too many classes"); return NULL; }
    Py_INCREF(cls);  /* kept for the module's life */
    classes[nclasses] = type;
    offsets[nclasses] = ((PyMemberDescrObject *)slot)->d_member->offset;
    nclasses++;
    type->tp_hash = cached_hash;
    PyType_Modified(type);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"read_hash_in_c", read_hash_in_c, METH_O, "Make a class's hash read its `_hash` slot in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_addr", "Address hashes read in C (see sipwatch/netaddr.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__addr(void) {
    if ((s_hash_method = PyUnicode_InternFromString("__hash__")) == NULL) return NULL;
    return PyModule_Create(&moduledef);
}
