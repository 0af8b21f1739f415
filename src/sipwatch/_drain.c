/*
 * The parallel scan's merge loop in C (sipwatch/parallel.py, `drain`): for each wire tuple a parse worker
 * sent, in file order, count it in the scan's tally (tally.py, `Tally.count`), skip it when the firewall
 * would have dropped it (pipeline.py, `Pipeline.is_blocked`), and otherwise build its Event
 * (formats/wire.py, `event_of`) for the pipeline. Most events of an attack come from addresses banned
 * already: they never reach Python code. The Python loop in parallel.py is the specification; the tests
 * compare both on whole scans.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#define MAX_KIND 256

#include "_event_slots.h"

typedef struct {
    PyObject_HEAD
    PyObject *wires;      /* list of wire tuples */
    Py_ssize_t pos;
    long skip, base;      /* lines up to `skip` were swallowed by the previous buffer's last record */
    double last_time;
    long skipped;
    PyObject *file, *ips, *ip_func, *tally, *kinds_counter, *offenders, *banned, *kinds, *services;
    PyObject *event_of, *offender_func;
    PyTypeObject *event_type, *call_type;  /* NULL: build events through event_of */
    PyObject *evidences, *empty;
    PyObject *take;       /* the C core's take(event) (core.py), or NULL: every event goes to the pipeline */
    PyObject *nets, *net_blocked;  /* Policy.banned_nets and .banned_network(ip, time), or NULL */
    Py_ssize_t offsets[N_FIELDS];
    unsigned char counted[MAX_KIND];
    long kind_counts[MAX_KIND];  /* this buffer's events by kind, added to tally.kinds at its end ... */
    unsigned char kind_order[MAX_KIND];  /* ... in the order they first came (a Counter keeps that order) */
    int nkinds_seen, kinds_flushed;
    long strong;
} Drain;

/* tally.Offender's fields, in the order of its __slots__: an offender's counts are read and written slot by
 * slot. If its slots differ, this module does not load and the scan merges in Python. */
static const char *const OFFENDER_FIELDS[] = {"ip", "events", "kinds", "accounts", "targets", "services", "first",
                                              "last", "strong", "decisions", "more_decisions", "queue", NULL};
enum { O_IP, O_EVENTS, O_KINDS, O_ACCOUNTS, O_TARGETS, O_SERVICES, O_FIRST, O_LAST, O_STRONG, O_DECISIONS,
       O_MORE, O_QUEUE, N_OFFENDER };
static Py_ssize_t offender_offsets[N_OFFENDER];
static PyTypeObject *offender_type;

static PyObject *s_time, *one;
static Py_ssize_t max_distinct;  /* tally.MAX_DISTINCT */

static int flush_kinds(Drain *d);

