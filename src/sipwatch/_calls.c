/*
 * `CallBook.observe` in C (see sipwatch/calls.py, the specification, and sipwatch/core.py, which installs
 * it): one call, whichever records told of it, correlated by the ids the records carry, on the book's own
 * dicts and the same AccountTally objects; its calls are C records (`_calls.CallState`, _callstate.c).
 * Number classification and new AccountTallies are made by the Python code they belong to; a record of an
 * unexpected shape (ids that are not text) goes whole to the Python method. The tests compare whole scans
 * with and without this file.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "_callstate.h"
#include "_event_slots.h"
#include "_numbers.h"

enum { C_UNIQUEID, C_LINKEDID, C_CHANNEL, C_PEER, C_CONTEXT, C_DURATION, C_BILLSEC, C_DISPOSITION, N_CALL };
static const char *const TALLY_FIELDS[] = {"calls", "answered", "outside", "seconds", "countries", "sources", "first",
                                           "last", NULL};
enum { T_CALLS, T_ANSWERED, T_OUTSIDE, T_SECONDS, T_COUNTRIES, T_SOURCES, T_FIRST, T_LAST, N_TALLY };

typedef struct {
    PyObject_HEAD
    Py_ssize_t ev[N_FIELDS];   /* Event's slots */
    Py_ssize_t ta[N_TALLY];    /* AccountTally's slots */
    PyTypeObject *event_type;
    PyObject *book, *python_observe;      /* the book, and its Python observe (the fallback) */
    PyObject *book_dict;                  /* the book's __dict__, where `current` is set */
    PyObject *calls, *by_key, *accounts;  /* book._calls (a deque, oldest first), ._by_key, .accounts */
    PyObject *append, *popleft;           /* book._calls's own methods */
    PyObject *classify, *outside, *text, *tally_type;
    PyObject *cache, *texts;  /* the classifier's cache and calls._TEXTS, read here first (NULL: ask Python) */
    int plain_outside;        /* the classifier's outside() is `not number.internal` */
    PyTypeObject *number_type;  /* the first classified number met, whose fields are read from their slots... */
    Py_ssize_t internal_off, country_off;  /* ...at these offsets (-1: through getattr) */
    PyObject *k_start, *k_answer, *k_end;
    double keep, max_open, end_slack;
    Py_ssize_t max_calls, max_accounts;
    PlainRules plain;            /* the numbers classified here with no cache and no Python (see _numbers.c)... */
    PyTypeObject *classified_type;  /* ...as Classified objects, their fields in these slots */
    Py_ssize_t classified_off[8];
    PyObject *keep_alive;
} Observer;

static PyObject *s_id_prefix, *s_ch_prefix, *s_internal, *s_current, *s_country, *s_answered_text, *one;

static void observer_dealloc(Observer *o) {
    Py_XDECREF(o->keep_alive);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

/* The Observer's `plain` (see observer_init): its rules, and the slots of its Classified. 0, or -1 with an error. */
static int plain_of(Observer *o, PyObject *plain) {
    PyObject *type, *names, *spec = Py_None;
    if (plain != Py_None && !PyArg_ParseTuple(plain, "O!O!O", &PyType_Type, &type, &PyTuple_Type, &names, &spec))
        return -1;
    if (plain_rules_of(spec, &o->plain) < 0) return -1;
    if (!o->plain.enabled) return 0;
    if (PyTuple_GET_SIZE(names) != 8) {
        PyErr_SetString(PyExc_TypeError, "plain numbers: Classified has eight fields");
        return -1;
    }
    for (int i = 0; i < 8; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (text == NULL || (o->classified_off[i] = member_offset((PyTypeObject *)type, text)) < 0) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "Classified has no slot %R", name);
            return -1;
        }
    }
    o->classified_type = (PyTypeObject *)type;  /* (a class: it lives as long as its module) */
    return 0;
}

/* Observer(book, python_observe, event_type, state_type, tally_type, text, (start, answer, end),
 *          (keep, max_open, end_slack, max_calls, max_accounts), (cache, plain_outside, texts)):
 * `cache` (the classifier's, or None) and `texts` (calls._TEXTS, or None) are dicts looked up here before the
 * Python method is asked; `plain_outside`: the classifier's outside() is `not number.internal`; `plain`: None,
 * or (Classified, its field names in to_tuple()'s order, the rules of `plain_rules_of`) when the classifier's
 * classify is NumberClassifier's, whose `_work_out` `plain_kind` stands for. */
