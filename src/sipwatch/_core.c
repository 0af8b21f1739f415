/*
 * The security detectors' counting in C (see sipwatch/core.py): for an event of a kind whose every consumer
 * this file knows, do what `Pipeline.process` does (pipeline.py): mark the further lines of one request
 * (`Attempts.mark`), pair challenges with the failures that answer them (`Nonces.mark`), learn who logged in
 * as what (`Knowledge.observe`), and add the event to each detector's sliding window, on the very Python
 * dicts and deques that the Python code keeps. Only when a window fills does Python run: the detector's own
 * `decide` and the pipeline's `settle` (policy, bans), and the decisions go to `sink`. Rare branches (a table
 * at its size limit) are left to the Python method itself. The learned behaviour (BEHAVIOUR) is called only
 * for the records of a call that tell it something new (`tells_nothing_new`: the first lines of its `_call`),
 * the account rules (ACCOUNT_RULES) only for outside calls of the accounts they watch (`not_watched`). The
 * Python code is the specification; the tests compare whole scans with and without this file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "_callstate.h"
#include "_event_slots.h"

#define MAX_KINDS 64
#define MAX_DETECTORS 8

/* The detectors counted here; core.py's FAST_DETECTORS gives their codes, and REJECTED and TOLL_FRAUD (two
 * windows each: core._rejected_spec, core._toll_spec) and IPV6_ROTATION (core._ipv6_spec) are counted here too. Any other detector is called as it
 * is (PYTHON: its own observe; PYTHON_V6: the same, for events from an IPv6 address only; BEHAVIOUR and
 * ACCOUNT_RULES: the same, for the call records that can concern them). */
enum { PYTHON = 0, BRUTE_FORCE = 1, ENUMERATION = 2, DISTRIBUTED = 3, STALE_PASSWORD = 4, UNANSWERED = 5,
       PYTHON_V6 = 6, BEHAVIOUR = 7, ACCOUNT_RULES = 8, REJECTED = 9, TOLL_FRAUD = 10, IPV6_ROTATION = 11 };

typedef struct {
    int code;
    PyObject *decide;   /* detector.decide (PYTHON, PYTHON_V6: detector.observe) */
    PyTypeObject *v6;   /* PYTHON_V6: the IPv6 address class */
    PyObject *data;     /* its windows' `_data` dict */
    PyObject *evict;    /* its windows' `_evict` */
    double window;
    Py_ssize_t keep, max_keys, threshold;
    PyObject *exclude, *book;        /* BEHAVIOUR, ACCOUNT_RULES: its exclude, the call book */
    PyObject *book_dict;              /* ... and the book's __dict__, where it keeps `current` (see current_call) */
    long source, destination;        /* BEHAVIOUR: its SOURCE and DESTINATION flags */
    int then_kind;                   /* REJECTED: the kind its second windows count (a rejected call)... */
    PyObject *then_decide, *then_data, *then_evict;  /* ...and those windows: decide, _data, _evict... */
    double then_window;
    Py_ssize_t then_keep, then_max_keys, then_threshold;  /* ...window, keep, max_keys and threshold */
    PyObject *is_probe, *fallback;   /* TOLL_FRAUD: classifier.is_probe, and observe for a target not ASCII */
    Py_ssize_t prefix_length;        /* TOLL_FRAUD: the digits of a walk's prefix */
    PyObject *shift;                 /* IPV6_ROTATION: an address's bits >> shift is its network's key */
    PyTypeObject *state_type;        /* the first call's type met, and whether it is the C record (_callstate.h), */
    int state_is_record;             /* whose fields are read in place (another type's: through getattr) */
    PyTypeObject *number_type;       /* the first Classified met, whose `internal` is read from its slot... */
    Py_ssize_t internal_off;         /* ...at this offset (-1: through getattr) */
} Det;

enum { CS_ACCOUNT, CS_KEYS, CS_CLASSIFIED, CS_IP, CS_END, CS_JUDGED, N_CS };

typedef struct {
    PyObject_HEAD
    Py_ssize_t off[N_FIELDS];
    PyTypeObject *event_type;
    PyObject *kinds[MAX_KINDS];
    int nkinds;
    int fast[MAX_KINDS];  /* taken here */
    char hostile[MAX_KINDS];
    Det dets[MAX_KINDS][MAX_DETECTORS];
    int ndets[MAX_KINDS];
    int k_success, k_challenge, k_failure, k_call_start;
    char call_kind[MAX_KINDS];  /* call activity: the call book's stage */
    PyObject *book;             /* the pipeline's CallBook */
    PyObject *book_attrs;       /* its __dict__, where a scan puts the C observe (NULL: none) */
    double caller_window;       /* Knowledge.caller's `within` */
    PyObject *open;       /* Attempts._open */
    Py_ssize_t open_max;
    double same_request;
    PyObject *sent;       /* Nonces._sent (a dict, oldest first) */
    Py_ssize_t sent_max;
    PyObject *owned, *last_auth, *observe;  /* Knowledge._owned, ._last_auth, .observe */
    PyObject *unplaced;         /* Knowledge.unplaced: a login of one of its accounts is Python's (`placed`) */
    Py_ssize_t max_addresses;
    PyObject *settle, *sink, *strong, *deque_type;
    PyObject *deque_append, *deque_popleft;  /* deque.append and deque.popleft: called with no lookup by name */
    Py_ssize_t args_keep[MAX_KINDS];         /* the windows' lengths met so far... */
    PyObject *deque_args[MAX_KINDS];         /* ...and ((), keep): a new window's deque arguments for each */
    int nargs;
    PyObject *keep_alive;  /* everything above, owned once */
    PyObject *current;     /* while an event is taken: what the book's observe returned for it (book.current), or NULL */
} Core;

static PyObject *s_append, *s_popleft, *s_challenge, *s_observe, *empty_tuple, *one;
static PyObject *s_current, *s_account, *s_keys, *s_classified, *s_ip, *s_end, *s_judged, *s_internal;

