/*
 * `BehaviourDetector.observe` for call records, in C, where nothing is found (see sipwatch/detectors/behaviour.py,
 * the specification, and sipwatch/core.py, which hands this observe to the C core in a scan).
 *
 * Most records of a call only teach the account's profile: one more call in an hour, a country, a number type,
 * a source network, some talk minutes. This file first works out, without changing anything, whether the Python
 * `_call` could find anything or would take a step it does not take (a new local day to roll over, a profile or
 * a `Today` not made yet, a user agent, a clock quarter not cached). If so, the Python observe
 * runs, whole. Otherwise it makes exactly the changes `_call` makes, in the same order, and returns [].
 * A login or registration is taken the same way (`login`): one with an address and no user agent, from a
 * network the account used or while it may not be judged, only teaches the profile its network.
 * tests/test_core.py compares the profiles, what each call was judged (`CallState.judged`) and the decisions
 * of whole scans with and without it, and tests/test_behaviour.py random streams of logins, registrations and calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <math.h>

#include "_callstate.h"
#include "_event_slots.h"

static const char *const PROFILE_FIELDS[] = {"first_seen", "last_seen", "day", "days", "calls", "countries",
                                             "types", "networks", "hours", "today", "calls_per_day",
                                             "minutes_per_day", "agents", NULL};
enum { P_FIRST, P_LAST, P_DAY, P_DAYS, P_CALLS, P_COUNTRIES, P_TYPES, P_NETWORKS, P_HOURS, P_TODAY, P_CPD, P_MPD,
       P_AGENTS, N_PROFILE };
static const char *const TODAY_FIELDS[] = {"calls", "minutes", "unusual_calls", "unusual_minutes", "countries",
                                           "types", "networks", "hours", "agents", "tainted", NULL};
enum { T_CALLS, T_MINUTES, T_UNUSUAL_CALLS, T_UNUSUAL_MINUTES, T_COUNTRIES, T_TYPES, T_NETWORKS, T_HOURS, T_AGENTS,
       T_TAINTED, N_TODAY };
static const char *const NUMBER_FIELDS[] = {"country", "number_type", "risk_class", "internal", NULL};
enum { N_COUNTRY, N_TYPE, N_RISK, N_INTERNAL, N_NUMBER };

#define CLOCK_SLOTS 4096  /* a power of two; ~6 weeks of quarters of an hour */
#define NO_QUARTER LLONG_MIN

typedef struct {
    PyObject_HEAD
    Py_ssize_t ev[N_FIELDS], pr[N_PROFILE], td[N_TODAY], nu[N_NUMBER];
    PyTypeObject *event_type, *profile_type, *today_type, *call_type, *number_type;
    PyObject *alpha;  /* the detector's baseline weight, for Profile.roll */
    long top[4], age_at;  /* behaviour.TOP_COUNTRIES, _TYPES, _NETWORKS, _AGENTS and AGE_AT: roll's bounds */
    PyObject *python_observe, *book, *profiles, *dirty, *exclude, *clock, *local, *network_of, *module,
        *call_kinds;
    PyObject *v4, *v6;  /* the settings' prefixes, as network_of() is called */
    PyObject *recent;   /* the detector's _recent: account -> (time, address, user agent) of its last login */
    PyObject *networks;    /* network_of(ip, v4, v6) of the addresses met, by address (NULL: not made yet) */
    PyObject *book_dict;   /* the call book's __dict__, where it keeps `current` (NULL: read it through getattr) */
    Py_ssize_t max_accounts;
    long min_days, min_calls, unusual_percent, volume_calls, volume_minutes, source, destination, unusual;
    PyObject *keep_alive;
    /* local_of's own cache, by quarter of an hour modulo CLOCK_SLOTS: (local day, hour) with no int or dict made */
    long long clock_quarter[CLOCK_SLOTS];
    long clock_day[CLOCK_SLOTS], clock_hour[CLOCK_SLOTS];
    struct Pending *pending;  /* the day counts not in their dicts yet (see `Pending`), PENDING_SLOTS of them... */
    int *taken, ntaken;       /* ...and the slots given a Today since the last flush_all (more than PENDING_SLOTS: all) */
} Learned;

/*
 * A call that finds nothing adds one to four counts of its account's day (`Today`: the network it came from, its
 * hour, its destination and number type); each is a dict of its own, small, and cold by the account's next call
 * (a CDR file's accounts take turns): ~8 cache misses a call, a sixth of a CDR scan's main process. A day's
 * counts come in runs (the same network, the same destination for most calls: a national number's key is its
 * type), so the count of each dict's last key waits here, by the Today it is for, in one small table that stays in
 * the cache, and goes into its dict when another key comes, when C reads that dict (`plan`, `roll_over`), and
 * before any Python code may read it: `flush_all` runs before each call into Python from here, and the
 * ProfileBook calls `flush` before it hands out a profile (its `settle`). Counts go in in the order their keys
 * came first, as one at a time would have put them.
 */
enum { PEND_NETWORKS, PEND_HOURS, PEND_COUNTRIES, PEND_TYPES, N_PEND };
static const int PEND_FIELD[N_PEND] = {T_NETWORKS, T_HOURS, T_COUNTRIES, T_TYPES};
#define PENDING_BITS 12
#define PENDING_SLOTS (1 << PENDING_BITS)
enum { KNOWN_NETWORK, KNOWN_WHERE, KNOWN_TYPE, N_KNOWN };
typedef struct Pending {
    PyObject *today;        /* the Today these counts are for (held), or NULL: a free slot */
    PyObject *key[N_PEND];  /* the key of each of its dicts whose count waits (held), or NULL */
    long n[N_PEND];
    /* the last network, destination and type that `plan` found in the profile's learned counts (held), or NULL:
     * those change when a day is over (a new Today: another slot) or in Python (every slot is flushed first) */
    PyObject *known[N_KNOWN];
} Pending;

static PyObject *s_current, *s_pair_seconds, *one;

#define SL(obj, offsets, f) SLOT(obj, (offsets)[f])

static int flush_all(Learned *o);

/* (A Learned is collected with its detector: the profile book it flushes for holds its `flush`, and it holds
 * the detector's observe.) */