static int observer_init(Observer *o, PyObject *args, PyObject *kw) {
    PyObject *book, *python_observe, *event_type, *state_type, *tally_type, *text, *cache, *texts, *plain;
    (void)kw;
    if (!PyArg_ParseTuple(args, "OOO!O!O!O(OOO)(dddnn)(OpOO)", &book, &python_observe, &PyType_Type, &event_type,
                          &PyType_Type, &state_type, &PyType_Type, &tally_type, &text, &o->k_start, &o->k_answer,
                          &o->k_end, &o->keep, &o->max_open, &o->end_slack, &o->max_calls, &o->max_accounts,
                          &cache, &o->plain_outside, &texts, &plain)
        || plain_of(o, plain) < 0)
        return -1;
    if ((cache != Py_None && !PyDict_Check(cache)) || (texts != Py_None && !PyDict_Check(texts))) {
        PyErr_SetString(PyExc_TypeError, "the classifier's cache and the address texts are dicts");
        return -1;
    }
    o->cache = cache == Py_None ? NULL : cache;
    o->texts = texts == Py_None ? NULL : texts;
    if (!event_slots((PyTypeObject *)event_type, o->ev)) {
        PyErr_SetString(PyExc_TypeError, "not the Event this file knows");
        return -1;
    }
    if (state_type != (PyObject *)&CallStateType) {
        PyErr_SetString(PyExc_TypeError, "the calls are _calls.CallState");
        return -1;
    }
    for (int i = 0; i < N_TALLY; i++)
        if ((o->ta[i] = member_offset((PyTypeObject *)tally_type, TALLY_FIELDS[i])) < 0) {
            PyErr_Format(PyExc_TypeError, "AccountTally has no slot %s", TALLY_FIELDS[i]);
            return -1;
        }
    PyObject *classifier = PyObject_GetAttrString(book, "classifier");
    if (classifier == NULL) return -1;
    o->classify = PyObject_GetAttrString(classifier, "classify");
    o->outside = PyObject_GetAttrString(classifier, "outside");
    Py_DECREF(classifier);
    o->calls = PyObject_GetAttrString(book, "_calls");
    o->by_key = PyObject_GetAttrString(book, "_by_key");
    o->accounts = PyObject_GetAttrString(book, "accounts");
    if (!o->classify || !o->outside || !o->calls || !o->by_key || !o->accounts) return -1;
    if (!PyDict_Check(o->by_key) || !PyDict_Check(o->accounts) || !PySequence_Check(o->calls)) {
        PyErr_SetString(PyExc_TypeError, "a call book of the wrong shape");
        return -1;
    }
    o->book_dict = PyObject_GenericGetDict(book, NULL);  /* a new reference, kept in keep_alive */
    if (o->book_dict == NULL || !PyDict_Check(o->book_dict)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a call book without a __dict__");
        return -1;
    }
    o->append = PyObject_GetAttrString(o->calls, "append");
    o->popleft = PyObject_GetAttrString(o->calls, "popleft");
    if (!o->append || !o->popleft) return -1;
    o->event_type = (PyTypeObject *)event_type;
    o->book = book; o->python_observe = python_observe; o->text = text; o->tally_type = tally_type;
    o->keep_alive = Py_BuildValue("(OOOOOOOOOOOOOOOOOOO)", book, python_observe, event_type, state_type, tally_type,
                                  text, o->k_start, o->k_answer, o->k_end, o->classify, o->outside, o->calls,
                                  o->by_key, o->accounts, cache, texts, o->append, o->popleft, o->book_dict);
    /* the Build above took its own references; drop the ones GetAttr gave */
    Py_DECREF(o->classify); Py_DECREF(o->outside); Py_DECREF(o->calls); Py_DECREF(o->by_key); Py_DECREF(o->accounts);
    Py_DECREF(o->append); Py_DECREF(o->popleft); Py_DECREF(o->book_dict);
    return o->keep_alive == NULL ? -1 : 0;
}

#define EV(event, field) SLOT(event, o->ev[field])

