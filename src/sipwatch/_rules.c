/*
 * The account rules' measures over an account's window of calls, in C (see sipwatch/detectors/account_rules.py,
 * the specification: `_busiest`, `_peak_concurrency`, `_Account` pruning and billing). Each is a loop over the
 * calls of one account, run for every outside call: in Python ~0.15 us per call and pass, here a few ns. They
 * read the calls' C records (_callstate.h) directly; the tests compare each with its Python twin on random calls.
 * An account's tracked calls are a dict, CallState -> billed (True or False), oldest first.
 * `quiet` puts the bookkeeping and the gates of one outside call together (see AccountRulesDetector.observe);
 * `Gate` is that observe's first lines and `quiet` in one call, for the scan's core (account_rules.gate).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

#include "_callstate.h"
#include "_event_slots.h"

typedef struct {
    PyObject_HEAD
    PyTypeObject *state_type;  /* _calls.CallState */
    double max_open;
    PyTypeObject *number_type;  /* the classifications' type (the first seen; held), and where its e164 is */
    Py_ssize_t e164_at;
} Measures;

/* One call as the measures see it: its times, and where it came from. */
typedef struct {
    double start, end;
    int has_end;
    Py_ssize_t index;
} Span;

/* Measures(CallState, max_open) */
static int measures_init(Measures *m, PyObject *args, PyObject *kw) {
    PyObject *state_type;
    (void)kw;
    if (!PyArg_ParseTuple(args, "O!d", &PyType_Type, &state_type, &m->max_open))
        return -1;
    if (!is_call_type((PyTypeObject *)state_type)) {
        PyErr_SetString(PyExc_TypeError, "the calls are _calls.CallState");
        return -1;
    }
    Py_XSETREF(m->state_type, (PyTypeObject *)Py_NewRef(state_type));
    return 0;
}

static void measures_dealloc(Measures *m) {
    Py_XDECREF(m->state_type);
    Py_XDECREF(m->number_type);
    Py_TYPE(m)->tp_free((PyObject *)m);
}

/* CallState.talk(now) of a call whose type the caller checked */
static inline double talk_of(PyObject *call, double now) { return call_talk((const CallStateObject *)call, now); }

static PyObject *state_at(Measures *m, PyObject *calls, Py_ssize_t i) {
    PyObject *call = PyList_GET_ITEM(calls, i);
    if (Py_TYPE(call) != m->state_type) { PyErr_SetString(PyExc_TypeError, "not a CallState"); return NULL; }
    return call;
}

/* The calls' spans (a new array, or NULL with an error). */
/* One call's span (0), or -1 with an error (`call` NULL: an error is set already). */
static int span_of(Measures *m, PyObject *call, Span *span, Py_ssize_t i) {
    if (call == NULL) return -1;
    const CallStateObject *c = (const CallStateObject *)call;
    span->start = c->start;
    span->has_end = (c->known & HAS_END) != 0;
    span->end = span->has_end ? c->end : 0.0;
    span->index = i;
    return 0;
}

static Span *spans_of(Measures *m, PyObject *calls, Py_ssize_t n) {
    Span *spans = PyMem_New(Span, n ? n : 1);
    if (spans == NULL) { PyErr_NoMemory(); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++)
        if (span_of(m, state_at(m, calls, i), &spans[i], i) < 0) { PyMem_Free(spans); return NULL; }
    return spans;
}