static void core_dealloc(Core *c) {
    Py_XDECREF(c->keep_alive);
    Py_XDECREF(c->current);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static int keep(Core *c, PyObject *obj) { return PyList_Append(c->keep_alive, obj); }

static int kind_of(Core *c, PyObject *kind);

/* det->book_dict: the call book's __dict__ (kept alive by the core), or NULL when it has none. */
static int keep_book_dict(Core *c, Det *det) {
    PyObject *found = PyObject_GenericGetDict(det->book, NULL);
    if (found == NULL || !PyDict_Check(found)) {
        Py_XDECREF(found);
        PyErr_Clear();
        det->book_dict = NULL;
        return 0;
    }
    int rc = keep(c, found);
    det->book_dict = found;
    Py_DECREF(found);
    return rc;
}

/* (REJECTED, (decide, data, window, keep, max_keys, evict, threshold) of the flood windows, the same of the
 * rejected-call windows, the rejected-call kind): RejectedCallsDetector, whose two windows are counted here. */
static int rejected_init(Core *c, Det *det, PyObject *spec) {
    PyObject *kind;
    memset(det, 0, sizeof(*det));
    if (!PyArg_ParseTuple(spec, "i(OO!dnnOn)(OO!dnnOn)O", &det->code, &det->decide, &PyDict_Type, &det->data,
                          &det->window, &det->keep, &det->max_keys, &det->evict, &det->threshold, &det->then_decide,
                          &PyDict_Type, &det->then_data, &det->then_window, &det->then_keep, &det->then_max_keys,
                          &det->then_evict, &det->then_threshold, &kind))
        return -1;
    if ((det->then_kind = kind_of(c, kind)) < 0) { PyErr_SetString(PyExc_ValueError, "unknown kind"); return -1; }
    return keep(c, det->decide) || keep(c, det->data) || keep(c, det->evict) || keep(c, det->then_decide)
           || keep(c, det->then_data) || keep(c, det->then_evict) ? -1 : 0;
}

/* (TOLL_FRAUD, the walk windows (distinct prefixes), the probe windows, (is_probe, prefix_length, observe)):
 * TollFraudDetector, whose windows are counted here; its `decide_walk` and `decide` run in Python. */
static int toll_init(Core *c, Det *det, PyObject *spec) {
    memset(det, 0, sizeof(*det));
    if (!PyArg_ParseTuple(spec, "i(OO!dnnOn)(OO!dnnOn)(OnO)", &det->code, &det->decide, &PyDict_Type, &det->data,
                          &det->window, &det->keep, &det->max_keys, &det->evict, &det->threshold, &det->then_decide,
                          &PyDict_Type, &det->then_data, &det->then_window, &det->then_keep, &det->then_max_keys,
                          &det->then_evict, &det->then_threshold, &det->is_probe, &det->prefix_length,
                          &det->fallback))
        return -1;
    if (det->prefix_length < 0) { PyErr_SetString(PyExc_ValueError, "prefix_length < 0"); return -1; }
    return keep(c, det->decide) || keep(c, det->data) || keep(c, det->evict) || keep(c, det->then_decide)
           || keep(c, det->then_data) || keep(c, det->then_evict) || keep(c, det->is_probe) || keep(c, det->fallback)
           ? -1 : 0;
}

static PyObject *windows_add(Core *c, Det *det, PyObject *key, PyObject *event, double t);
static PyObject *distinct_add(Core *c, Det *det, PyObject *key, PyObject *event, PyObject *value, double t);

/* The second windows of a REJECTED or TOLL_FRAUD detector, as a Det that windows_add takes. */
static Det then_of(const Det *det) {
    Det then = *det;
    then.decide = det->then_decide; then.data = det->then_data; then.evict = det->then_evict;
    then.window = det->then_window; then.keep = det->then_keep; then.max_keys = det->then_max_keys;
    then.threshold = det->then_threshold;
    return then;
}

/* TollFraudDetector.observe on `event` (from an address, not a repeat): *found is set to what its decide_walk or
 * decide says when they are called. */
static int toll_fraud(Core *c, Det *det, PyObject *event, PyObject *ip, double t, PyObject **found) {
    PyObject *target = SLOT(event, c->off[F_TARGET]);
    if (!PyUnicode_Check(target) || PyUnicode_GET_LENGTH(target) == 0) return 0;  /* no number */
    if (!PyUnicode_IS_ASCII(target)) {  /* str.isdigit() of other scripts: the Python observe */
        *found = PyObject_CallOneArg(det->fallback, event);
        return *found == NULL ? -1 : 0;
    }
    const char *text = (const char *)PyUnicode_DATA(target);
    Py_ssize_t n = PyUnicode_GET_LENGTH(target), at = 0;
    while (at < n && text[at] == '+') at++;  /* target.lstrip("+") */
    if (n - at < 7) return 0;
    for (Py_ssize_t i = at; i < n; i++)
        if (text[i] < '0' || text[i] > '9') return 0;
    PyObject *prefix = PyUnicode_Substring(target, at, at + det->prefix_length < n ? at + det->prefix_length : n);
    PyObject *entry = prefix ? distinct_add(c, det, ip, event, prefix, t) : NULL;
    Py_XDECREF(prefix);
    if (entry == NULL) return -1;
    if (PyDict_GET_SIZE(PyTuple_GET_ITEM(entry, 1)) >= det->threshold) {
        *found = PyObject_CallFunctionObjArgs(det->decide, event, PyTuple_GET_ITEM(entry, 0),
                                              PyTuple_GET_ITEM(entry, 1), NULL);
        Py_DECREF(entry);
        return *found == NULL ? -1 : 0;
    }
    Py_DECREF(entry);
    PyObject *answer = PyObject_CallOneArg(det->is_probe, target);
    int probe = answer == NULL ? -1 : PyObject_IsTrue(answer);
    Py_XDECREF(answer);
    if (probe <= 0) return probe;
    Det then = then_of(det);
    PyObject *q = windows_add(c, &then, ip, event, t);
    if (q == NULL) return -1;
    if (PyObject_Length(q) >= then.threshold) *found = PyObject_CallFunctionObjArgs(then.decide, event, q, NULL);
    Py_DECREF(q);
    return PyErr_Occurred() ? -1 : 0;
}

/* (IPV6_ROTATION, (decide, data, window, keep, max_keys, evict, addresses), (attempts, shift, IPv6Address)):
 * Ipv6RotationDetector, whose windows (one per network) are counted here; its `decide` runs in Python. */
static int ipv6_init(Core *c, Det *det, PyObject *spec) {
    memset(det, 0, sizeof(*det));
    if (!PyArg_ParseTuple(spec, "i(OO!dnnOn)(nO!O!)", &det->code, &det->decide, &PyDict_Type, &det->data,
                          &det->window, &det->keep, &det->max_keys, &det->evict, &det->threshold,
                          &det->then_threshold, &PyLong_Type, &det->shift, &PyType_Type, &det->v6))
        return -1;
    return keep(c, det->decide) || keep(c, det->data) || keep(c, det->evict) || keep(c, det->shift)
           || keep(c, (PyObject *)det->v6) ? -1 : 0;
}

/* Ipv6RotationDetector.observe on `event` (not a repeat): its network's window, by `int(ip) >> shift`. */
static int ipv6_rotation(Core *c, Det *det, PyObject *event, PyObject *ip, double t, PyObject **found) {
    if (!PyObject_TypeCheck(ip, det->v6)) return 0;
    PyObject *bits = PyNumber_Long(ip);  /* int(ip) */
    PyObject *key = bits ? PyNumber_Rshift(bits, det->shift) : NULL;
    Py_XDECREF(bits);
    PyObject *entry = key ? distinct_add(c, det, key, event, ip, t) : NULL;
    Py_XDECREF(key);
    if (entry == NULL) return -1;
    PyObject *q = PyTuple_GET_ITEM(entry, 0), *addresses = PyTuple_GET_ITEM(entry, 1);
    Py_ssize_t n = PyObject_Length(q);
    if (n < 0) { Py_DECREF(entry); return -1; }
    if (n >= det->then_threshold && PyDict_GET_SIZE(addresses) >= det->threshold)
        *found = PyObject_CallFunctionObjArgs(det->decide, event, q, addresses, NULL);
    Py_DECREF(entry);
    return PyErr_Occurred() ? -1 : 0;
}

static int det_init(Core *c, Det *det, PyObject *spec) {
    /* (code, decide, data, window, keep, max_keys, evict, threshold), (PYTHON_V6, observe, IPv6Address), or a
     * detector's observe */
    PyObject *decide, *data, *evict;
    if (PyCallable_Check(spec)) {
        memset(det, 0, sizeof(*det));
        det->code = PYTHON;
        det->decide = spec;
        return keep(c, spec);
    }
    if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) == 5) {  /* (BEHAVIOUR, observe, exclude, book, flags) */
        memset(det, 0, sizeof(*det));
        if (!PyArg_ParseTuple(spec, "iOO!O(ll)", &det->code, &decide, &PyFrozenSet_Type, &det->exclude, &det->book,
                              &det->source, &det->destination))
            return -1;
        if (det->code != BEHAVIOUR || !PyCallable_Check(decide)) {
            PyErr_SetString(PyExc_ValueError, "unknown detector");
            return -1;
        }
        det->decide = decide;
        return keep(c, decide) || keep(c, det->exclude) || keep(c, det->book) || keep_book_dict(c, det) ? -1 : 0;
    }
    long code = PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) > 0 && PyLong_Check(PyTuple_GET_ITEM(spec, 0))
                    ? PyLong_AsLong(PyTuple_GET_ITEM(spec, 0)) : -1;
    if (code == -1 && PyErr_Occurred()) return -1;
    if (code == REJECTED) return rejected_init(c, det, spec);  /* the detectors of two windows: a spec each */
    if (code == TOLL_FRAUD) return toll_init(c, det, spec);
    if (code == IPV6_ROTATION) return ipv6_init(c, det, spec);
    if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) == 4) {  /* (ACCOUNT_RULES, observe, exclude, book) */
        memset(det, 0, sizeof(*det));
        if (!PyArg_ParseTuple(spec, "iOO!O", &det->code, &decide, &PyFrozenSet_Type, &det->exclude, &det->book))
            return -1;
        if (det->code != ACCOUNT_RULES || !PyCallable_Check(decide)) {
            PyErr_SetString(PyExc_ValueError, "unknown detector");
            return -1;
        }
        det->decide = decide;
        return keep(c, decide) || keep(c, det->exclude) || keep(c, det->book) || keep_book_dict(c, det) ? -1 : 0;
    }
    if (PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) == 3) {
        memset(det, 0, sizeof(*det));
        if (!PyArg_ParseTuple(spec, "iOO!", &det->code, &decide, &PyType_Type, &det->v6)) return -1;
        if (det->code != PYTHON_V6 || !PyCallable_Check(decide)) {
            PyErr_SetString(PyExc_ValueError, "unknown detector");
            return -1;
        }
        det->decide = decide;
        return keep(c, decide) || keep(c, (PyObject *)det->v6) ? -1 : 0;
    }
    if (!PyArg_ParseTuple(spec, "iOO!dnnOn", &det->code, &decide, &PyDict_Type, &data, &det->window, &det->keep,
                          &det->max_keys, &evict, &det->threshold))
        return -1;
    if (det->code < BRUTE_FORCE || det->code > UNANSWERED) { PyErr_SetString(PyExc_ValueError, "unknown detector"); return -1; }
    det->decide = decide; det->data = data; det->evict = evict;
    return keep(c, decide) || keep(c, data) || keep(c, evict) ? -1 : 0;
}