static int learned_traverse(Learned *o, visitproc visit, void *arg) {
    Py_VISIT(o->keep_alive);
    Py_VISIT(o->alpha);
    Py_VISIT(o->networks);
    Py_VISIT(o->book_dict);
    for (int i = 0; o->pending != NULL && i < PENDING_SLOTS; i++) {
        Py_VISIT(o->pending[i].today);
        for (int k = 0; k < N_PEND; k++) Py_VISIT(o->pending[i].key[k]);
        for (int k = 0; k < N_KNOWN; k++) Py_VISIT(o->pending[i].known[k]);
    }
    return 0;
}

static int learned_clear(Learned *o) {  /* (garbage: nothing waiting is worth putting in) */
    for (int i = 0; o->pending != NULL && i < PENDING_SLOTS; i++) {
        Py_CLEAR(o->pending[i].today);
        for (int k = 0; k < N_PEND; k++) Py_CLEAR(o->pending[i].key[k]);
        for (int k = 0; k < N_KNOWN; k++) Py_CLEAR(o->pending[i].known[k]);
    }
    Py_CLEAR(o->keep_alive);
    Py_CLEAR(o->alpha);
    Py_CLEAR(o->networks);
    Py_CLEAR(o->book_dict);
    return 0;
}

static void learned_dealloc(Learned *o) {
    PyObject_GC_UnTrack(o);
    if (o->pending != NULL) {  /* (the counts go where they belong, whatever else fails) */
        PyObject *type, *value, *trace;
        PyErr_Fetch(&type, &value, &trace);
        if (flush_all(o) < 0) PyErr_Clear();
        PyErr_Restore(type, value, trace);
    }
    learned_clear(o);
    PyMem_Free(o->pending);
    PyMem_Free(o->taken);
    Py_TYPE(o)->tp_free((PyObject *)o);
}

static int offsets_of(PyObject *type, const char *const *names, Py_ssize_t *out) {
    for (int i = 0; names[i] != NULL; i++)
        if ((out[i] = member_offset((PyTypeObject *)type, names[i])) < 0) {
            PyErr_Format(PyExc_TypeError, "%s has no slot %s", ((PyTypeObject *)type)->tp_name, names[i]);
            return -1;
        }
    return 0;
}

/* Learned(detector, python_observe, module, call_kinds, (Event, Profile, Today, CallState, Classified),
 *         (min_days, min_calls, unusual_hour_percent, volume_min_calls, volume_min_minutes, v4, v6),
 *         (SOURCE, DESTINATION, UNUSUAL)) */
static int learned_init(Learned *o, PyObject *args, PyObject *kw) {
    PyObject *detector, *types[5];
    (void)kw;
    for (size_t i = 0; i < CLOCK_SLOTS; i++) o->clock_quarter[i] = NO_QUARTER;
    if (o->pending == NULL) o->pending = PyMem_Calloc(PENDING_SLOTS, sizeof(Pending));
    if (o->taken == NULL) o->taken = PyMem_Calloc(PENDING_SLOTS, sizeof(int));
    if (o->pending == NULL || o->taken == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOO!(O!O!O!O!O!)(lllllOO)(lll)", &detector, &o->python_observe, &o->module,
                          &PyTuple_Type, &o->call_kinds, &PyType_Type, &types[0], &PyType_Type, &types[1],
                          &PyType_Type, &types[2], &PyType_Type, &types[3], &PyType_Type, &types[4], &o->min_days,
                          &o->min_calls, &o->unusual_percent, &o->volume_calls, &o->volume_minutes, &o->v4, &o->v6,
                          &o->source, &o->destination, &o->unusual))
        return -1;
    if (!event_slots((PyTypeObject *)types[0], o->ev)) {
        PyErr_SetString(PyExc_TypeError, "not the Event this file knows");
        return -1;
    }
    if (offsets_of(types[1], PROFILE_FIELDS, o->pr) < 0 || offsets_of(types[2], TODAY_FIELDS, o->td) < 0
        || offsets_of(types[4], NUMBER_FIELDS, o->nu) < 0)
        return -1;
    if (!is_call_type((PyTypeObject *)types[3])) {
        PyErr_SetString(PyExc_TypeError, "the calls are _calls.CallState");
        return -1;
    }
    o->event_type = (PyTypeObject *)types[0]; o->profile_type = (PyTypeObject *)types[1];
    o->today_type = (PyTypeObject *)types[2]; o->call_type = (PyTypeObject *)types[3];
    o->number_type = (PyTypeObject *)types[4];
    PyObject *book = PyObject_GetAttrString(detector, "book");
    PyObject *calls = book ? PyObject_GetAttrString(detector, "calls") : NULL;
    PyObject *profiles = calls ? PyObject_GetAttrString(book, "profiles") : NULL;
    PyObject *dirty = profiles ? PyObject_GetAttrString(book, "dirty") : NULL;
    PyObject *recent = dirty ? PyObject_GetAttrString(detector, "_recent") : NULL;
    PyObject *settings = recent ? PyObject_GetAttrString(detector, "settings") : NULL;
    PyObject *most = settings ? PyObject_GetAttrString(settings, "max_accounts") : NULL;
    o->max_accounts = most ? PyLong_AsSsize_t(most) : -1;
    Py_XSETREF(o->alpha, most ? PyObject_GetAttrString(detector, "alpha") : NULL);
    if (o->alpha == NULL) o->max_accounts = -1;
    static const char *const BOUNDS[] = {"TOP_COUNTRIES", "TOP_TYPES", "TOP_NETWORKS", "TOP_AGENTS", "AGE_AT"};
    PyObject *where = o->max_accounts >= 0 ? PyObject_GetAttrString(types[1], "__module__") : NULL;
    PyObject *profiles_module = where ? PyImport_Import(where) : NULL;  /* (Profile's: sipwatch.behaviour) */
    Py_XDECREF(where);
    if (profiles_module == NULL) o->max_accounts = -1;
    for (int i = 0; i < 5 && o->max_accounts >= 0; i++) {
        PyObject *bound = PyObject_GetAttrString(profiles_module, BOUNDS[i]);
        long value = bound ? PyLong_AsLong(bound) : -1;
        Py_XDECREF(bound);
        if (value == -1 && PyErr_Occurred()) o->max_accounts = -1;
        else if (i < 4) o->top[i] = value;
        else o->age_at = value;
    }
    Py_XDECREF(profiles_module);
    Py_XDECREF(settings); Py_XDECREF(most);
    PyObject *exclude = o->max_accounts >= 0 ? PyObject_GetAttrString(detector, "exclude") : NULL;
    PyObject *clock = exclude ? PyObject_GetAttrString(detector, "_clock") : NULL;
    PyObject *local = clock ? PyObject_GetAttrString(detector, "_local") : NULL;
    PyObject *network_of = local ? PyObject_GetAttrString(o->module, "network_of") : NULL;
    int ok = network_of != NULL && PyDict_Check(profiles) && PySet_Check(dirty) && PyDict_Check(recent)
             && PyFrozenSet_Check(exclude) && PyDict_Check(clock);
    if (network_of != NULL && !ok) PyErr_SetString(PyExc_TypeError, "a behaviour detector of the wrong shape");
    if (ok) {
        o->book = calls; o->profiles = profiles; o->dirty = dirty; o->exclude = exclude;
        o->clock = clock; o->local = local; o->network_of = network_of; o->recent = recent;
        PyObject *book_dict = PyObject_GenericGetDict(calls, NULL);
        if (book_dict == NULL || !PyDict_Check(book_dict)) { Py_CLEAR(book_dict); PyErr_Clear(); }
        Py_XSETREF(o->book_dict, book_dict);
        Py_XSETREF(o->networks, PyDict_New());
        o->keep_alive = o->networks == NULL ? NULL : Py_BuildValue("(OOOOOOOOOOOOOOOOOOO)", o->python_observe, o->module, o->call_kinds,
                                      types[0], types[1], types[2], types[3], types[4], o->v4, o->v6, book, calls,
                                      profiles, dirty, exclude, clock, local, network_of, recent);
        ok = o->keep_alive != NULL;
    }
    Py_XDECREF(book); Py_XDECREF(calls); Py_XDECREF(profiles); Py_XDECREF(dirty); Py_XDECREF(recent);
    Py_XDECREF(exclude); Py_XDECREF(clock); Py_XDECREF(local); Py_XDECREF(network_of);
    return ok ? 0 : -1;
}