static void drain_dealloc(Drain *d) {
    if (d->kinds_counter != NULL && d->kinds != NULL) {  /* a Drain left before its end keeps its counts */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (flush_kinds(d) < 0) PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(d->wires); Py_XDECREF(d->file); Py_XDECREF(d->ips); Py_XDECREF(d->ip_func); Py_XDECREF(d->tally);
    Py_XDECREF(d->kinds_counter); Py_XDECREF(d->offenders); Py_XDECREF(d->banned);
    Py_XDECREF(d->kinds); Py_XDECREF(d->services); Py_XDECREF(d->event_of); Py_XDECREF(d->offender_func);
    Py_XDECREF(d->event_type); Py_XDECREF(d->call_type); Py_XDECREF(d->evidences);
    Py_XDECREF(d->empty); Py_XDECREF(d->take); Py_XDECREF(d->nets); Py_XDECREF(d->net_blocked);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

/* Drain(wires, skip, base, last_time, file, ips, ip, tally, banned, counted, strong, kinds, services,
 *       event_of[, event_type, call_type, evidences, take, nets, net_blocked]) */
static int drain_init(Drain *d, PyObject *args, PyObject *kw) {
    PyObject *wires, *file, *ips, *ip_func, *tally, *banned, *counted, *kinds, *services, *event_of;
    PyObject *event_type = NULL, *call_type = NULL, *evidences = NULL, *take = Py_None, *nets = NULL, *net_blocked = NULL;
    long skip, base, strong;
    double last_time;
    (void)kw;
    if (!PyArg_ParseTuple(args, "O!lldUO!OOO!OlO!O!O|O!O!O!OO!O", &PyList_Type, &wires, &skip, &base, &last_time, &file,
                          &PyDict_Type, &ips, &ip_func, &tally, &PyDict_Type, &banned, &counted, &strong,
                          &PyList_Type, &kinds, &PyList_Type, &services, &event_of,
                          &PyType_Type, &event_type, &PyType_Type, &call_type, &PyList_Type, &evidences, &take,
                          &PyDict_Type, &nets, &net_blocked))
        return -1;
    if (nets != NULL && net_blocked != NULL) {
        d->nets = nets; Py_INCREF(nets);
        d->net_blocked = net_blocked; Py_INCREF(net_blocked);
    }
    if (event_type != NULL && call_type != NULL && evidences != NULL
        && PyType_IsSubtype((PyTypeObject *)call_type, &PyTuple_Type)
        && event_slots((PyTypeObject *)event_type, d->offsets)) {
        d->event_type = (PyTypeObject *)event_type; Py_INCREF(event_type);
        d->call_type = (PyTypeObject *)call_type; Py_INCREF(call_type);
        d->evidences = evidences; Py_INCREF(evidences);
        if ((d->empty = PyUnicode_FromString("")) == NULL) return -1;
    }
    if (take != Py_None && d->event_type != NULL) { d->take = take; Py_INCREF(take); }
    memset(d->counted, 0, sizeof(d->counted));
    memset(d->kind_counts, 0, sizeof(d->kind_counts));
    d->nkinds_seen = d->kinds_flushed = 0;
    PyObject *it = PyObject_GetIter(counted);
    if (it == NULL) return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        long v = PyLong_AsLong(item);
        Py_DECREF(item);
        if (v < 0 || v >= MAX_KIND) { Py_DECREF(it); PyErr_SetString(PyExc_ValueError, "kind index out of range"); return -1; }
        d->counted[v] = 1;
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return -1;
    d->kinds_counter = PyObject_GetAttrString(tally, "kinds");
    d->offenders = PyObject_GetAttrString(tally, "offenders");
    d->offender_func = PyObject_GetAttrString(tally, "offender");
    if (!d->kinds_counter || !d->offenders || !d->offender_func) return -1;
    if (!PyDict_Check(d->kinds_counter) || !PyDict_Check(d->offenders)) {
        PyErr_SetString(PyExc_TypeError, "a tally of the wrong shape");
        return -1;
    }
    d->wires = wires; Py_INCREF(wires);
    d->file = file; Py_INCREF(file);
    d->ips = ips; Py_INCREF(ips);
    d->ip_func = ip_func; Py_INCREF(ip_func);
    d->tally = tally; Py_INCREF(tally);
    d->banned = banned; Py_INCREF(banned);
    d->kinds = kinds; Py_INCREF(kinds);
    d->services = services; Py_INCREF(services);
    d->event_of = event_of; Py_INCREF(event_of);
    d->skip = skip; d->base = base; d->last_time = last_time; d->strong = strong;
    d->pos = 0; d->skipped = 0;
    return 0;
}

static int add_to_offender(Drain *d, PyObject *offender, PyObject *when, PyObject *kind_obj, PyObject *w);

/* Tally.count, step for step, but an offender counts each event at once (no queue to flush). */
static int count(Drain *d, PyObject *address, PyObject *when, PyObject *w, long kind) {
    PyObject *kind_obj = PyList_GET_ITEM(d->kinds, kind);
    if (d->kind_counts[kind]++ == 0) d->kind_order[d->nkinds_seen++] = (unsigned char)kind;
    if (address == Py_None || !d->counted[kind]) return 0;
    PyObject *offender = PyDict_GetItemWithError(d->offenders, address);
    if (offender == NULL) {
        if (PyErr_Occurred()) return -1;
        offender = PyObject_CallOneArg(d->offender_func, address);  /* creates and files it */
        if (offender == NULL) return -1;
        Py_DECREF(offender);
        offender = PyDict_GetItemWithError(d->offenders, address);
        if (offender == NULL) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "offender"); return -1; }
    }
    if (Py_TYPE(offender) != offender_type) { PyErr_SetString(PyExc_TypeError, "not a tally.Offender"); return -1; }
    return add_to_offender(d, offender, when, kind_obj, w);
}