/* Core(event_type, kinds, fast, hostile, calls, (success, challenge, failure, call_start),
 *      (open, max_keys, same_request), (sent, max_keys), (owned, last_auth, max_addresses, observe, caller_window, unplaced),
 *      book, settle, sink, strong, deque) */
static int core_init(Core *c, PyObject *args, PyObject *kw) {
    PyObject *event_type, *kinds, *fast, *hostile, *call_kinds, *attempts, *nonces, *knowledge, *book, *settle, *sink,
        *strong, *deque;
    (void)kw;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!(iiii)O!O!O!OOOOO", &PyType_Type, &event_type, &PyList_Type, &kinds,
                          &PyList_Type, &fast, &PyList_Type, &hostile, &PyList_Type, &call_kinds, &c->k_success,
                          &c->k_challenge, &c->k_failure, &c->k_call_start, &PyTuple_Type, &attempts, &PyTuple_Type,
                          &nonces, &PyTuple_Type, &knowledge, &book, &settle, &sink, &strong, &deque))
        return -1;
    if (!event_slots((PyTypeObject *)event_type, c->off)) { PyErr_SetString(PyExc_TypeError, "not the Event this core knows"); return -1; }
    c->nkinds = (int)PyList_GET_SIZE(kinds);
    if (c->nkinds > MAX_KINDS || PyList_GET_SIZE(fast) != c->nkinds || PyList_GET_SIZE(hostile) != c->nkinds
        || PyList_GET_SIZE(call_kinds) != c->nkinds) {
        PyErr_SetString(PyExc_ValueError, "kinds, fast and hostile differ in length");
        return -1;
    }
    if ((c->keep_alive = PyList_New(0)) == NULL) return -1;
    c->event_type = (PyTypeObject *)event_type;
    if (keep(c, event_type) || keep(c, kinds) || keep(c, settle) || keep(c, sink) || keep(c, strong) || keep(c, deque)) return -1;
    for (int k = 0; k < c->nkinds; k++) {
        c->kinds[k] = PyList_GET_ITEM(kinds, k);
        c->hostile[k] = (char)PyObject_IsTrue(PyList_GET_ITEM(hostile, k));
        c->call_kind[k] = (char)PyObject_IsTrue(PyList_GET_ITEM(call_kinds, k));
        PyObject *dets = PyList_GET_ITEM(fast, k);
        c->fast[k] = dets != Py_None;
        c->ndets[k] = 0;
        if (dets == Py_None) continue;
        if (!PyTuple_Check(dets) || PyTuple_GET_SIZE(dets) > MAX_DETECTORS) { PyErr_SetString(PyExc_TypeError, "fast"); return -1; }
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(dets); i++)
            if (det_init(c, &c->dets[k][i], PyTuple_GET_ITEM(dets, i)) < 0) return -1;
        c->ndets[k] = (int)PyTuple_GET_SIZE(dets);
    }
    if (!PyArg_ParseTuple(attempts, "O!nd", &PyDict_Type, &c->open, &c->open_max, &c->same_request)
        || !PyArg_ParseTuple(nonces, "O!n", &PyDict_Type, &c->sent, &c->sent_max)
        || !PyArg_ParseTuple(knowledge, "O!O!nOdO!", &PyDict_Type, &c->owned, &PyDict_Type, &c->last_auth,
                             &c->max_addresses, &c->observe, &c->caller_window, &PyDict_Type, &c->unplaced))
        return -1;
    if (!PyDict_CheckExact(c->sent)) {  /* (filed in with PyDict_SetItem: no subclass's own order to keep) */
        PyErr_SetString(PyExc_TypeError, "Nonces._sent is a dict");
        return -1;
    }
    if (keep(c, c->open) || keep(c, c->sent) || keep(c, c->owned) || keep(c, c->last_auth) || keep(c, c->observe)
        || keep(c, c->unplaced) || keep(c, book))
        return -1;
    c->book = book;
    PyObject *attrs = PyObject_GenericGetDict(book, NULL);
    if (attrs != NULL && PyDict_Check(attrs) && keep(c, attrs) == 0) c->book_attrs = attrs;
    Py_XDECREF(attrs);  /* (keep_alive holds it) */
    PyErr_Clear();
    c->settle = settle; c->sink = sink; c->strong = strong; c->deque_type = deque;
    if ((c->deque_append = PyObject_GetAttr(deque, s_append)) == NULL || keep(c, c->deque_append) < 0) return -1;
    Py_DECREF(c->deque_append);  /* (keep_alive holds it) */
    if ((c->deque_popleft = PyObject_GetAttr(deque, s_popleft)) == NULL || keep(c, c->deque_popleft) < 0) return -1;
    Py_DECREF(c->deque_popleft);
    return 0;
}