/* network_of(ip, v4, v6), remembered per address (a new reference, or NULL with an error): the function is
 * lru_cache'd in Python too, but a call through it costs more than the rest of a call record's learning. */
static PyObject *network_for(Learned *o, PyObject *ip) {
    PyObject *found = PyDict_GetItemWithError(o->networks, ip);
    if (found != NULL) return Py_NewRef(found);
    if (PyErr_Occurred() || (found = PyObject_CallFunctionObjArgs(o->network_of, ip, o->v4, o->v6, NULL)) == NULL)
        return NULL;
    if (PyDict_GET_SIZE(o->networks) >= 65536) PyDict_Clear(o->networks);
    if (PyDict_SetItem(o->networks, ip, found) < 0) Py_CLEAR(found);
    return found;
}

/* A number as a double: 1, or 0 for None, or -1 with an error. */
static int number_of(PyObject *value, double *out) {
    if (value == Py_None) { *out = 0.0; return 0; }
    *out = PyFloat_AsDouble(value);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 1;
}

static int long_of(PyObject *value, long *out) {
    *out = PyLong_AsLong(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

/* Python's float floor division `x // 900`, as int(): float_floor_div in CPython's floatobject.c. For a time
 * (positive, below 2^52: every multiple of the divisor up to it is exact), the rounded quotient corrected by
 * comparing exact products is the same number without fmod (~200 instructions, for every call record). */
static double floor_div(double vx, double wx) {
    if (vx >= 0.0 && vx < 4503599627370496.0 / 1024.0 && wx >= 1.0 && wx <= 1024.0 && wx == floor(wx)) {
        double q = floor(vx / wx);
        if (q * wx > vx) q -= 1.0;
        else if ((q + 1.0) * wx <= vx) q += 1.0;
        return q;
    }
    double mod = fmod(vx, wx), div = (vx - mod) / wx, floordiv;
    if (mod) { if ((wx < 0) != (mod < 0)) div -= 1.0; }
    if (div) { floordiv = floor(div); if (div - floordiv > 0.5) floordiv += 1.0; }
    else floordiv = copysign(0.0, vx / wx);
    return floordiv;
}

/* BehaviourDetector._local(when): (local day, local hour), from its cache (a quarter not cached yet: the method
 * itself works it out and caches it; nothing else changes). 1, or 0 for an odd value (Python's turn), or -1. */
static int local_of(Learned *o, PyObject *when_object, double when, long *day, long *hour) {
    double quarter = floor_div(when, 900.0);
    if (!(fabs(quarter) < 9e15)) return 0;
    long long q = (long long)quarter;
    size_t at = (size_t)q & (CLOCK_SLOTS - 1);
    if (o->clock_quarter[at] == q) {
        *day = o->clock_day[at];
        *hour = o->clock_hour[at];
        return 1;
    }
    PyObject *key = PyLong_FromDouble(quarter);
    if (key == NULL) return -1;
    PyObject *found = PyDict_GetItemWithError(o->clock, key);
    Py_DECREF(key);
    if (found == NULL && PyErr_Occurred()) return -1;
    if (found != NULL) Py_INCREF(found);
    else {
        PyObject *made = when_object == NULL ? PyFloat_FromDouble(when) : Py_NewRef(when_object);
        found = made ? PyObject_CallOneArg(o->local, made) : NULL;
        Py_XDECREF(made);
        if (found == NULL) return -1;
    }
    int rc = PyTuple_Check(found) && PyTuple_GET_SIZE(found) == 2;
    if (rc && (long_of(PyTuple_GET_ITEM(found, 0), day) < 0 || long_of(PyTuple_GET_ITEM(found, 1), hour) < 0)) rc = -1;
    Py_DECREF(found);
    if (rc == 1) {  /* (the method's answer depends on the quarter alone: its zone is the detector's, fixed) */
        o->clock_quarter[at] = q;
        o->clock_day[at] = *day;
        o->clock_hour[at] = *hour;
    }
    return rc;
}

static int in_dict(PyObject *dict, PyObject *key) {
    if (!PyDict_Check(dict)) { PyErr_SetString(PyExc_TypeError, "a profile's counts are a dict"); return -1; }
    return PyDict_Contains(dict, key);
}

/* The waiting count of dict `i` into it: 0, or -1 with an error (the count waits on) */
static int flush_key(Learned *o, Pending *p, int i) {
    if (p->key[i] == NULL) return 0;
    PyObject *n = PyLong_FromLong(p->n[i]);
    int rc = n ? count_up(SL(p->today, o->td, PEND_FIELD[i]), p->key[i], n) : -1;
    Py_XDECREF(n);
    if (rc == 0) Py_CLEAR(p->key[i]);
    return rc;
}

static int flush_slot(Learned *o, Pending *p) {
    if (p->today == NULL) return 0;
    for (int i = 0; i < N_PEND; i++)
        if (flush_key(o, p, i) < 0) return -1;
    for (int i = 0; i < N_KNOWN; i++) Py_CLEAR(p->known[i]);
    Py_CLEAR(p->today);
    return 0;
}

static Pending *slot_of(Learned *o, PyObject *today) {  /* (Fibonacci hashing of the address: 12 bits) */
    uint64_t at = (uint64_t)(uintptr_t)today * UINT64_C(0x9E3779B97F4A7C15);
    return &o->pending[at >> (64 - PENDING_BITS)];
}

/* The counts waiting for `today` into its dicts: 0, or -1 with an error */
static int flush_today(Learned *o, PyObject *today) {
    Pending *p = slot_of(o, today);
    return p->today == today ? flush_slot(o, p) : 0;
}

/* Every waiting count into its dict: the slots taken since the last time (a call into Python comes a few thousand
 * times a million records, and the whole table is ~400 KB) */
static int flush_all(Learned *o) {
    int all = o->ntaken > PENDING_SLOTS, n = all ? PENDING_SLOTS : o->ntaken;
    for (int i = 0; i < n; i++)
        if (flush_slot(o, &o->pending[all ? i : o->taken[i]]) < 0) return -1;
    o->ntaken = 0;
    return 0;
}

/* today.<dict i>[key] += 1, the count waiting while the same key comes (see `Pending`) */
static int pend(Learned *o, PyObject *today, int i, PyObject *key) {
    Pending *p = slot_of(o, today);
    if (p->today != today) {
        if (flush_slot(o, p) < 0) return -1;
        p->today = Py_NewRef(today);
        if (o->ntaken < PENDING_SLOTS) o->taken[o->ntaken] = (int)(p - o->pending);
        if (o->ntaken <= PENDING_SLOTS) o->ntaken++;  /* (past PENDING_SLOTS: flush_all visits every slot) */
    }
    if (p->key[i] == key) {
        p->n[i]++;
        return 0;
    }
    if (flush_key(o, p, i) < 0) return -1;
    p->key[i] = Py_NewRef(key);
    p->n[i] = 1;
    return 0;
}

/* key in profile.<dict> (1, 0, or -1 with an error), for the profile whose day is `today` (Py_None: none yet):
 * the last key found there is remembered in today's slot (`Pending.known`) */
static int known_in(Learned *o, PyObject *today, int which, PyObject *dict, PyObject *key) {
    Pending *p = today == Py_None ? NULL : slot_of(o, today);
    if (p != NULL && p->today != today) p = NULL;
    if (p != NULL && p->known[which] == key) return 1;
    int found = in_dict(dict, key);
    if (found == 1 && p != NULL) Py_XSETREF(p->known[which], Py_NewRef(key));
    return found;
}

/* The Python observe, every count in its dict first */
static PyObject *python_observe(Learned *o, PyObject *event) {
    return flush_all(o) < 0 ? NULL : PyObject_CallOneArg(o->python_observe, event);
}

/* obj.slot += amount (a number) */
static int add_slot(PyObject *obj, Py_ssize_t offset, PyObject *amount) {
    if (add_in_place(SLOT(obj, offset), amount)) return 0;
    PyObject *more = PyNumber_Add(SLOT(obj, offset), amount);
    if (more == NULL) return -1;
    set_slot(obj, offset, more);
    Py_DECREF(more);
    return 0;
}

/* ISO country: behaviour._country() (a str of letters only; None for phonenumbers' "001" and the like) */
static int is_country(PyObject *country) {
    if (!PyUnicode_Check(country) || PyUnicode_GET_LENGTH(country) == 0) return 0;
    int kind = PyUnicode_KIND(country);
    const void *data = PyUnicode_DATA(country);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(country); i++)
        if (!Py_UNICODE_ISALPHA(PyUnicode_READ(kind, data, i))) return 0;
    return 1;
}

/* Profile.hour_share(slot) * 100 < percent; -1 with an error */
static int unusual_hour(Learned *o, PyObject *profile, long slot) {
    PyObject *hours = SL(profile, o->pr, P_HOURS);
    if (!PyList_Check(hours) || PyList_GET_SIZE(hours) != 48) {
        PyErr_SetString(PyExc_TypeError, "a profile's hours are a list of 48 counts");
        return -1;
    }
    long total = 0, h[48];
    for (int i = 0; i < 48; i++) {
        if (long_of(PyList_GET_ITEM(hours, i), &h[i]) < 0) return -1;
        total += h[i];
    }
    double share = 0.0;
    if (total) {
        long base = slot - slot % 24, hour = slot % 24;
        share = (double)(h[base + (hour + 23) % 24] + h[slot] + h[base + (hour + 1) % 24]) / (double)total;
    }
    return share * 100 < (double)o->unusual_percent;
}

typedef struct {  /* what the fast path will change, worked out before anything is */
    PyObject *network;          /* a new reference, or NULL: no source to learn */
    long slot;                  /* -1: no destination to learn */
    PyObject *where, *type;     /* borrowed from the number: an outside call's destination */
    int usual;
    double minutes;             /* > 0: talk minutes to learn */
    long flags;
    double learned;  /* the talk minutes learned of the call, after */
} Plan;

/* 1: the plan is made (nothing to find), 0: Python's turn, -1: error */
static int plan(Learned *o, PyObject *event, CallStateObject *call, PyObject *profile, long flags, double learned,
                Plan *p) {
    PyObject *today = SL(profile, o->pr, P_TODAY), *number = call->classified, *ip = call->ip;
    long days, calls;
    if (today != Py_None && Py_TYPE(today) != o->today_type) return 0;  /* (None: a new day, nothing seen yet) */
    if (SL(event, o->ev, F_UA) != Py_None) return 0;  /* a user agent: its checks are Python's */
    if (long_of(SL(profile, o->pr, P_DAYS), &days) < 0 || long_of(SL(profile, o->pr, P_CALLS), &calls) < 0) return -1;
    int judged = days >= o->min_days, judged_calls = judged && calls >= o->min_calls;
    int outside = 0;
    if (number != Py_None) {
        if (Py_TYPE(number) != o->number_type) return 0;
        int internal = PyObject_IsTrue(SL(number, o->nu, N_INTERNAL));
        if (internal < 0) return -1;
        outside = !internal;
    }
    p->network = NULL; p->slot = -1; p->where = p->type = NULL; p->usual = 1; p->minutes = 0.0;
    if (ip != Py_None && !(flags & o->source)) {  /* _source(), with no user agent */
        flags |= o->source;
        p->network = network_for(o, ip);
        if (p->network == NULL) return -1;
        PyObject *networks = SL(profile, o->pr, P_NETWORKS);
        int known = known_in(o, today, KNOWN_NETWORK, networks, p->network);
        if (known < 0) return -1;
        if (!known && PyDict_GET_SIZE(networks) && judged) return 0;  /* a network it never used */
    }
    long unusual_calls;
    if (today == Py_None) unusual_calls = 0;
    else if (long_of(SL(today, o->td, T_UNUSUAL_CALLS), &unusual_calls) < 0) return -1;
    if (number != Py_None && !(flags & o->destination)) {
        flags |= o->destination;
        long day, hour;
        int found = local_of(o, NULL, call->start, &day, &hour);
        if (found <= 0) return found;
        p->slot = ((day - 1) % 7 + 7) % 7 >= 5 ? hour + 24 : hour;
        if (p->slot < 0 || p->slot >= 48) return 0;
        if (outside) {
            PyObject *country = SL(number, o->nu, N_COUNTRY);
            p->type = SL(number, o->nu, N_TYPE);
            int geographic = is_country(country);
            p->where = geographic ? country : p->type;
            int a = known_in(o, today, KNOWN_WHERE, SL(profile, o->pr, P_COUNTRIES), p->where);
            int b = known_in(o, today, KNOWN_TYPE, SL(profile, o->pr, P_TYPES), p->type);
            if (a < 0 || b < 0) return -1;
            p->usual = a && b;
            flags |= p->usual ? 0 : o->unusual;
            if (judged_calls) {  /* _destination() */
                if (!(a && b) && today != Py_None && flush_today(o, today) < 0) return -1;
                int known = a || today == Py_None ? a : in_dict(SL(today, o->td, T_COUNTRIES), p->where);  /* knows_destination */
                int known_type = b || today == Py_None ? b : in_dict(SL(today, o->td, T_TYPES), p->type);  /* knows_type */
                if (known < 0 || known_type < 0) return -1;
                if (SL(number, o->nu, N_RISK) != Py_None && (!known || !known_type)) return 0;
                if (!known && geographic) return 0;  /* a new country: noted, and counted */
                if (o->unusual_percent && !p->usual) {
                    int odd = unusual_hour(o, profile, p->slot);
                    if (odd != 0) return odd < 0 ? -1 : 0;
                }
            }
            if (judged_calls && unusual_calls + !p->usual >= (o->volume_calls > 1 ? o->volume_calls : 1))
                return 0;  /* _volume(): today's unusual calls may be too many */
        }
    }
    if (outside && (call->known & HAS_END)) {  /* the talk minutes: call.talk(call.end) / 60 */
        double talked = call_talk(call, call->end) / 60;
        if (talked > learned) {
            p->minutes = talked - learned;
            double unusual_minutes = 0.0;
            if (today != Py_None && number_of(SL(today, o->td, T_UNUSUAL_MINUTES), &unusual_minutes) <= 0)
                return PyErr_Occurred() ? -1 : 0;
            if (flags & o->unusual) unusual_minutes += p->minutes;  /* see_minutes(m, usual=not flags & UNUSUAL) */
            if (judged_calls && unusual_minutes >= (o->volume_minutes > 1 ? (double)o->volume_minutes : 1.0))
                return 0;  /* _volume(minutes=True) */
            learned = talked;
        }
    }
    p->flags = flags;
    p->learned = learned;
    return 1;
}

/* behaviour._merge(into, new, top): today's counts added to the learned ones, the `top` largest kept (the
 * smallest go first, the earlier learned first among equals: Python's stable sort), all halved once their total
 * passes age_at (those at zero go). 0, or -1 with an error. */
typedef struct { long count; Py_ssize_t at; PyObject *key; } Counted;

static int by_count(const void *a, const void *b) {
    const Counted *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

static int merge_counts(PyObject *into, PyObject *new, long top, long age_at) {
    if (!PyDict_Check(into) || !PyDict_Check(new)) { PyErr_SetString(PyExc_TypeError, "counts are dicts"); return -1; }
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(new, &pos, &key, &value)) {
        PyObject *had = PyDict_GetItemWithError(into, key);
        if (had == NULL && PyErr_Occurred()) return -1;
        PyObject *sum = had ? PyNumber_Add(had, value) : Py_NewRef(value);
        int rc = sum ? PyDict_SetItem(into, key, sum) : -1;
        Py_XDECREF(sum);
        if (rc < 0) return -1;
    }
    Py_ssize_t n = PyDict_GET_SIZE(into);
    Counted *all = PyMem_New(Counted, n ? n : 1);
    if (all == NULL) { PyErr_NoMemory(); return -1; }
    long total = 0;
    int rc = 0;
    pos = 0;
    for (Py_ssize_t i = 0; rc == 0 && PyDict_Next(into, &pos, &key, &value); i++) {
        all[i] = (Counted){PyLong_AsLong(value), i, key};
        if (all[i].count == -1 && PyErr_Occurred()) rc = -1;
        else total += all[i].count;
    }
    if (rc == 0 && n > top) {
        qsort(all, (size_t)n, sizeof(Counted), by_count);
        for (Py_ssize_t i = 0; rc == 0 && i < n - top; i++) {
            total -= all[i].count;
            Py_INCREF(all[i].key);
            rc = PyDict_DelItem(into, all[i].key);
            Py_DECREF(all[i].key);
        }
    }
    PyMem_Free(all);
    if (rc < 0 || total <= age_at) return rc;
    PyObject *keys = PyDict_Keys(into);
    if (keys == NULL) return -1;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(keys); i++) {
        PyObject *k = PyList_GET_ITEM(keys, i);
        long count = PyLong_AsLong(PyDict_GetItem(into, k));
        if (count == -1 && PyErr_Occurred()) { rc = -1; break; }
        if (count / 2 == 0 && count >= 0) rc = PyDict_DelItem(into, k);  /* (floor division: counts are >= 0) */
        else {
            PyObject *half = PyLong_FromLong(count >= 0 ? count / 2 : -((-count + 1) / 2));
            rc = half ? PyDict_SetItem(into, k, half) : -1;
            Py_XDECREF(half);
        }
    }
    Py_DECREF(keys);
    return rc;
}