static int by_start(const void *a, const void *b) {  /* stable: sorted(calls, key=start) */
    const Span *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* An account's window holds a few calls: sorted in place by insertion (qsort's calls through a pointer were ~2% of
 * a CDR scan's main process); the orders are total (the index breaks ties), so the result is qsort's. */
#define SMALL_SORT 24
#define SORT_OF(name, type, less)                                                       \
    static void name(type *items, Py_ssize_t n) {                                       \
        if (n > SMALL_SORT) { qsort(items, (size_t)n, sizeof(type), less); return; }   \
        for (Py_ssize_t i = 1; i < n; i++) {                                           \
            type item = items[i];                                                       \
            Py_ssize_t j = i;                                                           \
            for (; j > 0 && less(&item, &items[j - 1]) < 0; j--) items[j] = items[j - 1]; \
            items[j] = item;                                                            \
        }                                                                               \
    }
SORT_OF(sort_spans, Span, by_start)

static PyObject *list_of(PyObject *calls, const Span *spans, Py_ssize_t from, Py_ssize_t to) {
    PyObject *out = PyList_New(to - from);
    if (out == NULL) return NULL;
    for (Py_ssize_t i = from; i < to; i++) {
        PyObject *call = PyList_GET_ITEM(calls, spans[i].index);
        Py_INCREF(call);
        PyList_SET_ITEM(out, i - from, call);
    }
    return out;
}

/* busiest(calls, seconds): account_rules._busiest */
static PyObject *measures_busiest(Measures *m, PyObject *args) {
    PyObject *calls;
    double seconds;
    if (!PyArg_ParseTuple(args, "O!d", &PyList_Type, &calls, &seconds)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(calls);
    Span *spans = spans_of(m, calls, n);
    if (spans == NULL) return NULL;
    sort_spans(spans, n);
    Py_ssize_t first = 0, best_from = 0, best_to = 0;
    for (Py_ssize_t last = 0; last < n; last++) {
        while (spans[last].start - spans[first].start >= seconds) first++;
        if (last - first + 1 > best_to - best_from) { best_from = first; best_to = last + 1; }
    }
    PyObject *out = list_of(calls, spans, best_from, best_to);
    PyMem_Free(spans);
    return out;
}

/* One start or end of a call in the sweep. */
typedef struct {
    double time;
    int starts;  /* ends (0) before starts (1) at the same moment */
    Py_ssize_t index;
} Point;

static int by_point(const void *a, const void *b) {  /* as Python sorts (time, starts, index) tuples */
    const Point *x = a, *y = b;
    if (x->time != y->time) return x->time < y->time ? -1 : 1;
    if (x->starts != y->starts) return x->starts < y->starts ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

SORT_OF(sort_points, Point, by_point)

/* peak(calls, now): account_rules._peak_concurrency (a call with no end runs on while CallState.open_at(now)) */
static PyObject *measures_peak(Measures *m, PyObject *args) {
    PyObject *calls;
    double now;
    if (!PyArg_ParseTuple(args, "O!d", &PyList_Type, &calls, &now)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(calls), npoints = 0;
    Span *spans = spans_of(m, calls, n);
    Point *points = spans ? PyMem_New(Point, 2 * n + 1) : NULL;
    Py_ssize_t *ended_at = points ? PyMem_New(Py_ssize_t, n + 1) : NULL;  /* the place of a call's end point */
    if (ended_at == NULL) {
        PyMem_Free(spans); PyMem_Free(points);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        double start = spans[i].start, end = spans[i].end;
        if (!spans[i].has_end) {
            int open = start <= now && now - start < m->max_open;  /* open_at(now), with no end */
            if (!open) continue;
            end = INFINITY;
        }
        if (end > start) {
            points[npoints++] = (Point){start, 1, i};
            points[npoints++] = (Point){end, 0, i};
        }
    }
    sort_points(points, npoints);
    Py_ssize_t open_now = 0, best = 0, best_at = -1;
    for (Py_ssize_t p = 0; p < npoints; p++) {
        if (points[p].starts) {
            if (++open_now > best) { best = open_now; best_at = p; }
        } else {
            open_now--;
            ended_at[points[p].index] = p;
        }
    }
    /* the calls open just after point best_at, in the order they opened (the Python dict's order) */
    Span *open = PyMem_New(Span, best ? best : 1);
    PyObject *out = NULL;
    if (open == NULL) PyErr_NoMemory();
    else {
        Py_ssize_t k = 0;
        for (Py_ssize_t p = 0; p <= best_at; p++) {
            if (!points[p].starts) continue;
            Py_ssize_t i = points[p].index;
            if (ended_at[i] > best_at) open[k++] = (Span){0.0, 0.0, 0, i};  /* still open there */
        }
        out = list_of(calls, open, 0, k);
        PyMem_Free(open);
    }
    PyMem_Free(spans); PyMem_Free(points); PyMem_Free(ended_at);
    return out;
}


/* recent(calls, window, now) -> (recent, minutes): the calls that started within `window` before the newest
 * start, and their talk minutes by `now` (AccountRulesDetector._findings) */
static PyObject *measures_recent(Measures *m, PyObject *args) {
    PyObject *calls;
    double window, now;
    if (!PyArg_ParseTuple(args, "O!dd", &PyList_Type, &calls, &window, &now)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(calls);
    if (n == 0) { PyErr_SetString(PyExc_ValueError, "no calls"); return NULL; }
    Span *spans = spans_of(m, calls, n);
    if (spans == NULL) return NULL;
    double newest = spans[0].start, seconds = 0.0;
    for (Py_ssize_t i = 1; i < n; i++)
        if (spans[i].start > newest) newest = spans[i].start;
    double horizon = newest - window;
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(spans[i].start > horizon)) continue;
        seconds += talk_of(PyList_GET_ITEM(calls, i), now);
        spans[k++] = spans[i];
    }
    PyObject *recent = list_of(calls, spans, 0, k);
    PyMem_Free(spans);
    return recent ? Py_BuildValue("(Nd)", recent, seconds / 60) : NULL;
}

/* One entry of an account's tracked calls: its CallState (borrowed) and whether it is billed; -1 with an error. */
static int tracked_entry(Measures *m, PyObject *key, PyObject *value, PyObject **call, int *billed) {
    if (Py_TYPE(key) != m->state_type) { PyErr_SetString(PyExc_TypeError, "a tracked call is a CallState"); return -1; }
    if (value != Py_True && value != Py_False) {
        PyErr_SetString(PyExc_TypeError, "a tracked call's billed flag is a bool");
        return -1;
    }
    *call = key;
    *billed = value == Py_True;
    return 0;
}

/* Whether _prune drops a call of this span: (billed and (end or start) < horizon) or (end is None and
 * start < horizon and not open_at(now)). */
static int gone_by(Measures *m, const Span *span, int billed, double horizon, double now) {
    double start = span->start, end = span->has_end ? span->end : 0.0;
    int stale = billed && (end != 0.0 ? end : start) < horizon;
    if (!span->has_end && !stale) stale = start < horizon && !(start <= now && now - start < m->max_open);
    return stale;
}

/* Bill the entry (ended: billed, at no cost) and tell whether _prune drops it: 1 or 0, or -1 with an error.
 * Setting the value of a key the dict has, while PyDict_Next walks it, moves nothing. */
static int settle_entry(Measures *m, PyObject *tracked, PyObject *key, PyObject *value, double horizon, double now,
                        Span *span) {
    PyObject *call;
    int billed;
    if (tracked_entry(m, key, value, &call, &billed) < 0 || span_of(m, call, span, 0) < 0) return -1;
    if (!billed && span->has_end) {
        if (PyDict_SetItem(tracked, key, Py_True) < 0) return -1;
        billed = 1;
    }
    return gone_by(m, span, billed, horizon, now);
}

/* bill(tracked): AccountRulesDetector._bill with no rate table: the calls that ended are billed (at no cost) */
static PyObject *measures_bill(Measures *m, PyObject *tracked) {
    if (!PyDict_Check(tracked)) { PyErr_SetString(PyExc_TypeError, "the tracked calls are a dict"); return NULL; }
    Py_ssize_t pos = 0;
    PyObject *key, *value, *call;
    int billed;
    while (PyDict_Next(tracked, &pos, &key, &value)) {
        if (tracked_entry(m, key, value, &call, &billed) < 0) return NULL;
        int ended = (((CallStateObject *)call)->known & HAS_END) != 0;
        if (!billed && ended && PyDict_SetItem(tracked, key, Py_True) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

/* Whether _prune drops this entry (billed already: `bill` ran): 1 or 0, or -1 with an error. */
static int stale_entry(Measures *m, PyObject *key, PyObject *value, double horizon, double now) {
    PyObject *call;
    int billed;
    Span span;
    if (tracked_entry(m, key, value, &call, &billed) < 0 || span_of(m, call, &span, 0) < 0) return -1;
    return gone_by(m, &span, billed, horizon, now);
}

/* stale(tracked, horizon, now): the keys that AccountRulesDetector._prune drops, in order */
static PyObject *measures_stale(Measures *m, PyObject *args) {
    PyObject *tracked;
    double horizon, now;
    if (!PyArg_ParseTuple(args, "O!dd", &PyDict_Type, &tracked, &horizon, &now)) return NULL;
    PyObject *out = PyList_New(0);
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (out != NULL && PyDict_Next(tracked, &pos, &key, &value)) {
        int stale = stale_entry(m, key, value, horizon, now);
        if (stale < 0 || (stale && PyList_Append(out, key) < 0)) Py_CLEAR(out);
    }
    return out;
}

/* The most calls that started within any `seconds` (the length of _busiest's answer); sorts `spans`. */
static Py_ssize_t busiest_count(Span *spans, Py_ssize_t n, double seconds) {
    sort_spans(spans, n);
    Py_ssize_t first = 0, best = 0;
    for (Py_ssize_t last = 0; last < n; last++) {
        while (spans[last].start - spans[first].start >= seconds) first++;
        if (last - first + 1 > best) best = last - first + 1;
    }
    return best;
}

/* The most calls open at one moment (the length of _peak_concurrency's answer); -1 when out of memory. */
static Py_ssize_t peak_count(Measures *m, const Span *spans, Py_ssize_t n, double now) {
    Point small[2 * 16 + 1], *points = n <= 16 ? small : PyMem_New(Point, 2 * n + 1);
    if (points == NULL) { PyErr_NoMemory(); return -1; }
    Py_ssize_t npoints = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        double start = spans[i].start, end = spans[i].end;
        if (!spans[i].has_end) {
            if (!(start <= now && now - start < m->max_open)) continue;
            end = INFINITY;
        }
        if (end > start) {
            points[npoints++] = (Point){start, 1, i};
            points[npoints++] = (Point){end, 0, i};
        }
    }
    sort_points(points, npoints);
    Py_ssize_t open_now = 0, best = 0;
    for (Py_ssize_t p = 0; p < npoints; p++) {
        if (points[p].starts) { if (++open_now > best) best = open_now; }
        else open_now--;
    }
    if (points != small) PyMem_Free(points);
    return best;
}

/* What AccountRulesDetector._same compares a call by (a borrowed str): its number's E.164 form, else the number
 * as dialled, else NULL for "?"; -1 with an error, 0 when this call's shape is Python's to read. */
static int same_text(Measures *m, PyObject *call, PyObject **text) {
    PyObject *number = ((CallStateObject *)call)->classified, *dialled = ((CallStateObject *)call)->number;
    *text = NULL;
    if (number != Py_None) {
        if (m->number_type == NULL) {
            Py_ssize_t at = member_offset(Py_TYPE(number), "e164");
            if (at < 0) return 0;
            m->number_type = (PyTypeObject *)Py_NewRef(Py_TYPE(number));
            m->e164_at = at;
        }
        if (Py_TYPE(number) != m->number_type) return 0;
        PyObject *e164 = SLOT(number, m->e164_at);
        if (e164 == NULL) return 0;
        if (e164 != Py_None) {
            if (!PyUnicode_CheckExact(e164)) return 0;
            if (PyUnicode_GET_LENGTH(e164)) { *text = e164; return 1; }
        }
    }
    if (dialled != Py_None) {
        if (!PyUnicode_CheckExact(dialled)) return 0;
        if (PyUnicode_GET_LENGTH(dialled)) *text = dialled;
    }
    return 1;
}

/* _same(call) as (the text, how many of its characters count, whether "…" follows them): the whole text when at
 * most `digits` remain without its leading "+"s, else its first `digits` characters and one more for a "+". */
typedef struct { PyObject *text; Py_ssize_t length; int cut; } Same;

static Same same_of(PyObject *text, Py_ssize_t digits) {
    Same same = {text, 0, 0};  /* (NULL: "?", one character) */
    Py_ssize_t n = text == NULL ? 1 : PyUnicode_GET_LENGTH(text), plus = 0;
    while (text != NULL && plus < n && PyUnicode_READ_CHAR(text, plus) == '+') plus++;
    same.length = n;
    if (n - plus > digits) {
        same.length = digits + (plus > 0);
        same.cut = 1;
    }
    return same;
}

static Py_UCS4 same_char(const Same *s, Py_ssize_t i) {
    if (i == s->length) return 0x2026;  /* "…" */
    return s->text == NULL ? '?' : PyUnicode_READ_CHAR(s->text, i);
}

static int same_equal(const Same *a, const Same *b) {
    Py_ssize_t na = a->length + a->cut, nb = b->length + b->cut;
    if (na != nb) return 0;
    if (a->text == b->text && a->cut == b->cut) return 1;
    for (Py_ssize_t i = 0; i < na; i++)
        if (same_char(a, i) != same_char(b, i)) return 0;
    return 1;
}

/* The length of AccountRulesDetector._sequential's answer (the newest run of calls to the same number or prefix),
 * over the spans (sorted here by start, as Python's stable sort orders them); -1 with an error, -2 when a call's
 * shape is Python's to read. */
static Py_ssize_t sequential_count(Measures *m, Span *spans, PyObject **calls, Py_ssize_t n, Py_ssize_t digits) {
    if (n == 0) return 0;
    sort_spans(spans, n);
    PyObject *text;
    int rc = same_text(m, calls[spans[n - 1].index], &text);
    if (rc <= 0) return rc < 0 ? -1 : -2;
    Same target = same_of(text, digits);
    Py_ssize_t run = 1;
    for (Py_ssize_t i = n - 2; i >= 0; i--, run++) {
        if ((rc = same_text(m, calls[spans[i].index], &text)) <= 0) return rc < 0 ? -1 : -2;
        Same same = same_of(text, digits);
        if (!same_equal(&same, &target)) break;
    }
    return run;
}

/* 1 when a rule could reach a level over these calls (AccountRulesDetector._findings' count and minute rules
 * against `lowest`), 0 when none can, -1 with an error. `spans` and `calls` are the tracked calls in the dict's
 * order (the spans sorted here by the last measures); minutes are summed in that order, as Python does. */
static int could_fire(Measures *m, Span *spans, PyObject **calls, Py_ssize_t n, PyObject *call, double now,
                      double window, const double *lowest, int risky, Py_ssize_t digits) {
    enum { CPM, CONCURRENT, CPW, MPW, SEQUENTIAL, LONG_CALL };
    if (n == 0) return 1;  /* (the call at hand is tracked: Python says why not) */
    if (risky && talk_of(call, now) / 60 >= lowest[LONG_CALL]) return 1;
    double newest = spans[0].start, seconds = 0.0;
    for (Py_ssize_t i = 1; i < n; i++)
        if (spans[i].start > newest) newest = spans[i].start;
    Py_ssize_t recent = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(spans[i].start > newest - window)) continue;
        seconds += talk_of(calls[i], now);
        recent++;
    }
    if ((double)recent >= lowest[CPW] || seconds / 60 >= lowest[MPW]) return 1;
    if ((double)n >= lowest[CONCURRENT]) {
        Py_ssize_t peak = peak_count(m, spans, n, now);
        if (peak < 0) return -1;
        if ((double)peak >= lowest[CONCURRENT]) return 1;
    }
    if ((double)n >= lowest[CPM] && (double)busiest_count(spans, n, 60.0) >= lowest[CPM]) return 1;
    if ((double)n < lowest[SEQUENTIAL]) return 0;
    /* the newest run of calls to one number, last: it orders the spans by start, and `calls[i]` is `spans[i]`'s
     * call only while they are in the dict's order (the minutes above are summed so) */
    Py_ssize_t run = digits < 0 ? -2 : sequential_count(m, spans, calls, n, digits);
    if (run == -1) return -1;
    return run == -2 || (double)run >= lowest[SEQUENTIAL];
}

/* tracked[call] = False (not billed) unless it is there; the oldest goes beyond `max_calls` (observe's first step).
 * One dict lookup: a call that has ended goes in billed already, as `quiet_of`'s walk right after would bill it
 * (at no cost: there is no rate table where this runs). */
static int track(PyObject *tracked, PyObject *call, Py_ssize_t max_calls) {
    PyObject *billed = (((const CallStateObject *)call)->known & HAS_END) ? Py_True : Py_False;
    Py_ssize_t before = PyDict_GET_SIZE(tracked);
    if (PyDict_SetDefault(tracked, call, billed) == NULL) return -1;
    if (PyDict_GET_SIZE(tracked) > before && PyDict_GET_SIZE(tracked) > max_calls) return forget_oldest(tracked, 1);
    return 0;
}

/* AccountRulesDetector.observe's bookkeeping with no rate table (track the call, bill, then prune at min(now, its
 * start)), and whether no rule of `lowest` (a _Lowest's six values) can fire now: 1 means observe has nothing more
 * to do; 0, that its Python path must measure (it finds the bookkeeping done); -1, an error. One walk over the
 * tracked calls bills each, tells whether it goes and keeps the span of each that stays (what `bill`, `stale` and
 * the measures each walked for once); those that go are deleted after it, in order. */
static int quiet_of(Measures *m, PyObject *tracked, PyObject *call, double now, double window, const double *lowest,
                    int risky, Py_ssize_t max_calls, Py_ssize_t digits) {
    double start = ((const CallStateObject *)call)->start;
    double prune_now = start < now ? start : now;  /* min(now, call.start) */
    double horizon = prune_now - (window > 60.0 ? window : 60.0);
    if (track(tracked, call, max_calls) < 0) return -1;
    Py_ssize_t n = PyDict_GET_SIZE(tracked), kept = 0, gone = 0, pos = 0;
    Span small_spans[16], *spans = n <= 16 ? small_spans : PyMem_New(Span, n);
    PyObject *small_calls[16], **calls = n <= 16 ? small_calls : PyMem_New(PyObject *, n);
    PyObject *small_gone[16], **stale = n <= 16 ? small_gone : PyMem_New(PyObject *, n);
    PyObject *key, *value;
    int rc = 0;
    if (spans == NULL || calls == NULL || stale == NULL) { PyErr_NoMemory(); rc = -1; }
    while (rc == 0 && PyDict_Next(tracked, &pos, &key, &value)) {
        int drop = settle_entry(m, tracked, key, value, horizon, prune_now, &spans[kept]);
        if (drop < 0) rc = -1;
        else if (drop) stale[gone++] = Py_NewRef(key);
        else { spans[kept].index = kept; calls[kept++] = key; }
    }
    for (Py_ssize_t i = 0; i < gone; i++) {  /* (the calls that stay are still held by the dict) */
        if (rc == 0 && PyDict_DelItem(tracked, stale[i]) < 0) rc = -1;
        Py_DECREF(stale[i]);
    }
    if (rc == 0) {
        int fire = could_fire(m, spans, calls, kept, call, now, window, lowest, risky, digits);
        rc = fire < 0 ? -1 : !fire;
    }
    if (spans != small_spans) PyMem_Free(spans);
    if (calls != small_calls) PyMem_Free(calls);
    if (stale != small_gone) PyMem_Free(stale);
    return rc;
}

/* Six floats of a tuple (a _Lowest), or -1 with an error. */
static int lowest_of(PyObject *tuple, double *lowest) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != 6) {
        PyErr_SetString(PyExc_TypeError, "lowest: six floats");
        return -1;
    }
    for (int i = 0; i < 6; i++)
        if ((lowest[i] = PyFloat_AsDouble(PyTuple_GET_ITEM(tuple, i))) == -1.0 && PyErr_Occurred()) return -1;
    return 0;
}

/* sequential(calls, digits) -> the length of AccountRulesDetector._sequential(calls) with `digits` as its
 * sequential_prefix, or None where a call's shape is Python's to read */
static PyObject *measures_sequential(Measures *m, PyObject *args) {
    PyObject *calls;
    Py_ssize_t digits;
    if (!PyArg_ParseTuple(args, "O!n", &PyList_Type, &calls, &digits)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(calls);
    Span *spans = spans_of(m, calls, n);
    if (spans == NULL) return NULL;
    PyObject **items = ((PyListObject *)calls)->ob_item;
    Py_ssize_t run = sequential_count(m, spans, items, n, digits);
    PyMem_Free(spans);
    if (run == -1) return NULL;
    if (run == -2) Py_RETURN_NONE;
    return PyLong_FromSsize_t(run);
}

/* quiet(tracked, call, now, window, lowest, risky, max_calls[, digits]) -> bool: quiet_of. `digits`: the rules'
 * sequential_prefix (with none, a window of calls as long as the sequential rule's lowest level is Python's). */
static PyObject *measures_quiet(Measures *m, PyObject *args) {
    PyObject *tracked, *call, *lowest_tuple;
    double now, window, lowest[6];
    int risky;
    Py_ssize_t max_calls, digits = -1;
    if (!PyArg_ParseTuple(args, "O!O!ddOpn|n", &PyDict_Type, &tracked, m->state_type, &call, &now, &window,
                          &lowest_tuple, &risky, &max_calls, &digits) || lowest_of(lowest_tuple, lowest) < 0)
        return NULL;
    int quiet = quiet_of(m, tracked, call, now, window, lowest, risky, max_calls, digits);
    return quiet < 0 ? NULL : PyBool_FromLong(quiet);
}

static PyMethodDef measures_methods[] = {
    {"busiest", (PyCFunction)measures_busiest, METH_VARARGS, "_busiest(calls, seconds), in C."},
    {"peak", (PyCFunction)measures_peak, METH_VARARGS, "_peak_concurrency(calls, now), in C."},
    {"recent", (PyCFunction)measures_recent, METH_VARARGS, "The window's recent calls and their talk minutes, in C."},
    {"bill", (PyCFunction)measures_bill, METH_O, "_bill(state) with no rate table, on state.calls, in C."},
    {"sequential", (PyCFunction)measures_sequential, METH_VARARGS, "The length of _sequential(calls), in C."},
    {"stale", (PyCFunction)measures_stale, METH_VARARGS, "The keys _prune drops from state.calls, in C."},
    {"quiet", (PyCFunction)measures_quiet, METH_VARARGS,
     "Bill and prune an account's calls; True when no count or minute rule can fire (see could_fire)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MeasuresType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._rules.Measures",
    .tp_basicsize = sizeof(Measures),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)measures_init,
    .tp_dealloc = (destructor)measures_dealloc,
    .tp_methods = measures_methods,
    .tp_doc = "The account rules' window measures (see sipwatch/detectors/account_rules.py).",
};

/*
 * Gate(measures, detector, observe, book, Event, Classified, _Account, max_calls): AccountRulesDetector.observe for the scan's
 * core, its first lines and `quiet` in one C call. Most outside calls end there (nothing can fire); any other case
 * (an account seen for the first time, one with limits of its own, a call a rule may flag, an unexpected shape)
 * goes whole to the Python observe, which finds the bookkeeping done (tracking, billing and pruning are idempotent).
 */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Measures *m;
    PyObject *detector, *observe, *book_dict, *exclude, *accounts, *own;
    PyTypeObject *event_type, *classified_type, *account_type;
    Py_ssize_t ev_time, cl_internal, cl_risk_class, ac_calls, max_calls, digits;
    double window;
    PyObject *lowest_seen;  /* the detector's _plain_lowest (a tuple, held) whose values `lowest` holds */
    double lowest[6];
} Gate;

static PyObject *s_current, *s_plain_lowest;

static int gate_traverse(Gate *g, visitproc visit, void *arg) {
    Py_VISIT(g->m); Py_VISIT(g->detector); Py_VISIT(g->observe); Py_VISIT(g->book_dict); Py_VISIT(g->exclude);
    Py_VISIT(g->accounts); Py_VISIT(g->own); Py_VISIT(g->event_type); Py_VISIT(g->classified_type);
    Py_VISIT(g->account_type); Py_VISIT(g->lowest_seen);
    return 0;
}

static int gate_clear(Gate *g) {
    Py_CLEAR(g->m); Py_CLEAR(g->detector); Py_CLEAR(g->observe); Py_CLEAR(g->book_dict); Py_CLEAR(g->exclude);
    Py_CLEAR(g->accounts); Py_CLEAR(g->own); Py_CLEAR(g->event_type); Py_CLEAR(g->classified_type);
    Py_CLEAR(g->account_type);
    Py_CLEAR(g->lowest_seen);
    return 0;
}

static void gate_dealloc(Gate *g) {
    PyObject_GC_UnTrack(g);
    gate_clear(g);
    Py_TYPE(g)->tp_free((PyObject *)g);
}

static PyObject *attr_of(PyObject *obj, const char *name, PyTypeObject *type) {
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value != NULL && type != NULL && !PyObject_TypeCheck(value, type)) {
        PyErr_Format(PyExc_TypeError, "%s: not a %s", name, type->tp_name);
        Py_CLEAR(value);
    }
    return value;
}