static int event_time(Core *c, PyObject *event, double *t) {
    *t = PyFloat_AsDouble(SLOT(event, c->off[F_TIME]));
    return *t == -1.0 && PyErr_Occurred() ? -1 : 0;
}

static int truthy(PyObject *obj) { return obj != NULL && obj != Py_None && PyObject_IsTrue(obj) == 1; }

/* Attempts.mark (the caller checked that the address is set and the kind hostile). */
static int attempts_mark(Core *c, PyObject *event, PyObject *ip, double t) {
    PyObject *key = PyTuple_Pack(2, ip, SLOT(event, c->off[F_PORT]));
    PyObject *form = PyTuple_Pack(2, SLOT(event, c->off[F_FORM]), SLOT(event, c->off[F_REASON]));
    int rc = -1;
    if (key == NULL || form == NULL) goto done;
    PyObject *current = PyDict_GetItemWithError(c->open, key);
    if (current == NULL && PyErr_Occurred()) goto done;
    if (current != NULL) {
        double opened = PyFloat_AsDouble(PyTuple_GET_ITEM(current, 0));
        if (opened == -1.0 && PyErr_Occurred()) goto done;
        if (fabs(t - opened) <= c->same_request) {
            PyObject *forms = PyTuple_GET_ITEM(current, 1);
            int seen = PySet_Contains(forms, form);
            if (seen < 0) goto done;
            if (!seen) {
                if (PySet_Add(forms, form) < 0) goto done;
                set_slot(event, c->off[F_REPEAT], Py_True);
                rc = 0;
                goto done;
            }
        }
        if (PyDict_DelItem(c->open, key) < 0) goto done;
    }
    PyObject *forms = PySet_New(NULL);
    if (forms == NULL || PySet_Add(forms, form) < 0) { Py_XDECREF(forms); goto done; }
    PyObject *entry = PyTuple_Pack(2, SLOT(event, c->off[F_TIME]), forms);
    Py_DECREF(forms);
    if (entry == NULL) goto done;
    int set = PyDict_SetItem(c->open, key, entry);
    Py_DECREF(entry);
    if (set < 0) goto done;
    for (int i = 0; i < 4; i++) {  /* Attempts._prune */
        Py_ssize_t pos = 0;
        PyObject *first, *value;
        if (!PyDict_Next(c->open, &pos, &first, &value)) break;
        double began = PyFloat_AsDouble(PyTuple_GET_ITEM(value, 0));
        if (began == -1.0 && PyErr_Occurred()) goto done;
        if (t - began <= 2 * c->same_request && PyDict_GET_SIZE(c->open) < c->open_max) break;
        Py_INCREF(first);
        int del = PyDict_DelItem(c->open, first);
        Py_DECREF(first);
        if (del < 0) goto done;
    }
    rc = 0;
done:
    Py_XDECREF(key);
    Py_XDECREF(form);
    return rc;
}

/* Nonces.mark for a challenge or a failure. */
static int nonces_mark(Core *c, PyObject *event, PyObject *ip, int k) {
    PyObject *extra = SLOT(event, c->off[F_EXTRA]);
    if (ip == Py_None || !PyDict_Check(extra)) return 0;
    PyObject *nonce = PyDict_GetItemWithError(extra, s_challenge);
    if (nonce == NULL) return PyErr_Occurred() ? -1 : 0;
    if (!truthy(nonce)) return 0;
    PyObject *key = PyTuple_Pack(2, ip, nonce);
    if (key == NULL) return -1;
    int rc = 0;
    if (k == c->k_challenge) {
        rc = PyDict_SetItem(c->sent, key, Py_None);
        Py_ssize_t size = PyDict_GET_SIZE(c->sent);
        if (rc == 0 && size > c->sent_max) rc = forget_oldest(c->sent, size - c->sent_max + c->sent_max / 10);
    } else {
        int known = PyDict_Contains(c->sent, key);
        if (known < 0) rc = -1;
        else if (known) set_slot(event, c->off[F_EVIDENCE], c->strong);
    }
    Py_DECREF(key);
    return rc;
}