/* Profile.roll(day, alpha) in C: the day that is over is learned (unless a critical decision tainted it). 1: done,
 * 0: a shape it does not know (Python's turn; nothing changed), -1: an error. */
static int roll_over(Learned *o, PyObject *profile, long day) {
    PyObject *today = SL(profile, o->pr, P_TODAY), *hours = SL(profile, o->pr, P_HOURS);
    if (today != Py_None && Py_TYPE(today) != o->today_type) return 0;
    if (today != Py_None && flush_today(o, today) < 0) return -1;
    if (!PyList_CheckExact(hours) || PyList_GET_SIZE(hours) != 48) return 0;
    long days, calls, today_calls = 0;
    double cpd, mpd, minutes = 0.0, alpha = PyFloat_AsDouble(o->alpha);
    if (alpha == -1.0 && PyErr_Occurred()) return -1;
    if (long_of(SL(profile, o->pr, P_DAYS), &days) < 0 || long_of(SL(profile, o->pr, P_CALLS), &calls) < 0
        || number_of(SL(profile, o->pr, P_CPD), &cpd) < 0 || number_of(SL(profile, o->pr, P_MPD), &mpd) < 0)
        return -1;
    if (!PyFloat_CheckExact(SL(profile, o->pr, P_CPD)) || !PyFloat_CheckExact(SL(profile, o->pr, P_MPD))) return 0;
    static const int LEARNED[4] = {P_COUNTRIES, P_TYPES, P_NETWORKS, P_AGENTS};
    static const int SEEN[4] = {T_COUNTRIES, T_TYPES, T_NETWORKS, T_AGENTS};
    int learn = today != Py_None && SL(today, o->td, T_TAINTED) == Py_False;
    if (learn) {  /* (every part of the shape it knows, before anything changes: else Python's) */
        if (!PyFloat_CheckExact(SL(today, o->td, T_MINUTES))) return 0;
        for (int i = 0; i < 4; i++)
            if (!PyDict_Check(SL(profile, o->pr, LEARNED[i])) || !PyDict_Check(SL(today, o->td, SEEN[i]))) return 0;
        if (long_of(SL(today, o->td, T_CALLS), &today_calls) < 0 || number_of(SL(today, o->td, T_MINUTES), &minutes) < 0)
            return -1;
        PyObject *today_hours = SL(today, o->td, T_HOURS);
        if (!PyDict_Check(today_hours)) return 0;
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (PyDict_Next(today_hours, &pos, &key, &value)) {  /* (every slot one of the 48: else Python's) */
            long slot;
            if (!PyLong_CheckExact(key) || long_of(key, &slot) < 0 || slot < 0 || slot >= 48) { PyErr_Clear(); return 0; }
        }
    } else if (today != Py_None && SL(today, o->td, T_TAINTED) != Py_True) {
        return 0;
    }
    /* today, self.today, self.day = self.today, None, day (held here until the day is learned) */
    Py_INCREF(today);
    PyObject *day_obj = PyLong_FromLong(day);
    if (day_obj == NULL) { Py_DECREF(today); return -1; }
    set_slot(profile, o->pr[P_TODAY], Py_None);
    set_slot(profile, o->pr[P_DAY], day_obj);
    Py_DECREF(day_obj);
    int rc = 1;
    if (learn) {
        days += 1;
        calls += today_calls;
        if (days == 1) { cpd = (double)today_calls; mpd = minutes; }
        else { cpd += alpha * ((double)today_calls - cpd); mpd += alpha * (minutes - mpd); }
        PyObject *values[4] = {PyLong_FromLong(days), PyLong_FromLong(calls), PyFloat_FromDouble(cpd),
                               PyFloat_FromDouble(mpd)};
        Py_ssize_t slots[4] = {o->pr[P_DAYS], o->pr[P_CALLS], o->pr[P_CPD], o->pr[P_MPD]};
        for (int i = 0; i < 4; i++) {
            if (values[i] == NULL) rc = -1;
            else { set_slot(profile, slots[i], values[i]); Py_DECREF(values[i]); }
        }
        for (int i = 0; rc == 1 && i < 4; i++)
            if (merge_counts(SL(profile, o->pr, LEARNED[i]), SL(today, o->td, SEEN[i]), o->top[i], o->age_at) < 0)
                rc = -1;
        Py_ssize_t pos = 0;
        PyObject *key, *value;
        while (rc == 1 && PyDict_Next(SL(today, o->td, T_HOURS), &pos, &key, &value)) {  /* hours[slot] += n */
            Py_ssize_t slot = PyLong_AsSsize_t(key);
            PyObject *sum = PyNumber_Add(PyList_GET_ITEM(hours, slot), value);
            if (sum == NULL) rc = -1;
            else PyList_SetItem(hours, slot, sum);  /* (steals sum) */
        }
        long total = 0;
        for (Py_ssize_t i = 0; rc == 1 && i < 48; i++) {
            long n;
            if (long_of(PyList_GET_ITEM(hours, i), &n) < 0) rc = -1;
            else total += n;
        }
        if (rc == 1 && total > o->age_at) {  /* self.hours = [n // 2 for n in self.hours] */
            PyObject *halved = PyList_New(48);
            for (Py_ssize_t i = 0; halved != NULL && i < 48; i++) {
                long n = PyLong_AsLong(PyList_GET_ITEM(hours, i));
                PyObject *half = PyLong_FromLong(n >= 0 ? n / 2 : -((-n + 1) / 2));
                if (half == NULL) Py_CLEAR(halved);
                else PyList_SET_ITEM(halved, i, half);
            }
            if (halved == NULL) rc = -1;
            else { set_slot(profile, o->pr[P_HOURS], halved); Py_DECREF(halved); }
        }
    }
    Py_DECREF(today);
    return rc;
}