/* Add this buffer's counts by kind to tally.kinds (once, when the buffer is done). */
static int flush_kinds(Drain *d) {
    if (d->kinds_flushed) return 0;
    d->kinds_flushed = 1;
    for (int i = 0; i < d->nkinds_seen; i++) {
        int k = d->kind_order[i];
        if (!d->kind_counts[k]) continue;
        PyObject *kind_obj = PyList_GET_ITEM(d->kinds, k);
        PyObject *n = PyDict_GetItemWithError(d->kinds_counter, kind_obj);
        if (n == NULL && PyErr_Occurred()) return -1;
        PyObject *add = PyLong_FromLong(d->kind_counts[k]);
        PyObject *more = add == NULL ? NULL : n ? PyNumber_Add(n, add) : (Py_INCREF(add), add);
        Py_XDECREF(add);
        if (more == NULL) return -1;
        int rc = PyDict_SetItem(d->kinds_counter, kind_obj, more);
        Py_DECREF(more);
        if (rc < 0) return -1;
        d->kind_counts[k] = 0;
    }
    return 0;
}

/* dict[key] += 1 (a Counter's item). */
static int increment(PyObject *dict, PyObject *key) {
    PyObject *n = PyDict_GetItemWithError(dict, key);
    if (n == NULL && PyErr_Occurred()) return -1;
    PyObject *more = n ? PyNumber_Add(n, one) : (Py_INCREF(one), one);
    if (more == NULL) return -1;
    int rc = PyDict_SetItem(dict, key, more);
    Py_DECREF(more);
    return rc;
}

/* Count one more name (account, number) of an offender's, unless it is empty or MAX_DISTINCT others are named
 * already (tally.py, `_merge_capped`). */
static int named(PyObject *names, PyObject *value) {
    if (value == Py_None || PyObject_Not(value)) return 0;
    int known = PyDict_Contains(names, value);
    if (known < 0) return -1;
    return known || PyDict_GET_SIZE(names) < max_distinct ? increment(names, value) : 0;
}


/* Offender.flush for a queue of this one event, slot by slot (what is queued in Python, by a one-process scan
 * of another file, is flushed first: the order stays the events'). */