/* Knowledge.observe for a successful login; at a table's size limit, Python's own method does it all. */
static int knowledge_observe(Core *c, PyObject *event, PyObject *ip) {
    PyObject *account = SLOT(event, c->off[F_ACCOUNT]);
    if (ip == Py_None || !truthy(account)) return 0;
    if (PyDict_GET_SIZE(c->owned) >= c->max_addresses || PyDict_GET_SIZE(c->last_auth) >= c->max_addresses) {
        PyObject *r = PyObject_CallOneArg(c->observe, event);
        Py_XDECREF(r);
        return r == NULL ? -1 : 0;
    }
    PyObject *accounts = PyDict_GetItemWithError(c->owned, ip);
    if (accounts == NULL) {
        if (PyErr_Occurred() || (accounts = PySet_New(NULL)) == NULL) return -1;
        int set = PyDict_SetItem(c->owned, ip, accounts);
        Py_DECREF(accounts);
        if (set < 0) return -1;
    }
    if (PySet_Add(accounts, account) < 0) return -1;
    int known = PyDict_Contains(c->last_auth, account);
    if (known < 0 || (known && PyDict_DelItem(c->last_auth, account) < 0)) return -1;
    PyObject *entry = PyTuple_Pack(3, SLOT(event, c->off[F_TIME]), ip, SLOT(event, c->off[F_PORT]));
    if (entry == NULL) return -1;
    int set = PyDict_SetItem(c->last_auth, account, entry);
    Py_DECREF(entry);
    return set;
}

/* Knowledge.owns */
static int owns(Core *c, PyObject *ip, PyObject *account) {
    if (ip == Py_None || account == Py_None) return 0;
    PyObject *accounts = PyDict_GetItemWithError(c->owned, ip);
    if (accounts == NULL) return PyErr_Occurred() ? -1 : 0;
    return PySet_Contains(accounts, account);
}

/* ((), keep), the arguments of a new window's deque, made once for each length (a borrowed reference; NULL with
 * no error when there are more lengths than it keeps, NULL with one on error). */
static PyObject *deque_args(Core *c, Py_ssize_t length) {
    for (int i = 0; i < c->nargs; i++)
        if (c->args_keep[i] == length) return c->deque_args[i];
    if (c->nargs >= MAX_KINDS) return NULL;
    PyObject *length_obj = PyLong_FromSsize_t(length);
    PyObject *args = length_obj ? PyTuple_Pack(2, empty_tuple, length_obj) : NULL;
    Py_XDECREF(length_obj);
    if (args == NULL || keep(c, args) < 0) { Py_XDECREF(args); return NULL; }
    Py_DECREF(args);  /* (keep_alive holds it) */
    c->args_keep[c->nargs] = length;
    c->deque_args[c->nargs++] = args;
    return args;
}

/* A key's window in `det`, made when missing (Windows.add and DistinctWindows.add, first lines): a deque of
 * events with `maxlen`, or (deque of (event, value), counts of values). New reference. */
static PyObject *window_of(Core *c, Det *det, PyObject *key, double t, int distinct) {
    PyObject *entry = PyDict_GetItemWithError(det->data, key);
    if (entry != NULL) { Py_INCREF(entry); return entry; }
    if (PyErr_Occurred()) return NULL;
    if (PyDict_GET_SIZE(det->data) >= det->max_keys) {
        PyObject *r = PyObject_CallFunction(det->evict, "d", t);
        if (r == NULL) return NULL;
        Py_DECREF(r);
    }
    if (distinct) {
        PyObject *q = PyObject_CallNoArgs(c->deque_type), *counts = PyDict_New();
        entry = q && counts ? PyTuple_Pack(2, q, counts) : NULL;
        Py_XDECREF(q); Py_XDECREF(counts);
    } else {  /* deque((), keep) */
        PyObject *args = deque_args(c, det->keep);
        entry = args != NULL ? PyObject_Call(c->deque_type, args, NULL)
                : PyErr_Occurred() ? NULL : PyObject_CallFunction(c->deque_type, "On", empty_tuple, det->keep);
    }
    if (entry == NULL || PyDict_SetItem(det->data, key, entry) < 0) { Py_XDECREF(entry); return NULL; }
    return entry;
}

/* q.append(arg) or q.popleft() (`method`, with `name` for a window that is not a plain deque). */
static int call_method(Core *c, PyObject *method, PyObject *name, PyObject *self, PyObject *arg, PyObject **result) {
    PyObject *argv[2] = {self, arg};
    size_t n = (size_t)(1 + (arg != NULL));
    PyObject *r = Py_IS_TYPE(self, (PyTypeObject *)c->deque_type) ? PyObject_Vectorcall(method, argv, n, NULL)
                  : PyObject_VectorcallMethod(name, argv, n, NULL);
    if (r == NULL) return -1;
    if (result != NULL) *result = r; else Py_DECREF(r);
    return 0;
}

/* The time of the event first in `q`, or of the event in its first (event, value) pair. */
static int first_time(Core *c, PyObject *q, int distinct, double *t) {
    PyObject *first = PySequence_GetItem(q, 0);
    if (first == NULL) return -1;
    PyObject *event = distinct ? PyTuple_GET_ITEM(first, 0) : first;
    int rc = event_time(c, event, t);
    Py_DECREF(first);
    return rc;
}

/* Windows.add: the window of `key` after adding `event`. New reference. */
static PyObject *windows_add(Core *c, Det *det, PyObject *key, PyObject *event, double t) {
    PyObject *q = window_of(c, det, key, t, 0);
    if (q == NULL || call_method(c, c->deque_append, s_append, q, event, NULL) < 0) { Py_XDECREF(q); return NULL; }
    double horizon = t - det->window, oldest;
    while (PyObject_Length(q) > 0) {
        if (first_time(c, q, 0, &oldest) < 0) { Py_DECREF(q); return NULL; }
        if (oldest >= horizon) break;
        if (call_method(c, c->deque_popleft, s_popleft, q, NULL, NULL) < 0) { Py_DECREF(q); return NULL; }
    }
    return q;
}