static int as_double(PyObject *value, double *out) {
    *out = PyFloat_AsDouble(value);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* _began(event): when the call of this record began, as far as the record tells. */
static int began(Observer *o, PyObject *event, PyObject *call, double *out) {
    if (as_double(EV(event, F_TIME), out) < 0) return -1;
    PyObject *duration = PyTuple_GET_ITEM(call, C_DURATION);
    if (EV(event, F_KIND) == o->k_end && duration != Py_None) {
        double d;
        if (as_double(duration, &d) < 0) return -1;
        *out -= d;
    }
    return 0;
}

/* CallBook._prune */
static int prune(Observer *o, double now) {
    for (int i = 0; i < 4; i++) {
        Py_ssize_t open = PyObject_Length(o->calls);
        if (open <= 0) return (int)open;
        PyObject *first = PySequence_GetItem(o->calls, 0);
        if (first == NULL) return -1;
        if (Py_TYPE(first) != &CallStateType) {
            Py_DECREF(first);
            PyErr_SetString(PyExc_TypeError, "the book's calls are _calls.CallState");
            return -1;
        }
        CallStateObject *c = (CallStateObject *)first;
        int done = (c->known & HAS_END) && now - c->end > o->keep;
        if (!(done || now - c->start > o->max_open || open > o->max_calls)) {
            Py_DECREF(first);
            return 0;
        }
        PyObject *gone = PyObject_CallNoArgs(o->popleft);
        int rc = gone == NULL ? -1 : 0;
        Py_XDECREF(gone);
        for (Py_ssize_t k = 0; rc == 0 && k < call_key_count(c); k++) {
            PyObject *name = call_key(c, k);
            PyObject *holder = PyDict_GetItemWithError(o->by_key, name);
            if (holder == first) rc = PyDict_DelItem(o->by_key, name);
            else if (holder == NULL && PyErr_Occurred()) rc = -1;
        }
        Py_DECREF(first);
        if (rc < 0) return -1;
    }
    return 0;
}

/* CallBook._find with the book's new keys filed at once: `fresh`, the call the record starts if no key names one
 * already, is put under each key that names none as the keys are looked up (one dict lookup a key, where a lookup
 * then an insert took two: a CDR row's keys are all new). The call found (borrowed: `fresh` if none), or NULL with
 * an error; *at: the index of the key that named it (-1: none); placed[k]: by_key[keys[k]] is `fresh` now. */
static CallStateObject *claim(Observer *o, PyObject **keys, int nkeys, int channel_key, PyObject *event,
                              PyObject *call, CallStateObject *fresh, int *at, int *placed) {
    *at = -1;
    for (int k = 0; k < nkeys; k++) {
        PyObject *found = PyDict_SetDefault(o->by_key, keys[k], (PyObject *)fresh);  /* borrowed */
        if (found == NULL) return NULL;
        placed[k] = found == (PyObject *)fresh;
        if (placed[k]) continue;
        if (Py_TYPE(found) != &CallStateType) {
            PyErr_SetString(PyExc_TypeError, "the book's calls are _calls.CallState");
            return NULL;
        }
        CallStateObject *state = (CallStateObject *)found;
        if (k == channel_key && (state->known & HAS_END)) {
            double b, end = state->end, t;
            if (began(o, event, call, &b) < 0 || as_double(EV(event, F_TIME), &t) < 0) return NULL;
            double slack = EV(event, F_KIND) == o->k_start ? 0.0 : o->end_slack;
            if (b >= end + slack || t - end > o->keep) continue;  /* a channel name reused after a restart */
        }
        *at = k;  /* (the key that names it already; `placed` is 0 past it, as the caller set it) */
        return state;
    }
    return fresh;
}

/* After an error: no key names `fresh` (the exception set is kept) */
static void unplace(Observer *o, PyObject **keys, int nkeys, CallStateObject *fresh) {
    PyObject *type, *value, *trace;
    PyErr_Fetch(&type, &value, &trace);
    for (int k = 0; k < nkeys; k++)
        if (PyDict_GetItemWithError(o->by_key, keys[k]) == (PyObject *)fresh && PyDict_DelItem(o->by_key, keys[k]) < 0)
            PyErr_Clear();
    PyErr_Clear();
    PyErr_Restore(type, value, trace);
}

/* prefix + text (a new reference), remembered by the text object for as long as the entry holds it: a call's
 * records share their ids and channel texts (a worker sends each text of a buffer once), and the key made for the
 * first record, its hash known, serves the others, with no str made and hashed again. Direct-mapped: bounded, and
 * small: a CDR row is its call's only record, and 4,096 slots (16,384 objects held) made each entry it replaced a
 * cold object to let go of (3% of a CDR scan's main process); the records of one call in a CEL file or a log
 * mostly come within 256 calls' texts of each other. */
#define KEY_SLOTS 256
static PyObject *key_texts[2][KEY_SLOTS], *key_made[2][KEY_SLOTS];

/* prefix + text: two ASCII texts (ids and channel names are) copied into a new one, else PyUnicode_Concat (which
 * works out the result's kind and copies character by character where kinds differ) */
static PyObject *concat(PyObject *prefix, PyObject *text) {
    if (!PyUnicode_IS_COMPACT_ASCII(prefix) || !PyUnicode_IS_COMPACT_ASCII(text)) return PyUnicode_Concat(prefix, text);
    Py_ssize_t a = PyUnicode_GET_LENGTH(prefix), b = PyUnicode_GET_LENGTH(text);
    PyObject *joined = PyUnicode_New(a + b, 127);
    if (joined == NULL) return NULL;
    memcpy(PyUnicode_1BYTE_DATA(joined), PyUnicode_1BYTE_DATA(prefix), (size_t)a);
    memcpy(PyUnicode_1BYTE_DATA(joined) + a, PyUnicode_1BYTE_DATA(text), (size_t)b);
    return joined;
}

static PyObject *prefixed(int which, PyObject *prefix, PyObject *text) {
    size_t slot = ((uintptr_t)text >> 4) & (KEY_SLOTS - 1);
    if (key_texts[which][slot] == text) {  /* the very object (held here: it cannot have been another) */
        Py_INCREF(key_made[which][slot]);
        return key_made[which][slot];
    }
    PyObject *key = concat(prefix, text);
    if (key == NULL) return NULL;
    Py_INCREF(text);
    Py_INCREF(key);
    Py_XSETREF(key_texts[which][slot], text);
    Py_XSETREF(key_made[which][slot], key);
    return key;
}

/* The call's keys (calls._keys), at most three, as new references in keys[]: how many, or -1 with an error, or
 * -2 for a record of an unexpected shape (Python's turn). *channel_key: the index of its channel key or -1. (An
 * array here, not a list: a call's every record has its keys made.) */
enum { MAX_KEYS = 3 };
static int keys_of(PyObject *call, PyObject *keys[MAX_KEYS], int *channel_key) {
    PyObject *linkedid = PyTuple_GET_ITEM(call, C_LINKEDID), *uniqueid = PyTuple_GET_ITEM(call, C_UNIQUEID);
    PyObject *channel = PyTuple_GET_ITEM(call, C_CHANNEL);
    PyObject *ids[3] = {linkedid, uniqueid, channel};
    for (int i = 0; i < 3; i++)
        if (ids[i] != Py_None && !PyUnicode_CheckExact(ids[i])) return -2;
    int n = 0;
    *channel_key = -1;
    if (linkedid != Py_None && PyUnicode_GET_LENGTH(linkedid)) {
        if ((keys[n] = prefixed(0, s_id_prefix, linkedid)) == NULL) goto error;
        n++;
    }
    if (uniqueid != Py_None && PyUnicode_GET_LENGTH(uniqueid)
        && !(linkedid != Py_None && PyUnicode_Compare(uniqueid, linkedid) == 0)) {
        if ((keys[n] = prefixed(0, s_id_prefix, uniqueid)) == NULL) goto error;
        n++;
    }
    if (channel != Py_None && PyUnicode_GET_LENGTH(channel)) {
        if ((keys[n] = prefixed(1, s_ch_prefix, channel)) == NULL) goto error;
        *channel_key = n++;
    }
    return n;
error:
    while (n > 0) Py_DECREF(keys[--n]);
    return -1;
}

/* The Classified of a number `plain_kind` told (a new reference), its fields in their slots as __init__ puts them */
static PyObject *plain_number(Observer *o, PyObject *target, int kind) {
    PyObject *fields[8];
    plain_fields(target, kind, fields);
    PyObject *number = o->classified_type->tp_alloc(o->classified_type, 0);
    if (number != NULL)
        for (int i = 0; i < 8; i++) SLOT(number, o->classified_off[i]) = Py_NewRef(fields[i]);
    return number;
}

/* classifier.classify(target): told here when it is plain (see _numbers.c), else its cache read here first (a
 * new reference) */
static PyObject *classify(Observer *o, PyObject *target) {
    int kind = plain_kind(&o->plain, target);
    if (kind != PLAIN_PYTHON) return plain_number(o, target, kind);
    if (o->cache != NULL) {
        PyObject *found = PyDict_GetItemWithError(o->cache, target);
        if (found != NULL) { Py_INCREF(found); return found; }
        if (PyErr_Occurred()) return NULL;
    }
    return PyObject_CallOneArg(o->classify, target);
}

/* number.<name> (`internal` or `country`: a new reference), from its slot for the Classified class (found at
 * the first number), else through getattr */
static PyObject *number_field(Observer *o, PyObject *number, PyObject *name, int internal) {
    if (o->number_type == NULL) {
        o->number_type = Py_TYPE(number);
        Py_INCREF(o->number_type);  /* (a class: it lives as long as its module) */
        o->internal_off = member_offset(o->number_type, "internal");
        o->country_off = member_offset(o->number_type, "country");
    }
    Py_ssize_t at = internal ? o->internal_off : o->country_off;
    if (Py_TYPE(number) == o->number_type && at >= 0) {
        PyObject *value = *(PyObject **)((char *)number + at);
        if (value != NULL) { Py_INCREF(value); return value; }
    }
    return PyObject_GetAttr(number, name);
}

/* classifier.outside(number): 1, 0, or -1 with an error */
static int is_outside(Observer *o, PyObject *number) {
    if (o->plain_outside) {
        PyObject *internal = number_field(o, number, s_internal, 1);
        int inside = internal ? PyObject_IsTrue(internal) : -1;
        Py_XDECREF(internal);
        return inside < 0 ? -1 : !inside;
    }
    PyObject *out = PyObject_CallOneArg(o->outside, number);
    int outside = out ? PyObject_IsTrue(out) : -1;
    Py_XDECREF(out);
    return outside;
}

/* calls._text(ip), its dict read here first (a new reference) */
static PyObject *text_of(Observer *o, PyObject *ip) {
    if (o->texts != NULL) {
        PyObject *found = PyDict_GetItemWithError(o->texts, ip);
        if (found != NULL) { Py_INCREF(found); return found; }
        if (PyErr_Occurred()) return NULL;
    }
    return PyObject_CallOneArg(o->text, ip);
}

/* CallBook._update */
static int update(Observer *o, CallStateObject *c, PyObject *event, PyObject *call) {
    PyObject *account = EV(event, F_ACCOUNT), *target = EV(event, F_TARGET), *ip = EV(event, F_IP);
    PyObject *kind = EV(event, F_KIND);
    int truthy;
    if (c->account == Py_None && account != Py_None) {
        if ((truthy = PyObject_IsTrue(account)) < 0) return -1;
        if (truthy) Py_SETREF(c->account, Py_NewRef(account));
    }
    if (c->number == Py_None && target != Py_None) {
        if ((truthy = PyObject_IsTrue(target)) < 0) return -1;
        if (truthy) {
            Py_SETREF(c->number, Py_NewRef(target));
            PyObject *classified = classify(o, target);
            if (classified == NULL) return -1;
            Py_SETREF(c->classified, classified);
        }
    }
    if (c->ip == Py_None && ip != Py_None) Py_SETREF(c->ip, Py_NewRef(ip));
    PyObject *billsec = PyTuple_GET_ITEM(call, C_BILLSEC), *duration = PyTuple_GET_ITEM(call, C_DURATION);
    double time;
    if (as_double(EV(event, F_TIME), &time) < 0) return -1;
    if (kind == o->k_answer && !(c->known & HAS_ANSWER)) {
        c->answer = time;
        c->known |= HAS_ANSWER;
    } else if (kind == o->k_end) {
        if (!(c->known & HAS_END)) {
            c->end = time;
            c->known |= HAS_END;
        }
        if (billsec != Py_None) {  /* max(state.billsec or 0.0, call.billsec) */
            double b, had = (c->known & HAS_BILLSEC) && c->billsec != 0.0 ? c->billsec : 0.0;
            if (as_double(billsec, &b) < 0) return -1;
            c->billsec = b > had ? b : had;
            c->known |= HAS_BILLSEC;
            if (b != 0.0 && !(c->known & HAS_ANSWER)) {
                c->answer = time - b;
                c->known |= HAS_ANSWER;
            }
        }
        if (duration != Py_None) {  /* min(state.start, event.time - call.duration) */
            double d;
            if (as_double(duration, &d) < 0) return -1;
            if (time - d < c->start) c->start = time - d;
        }
    }
    PyObject *disposition = PyTuple_GET_ITEM(call, C_DISPOSITION), *was = c->disposition;
    if (disposition != Py_None) {
        if ((truthy = PyObject_IsTrue(disposition)) < 0) return -1;
        int final = was == Py_None ? 0 : PyObject_RichCompareBool(was, s_answered_text, Py_EQ);
        if (final < 0) return -1;
        if (truthy && !final && (was == Py_None || billsec != Py_None))
            Py_SETREF(c->disposition, Py_NewRef(disposition));  /* the CDR's word is final */
    }
    return 0;
}

#define TA(tally, field) SLOT(tally, o->ta[field])

/* tally.field += amount */
static int add_to(Observer *o, PyObject *t, int field, PyObject *amount) {
    if (add_in_place(TA(t, field), amount)) return 0;
    PyObject *more = PyNumber_Add(TA(t, field), amount);
    if (more == NULL) return -1;
    set_slot(t, o->ta[field], more);
    Py_DECREF(more);
    return 0;
}

/* tally.field[key] += 1 (a Counter: a dict) */
static int count_in(Observer *o, PyObject *t, int field, PyObject *key) {
    PyObject *counter = TA(t, field);
    if (!PyDict_Check(counter)) {
        PyErr_Format(PyExc_TypeError, "AccountTally.%s is not a Counter", TALLY_FIELDS[field]);
        return -1;
    }
    return count_up(counter, key, one);
}

/* tally.field += amount, a float added in place when nothing else holds the sum (see add_in_place) */
static int add_float(Observer *o, PyObject *t, int field, double amount) {
    PyObject *value = TA(t, field);
    if (PyFloat_CheckExact(value) && Py_REFCNT(value) == 1) {
        ((PyFloatObject *)value)->ob_fval += amount;
        return 0;
    }
    PyObject *more = PyFloat_FromDouble(amount);
    int rc = more ? add_to(o, t, field, more) : -1;
    Py_XDECREF(more);
    return rc;
}

/* tally.field = op(tally.field, value), as min() (Py_LT) or max() (Py_GT) pick: the tally's unless `value` beats it
 * (a float that nothing else holds takes the new value in place: a call's end beats the account's last nearly
 * every time) */
static int keep_extreme(Observer *o, PyObject *t, int field, double value, int op) {
    PyObject *held = TA(t, field);
    int beats;
    if (PyFloat_CheckExact(held)) {
        double was = PyFloat_AS_DOUBLE(held);
        beats = op == Py_LT ? value < was : value > was;
    } else {
        PyObject *v = PyFloat_FromDouble(value);
        beats = v ? compare(v, held, op) : -1;
        Py_XDECREF(v);
    }
    if (beats <= 0) return beats;
    if (PyFloat_CheckExact(held) && Py_REFCNT(held) == 1) {  /* (nothing else holds it: see add_float) */
        ((PyFloatObject *)held)->ob_fval = value;
        return 0;
    }
    PyObject *v = PyFloat_FromDouble(value);
    if (v == NULL) return -1;
    set_slot(t, o->ta[field], v);
    Py_DECREF(v);
    return 0;
}

/* CallBook._tally */
static int tally(Observer *o, CallStateObject *c, int new, int had_number, int had_ip, int was_answered,
                 double talked) {
    PyObject *account = c->account;
    if (account == Py_None) return 0;
    PyObject *t = PyDict_GetItemWithError(o->accounts, account);
    if (t == NULL) {
        if (PyErr_Occurred()) return -1;
        if (PyDict_GET_SIZE(o->accounts) >= o->max_accounts) return 0;
        PyObject *first = PyFloat_FromDouble(c->start);
        PyObject *args = first ? PyTuple_Pack(1, account) : NULL;
        PyObject *kwargs = args ? Py_BuildValue("{sO}", "first", first) : NULL;
        t = kwargs ? PyObject_Call(o->tally_type, args, kwargs) : NULL;
        Py_XDECREF(first); Py_XDECREF(args); Py_XDECREF(kwargs);
        if (t == NULL) return -1;
        int rc = PyDict_SetItem(o->accounts, account, t);
        Py_DECREF(t);
        if (rc < 0) return -1;
    }
    if (Py_TYPE(t) != (PyTypeObject *)o->tally_type) {
        PyErr_SetString(PyExc_TypeError, "the book's accounts hold AccountTallies");
        return -1;
    }
    int rc = 0;
    if (new) rc = add_to(o, t, T_CALLS, one);
    PyObject *number = c->classified;
    if (rc == 0 && number != Py_None && !had_number) {
        int outside = is_outside(o, number);
        if (outside < 0) rc = -1;
        else if (outside) {
            rc = add_to(o, t, T_OUTSIDE, one);
            PyObject *country = rc == 0 ? number_field(o, number, s_country, 0) : NULL;
            if (country == NULL) rc = -1;
            else {
                int some = PyObject_IsTrue(country);
                rc = some < 0 ? -1 : some ? count_in(o, t, T_COUNTRIES, country) : 0;
                Py_DECREF(country);
            }
        }
    }
    if (rc == 0 && c->ip != Py_None && !had_ip) {
        PyObject *text = text_of(o, c->ip);
        rc = text ? count_in(o, t, T_SOURCES, text) : -1;
        Py_XDECREF(text);
    }
    if (rc == 0 && call_answered(c) && !was_answered) rc = add_to(o, t, T_ANSWERED, one);
    if (rc == 0 && (c->known & HAS_END)) rc = add_float(o, t, T_SECONDS, call_talk(c, c->end) - talked);
    if (rc == 0) rc = keep_extreme(o, t, T_FIRST, c->start, Py_LT);  /* first = min(first, start) */
    if (rc == 0)  /* last = max(last, end or start) */
        rc = keep_extreme(o, t, T_LAST, (c->known & HAS_END) && c->end != 0.0 ? c->end : c->start, Py_GT);
    return rc;
}

/* CallBook._record(event): the event's fields, but no call ids (its type is the Event this file knows) */
static PyObject *record_of(Observer *o, PyObject *event) {
    PyObject *record = o->event_type->tp_alloc(o->event_type, 0);
    if (record == NULL) return NULL;
    for (int f = 0; f < N_FIELDS; f++) SLOT(record, o->ev[f]) = Py_XNewRef(f == F_CALL ? Py_None : EV(event, f));
    return record;
}

/* observe(event): CallBook.observe(event) */
/* What observe returns for a record of no call: None, and book.current is None. */
static PyObject *no_call(Observer *o) {
    if (PyDict_SetItem(o->book_dict, s_current, Py_None) < 0) return NULL;
    Py_RETURN_NONE;
}

/* book.current = (state, new), returned (a new reference). The tuple it holds already is filled again when nothing
 * else holds it (none can see it change, as CPython's own iterators reuse their result tuples): no tuple made and
 * freed, no dict write, for each record of a call. */
static PyObject *current_of(Observer *o, PyObject *state, int new) {
    PyObject *flag = new ? Py_True : Py_False;
    PyObject *held = PyDict_GetItemWithError(o->book_dict, s_current);  /* borrowed */
    if (held != NULL && PyTuple_CheckExact(held) && PyTuple_GET_SIZE(held) == 2 && Py_REFCNT(held) == 1) {
        PyObject **items = ((PyTupleObject *)held)->ob_item;
        Py_INCREF(state); Py_SETREF(items[0], state);
        Py_INCREF(flag); Py_SETREF(items[1], flag);
        Py_INCREF(held);
        return held;
    }
    if (held == NULL && PyErr_Occurred()) return NULL;
    PyObject *made = PyTuple_Pack(2, state, flag);
    if (made != NULL && PyDict_SetItem(o->book_dict, s_current, made) < 0) Py_CLEAR(made);
    return made;
}

static PyObject *observer_observe(Observer *o, PyObject *event) {
    if (Py_TYPE(event) != o->event_type) return PyObject_CallOneArg(o->python_observe, event);
    /* (book.current: None for a record of no call, else what is returned; set once, ~200 instructions each time) */
    PyObject *kind = EV(event, F_KIND), *call = EV(event, F_CALL);
    if ((kind != o->k_start && kind != o->k_answer && kind != o->k_end) || call == Py_None) return no_call(o);
    if (!PyTuple_Check(call) || PyTuple_GET_SIZE(call) != N_CALL) return PyObject_CallOneArg(o->python_observe, event);
    int channel_key;
    PyObject *keys[MAX_KEYS];
    int nkeys = keys_of(call, keys, &channel_key);
    if (nkeys < 0) return nkeys == -1 ? NULL : PyObject_CallOneArg(o->python_observe, event);
    CallStateObject *state = NULL;
    PyObject *result = NULL;
    double now;
    if (nkeys == 0) return no_call(o);
    if (as_double(EV(event, F_TIME), &now) < 0 || prune(o, now) < 0) goto done;
    int found_by, placed[MAX_KEYS];
    double b;
    CallStateObject *fresh;
    if (began(o, event, call, &b) < 0 || (fresh = call_state_new(EV(event, F_ACCOUNT), b)) == NULL) goto done;
    for (int k = 0; k < nkeys; k++) placed[k] = 0;
    state = claim(o, keys, nkeys, channel_key, event, call, fresh, &found_by, placed);
    Py_XINCREF(state);
    int new = state == fresh;
    for (int k = 0; state != NULL && k < nkeys; k++) {  /* (by_key[key] is state already where `placed` or found) */
        if (k != found_by && !(new && placed[k]) && PyDict_SetItem(o->by_key, keys[k], (PyObject *)state) < 0)
            Py_CLEAR(state);
    }
    if (state == NULL) unplace(o, keys, nkeys, fresh);  /* (an error: the book as it was) */
    Py_DECREF(fresh);  /* (held by the book where it is the new call; else gone: no key names it now) */
    if (state == NULL) goto done;
    if (new) {
        PyObject *r = PyObject_CallOneArg(o->append, (PyObject *)state);
        if (r == NULL) goto done;
        Py_DECREF(r);
    }
    for (int k = 0; k < nkeys; k++) {
        PyObject *key = keys[k];
        int known = new ? 0 : call_has_key(state, key);  /* (a new call has none yet) */
        if (known < 0 || (!known && call_add_key(state, key) < 0)) goto done;
    }
    double talked = (state->known & HAS_END) ? call_talk(state, state->end) : 0.0;
    int had_number = state->number != Py_None, had_ip = state->ip != Py_None, was_answered = call_answered(state);
    if (update(o, state, event, call) < 0) goto done;
    if (state->record == Py_None && state->classified != Py_None) {  /* a call that leaves */
        int outside = is_outside(o, state->classified);
        if (outside < 0) goto done;
        if (outside) {
            PyObject *record = record_of(o, event);
            if (record == NULL) goto done;
            Py_SETREF(state->record, record);
        }
    }
    if (tally(o, state, new, had_number, had_ip, was_answered, talked) < 0) goto done;
    result = current_of(o, (PyObject *)state, new);
done:
    for (int k = 0; k < nkeys; k++) Py_DECREF(keys[k]);
    Py_XDECREF(state);
    return result;
}

static PyMethodDef observer_methods[] = {
    {"observe", (PyCFunction)observer_observe, METH_O, "CallBook.observe(event), in C (see sipwatch/core.py)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ObserverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._calls.Observer",
    .tp_basicsize = sizeof(Observer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)observer_init,
    .tp_dealloc = (destructor)observer_dealloc,
    .tp_methods = observer_methods,
    .tp_doc = "CallBook.observe for one book (see sipwatch/core.py).",
};

/* remember(cache, Classified, fields, numbers, most): for each tuple of `numbers` (Classified.to_tuple()), the
 * Classified it stands for, made as its dataclass __init__ makes it (each field in its slot), filed in `cache`
 * (a dict, dialled -> Classified, oldest first) as NumberClassifier.remember files it: the oldest tenth goes
 * when `most` are there. The numbers a parse worker classified reach the main process this way, ~0.9 us a number less. */
static PyObject *calls_remember(PyObject *module, PyObject *args) {
    PyObject *cache, *names, *numbers;
    PyTypeObject *type;
    Py_ssize_t most, offsets[16];
    (void)module;
    if (!PyArg_ParseTuple(args, "O!O!O!O!n", &PyDict_Type, &cache, &PyType_Type, &type, &PyTuple_Type, &names,
                          &PyList_Type, &numbers, &most))
        return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(names);
    if (n < 1 || n > 16) { PyErr_SetString(PyExc_ValueError, "remember: 1 to 16 fields"); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (text == NULL || (offsets[i] = member_offset(type, text)) < 0) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "%s has no slot %R", type->tp_name, name);
            return NULL;
        }
    }
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(numbers); k++) {
        PyObject *values = PyList_GET_ITEM(numbers, k);
        if (!PyTuple_Check(values) || PyTuple_GET_SIZE(values) != n) {
            PyErr_SetString(PyExc_TypeError, "remember: a number is a tuple of the fields");
            return NULL;
        }
        PyObject *number = type->tp_alloc(type, 0);
        if (number == NULL) return NULL;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *value = PyTuple_GET_ITEM(values, i);
            Py_INCREF(value);
            SLOT(number, offsets[i]) = value;
        }
        if (PyDict_GET_SIZE(cache) >= most && forget_oldest(cache, most / 10 > 1 ? most / 10 : 1) < 0) {
            Py_DECREF(number);
            return NULL;
        }
        int rc = PyDict_SetItem(cache, PyTuple_GET_ITEM(values, 0), number);
        Py_DECREF(number);
        if (rc < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* forget(cache, numbers): NumberClassifier.forget_all, the first field of each tuple of `numbers` out of `cache` */
static PyObject *calls_forget(PyObject *module, PyObject *args) {
    PyObject *cache, *numbers;
    (void)module;
    if (!PyArg_ParseTuple(args, "O!O!", &PyDict_Type, &cache, &PyList_Type, &numbers)) return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(numbers); k++) {
        PyObject *values = PyList_GET_ITEM(numbers, k);
        if (!PyTuple_Check(values) || PyTuple_GET_SIZE(values) < 1) {
            PyErr_SetString(PyExc_TypeError, "forget: a number is a tuple of the fields");
            return NULL;
        }
        PyObject *key = PyTuple_GET_ITEM(values, 0);
        int known = PyDict_Contains(cache, key);
        if (known < 0 || (known && PyDict_DelItem(cache, key) < 0)) return NULL;
    }
    Py_RETURN_NONE;
}