static int add_to_offender(Drain *d, PyObject *offender, PyObject *when, PyObject *kind_obj, PyObject *w) {
    Py_ssize_t *o = offender_offsets;
    PyObject *queue = SLOT(offender, o[O_QUEUE]);
    if (queue == NULL || !PyList_Check(queue)) { PyErr_SetString(PyExc_TypeError, "queue"); return -1; }
    if (PyList_GET_SIZE(queue) > 0) {
        PyObject *r = PyObject_CallMethod(offender, "flush", NULL);
        if (r == NULL) return -1;
        Py_DECREF(r);
    }
    PyObject *events = SLOT(offender, o[O_EVENTS]);
    long n = events ? PyLong_AsLong(events) : -1;
    if (n < 0) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "events"); return -1; }
    double t = PyFloat_AsDouble(when);
    if (t == -1.0 && PyErr_Occurred()) return -1;
    for (int i = 0; i < 2; i++) {  /* first, last */
        Py_ssize_t at = o[i ? O_LAST : O_FIRST];
        double was = n ? PyFloat_AsDouble(SLOT(offender, at)) : 0.0;
        if (was == -1.0 && PyErr_Occurred()) return -1;
        if (!n || (i ? t > was : t < was)) set_slot(offender, at, when);
    }
    PyObject *more = PyLong_FromLong(n + 1);
    if (more == NULL) return -1;
    set_slot(offender, o[O_EVENTS], more);
    Py_DECREF(more);
    PyObject *kinds = SLOT(offender, o[O_KINDS]), *services = SLOT(offender, o[O_SERVICES]);
    PyObject *accounts = SLOT(offender, o[O_ACCOUNTS]), *targets = SLOT(offender, o[O_TARGETS]);
    if (kinds == NULL || !PyDict_Check(kinds) || services == NULL || !PySet_Check(services) || accounts == NULL
        || !PyDict_Check(accounts) || targets == NULL || !PyDict_Check(targets)) {
        PyErr_SetString(PyExc_TypeError, "an offender of the wrong shape");
        return -1;
    }
    long service = PyLong_AsLong(PyTuple_GET_ITEM(w, 2));
    if (service < 0 || service >= PyList_GET_SIZE(d->services)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "service index out of range");
        return -1;
    }
    if (increment(kinds, kind_obj) < 0 || PySet_Add(services, PyList_GET_ITEM(d->services, service)) < 0
        || named(accounts, PyTuple_GET_ITEM(w, 6)) < 0 || named(targets, PyTuple_GET_ITEM(w, 7)) < 0)
        return -1;
    long wstrong = PyLong_AsLong(PyTuple_GET_ITEM(w, 9));
    if (wstrong == -1 && PyErr_Occurred()) return -1;
    if (wstrong == d->strong) set_slot(offender, o[O_STRONG], Py_True);
    return 0;
}

static void put(PyObject *obj, Py_ssize_t offset, PyObject *value) {
    if (value == NULL) value = Py_None;
    Py_INCREF(value);
    *(PyObject **)((char *)obj + offset) = value;
}

/* event_of(w, file, address, base) with `when` as its time, slot by slot (see EVENT_FIELDS). */
static PyObject *build_event(Drain *d, PyObject *w, PyObject *when, PyObject *address, long kind) {
    long service = PyLong_AsLong(PyTuple_GET_ITEM(w, 2)), evidence = PyLong_AsLong(PyTuple_GET_ITEM(w, 9));
    long line = PyLong_AsLong(PyTuple_GET_ITEM(w, 10));
    if (PyErr_Occurred()) return NULL;
    if (service < 0 || service >= PyList_GET_SIZE(d->services) || evidence < 0
        || evidence >= PyList_GET_SIZE(d->evidences)) {
        PyErr_SetString(PyExc_ValueError, "an index out of range in a wire tuple");
        return NULL;
    }
    PyObject *line_obj = PyLong_FromLong(line + d->base);
    if (line_obj == NULL) return NULL;
    PyObject *extra = PyTuple_GET_ITEM(w, 14);
    if (extra == Py_None || (PyDict_Check(extra) && PyDict_GET_SIZE(extra) == 0)) extra = PyDict_New();
    else Py_INCREF(extra);
    PyObject *call = PyTuple_GET_ITEM(w, 15), *call_obj = NULL;
    if (call != Py_None) {
        PyObject *args = PyTuple_Pack(1, call);
        call_obj = args ? PyTuple_Type.tp_new(d->call_type, args, NULL) : NULL;
        Py_XDECREF(args);
    }
    PyObject *reason = PyTuple_GET_ITEM(w, 13);
    if (reason == Py_None || PyObject_Not(reason)) reason = d->empty;
    PyObject *event = extra == NULL || (call != Py_None && call_obj == NULL) ? NULL
                      : d->event_type->tp_alloc(d->event_type, 0);
    if (event != NULL) {
        Py_ssize_t *o = d->offsets;
        put(event, o[F_TIME], when);
        put(event, o[F_KIND], PyList_GET_ITEM(d->kinds, kind));
        put(event, o[F_SERVICE], PyList_GET_ITEM(d->services, service));
        put(event, o[F_IP], address);
        put(event, o[F_PORT], PyTuple_GET_ITEM(w, 4));
        put(event, o[F_TRANSPORT], PyTuple_GET_ITEM(w, 5));
        put(event, o[F_ACCOUNT], PyTuple_GET_ITEM(w, 6));
        put(event, o[F_TARGET], PyTuple_GET_ITEM(w, 7));
        put(event, o[F_UA], PyTuple_GET_ITEM(w, 8));
        put(event, o[F_EVIDENCE], PyList_GET_ITEM(d->evidences, evidence));
        put(event, o[F_FILE], d->file);
        put(event, o[F_LINE], line_obj);
        put(event, o[F_RAW], d->empty);
        put(event, o[F_FORM], PyTuple_GET_ITEM(w, 11));
        put(event, o[F_SESSION], PyTuple_GET_ITEM(w, 12));
        put(event, o[F_REASON], reason);
        put(event, o[F_EXTRA], extra);
        put(event, o[F_REPEAT], Py_False);
        put(event, o[F_BLOCKED], Py_False);
        put(event, o[F_CALL], call_obj);
    }
    Py_DECREF(line_obj);
    Py_XDECREF(extra);
    Py_XDECREF(call_obj);
    return event;
}