/* ProfileBook.touch for an account whose profile exists: its first or last sight moves, it is dirty. */
static int touch(Learned *o, PyObject *profile, PyObject *account, PyObject *when) {
    int later = compare(when, SL(profile, o->pr, P_LAST), Py_GT);
    if (later < 0) return -1;
    if (later) set_slot(profile, o->pr[P_LAST], when);
    else {
        int earlier = compare(when, SL(profile, o->pr, P_FIRST), Py_LT);
        if (earlier < 0) return -1;
        if (earlier) set_slot(profile, o->pr[P_FIRST], when);
    }
    return PySet_Add(o->dirty, account);
}

/* The changes of `_call` where it finds nothing, in its order: 1, or -1 with an error. */
static int carry_out(Learned *o, PyObject *event, CallStateObject *call, PyObject *profile, PyObject *account,
                     const Plan *p) {
    PyObject *today = SL(profile, o->pr, P_TODAY), *when = SL(event, o->ev, F_TIME);
    if (touch(o, profile, account, when) < 0) return -1;
    if (today == Py_None && (p->network != NULL || p->slot >= 0 || p->minutes > 0.0)) {  /* Profile.now() */
        PyObject *made = PyObject_CallNoArgs((PyObject *)o->today_type);
        if (made == NULL) return -1;
        set_slot(profile, o->pr[P_TODAY], made);
        Py_DECREF(made);
        today = made;  /* (held by the profile) */
    }
    if (p->network != NULL && pend(o, today, PEND_NETWORKS, p->network) < 0) return -1;  /* see_source */
    if (p->slot >= 0) {  /* see_call */
        PyObject *slot = PyLong_FromLong(p->slot);
        int rc = slot ? pend(o, today, PEND_HOURS, slot) : -1;
        Py_XDECREF(slot);
        if (rc < 0) return -1;
        if (p->where != NULL) {
            if (add_slot(today, o->td[T_CALLS], one) < 0) return -1;
            PyObject *more = PyLong_FromLong(!p->usual);
            rc = more ? add_slot(today, o->td[T_UNUSUAL_CALLS], more) : -1;
            Py_XDECREF(more);
            if (rc < 0 || pend(o, today, PEND_COUNTRIES, p->where) < 0 || pend(o, today, PEND_TYPES, p->type) < 0)
                return -1;
        }
    }
    if (p->minutes > 0.0) {  /* see_minutes */
        PyObject *minutes = PyFloat_FromDouble(p->minutes);
        int rc = minutes ? add_slot(today, o->td[T_MINUTES], minutes) : -1;
        if (rc == 0 && (p->flags & o->unusual)) rc = add_slot(today, o->td[T_UNUSUAL_MINUTES], minutes);
        Py_XDECREF(minutes);
        if (rc < 0) return -1;
    }
    call->judged = p->flags;  /* call.judged, call.learned_minutes = flags, learned */
    call->learned_minutes = p->learned;
    return 1;
}