/* worked_out(numbers, plain, kept, work_out, most): NumberClassifier.worked_out: the values (Classified.to_tuple())
 * of the numbers that `plain_kind` does not tell, in their order, each from `kept` (a dict, dialled -> values) or
 * else `work_out(number)`, kept (`kept` is emptied when it holds `most`). `plain`: the rules of `plain_rules_of`. */
static PyObject *calls_worked_out(PyObject *module, PyObject *args) {
    PyObject *numbers, *spec, *kept, *work_out;
    Py_ssize_t most;
    PlainRules rules;
    (void)module;
    if (!PyArg_ParseTuple(args, "O!OO!On", &PyList_Type, &numbers, &spec, &PyDict_Type, &kept, &work_out, &most)
        || plain_rules_of(spec, &rules) < 0)
        return NULL;
    PyObject *found_all = PyList_New(0);
    for (Py_ssize_t k = 0; found_all != NULL && k < PyList_GET_SIZE(numbers); k++) {
        PyObject *number = PyList_GET_ITEM(numbers, k);
        if (plain_kind(&rules, number) != PLAIN_PYTHON) continue;
        PyObject *found = PyDict_GetItemWithError(kept, number);  /* borrowed */
        if (found != NULL) Py_INCREF(found);
        else if (!PyErr_Occurred()) {
            if (PyDict_GET_SIZE(kept) >= most) PyDict_Clear(kept);
            found = PyObject_CallOneArg(work_out, number);
            if (found != NULL && PyDict_SetItem(kept, number, found) < 0) Py_CLEAR(found);
        }
        if (found == NULL || PyList_Append(found_all, found) < 0) Py_CLEAR(found_all);
        Py_XDECREF(found);
    }
    return found_all;
}