static PyObject *drain_next(Drain *d) {
    if (d->wires == NULL) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(d->wires);
    while (d->pos < n) {
        PyObject *w = PyList_GET_ITEM(d->wires, d->pos++);
        if (!PyTuple_Check(w) || PyTuple_GET_SIZE(w) != 16) { PyErr_SetString(PyExc_TypeError, "not a wire tuple"); return NULL; }
        long line = PyLong_AsLong(PyTuple_GET_ITEM(w, 10));
        if (line == -1 && PyErr_Occurred()) return NULL;
        if (line <= d->skip) { d->skipped++; continue; }  /* swallowed by a record of the previous chunk */
        double t = PyFloat_AsDouble(PyTuple_GET_ITEM(w, 0));
        if (t == -1.0 && PyErr_Occurred()) return NULL;
        PyObject *when = t != 0.0 ? (Py_INCREF(PyTuple_GET_ITEM(w, 0)), PyTuple_GET_ITEM(w, 0)) : PyFloat_FromDouble(d->last_time);
        if (when == NULL) return NULL;
        double when_d = t != 0.0 ? t : d->last_time;
        PyObject *text = PyTuple_GET_ITEM(w, 3), *address;
        if (text == Py_None) { address = Py_None; Py_INCREF(address); }
        else {
            address = PyDict_GetItemWithError(d->ips, text);
            if (address != NULL) Py_INCREF(address);
            else if (PyErr_Occurred() || (address = PyObject_CallOneArg(d->ip_func, text)) == NULL) { Py_DECREF(when); return NULL; }
        }
        long kind = PyLong_AsLong(PyTuple_GET_ITEM(w, 1));
        if (kind < 0 || kind >= MAX_KIND || kind >= PyList_GET_SIZE(d->kinds)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "kind index out of range");
            Py_DECREF(when); Py_DECREF(address); return NULL;
        }
        if (count(d, address, when, w, kind) < 0) { Py_DECREF(when); Py_DECREF(address); return NULL; }
        if (address != Py_None) {
            PyObject *until = PyDict_GetItemWithError(d->banned, address);
            if (until == NULL && PyErr_Occurred()) { Py_DECREF(when); Py_DECREF(address); return NULL; }
            if (until != NULL) {
                int blocked = PyObject_RichCompareBool(when, until, Py_LT);
                if (blocked < 0) { Py_DECREF(when); Py_DECREF(address); return NULL; }
                if (blocked) { Py_DECREF(when); Py_DECREF(address); continue; }
            }
            if (d->nets != NULL && PyDict_GET_SIZE(d->nets) > 0) {  /* an IPv6 network is banned */
                PyObject *r = PyObject_CallFunctionObjArgs(d->net_blocked, address, when, NULL);
                if (r == NULL) { Py_DECREF(when); Py_DECREF(address); return NULL; }
                Py_DECREF(r);
                if (r == Py_True) { Py_DECREF(when); Py_DECREF(address); continue; }
            }
        }
        PyObject *event;
        if (d->event_type != NULL) {
            event = build_event(d, w, when, address, kind);
            Py_DECREF(address);
            if (event == NULL) { Py_DECREF(when); return NULL; }
        } else {
            PyObject *base = PyLong_FromLong(d->base);
            event = base ? PyObject_CallFunctionObjArgs(d->event_of, w, d->file, address, base, NULL) : NULL;
            Py_XDECREF(base);
            Py_DECREF(address);
            if (event == NULL || PyObject_SetAttr(event, s_time, when) < 0) { Py_XDECREF(event); Py_DECREF(when); return NULL; }
        }
        Py_DECREF(when);
        d->last_time = when_d;
        if (d->take != NULL) {  /* the C core may see it through, all of it */
            PyObject *taken = PyObject_CallOneArg(d->take, event);
            if (taken == NULL) { Py_DECREF(event); return NULL; }
            Py_DECREF(taken);
            if (taken == Py_True) { Py_DECREF(event); continue; }
        }
        return event;
    }
    Py_CLEAR(d->wires);  /* done: the buffer's results go now, whoever still holds the Drain */
    flush_kinds(d);
    return NULL;  /* StopIteration (or the error flush_kinds set) */
}