/* DistinctWindows.add: (deque, counts) of `key` after adding (event, value). New reference. */
static PyObject *distinct_add(Core *c, Det *det, PyObject *key, PyObject *event, PyObject *value, double t) {
    PyObject *entry = window_of(c, det, key, t, 1);
    if (entry == NULL) return NULL;
    PyObject *q = PyTuple_GET_ITEM(entry, 0), *counts = PyTuple_GET_ITEM(entry, 1);
    PyObject *pair = PyTuple_Pack(2, event, value);
    if (pair == NULL || call_method(c, c->deque_append, s_append, q, pair, NULL) < 0) goto error;
    Py_CLEAR(pair);
    if (count_up(counts, value, one) < 0) goto error;
    double horizon = t - det->window, oldest;
    Py_ssize_t len;
    while ((len = PyObject_Length(q)) > 0) {
        if (first_time(c, q, 1, &oldest) < 0) goto error;
        if (oldest >= horizon && len <= det->keep) break;
        PyObject *gone;
        if (call_method(c, c->deque_popleft, s_popleft, q, NULL, &gone) < 0) goto error;
        PyObject *old = PyTuple_GET_ITEM(gone, 1);
        PyObject *left = PyDict_GetItemWithError(counts, old);
        PyObject *fewer = left ? PyNumber_Subtract(left, one) : NULL;
        int rc = fewer == NULL ? -1 : PyObject_IsTrue(fewer) ? PyDict_SetItem(counts, old, fewer) : PyDict_DelItem(counts, old);
        Py_XDECREF(fewer);
        Py_DECREF(gone);
        if (rc < 0) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "count"); goto error; }
    }
    return entry;
error:
    Py_XDECREF(pair);
    Py_DECREF(entry);
    return NULL;
}

/* The call book's current call (CallBook.current, a new reference in *current): 1 with its CallState in *state
 * (borrowed), 0 when there is none, 2 for a shape not known here (the detector's own code decides), -1 on
 * error. */
static int current_call(Core *c, Det *det, PyObject **current, PyObject **state) {
    /* book.current: what the book's observe returned for this event (the calls stage keeps it), else read from the
     * book's dict where it is (a plain attribute that CallBook.observe sets): a generic getattr looks the name up
     * in the class first (~4 times as dear, for every record of a call) */
    PyObject *found = c->current != NULL && det->book == c->book ? c->current
                      : det->book_dict != NULL ? PyDict_GetItemWithError(det->book_dict, s_current) : NULL;
    if (found != NULL) { Py_INCREF(found); *current = found; }
    else if (PyErr_Occurred() || (*current = PyObject_GetAttr(det->book, s_current)) == NULL) return -1;
    if (*current == Py_None) return 0;
    if (!PyTuple_Check(*current) || PyTuple_GET_SIZE(*current) < 1) return 2;
    *state = PyTuple_GET_ITEM(*current, 0);
    return 1;
}

/* Whether `state` is the C record of a call (_calls.CallState), its type checked once. */
static int is_record(Det *det, PyObject *state) {
    if (det->state_type == NULL) {
        det->state_type = (PyTypeObject *)Py_NewRef(Py_TYPE(state));  /* (a class: it lives as long as its module) */
        det->state_is_record = is_call_type(det->state_type);
    }
    return Py_TYPE(state) == det->state_type && det->state_is_record;
}

/* state.<field> (CS_*) as a new reference: read in place from the C record of a call, else through getattr
 * (the dataclass of a process started with SIPWATCH_NATIVE=0, or another class). */
static PyObject *state_field(Det *det, PyObject *state, int field) {
    static PyObject **const names[N_CS] = {&s_account, &s_keys, &s_classified, &s_ip, &s_end, &s_judged};
    if (is_record(det, state)) {
        const CallStateObject *record = (const CallStateObject *)state;
        if (field == CS_ACCOUNT) return Py_NewRef(record->account);
        if (field == CS_CLASSIFIED) return Py_NewRef(record->classified);
        if (field == CS_IP) return Py_NewRef(record->ip);
    }
    return PyObject_GetAttr(state, *names[field]);
}

/* number.internal (a new reference): from its slot for the Classified class (found once), else through getattr. */
static PyObject *internal_of(Det *det, PyObject *number) {
    if (det->number_type == NULL) {
        det->number_type = Py_TYPE(number);
        Py_INCREF(det->number_type);  /* (a class: it lives as long as its module) */
        det->internal_off = member_offset(det->number_type, "internal");
    }
    if (Py_TYPE(number) == det->number_type && det->internal_off >= 0) {
        PyObject *value = SLOT(number, det->internal_off);
        if (value != NULL) { Py_INCREF(value); return value; }
    }
    return PyObject_GetAttr(number, s_internal);
}

/* 1 when `account` is None or one of `exclude`, 0 when not, -1 on error. */
static int unwatched_account(Det *det, PyObject *account) {
    if (account == Py_None) return 1;
    return PySet_GET_SIZE(det->exclude) > 0 ? PySet_Contains(det->exclude, account) : 0;
}

/* tells_nothing_new for the C record of a call, read in place. */
static int record_tells_nothing_new(Det *det, const CallStateObject *record) {
    int result = unwatched_account(det, record->account);
    if (result != 0 || record->key[0] == NULL) return result != 0 ? result : 1;
    PyObject *number = record->classified;
    int outside = 0;
    if (number != Py_None) {
        PyObject *internal = internal_of(det, number);
        int yes = internal == NULL ? -1 : PyObject_IsTrue(internal);
        Py_XDECREF(internal);
        if (yes < 0) return -1;
        outside = !yes;
    }
    long flags = record->judged;
    return (record->ip == Py_None || (flags & det->source)) && (number == Py_None || (flags & det->destination))
           && (!outside || !(record->known & HAS_END));
}

/* The first lines of BehaviourDetector._call (detectors/behaviour.py), on the book's current call: 1 when this
 * record tells the detector nothing new about its call (its observe would return [] at once), 0 when it must
 * see it, -1 on error. */
static int tells_nothing_new(Core *c, Det *det) {
    PyObject *current, *state = NULL, *account = NULL, *keys = NULL, *number = NULL, *ip = NULL, *end = NULL;
    int found = current_call(c, det, &current, &state);
    if (found != 1) { Py_XDECREF(current); return found < 0 ? -1 : found == 0 ? 1 : 0; }
    if (is_record(det, state)) {
        int quiet = record_tells_nothing_new(det, (const CallStateObject *)state);
        Py_DECREF(current);
        return quiet;
    }
    int result;
    if ((account = state_field(det, state, CS_ACCOUNT)) == NULL) goto error;
    if ((result = unwatched_account(det, account)) != 0) goto done;
    if ((keys = state_field(det, state, CS_KEYS)) == NULL) goto error;
    result = 0;
    if (!PyList_Check(keys)) goto done;
    result = 1;
    if (PyList_GET_SIZE(keys) == 0) goto done;
    PyObject *judged = state_field(det, state, CS_JUDGED);
    long flags = judged == NULL ? -1 : PyLong_AsLong(judged);
    Py_XDECREF(judged);
    if (flags == -1 && PyErr_Occurred()) goto error;
    if ((number = state_field(det, state, CS_CLASSIFIED)) == NULL || (ip = state_field(det, state, CS_IP)) == NULL
        || (end = state_field(det, state, CS_END)) == NULL)
        goto error;
    int outside = 0;
    if (number != Py_None) {
        PyObject *internal = internal_of(det, number);
        int yes = internal == NULL ? -1 : PyObject_IsTrue(internal);
        Py_XDECREF(internal);
        if (yes < 0) goto error;
        outside = !yes;
    }
    result = (ip == Py_None || (flags & det->source)) && (number == Py_None || (flags & det->destination))
             && (!outside || end == Py_None);
done:
    Py_DECREF(current); Py_XDECREF(account); Py_XDECREF(keys); Py_XDECREF(number); Py_XDECREF(ip); Py_XDECREF(end);
    return result < 0 ? -1 : result;
error:
    result = -1;
    goto done;
}