static PyMethodDef module_methods[] = {
    {"worked_out", calls_worked_out, METH_VARARGS, "NumberClassifier.worked_out, in C."},
    {"remember", calls_remember, METH_VARARGS, "NumberClassifier.remember for a list of Classified tuples, in C."},
    {"forget", calls_forget, METH_VARARGS, "NumberClassifier.forget_all, in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_calls", "CallBook.observe in C (see sipwatch/calls.py and sipwatch/core.py).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__calls(void) {
    s_id_prefix = PyUnicode_InternFromString("id:");
    s_ch_prefix = PyUnicode_InternFromString("ch:");
    s_internal = PyUnicode_InternFromString("internal");
    s_current = PyUnicode_InternFromString("current");
    s_country = PyUnicode_InternFromString("country");
    s_answered_text = PyUnicode_FromString("ANSWERED");
    one = PyLong_FromLong(1);
    if (!s_id_prefix || !s_ch_prefix || !s_internal || !s_current || !s_country || !s_answered_text || !one)
        return NULL;
    PyObject *m = module_with_type(&moduledef, "Observer", &ObserverType);
    if (m != NULL && (add_type(m, "CallState", &CallStateType) < 0
                      || PyModule_AddObject(m, "MAX_OPEN", PyFloat_FromDouble(CALL_MAX_OPEN)) < 0))
        Py_CLEAR(m);
    return m;
}