static PyObject *gate_vectorcall(Gate *g, PyObject *const *args, size_t nargsf, PyObject *kwnames);

static int gate_init(Gate *g, PyObject *args, PyObject *kw) {
    PyObject *measures, *detector, *observe, *book, *event_type, *classified_type, *account_type, *settings = NULL,
             *window = NULL, *digits = NULL;
    (void)kw;
    if (!PyArg_ParseTuple(args, "OOOOO!O!O!n", &measures, &detector, &observe, &book, &PyType_Type, &event_type,
                          &PyType_Type, &classified_type, &PyType_Type, &account_type, &g->max_calls))
        return -1;
    if (Py_TYPE(measures) != &MeasuresType) {
        PyErr_SetString(PyExc_TypeError, "not the C measures");
        return -1;
    }
    Py_ssize_t ev[N_FIELDS];
    if (!event_slots((PyTypeObject *)event_type, ev)) { PyErr_SetString(PyExc_TypeError, "not the Event this file knows"); return -1; }
    Measures *m = (Measures *)measures;
    g->ev_time = ev[F_TIME];
    g->cl_internal = member_offset((PyTypeObject *)classified_type, "internal");
    g->cl_risk_class = member_offset((PyTypeObject *)classified_type, "risk_class");
    g->ac_calls = member_offset((PyTypeObject *)account_type, "calls");
    if (g->cl_internal < 0 || g->cl_risk_class < 0 || g->ac_calls < 0) {
        PyErr_SetString(PyExc_TypeError, "Classified or _Account without the slots this file reads");
        return -1;
    }
    gate_clear(g);
    Py_INCREF(measures); g->m = m;
    Py_INCREF(detector); g->detector = detector;
    Py_INCREF(observe); g->observe = observe;
    Py_INCREF(event_type); g->event_type = (PyTypeObject *)event_type;
    Py_INCREF(classified_type); g->classified_type = (PyTypeObject *)classified_type;
    Py_INCREF(account_type); g->account_type = (PyTypeObject *)account_type;
    int rc = -1;
    if ((g->book_dict = attr_of(book, "__dict__", &PyDict_Type)) == NULL
        || (g->exclude = attr_of(detector, "exclude", &PyFrozenSet_Type)) == NULL
        || (g->accounts = attr_of(detector, "accounts", &PyDict_Type)) == NULL
        || (settings = PyObject_GetAttrString(detector, "settings")) == NULL
        || (g->own = attr_of(settings, "account", &PyDict_Type)) == NULL
        || (window = PyObject_GetAttrString(settings, "window")) == NULL
        || (digits = PyObject_GetAttrString(settings, "sequential_prefix")) == NULL)
        goto done;
    g->window = PyFloat_AsDouble(window);
    if (g->window == -1.0 && PyErr_Occurred()) goto done;
    if ((g->digits = PyLong_AsSsize_t(digits)) == -1 && PyErr_Occurred()) goto done;
    g->vectorcall = (vectorcallfunc)gate_vectorcall;
    rc = 0;
done:
    Py_XDECREF(settings);
    Py_XDECREF(window);
    Py_XDECREF(digits);
    return rc;
}