static PyObject *drain_get_last_time(Drain *d, void *unused) { (void)unused; return PyFloat_FromDouble(d->last_time); }
static PyObject *drain_get_skipped(Drain *d, void *unused) { (void)unused; return PyLong_FromLong(d->skipped); }

static PyGetSetDef drain_getset[] = {
    {"last_time", (getter)drain_get_last_time, NULL, "the time of the last event returned", NULL},
    {"skipped", (getter)drain_get_skipped, NULL, "wire tuples swallowed by the previous buffer", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject DrainType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._drain.Drain",
    .tp_basicsize = sizeof(Drain),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)drain_init,
    .tp_dealloc = (destructor)drain_dealloc,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)drain_next,
    .tp_getset = drain_getset,
    .tp_doc = "The events of one buffer's wire tuples that reach the pipeline (see the module's docs).",
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_drain", "The parallel scan's merge loop in C (see sipwatch/parallel.py).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__drain(void) {
    s_time = PyUnicode_InternFromString("time");
    one = PyLong_FromLong(1);
    if (!s_time || !one || PyType_Ready(&DrainType) < 0)
        return NULL;
    PyObject *tally = PyImport_ImportModule("sipwatch.tally");
    PyObject *cap = tally ? PyObject_GetAttrString(tally, "MAX_DISTINCT") : NULL;
    max_distinct = cap ? PyLong_AsSsize_t(cap) : -1;
    PyObject *type = tally ? PyObject_GetAttrString(tally, "Offender") : NULL;
    Py_XDECREF(tally);
    Py_XDECREF(cap);
    if (max_distinct < 0 || type == NULL) { Py_XDECREF(type); return NULL; }
    if (!PyType_Check(type) || !named_slots((PyTypeObject *)type, OFFENDER_FIELDS, N_OFFENDER, offender_offsets)) {
        Py_DECREF(type);
        PyErr_SetString(PyExc_ImportError, "tally.Offender's slots are not those _drain.c knows");
        return NULL;
    }
    offender_type = (PyTypeObject *)type;  /* kept for the module's life */
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&DrainType);
    if (PyModule_AddObject(m, "Drain", (PyObject *)&DrainType) < 0) {
        Py_DECREF(&DrainType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