/* observe's first test of a record of no call: with no account, an excluded one, or neither an address nor a
 * user agent (a registration's Contact is the phone's word, not a source: most registrations), it finds nothing
 * and learns nothing. 1: so, 0: not so, -1: error. */
static int tells_nothing(Learned *o, PyObject *event) {
    PyObject *account = SL(event, o->ev, F_ACCOUNT), *agent = SL(event, o->ev, F_UA);
    int named = PyObject_IsTrue(account);
    if (named <= 0) return named < 0 ? -1 : 1;
    int excluded = PySet_Contains(o->exclude, account);
    if (excluded != 0) return excluded;
    if (SL(event, o->ev, F_IP) != Py_None) return 0;
    int has_agent = PyObject_IsTrue(agent);
    return has_agent < 0 ? -1 : !has_agent;
}

/* A login or registration with an address and no user agent (neither its own nor a paired one), of an account
 * whose profile has a `Today` and no new day to roll over, from a network that is known or may not be judged:
 * what `observe` does with it (`_profile`, `_pair`, `_source`: it finds nothing, learns the network). 1: done,
 * 0: Python's turn (nothing changed), -1: error. */
static int login(Learned *o, PyObject *event) {
    PyObject *account = SL(event, o->ev, F_ACCOUNT), *ip = SL(event, o->ev, F_IP), *when = SL(event, o->ev, F_TIME);
    PyObject *agent = SL(event, o->ev, F_UA);
    if (!PyUnicode_CheckExact(account) || PyUnicode_GET_LENGTH(account) == 0 || ip == Py_None
        || (agent != Py_None && (!PyUnicode_Check(agent) || PyUnicode_GET_LENGTH(agent) > 0)))
        return 0;
    int excluded = PySet_Contains(o->exclude, account);
    if (excluded != 0) return excluded < 0 ? -1 : 0;
    PyObject *profile = PyDict_GetItemWithError(o->profiles, account);
    if (profile == NULL) return PyErr_Occurred() ? -1 : 0;
    if (Py_TYPE(profile) != o->profile_type) return 0;  /* (its slots are read only once it is a Profile) */
    PyObject *today = SL(profile, o->pr, P_TODAY);
    if (Py_TYPE(today) != o->today_type) return 0;
    double at;
    long day, hour, profile_day, days;
    int found = number_of(when, &at);
    if (found <= 0 || (found = local_of(o, when, at, &day, &hour)) <= 0) return found;
    if (long_of(SL(profile, o->pr, P_DAY), &profile_day) < 0 || long_of(SL(profile, o->pr, P_DAYS), &days) < 0)
        return -1;
    if (day > profile_day) return 0;  /* a new local day: the profile learns the last one */
    PyObject *last = PyDict_GetItemWithError(o->recent, account);  /* _pair */
    if (last == NULL && PyErr_Occurred()) return -1;
    if (last == NULL && PyDict_GET_SIZE(o->recent) >= o->max_accounts) return 0;  /* the oldest would make room */
    if (last != NULL) {
        double then;
        if (!PyTuple_Check(last) || PyTuple_GET_SIZE(last) != 3 || number_of(PyTuple_GET_ITEM(last, 0), &then) <= 0) {
            PyErr_Clear();
            return 0;
        }
        PyObject *within = PyObject_GetAttr(o->module, s_pair_seconds);
        double pair = within ? PyFloat_AsDouble(within) : -1.0;
        Py_XDECREF(within);
        if (pair == -1.0 && PyErr_Occurred()) return -1;
        PyObject *paired_agent = PyTuple_GET_ITEM(last, 2);
        int named = paired_agent == Py_None ? 0 : PyObject_IsTrue(paired_agent);
        if (named < 0) return -1;
        if (!(at - then > pair) && named) return 0;  /* the user agent of the login just before: Python's */
    }
    PyObject *network = network_for(o, ip);
    if (network == NULL) return -1;
    PyObject *networks = SL(profile, o->pr, P_NETWORKS);
    int known = in_dict(networks, network);
    if (known < 0 || (!known && PyDict_GET_SIZE(networks) && days >= o->min_days)) {  /* a network it never used */
        Py_DECREF(network);
        return known < 0 ? -1 : 0;
    }
    PyObject *entry = PyTuple_Pack(3, when, ip, agent);
    Py_INCREF(account);
    int rc = entry && touch(o, profile, account, when) == 0 ? 0 : -1;
    if (rc == 0 && last != NULL) rc = PyDict_DelItem(o->recent, account);  /* to the end: the newest */
    if (rc == 0) rc = PyDict_SetItem(o->recent, account, entry);
    if (rc == 0) rc = pend(o, today, PEND_NETWORKS, network);  /* see_source */
    Py_DECREF(account);
    Py_XDECREF(entry);
    Py_DECREF(network);
    return rc < 0 ? -1 : 1;
}