/* The first lines of AccountRulesDetector.observe (detectors/account_rules.py): 1 when the book's current call is
 * no outside call of an account it watches (its observe would return [] at once), 0 when it must see it, -1 on
 * error. */
static int not_watched(Core *c, Det *det) {
    PyObject *current, *state = NULL, *account = NULL, *number = NULL, *internal = NULL;
    int found = current_call(c, det, &current, &state);
    if (found != 1) { Py_XDECREF(current); return found < 0 ? -1 : found == 0 ? 1 : 0; }
    int result = -1;
    if ((account = state_field(det, state, CS_ACCOUNT)) == NULL
        || (number = state_field(det, state, CS_CLASSIFIED)) == NULL || (result = unwatched_account(det, account)) != 0)
        goto done;
    result = 1;
    if (number == Py_None) goto done;
    if ((internal = internal_of(det, number)) != NULL) result = PyObject_IsTrue(internal);
    else result = -1;
done:
    Py_DECREF(current); Py_XDECREF(account); Py_XDECREF(number); Py_XDECREF(internal);
    return result < 0 ? -1 : result;
}

/* One detector's observe() on `event`, counting here: *found is set to decide()'s decisions when a window
 * fills, else left NULL. */
static int count(Core *c, Det *det, PyObject *event, PyObject *ip, int k, double t, PyObject **found) {
    PyObject *account = SLOT(event, c->off[F_ACCOUNT]);
    int repeat = SLOT(event, c->off[F_REPEAT]) == Py_True;
    PyObject *q = NULL, *entry = NULL;
    int rc = 0;
    if (det->code == PYTHON || det->code == PYTHON_V6 || det->code == BEHAVIOUR || det->code == ACCOUNT_RULES) {
        /* a detector the core does not count: its own observe (when the record can concern it) */
        if (det->code == PYTHON_V6 && !PyObject_TypeCheck(ip, det->v6)) return 0;
        if (det->code == ACCOUNT_RULES) {  /* an internal call's records: nothing for the rules */
            int quiet = not_watched(c, det);
            if (quiet != 0) return quiet < 0 ? -1 : 0;
        }
        if (det->code == BEHAVIOUR && c->call_kind[k]) {  /* most records of a call tell it nothing new */
            int quiet = tells_nothing_new(c, det);
            if (quiet != 0) return quiet < 0 ? -1 : 0;
        }
        *found = PyObject_CallOneArg(det->decide, event);
        return *found == NULL ? -1 : 0;
    }
    if (ip == Py_None) return 0;
    switch (det->code) {
    case BRUTE_FORCE:
        if (repeat || (rc = owns(c, ip, account)) != 0) return rc < 0 ? -1 : 0;
        q = windows_add(c, det, ip, event, t);
        break;
    case STALE_PASSWORD: {
        if (repeat || !truthy(account) || (rc = owns(c, ip, account)) <= 0) return rc < 0 ? -1 : 0;
        PyObject *key = PyTuple_Pack(2, ip, account);
        if (key == NULL) return -1;
        q = windows_add(c, det, key, event, t);
        Py_DECREF(key);
        break;
    }
    case REJECTED: {  /* RejectedCallsDetector.observe: every call attempt floods; a rejected call also counts */
        if (repeat) return 0;
        q = windows_add(c, det, ip, event, t);
        if (q == NULL) return -1;
        Py_ssize_t n = PyObject_Length(q);
        if (n >= det->threshold || k != det->then_kind) {
            if (n >= det->threshold) *found = PyObject_CallFunctionObjArgs(det->decide, event, q, NULL);
            Py_DECREF(q);
            return PyErr_Occurred() ? -1 : 0;
        }
        Py_DECREF(q);
        Det then = then_of(det);  /* the rejected-call windows */
        if ((q = windows_add(c, &then, ip, event, t)) == NULL) return -1;
        if (PyObject_Length(q) >= det->then_threshold)
            *found = PyObject_CallFunctionObjArgs(det->then_decide, event, q, NULL);
        Py_DECREF(q);
        return PyErr_Occurred() ? -1 : 0;
    }
    case TOLL_FRAUD:
        return repeat ? 0 : toll_fraud(c, det, event, ip, t, found);
    case IPV6_ROTATION:
        return repeat ? 0 : ipv6_rotation(c, det, event, ip, t, found);
    case UNANSWERED:
        if (k == c->k_success) {
            if (PyDict_Contains(det->data, ip) == 1 && PyDict_DelItem(det->data, ip) < 0) return -1;
            return PyErr_Occurred() ? -1 : 0;
        }
        if (k != c->k_challenge) return 0;
        q = windows_add(c, det, ip, event, t);
        break;
    case ENUMERATION:
        if (!truthy(account)) return 0;
        entry = distinct_add(c, det, ip, event, account, t);
        break;
    case DISTRIBUTED:
        if (repeat || !truthy(account)) return 0;
        entry = distinct_add(c, det, account, event, ip, t);
        break;
    }
    if (q == NULL && entry == NULL) return PyErr_Occurred() ? -1 : 0;
    if (q != NULL) {
        if (PyObject_Length(q) >= det->threshold) *found = PyObject_CallFunctionObjArgs(det->decide, event, q, NULL);
        Py_DECREF(q);
    } else {
        PyObject *counts = PyTuple_GET_ITEM(entry, 1);
        if (PyDict_GET_SIZE(counts) >= det->threshold)
            *found = PyObject_CallFunctionObjArgs(det->decide, event, PyTuple_GET_ITEM(entry, 0), counts, NULL);
        Py_DECREF(entry);
    }
    return PyErr_Occurred() ? -1 : 0;
}