/* The record's answer when the Python observe need not run: a new empty list (no decision). */
static PyObject *gate_call(Gate *g, PyObject *event) {
    if (Py_TYPE(event) != g->event_type) return NULL;
    PyObject *current = PyDict_GetItemWithError(g->book_dict, s_current);  /* borrowed */
    if (current == Py_None) return PyList_New(0);
    if (current == NULL || !PyTuple_Check(current) || PyTuple_GET_SIZE(current) < 1) return NULL;
    PyObject *call = PyTuple_GET_ITEM(current, 0);
    if (Py_TYPE(call) != g->m->state_type) return NULL;
    PyObject *account = ((CallStateObject *)call)->account, *number = ((CallStateObject *)call)->classified;
    if (account == Py_None || number == Py_None) return PyList_New(0);
    int excluded = PySet_Contains(g->exclude, account);
    if (excluded != 0) return excluded < 0 ? NULL : PyList_New(0);
    if (Py_TYPE(number) != g->classified_type) return NULL;
    PyObject *internal = SLOT(number, g->cl_internal);
    if (internal == Py_True) return PyList_New(0);
    if (internal != Py_False) return NULL;
    PyObject *state = PyDict_GetItemWithError(g->accounts, account);  /* borrowed */
    if (state == NULL || PyDict_Contains(g->own, account) != 0) return NULL;  /* a new account, or limits of its own */
    if (Py_TYPE(state) != g->account_type) return NULL;
    PyObject *tracked = SLOT(state, g->ac_calls);
    if (tracked == NULL || !PyDict_Check(tracked)) return NULL;
    PyObject *lowest_tuple = PyObject_GetAttr(g->detector, s_plain_lowest);
    if (lowest_tuple == NULL) return NULL;
    int known = lowest_tuple == g->lowest_seen;  /* (the detector keeps the tuple: the same object, the same values) */
    if (!known && PyTuple_Check(lowest_tuple) && PyTuple_GET_SIZE(lowest_tuple) == 6
        && lowest_of(lowest_tuple, g->lowest) == 0) {
        Py_XSETREF(g->lowest_seen, Py_NewRef(lowest_tuple));
        known = 1;
    }
    Py_DECREF(lowest_tuple);
    if (!known) return NULL;  /* (no lowest levels yet: Python works them out) */
    double now = PyFloat_AsDouble(SLOT(event, g->ev_time));
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    int quiet = quiet_of(g->m, tracked, call, now, g->window, g->lowest, SLOT(number, g->cl_risk_class) != Py_None,
                         g->max_calls, g->digits);
    if (quiet < 0) return Py_None;  /* an error: raised */
    return quiet ? PyList_New(0) : NULL;
}