/* observe(event) */
static PyObject *learned_observe(Learned *o, PyObject *event) {
    if (Py_TYPE(event) != o->event_type) return python_observe(o, event);
    PyObject *kind = SL(event, o->ev, F_KIND);
    int is_call = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o->call_kinds); i++)
        is_call |= PyTuple_GET_ITEM(o->call_kinds, i) == kind;
    if (!is_call) {
        int quiet = tells_nothing(o, event), done = quiet ? quiet : login(o, event);
        return done < 0 ? NULL : done ? PyList_New(0) : python_observe(o, event);
    }
    /* book.current, from the book's dict where it is (a generic getattr looks in the class first: ~4 times as dear) */
    PyObject *current = o->book_dict != NULL ? PyDict_GetItemWithError(o->book_dict, s_current) : NULL;
    if (current != NULL) Py_INCREF(current);
    else if (PyErr_Occurred() || (current = PyObject_GetAttr(o->book, s_current)) == NULL) return NULL;
    PyObject *result = NULL, *account;
    CallStateObject *call;
    Plan p = {.network = NULL};
    if (!PyTuple_Check(current) || PyTuple_GET_SIZE(current) < 1
        || Py_TYPE(PyTuple_GET_ITEM(current, 0)) != o->call_type)
        goto python;
    call = (CallStateObject *)PyTuple_GET_ITEM(current, 0);
    account = call->account;
    if (account == Py_None || !PyUnicode_CheckExact(account) || call->key[0] == NULL) goto python;
    int excluded = PySet_Contains(o->exclude, account);
    if (excluded != 0) { if (excluded < 0) goto done; goto python; }
    long flags = call->judged;
    double learned = call->learned_minutes;
    PyObject *number = call->classified;
    int outside = 0;
    if (number != Py_None) {
        if (Py_TYPE(number) != o->number_type) goto python;
        int internal = PyObject_IsTrue(SL(number, o->nu, N_INTERNAL));
        if (internal < 0) goto done;
        outside = !internal;
    }
    if ((call->ip == Py_None || (flags & o->source)) && (number == Py_None || (flags & o->destination))
        && (!outside || !(call->known & HAS_END))) {
        result = PyList_New(0);  /* a record of a call that tells nothing new about it */
        goto done;
    }
    PyObject *profile = PyDict_GetItemWithError(o->profiles, account);
    if (profile == NULL) { if (PyErr_Occurred()) goto done; goto python; }
    if (Py_TYPE(profile) != o->profile_type) goto python;
    double when;
    long day, hour, profile_day;
    int found = number_of(SL(event, o->ev, F_TIME), &when);
    if (found <= 0 || (found = local_of(o, SL(event, o->ev, F_TIME), when, &day, &hour)) <= 0) {
        if (found < 0) goto done;
        goto python;
    }
    if (long_of(SL(profile, o->pr, P_DAY), &profile_day) < 0) goto done;
    if (day > profile_day) {  /* a new local day: the profile learns the last one (Profile.roll, as _profile does) */
        int rolled = roll_over(o, profile, day);
        if (rolled < 0) goto done;
        if (rolled == 0) {  /* (a shape of its own: its own roll) */
            PyObject *done_roll = flush_all(o) < 0 ? NULL : PyObject_CallMethod(profile, "roll", "lO", day, o->alpha);
            if (done_roll == NULL) goto done;
            Py_DECREF(done_roll);
        }
    }
    Py_INCREF(profile); Py_INCREF(call); Py_INCREF(account);
    found = plan(o, event, call, profile, flags, learned, &p);
    if (found == 1) found = carry_out(o, event, call, profile, account, &p);
    Py_DECREF(profile); Py_DECREF(call); Py_DECREF(account);
    if (found < 0) goto done;
    if (found == 0) goto python;
    result = PyList_New(0);
    goto done;