/* Knowledge.caller(event): the account's last successful authentication (time, address, port) when it was at
 * most `caller_window` seconds before the event (a borrowed reference), else NULL (with an error or not). */
static PyObject *caller_of(Core *c, PyObject *event, double t) {
    PyObject *account = SLOT(event, c->off[F_ACCOUNT]);
    int some = account == Py_None ? 0 : PyObject_IsTrue(account);
    if (some <= 0) return NULL;
    PyObject *last = PyDict_GetItemWithError(c->last_auth, account);
    if (last == NULL) return NULL;
    if (!PyTuple_Check(last) || PyTuple_GET_SIZE(last) != 3) {
        PyErr_SetString(PyExc_TypeError, "Knowledge._last_auth holds (time, address, port)");
        return NULL;
    }
    double then = PyFloat_AsDouble(PyTuple_GET_ITEM(last, 0));
    if (then == -1.0 && PyErr_Occurred()) return NULL;
    return 0 <= t - then && t - then <= c->caller_window ? last : NULL;
}

/* The call stage of Pipeline.process: a call start with no address takes the address that authenticated as its
 * account a moment ago (Knowledge.caller), then the call book correlates the record. */
static int calls_stage(Core *c, PyObject *event, int k, double t) {
    if (k == c->k_call_start && SLOT(event, c->off[F_IP]) == Py_None) {
        PyObject *last = caller_of(c, event, t);
        if (last == NULL && PyErr_Occurred()) return -1;
        if (last != NULL) {
            set_slot(event, c->off[F_IP], PyTuple_GET_ITEM(last, 1));
            set_slot(event, c->off[F_PORT], PyTuple_GET_ITEM(last, 2));
            set_slot(event, c->off[F_EVIDENCE], c->strong);
        }
    }
    /* whichever observe the book has: the instance's own (a scan's C observe), read from its dict, else its method */
    PyObject *own = c->book_attrs != NULL ? PyDict_GetItemWithError(c->book_attrs, s_observe) : NULL;
    PyObject *r = own != NULL ? PyObject_CallOneArg(own, event)
                  : PyErr_Occurred() ? NULL : PyObject_CallMethodOneArg(c->book, s_observe, event);
    if (r == NULL) return -1;
    Py_XSETREF(c->current, r);  /* (what it returns is what it sets as book.current: the gates read it here) */
    return 0;
}

static int kind_of(Core *c, PyObject *kind) {
    for (int k = 0; k < c->nkinds; k++)
        if (c->kinds[k] == kind) return k;
    return -1;
}

/* take(event) -> bool: True when the event went all the way through here (its decisions, if any, to sink). */
static PyObject *core_take(Core *c, PyObject *event) {
    if (Py_TYPE(event) != c->event_type) Py_RETURN_FALSE;  /* not the Event this core knows: Python's turn */
    int k = kind_of(c, SLOT(event, c->off[F_KIND]));
    if (k < 0 || !c->fast[k]) Py_RETURN_FALSE;
    if (k == c->k_success && PyDict_GET_SIZE(c->unplaced) > 0) {  /* a decision may wait for this login */
        PyObject *account = SLOT(event, c->off[F_ACCOUNT]);
        int waits = PyUnicode_Check(account) ? PyDict_Contains(c->unplaced, account) : 0;
        if (waits < 0) return NULL;
        if (waits) Py_RETURN_FALSE;
    }
    PyObject *ip = SLOT(event, c->off[F_IP]);
    double t;
    if (event_time(c, event, &t) < 0) return NULL;
    Py_INCREF(ip);
    PyObject *decisions = NULL;
    if (ip != Py_None && c->hostile[k] && attempts_mark(c, event, ip, t) < 0) goto error;
    if ((k == c->k_challenge || k == c->k_failure) && nonces_mark(c, event, ip, k) < 0) goto error;
    if (k == c->k_success && knowledge_observe(c, event, ip) < 0) goto error;
    if (c->call_kind[k] && calls_stage(c, event, k, t) < 0) goto error;
    for (int i = 0; i < c->ndets[k]; i++) {
        PyObject *found = NULL;
        if (count(c, &c->dets[k][i], event, ip, k, t, &found) < 0) goto error;
        if (found == NULL) continue;
        int empty = PyObject_Not(found);
        if (empty) { Py_DECREF(found); if (empty < 0) goto error; continue; }
        if (decisions == NULL && (decisions = PyList_New(0)) == NULL) { Py_DECREF(found); goto error; }
        PyObject *stop = PyObject_CallFunctionObjArgs(c->settle, event, found, decisions, NULL);
        Py_DECREF(found);
        if (stop == NULL) goto error;
        int banned = PyObject_IsTrue(stop);
        Py_DECREF(stop);
        if (banned < 0) goto error;
        if (banned) break;
    }
    if (decisions != NULL && PyList_GET_SIZE(decisions) > 0) {
        PyObject *r = PyObject_CallOneArg(c->sink, decisions);
        if (r == NULL) goto error;
        Py_DECREF(r);
    }
    Py_XDECREF(decisions);
    Py_DECREF(ip);
    Py_CLEAR(c->current);
    Py_RETURN_TRUE;
error:
    Py_XDECREF(decisions);
    Py_DECREF(ip);
    Py_CLEAR(c->current);
    return NULL;
}

static PyMethodDef core_methods[] = {
    {"take", (PyCFunction)core_take, METH_O,
     "take(event) -> bool: True when the event went all the way through the core (see core.py)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._core.Core",
    .tp_basicsize = sizeof(Core),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)core_init,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_methods = core_methods,
    .tp_doc = "The security detectors' counting for one pipeline (see sipwatch/core.py).",
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_core", "The security detectors' counting in C (see sipwatch/core.py).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

/* The attribute names the core reads, interned once. */
static PyObject **const NAMES[] = {&s_append, &s_popleft, &s_challenge, &s_observe, &s_current, &s_account, &s_keys,
                                   &s_classified, &s_ip, &s_end, &s_judged, &s_internal};
static const char *const NAME_TEXTS[] = {"append", "popleft", "Challenge", "observe", "current", "account", "keys",
                                         "classified", "ip", "end", "judged", "internal"};

PyMODINIT_FUNC PyInit__core(void) {
    for (size_t i = 0; i < sizeof(NAMES) / sizeof(NAMES[0]); i++)
        if ((*NAMES[i] = PyUnicode_InternFromString(NAME_TEXTS[i])) == NULL) return NULL;
    empty_tuple = PyTuple_New(0);
    one = PyLong_FromLong(1);
    if (!empty_tuple || !one) return NULL;
    return module_with_type(&moduledef, "Core", &CoreType);
}