static PyObject *gate_vectorcall(Gate *g, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "Gate(event): one event");
        return NULL;
    }
    PyObject *out = gate_call(g, args[0]);
    if (out == Py_None) return NULL;  /* quiet_of's error */
    if (out != NULL) return out;
    if (PyErr_Occurred()) PyErr_Clear();  /* (an unexpected shape: the Python observe says what it is) */
    return PyObject_CallOneArg(g->observe, args[0]);
}

static PyTypeObject GateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._rules.Gate",
    .tp_basicsize = sizeof(Gate),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(Gate, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)gate_init,
    .tp_traverse = (traverseproc)gate_traverse,
    .tp_clear = (inquiry)gate_clear,
    .tp_dealloc = (destructor)gate_dealloc,
    .tp_doc = "AccountRulesDetector.observe's first lines and its quiet gate, for the scan's core.",
};

/* reads(type) -> bool: whether `type` is the record of a call these measures read (_calls.CallState) */
static PyObject *rules_reads(PyObject *module, PyObject *type) {
    (void)module;
    return PyBool_FromLong(PyType_Check(type) && is_call_type((PyTypeObject *)type));
}

static PyMethodDef module_methods[] = {
    {"reads", rules_reads, METH_O, "Whether the measures read calls of this type (_calls.CallState)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_rules", "The account rules' window measures in C (see detectors/account_rules.py).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rules(void) {
    if ((s_current = PyUnicode_InternFromString("current")) == NULL
        || (s_plain_lowest = PyUnicode_InternFromString("_plain_lowest")) == NULL)
        return NULL;
    PyObject *module = module_with_type(&moduledef, "Measures", &MeasuresType);
    if (module != NULL && add_type(module, "Gate", &GateType) < 0) Py_CLEAR(module);
    return module;
}