python:
    result = python_observe(o, event);
done:
    Py_XDECREF(p.network);
    Py_DECREF(current);
    return result;
}

/* roll(profile, day) -> bool: Profile.roll(day, the detector's alpha) done in C (False: left to Python, unchanged) */
static PyObject *learned_roll(Learned *o, PyObject *args) {
    PyObject *profile;
    long day, profile_day;
    if (!PyArg_ParseTuple(args, "O!l", o->profile_type, &profile, &day)) return NULL;
    if (long_of(SL(profile, o->pr, P_DAY), &profile_day) < 0) return NULL;
    if (day <= profile_day) Py_RETURN_TRUE;  /* (roll does nothing then) */
    int rolled = roll_over(o, profile, day);  /* (which puts the day's waiting counts in first) */
    return rolled < 0 ? NULL : PyBool_FromLong(rolled);
}

static PyObject *learned_flush(Learned *o, PyObject *unused) {
    (void)unused;
    if (flush_all(o) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef learned_methods[] = {
    {"observe", (PyCFunction)learned_observe, METH_O, "BehaviourDetector.observe(event), its quiet path in C."},
    {"roll", (PyCFunction)learned_roll, METH_VARARGS, "Profile.roll(day, alpha), in C (for the tests)."},
    {"flush", (PyCFunction)learned_flush, METH_NOARGS, "Every day count that waits here into its dict."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LearnedType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._learned.Learned",
    .tp_basicsize = sizeof(Learned),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)learned_init,
    .tp_dealloc = (destructor)learned_dealloc,
    .tp_traverse = (traverseproc)learned_traverse,
    .tp_clear = (inquiry)learned_clear,
    .tp_methods = learned_methods,
    .tp_doc = "BehaviourDetector.observe for one detector, its quiet path in C (see sipwatch/core.py).",
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_learned", "The learned behaviour's quiet path in C (see detectors/behaviour.py).", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__learned(void) {
    s_current = PyUnicode_InternFromString("current");
    s_pair_seconds = PyUnicode_InternFromString("PAIR_SECONDS");
    one = PyLong_FromLong(1);
    if (!s_current || !s_pair_seconds || !one) return NULL;
    return module_with_type(&moduledef, "Learned", &LearnedType);
}
