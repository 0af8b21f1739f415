/*
 * The parallel scan's merge loop in C (sipwatch/parallel.py, `drain`): for each wire record a parse worker
 * sent, in file order, count it in the scan's tally (tally.py, `Tally.count`), skip it when the firewall
 * would have dropped it (pipeline.py, `Pipeline.is_blocked`), and otherwise build its Event
 * (formats/wire.py, `event_of`) for the pipeline. Most events of an attack come from addresses banned
 * already: they never reach Python code. The Python loop in parallel.py is the specification; the tests
 * compare both on whole scans.
 *
 * The records come packed (formats/wire.py, `pack`; `pack` here does the same in the workers): each text
 * of a buffer once, each record a fixed-size struct of numbers and indexes into the texts. So no tuple and
 * no string is built per event, and each address is looked up once per buffer.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdint.h>

#define MAX_KIND 256

#include "_event_slots.h"
#include "_parts.h"

/* One wire tuple, packed: formats/wire.py's RECORD ("=dqqddBBBB8II6I"). */
enum { T_IP, T_TRANSPORT, T_ACCOUNT, T_TARGET, T_UA, T_FORM, T_SESSION, T_REASON, N_TEXTS };
static const int TEXT_FIELDS[N_TEXTS] = {3, 5, 6, 7, 8, 11, 12, 13};  /* their places in a wire tuple */
enum { N_CALL_FIELDS = 8, N_CALL_TEXTS = 6, CALL_DURATION_AT = 5, CALL_BILLSEC_AT = 6 };
static const int CALL_TEXT_FIELDS[N_CALL_TEXTS] = {0, 1, 2, 3, 4, 7};  /* uniqueid .. context, disposition */
enum { CALL = 1, DURATION = 2, BILLSEC = 4 };  /* wire.py's: which parts of a call a record has (0: no call) */
typedef struct {
    double time;
    int64_t port;  /* -1: None */
    int64_t line;
    double duration, billsec;  /* the call's, when `call` says so */
    uint8_t kind, service, evidence, call;
    uint32_t text[N_TEXTS];  /* indexes into the texts (0: None) */
    uint32_t extra;          /* index into the objects (0: None) */
    uint32_t call_text[N_CALL_TEXTS];  /* the call's texts: indexes into the texts (0: None) */
} Record;
_Static_assert(sizeof(Record) == 104, "Record must match wire.RECORD");
_Static_assert(N_TEXTS == PARTS_TEXTS, "a record's texts are its parts' (_parts.h)");

typedef struct {
    PyObject_HEAD
    PyObject *texts, *records, *objects;  /* a Packed buffer (NULL when done; `records` is held by `view`) */
    Py_buffer view;       /* the records' memory (a worker's outbox slot, read in place) */
    PyObject **addresses;  /* per text: its address once looked up (NULL: not yet) */
    Py_ssize_t ntexts, nobjects, n;
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
    PyObject *when, *port;  /* the last time and port made: the lines of one second, and of one phone, share them */
    struct Batches *batches;  /* the offenders' counts of this buffer, added at its end (see `Batches`), or NULL */
    PyObject *spare;      /* an event the core took and nobody else holds: the next event is built in it */
    PyObject *last_call;  /* the Call made last, and its record (a call's records often come one after another) */
    Record last_call_of;
} Drain;

/* tally.Offender's fields, in the order of its __slots__: an offender's counts are read and written slot by
 * slot. If its slots differ, this module does not load and the scan merges in Python. */
static const char *const OFFENDER_FIELDS[] = {"ip", "events", "kinds", "accounts", "targets", "services", "first",
                                              "last", "strong", "decisions", "more_decisions", "queue", NULL};
enum { O_IP, O_EVENTS, O_KINDS, O_ACCOUNTS, O_TARGETS, O_SERVICES, O_FIRST, O_LAST, O_STRONG, O_DECISIONS,
       O_MORE, O_QUEUE, N_OFFENDER };
static Py_ssize_t offender_offsets[N_OFFENDER];
static PyTypeObject *offender_type;

static PyObject *s_time;
static Py_ssize_t max_distinct;  /* tally.MAX_DISTINCT */
static PyObject *knows_offenders(PyObject *self, PyObject *unused);

static int flush_kinds(Drain *d);

/* An offender's counts of this buffer, in plain numbers: a file read alone (the C core's scan: no other source
 * counts between its events) adds them to its tally.Offender once, at the buffer's end, in the order they came:
 * kinds, accounts and numbers in the order first seen, each with its count (~10 dict operations and four new
 * ints an event before; an attacker's events come by the thousand a buffer). */
typedef struct { uint32_t text; long n; } Named;  /* a text of the buffer (an account, a number), and its count */
typedef struct { Named *items; Py_ssize_t n, cap; } NamedList;
enum { BATCH_KINDS = 32, MAX_SERVICES = 64 };
typedef struct {
    PyObject *address;
    long n;
    double first, last;
    int strong, nkinds;
    unsigned char kinds[BATCH_KINDS];
    long kind_n[BATCH_KINDS];
    uint64_t services;  /* a bit per index into the services */
    NamedList accounts, targets;
} Batch;
typedef struct Batches {
    Batch *items;
    Py_ssize_t n, cap;
    int32_t *of;        /* per address text: its batch, or -1 */
    /* (batch, list, text) -> the text's place in that batch's list, open addressing: a name is found in O(1)
     * however many an address tries (an enumeration's thousands of user names a buffer, a wordlist shared by
     * many addresses); 0 is an empty slot (a text is never 0 in a key: None is not counted) */
    uint64_t *keys;
    int32_t *places;
    size_t mask, used;
} Batches;

static void free_batches(Drain *d) {
    Batches *b = d->batches;
    if (b == NULL) return;
    for (Py_ssize_t i = 0; i < b->n; i++) {
        Py_XDECREF(b->items[i].address);
        PyMem_Free(b->items[i].accounts.items);
        PyMem_Free(b->items[i].targets.items);
    }
    PyMem_Free(b->items); PyMem_Free(b->of); PyMem_Free(b->keys); PyMem_Free(b->places);
    PyMem_Free(b);
    d->batches = NULL;
}

static Batches *new_batches(Py_ssize_t ntexts) {
    Batches *b = PyMem_Calloc(1, sizeof(Batches));
    size_t size = (size_t)(ntexts ? ntexts : 1);
    size_t slots = 1024;
    if (b == NULL || (b->of = PyMem_Malloc(size * sizeof(int32_t))) == NULL
        || (b->keys = PyMem_Calloc(slots, sizeof(uint64_t))) == NULL
        || (b->places = PyMem_Malloc(slots * sizeof(int32_t))) == NULL) {
        if (b != NULL) { PyMem_Free(b->of); PyMem_Free(b->keys); }
        PyMem_Free(b);
        return NULL;
    }
    b->mask = slots - 1;
    for (size_t i = 0; i < size; i++) b->of[i] = -1;
    return b;
}

static size_t slot_of(const Batches *b, uint64_t key) {
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & b->mask;
    while (b->keys[i] != 0 && b->keys[i] != key) i = (i + 1) & b->mask;
    return i;
}

/* Twice the slots, when half are taken. */
static int grow_places(Batches *b) {
    size_t slots = 2 * (b->mask + 1);
    uint64_t *keys = b->keys;
    int32_t *places = b->places;
    size_t old = b->mask + 1;
    if ((b->keys = PyMem_Calloc(slots, sizeof(uint64_t))) == NULL
        || (b->places = PyMem_Malloc(slots * sizeof(int32_t))) == NULL) {
        PyMem_Free(b->keys);
        b->keys = keys; b->places = places;
        PyErr_NoMemory();
        return -1;
    }
    b->mask = slots - 1;
    for (size_t i = 0; i < old; i++)
        if (keys[i] != 0) {
            size_t at = slot_of(b, keys[i]);
            b->keys[at] = keys[i];
            b->places[at] = places[i];
        }
    PyMem_Free(keys); PyMem_Free(places);
    return 0;
}

/* Room for one more item in an array of `n` items of `size` bytes that has room for `*cap` (`first` at first). */
static int room(void **items, Py_ssize_t *cap, Py_ssize_t n, size_t size, Py_ssize_t first) {
    if (n < *cap) return 0;
    Py_ssize_t more = *cap ? 2 * *cap : first;
    void *grown = PyMem_Realloc(*items, (size_t)more * size);
    if (grown == NULL) { PyErr_NoMemory(); return -1; }
    *items = grown;
    *cap = more;
    return 0;
}

/* One more of `text` (0: None, not counted) in a batch's list `which` (0: accounts, 1: numbers). */
static int batch_name(Batches *b, int32_t at, int which, uint32_t text) {
    if (text == 0) return 0;
    NamedList *l = which ? &b->items[at].targets : &b->items[at].accounts;
    uint64_t key = (uint64_t)at << 33 | (uint64_t)which << 32 | text;
    size_t slot = slot_of(b, key);
    if (b->keys[slot] == 0) {  /* new to this batch's list */
        if (room((void **)&l->items, &l->cap, l->n, sizeof(Named), 4) < 0) return -1;
        l->items[l->n].text = text; l->items[l->n].n = 0;
        b->keys[slot] = key;
        b->places[slot] = (int32_t)l->n++;
        if (++b->used * 2 > b->mask + 1 && grow_places(b) < 0) return -1;
        l->items[l->n - 1].n++;
        return 0;
    }
    l->items[b->places[slot]].n++;
    return 0;
}

/* Count one event of `address` (that of the record's address text) in its batch. */
static int batch_count(Drain *d, PyObject *address, double t, const Record *r, long kind) {
    Batches *bs = d->batches;
    uint32_t text = r->text[T_IP];
    int32_t at = bs->of[text];
    if (at < 0) {
        if (room((void **)&bs->items, &bs->cap, bs->n, sizeof(Batch), 64) < 0) return -1;
        at = bs->of[text] = (int32_t)bs->n++;
        Batch *b = &bs->items[at];
        memset(b, 0, sizeof(*b));
        b->address = address; Py_INCREF(address);
        b->first = b->last = t;
    }
    Batch *b = &bs->items[at];
    int k = 0;
    while (k < b->nkinds && b->kinds[k] != kind) k++;
    if (k == b->nkinds) {  /* (there are at most BATCH_KINDS kinds: see drain_init) */
        b->kinds[k] = (unsigned char)kind; b->kind_n[k] = 0; b->nkinds = k + 1;
    }
    b->kind_n[k]++;
    b->n++;
    if (t < b->first) b->first = t;
    if (t > b->last) b->last = t;
    b->strong |= r->evidence == d->strong;
    b->services |= (uint64_t)1 << r->service;
    return batch_name(bs, at, 0, r->text[T_ACCOUNT]) < 0 || batch_name(bs, at, 1, r->text[T_TARGET]) < 0 ? -1 : 0;
}

/* dict[key] = dict.get(key, 0) + n */
static int increment(PyObject *dict, PyObject *key, long n) {
    PyObject *add = PyLong_FromLong(n);
    int rc = add == NULL ? -1 : count_up(dict, key, add);
    Py_XDECREF(add);
    return rc;
}

/* Count n more of a name (account, number) of an offender's, unless it is empty or MAX_DISTINCT others are named
 * already (tally.py, `_merge_capped`; the first of the n decides). */
static int named(PyObject *names, PyObject *value, long n) {
    if (value == Py_None || PyObject_Not(value)) return 0;
    int known = PyDict_Contains(names, value);
    if (known < 0) return -1;
    return known || PyDict_GET_SIZE(names) < max_distinct ? increment(names, value, n) : 0;
}

static PyObject *offender_of(Drain *d, PyObject *address);

/* Add a batch's counts to an offender: what Offender.flush does with a queue of its events, slot by slot (what
 * is queued in Python, by a one-process scan of another file, is flushed first: the order stays the events'). */
static int add_counts(Drain *d, PyObject *offender, const Batch *b) {
    Py_ssize_t *o = offender_offsets;
    PyObject *queue = SLOT(offender, o[O_QUEUE]);
    if (queue == NULL || !PyList_Check(queue)) { PyErr_SetString(PyExc_TypeError, "queue"); return -1; }
    if (PyList_GET_SIZE(queue) > 0) {
        PyObject *res = PyObject_CallMethod(offender, "flush", NULL);
        if (res == NULL) return -1;
        Py_DECREF(res);
    }
    PyObject *events = SLOT(offender, o[O_EVENTS]);
    long n = events ? PyLong_AsLong(events) : -1;
    if (n < 0) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "events"); return -1; }
    for (int i = 0; i < 2; i++) {  /* first, last */
        Py_ssize_t at = o[i ? O_LAST : O_FIRST];
        double was = n ? PyFloat_AsDouble(SLOT(offender, at)) : 0.0, t = i ? b->last : b->first;
        if (was == -1.0 && PyErr_Occurred()) return -1;
        if (!n || (i ? t > was : t < was)) {
            PyObject *when = PyFloat_FromDouble(t);
            if (when == NULL) return -1;
            set_slot(offender, at, when);
            Py_DECREF(when);
        }
    }
    PyObject *more = PyLong_FromLong(n + b->n);
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
    for (int k = 0; k < b->nkinds; k++)
        if (increment(kinds, PyList_GET_ITEM(d->kinds, b->kinds[k]), b->kind_n[k]) < 0) return -1;
    for (int s = 0; s < MAX_SERVICES; s++)
        if ((b->services >> s & 1) && PySet_Add(services, PyList_GET_ITEM(d->services, s)) < 0) return -1;
    for (Py_ssize_t i = 0; i < b->accounts.n; i++)
        if (named(accounts, PyList_GET_ITEM(d->texts, b->accounts.items[i].text), b->accounts.items[i].n) < 0)
            return -1;
    for (Py_ssize_t i = 0; i < b->targets.n; i++)
        if (named(targets, PyList_GET_ITEM(d->texts, b->targets.items[i].text), b->targets.items[i].n) < 0)
            return -1;
    if (b->strong) set_slot(offender, o[O_STRONG], Py_True);
    return 0;
}

/* Add a batch's counts to its address's offender, and empty it. */
static int flush_batch(Drain *d, Batch *b) {
    if (b->n == 0) return 0;
    PyObject *offender = offender_of(d, b->address);
    if (offender == NULL || add_counts(d, offender, b) < 0) return -1;
    b->n = 0; b->nkinds = 0; b->services = 0; b->strong = 0;
    b->accounts.n = b->targets.n = 0;
    return 0;
}

/* Every batch, in the order their addresses first came; then none is left (the texts they name go next). */
static int flush_batches(Drain *d) {
    Batches *b = d->batches;
    if (b == NULL) return 0;
    int rc = 0;
    for (Py_ssize_t i = 0; i < b->n && rc == 0; i++) rc = flush_batch(d, &b->items[i]);
    free_batches(d);
    return rc;
}

static void forget_addresses(Drain *d) {
    if (d->addresses == NULL) return;
    for (Py_ssize_t i = 0; i < d->ntexts; i++) Py_XDECREF(d->addresses[i]);
    PyMem_Free(d->addresses);
    d->addresses = NULL;
}

/* Let go of the records (and of the slot's memory they were read in). */
static void release_records(Drain *d) {
    if (d->records == NULL) return;
    d->records = NULL;
    PyBuffer_Release(&d->view);
}

static void drain_dealloc(Drain *d) {
    if (d->kinds_counter != NULL && d->kinds != NULL) {  /* a Drain left before its end keeps its counts */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (d->texts != NULL && flush_batches(d) < 0) PyErr_Clear();
        if (flush_kinds(d) < 0) PyErr_Clear();
        PyErr_Restore(type, value, tb);
    }
    free_batches(d);
    release_records(d);
    Py_XDECREF(d->texts); Py_XDECREF(d->objects);
    Py_XDECREF(d->file); Py_XDECREF(d->ips); Py_XDECREF(d->ip_func); Py_XDECREF(d->tally);
    Py_XDECREF(d->kinds_counter); Py_XDECREF(d->offenders); Py_XDECREF(d->banned);
    Py_XDECREF(d->kinds); Py_XDECREF(d->services); Py_XDECREF(d->event_of); Py_XDECREF(d->offender_func);
    Py_XDECREF(d->event_type); Py_XDECREF(d->call_type); Py_XDECREF(d->evidences);
    Py_XDECREF(d->empty); Py_XDECREF(d->take); Py_XDECREF(d->nets); Py_XDECREF(d->net_blocked);
    Py_XDECREF(d->when); Py_XDECREF(d->port); Py_XDECREF(d->spare); Py_XDECREF(d->last_call);
    forget_addresses(d);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

/* Drain(packed, skip, base, last_time, file, ips, ip, tally, banned, counted, strong, kinds, services,
 *       event_of[, event_type, call_type, evidences, take, nets, net_blocked]) */
static int drain_init(Drain *d, PyObject *args, PyObject *kw) {
    PyObject *packed, *texts, *records, *objects, *file, *ips, *ip_func, *tally, *banned, *counted, *kinds, *services;
    PyObject *event_of;
    PyObject *event_type = NULL, *call_type = NULL, *evidences = NULL, *take = Py_None, *nets = NULL, *net_blocked = NULL;
    long skip, base, strong;
    double last_time;
    (void)kw;
    if (offender_type == NULL) {  /* (parallel.py asks knows_offenders() first) */
        PyObject *known = knows_offenders(NULL, NULL);
        int ok = known == Py_True;
        Py_XDECREF(known);
        if (!ok) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "tally.Offender's slots are not those _drain.c knows");
            return -1;
        }
    }
    if (!PyArg_ParseTuple(args, "O!lldUO!OOO!OlO!O!O|O!O!O!OO!O", &PyTuple_Type, &packed, &skip, &base, &last_time,
                          &file,
                          &PyDict_Type, &ips, &ip_func, &tally, &PyDict_Type, &banned, &counted, &strong,
                          &PyList_Type, &kinds, &PyList_Type, &services, &event_of,
                          &PyType_Type, &event_type, &PyType_Type, &call_type, &PyList_Type, &evidences, &take,
                          &PyDict_Type, &nets, &net_blocked))
        return -1;
    if (!PyArg_ParseTuple(packed, "O!OO!", &PyList_Type, &texts, &records, &PyList_Type, &objects))
        return -1;
    if (PyList_GET_SIZE(services) > MAX_SERVICES) {  /* (an offender's services are the bits of a word) */
        PyErr_SetString(PyExc_ValueError, "more services than a Drain counts");
        return -1;
    }
    if (d->texts != NULL || d->records != NULL) { PyErr_SetString(PyExc_TypeError, "a Drain is set up once"); return -1; }
    if (PyObject_GetBuffer(records, &d->view, PyBUF_SIMPLE) < 0) return -1;  /* bytes, or a view of a slot */
    d->records = records;  /* (the view holds it) */
    if (d->view.len % (Py_ssize_t)sizeof(Record) != 0) {
        PyErr_SetString(PyExc_ValueError, "packed records of the wrong size");
        return -1;
    }
    d->ntexts = PyList_GET_SIZE(texts);
    d->nobjects = PyList_GET_SIZE(objects);
    d->n = d->view.len / (Py_ssize_t)sizeof(Record);
    if ((d->addresses = PyMem_Calloc(d->ntexts ? d->ntexts : 1, sizeof(PyObject *))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
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
    }
    if ((d->empty = PyUnicode_FromString("")) == NULL) return -1;
    if (take != Py_None && d->event_type != NULL) { d->take = take; Py_INCREF(take); }
    /* The C core reads one file alone: nothing else counts between this buffer's events, and its offenders'
     * counts can wait for its end (see `Batches`). */
    if (d->take != NULL && PyList_GET_SIZE(kinds) <= BATCH_KINDS
        && (d->batches = new_batches(d->ntexts)) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
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
    d->texts = texts; Py_INCREF(texts);
    d->objects = objects; Py_INCREF(objects);
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

/* A record's text (borrowed; its indexes were checked by `check`). */
static inline PyObject *text(Drain *d, const Record *r, int field) {
    return PyList_GET_ITEM(d->texts, r->text[field]);
}

static inline PyObject *object(Drain *d, uint32_t at) { return PyList_GET_ITEM(d->objects, at); }

/* A record's indexes are within its buffer's tables and enums. */
static int check(Drain *d, const Record *r) {
    for (int i = 0; i < N_TEXTS; i++)
        if (r->text[i] >= d->ntexts) goto bad;
    for (int i = 0; i < N_CALL_TEXTS; i++)
        if (r->call_text[i] >= d->ntexts) goto bad;
    if (r->extra >= d->nobjects || r->kind >= PyList_GET_SIZE(d->kinds)
        || r->service >= PyList_GET_SIZE(d->services)
        || (d->evidences != NULL && r->evidence >= PyList_GET_SIZE(d->evidences)))
        goto bad;
    return 0;
bad:
    PyErr_SetString(PyExc_ValueError, "an index out of range in a packed record");
    return -1;
}

/* The address's tally.Offender, made and filed first if it has none (borrowed). */
static PyObject *offender_of(Drain *d, PyObject *address) {
    PyObject *offender = PyDict_GetItemWithError(d->offenders, address);
    if (offender == NULL) {
        if (PyErr_Occurred()) return NULL;
        offender = PyObject_CallOneArg(d->offender_func, address);  /* creates and files it */
        if (offender == NULL) return NULL;
        Py_DECREF(offender);
        offender = PyDict_GetItemWithError(d->offenders, address);
        if (offender == NULL) { if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "offender"); return NULL; }
    }
    if (Py_TYPE(offender) != offender_type) { PyErr_SetString(PyExc_TypeError, "not a tally.Offender"); return NULL; }
    return offender;
}

/* Tally.count, step for step, but an offender counts each event at once (no queue to flush), or in its batch. */
static int count(Drain *d, PyObject *address, PyObject *when, const Record *r, long kind) {
    if (d->kind_counts[kind]++ == 0) d->kind_order[d->nkinds_seen++] = (unsigned char)kind;
    if (address == Py_None || !d->counted[kind]) return 0;
    double t = PyFloat_AS_DOUBLE(when);
    if (d->batches != NULL) return batch_count(d, address, t, r, kind);
    PyObject *offender = offender_of(d, address);  /* (counted at once: a batch of this one event) */
    if (offender == NULL) return -1;
    Named account = {r->text[T_ACCOUNT], 1}, target = {r->text[T_TARGET], 1};
    Batch single = {.address = address, .n = 1, .first = t, .last = t, .strong = r->evidence == d->strong, .nkinds = 1,
                 .services = (uint64_t)1 << r->service, .accounts = {&account, account.text != 0, 1},
                 .targets = {&target, target.text != 0, 1}};
    single.kinds[0] = (unsigned char)kind;
    single.kind_n[0] = 1;
    return add_counts(d, offender, &single);
}

/* Add this buffer's counts by kind to tally.kinds (once, when the buffer is done). */
static int flush_kinds(Drain *d) {
    if (d->kinds_flushed) return 0;
    d->kinds_flushed = 1;
    for (int i = 0; i < d->nkinds_seen; i++) {
        int k = d->kind_order[i];
        if (!d->kind_counts[k]) continue;
        if (increment(d->kinds_counter, PyList_GET_ITEM(d->kinds, k), d->kind_counts[k]) < 0) return -1;
        d->kind_counts[k] = 0;
    }
    return 0;
}

static void put(PyObject *obj, Py_ssize_t offset, PyObject *value) {
    if (value == NULL) value = Py_None;
    Py_INCREF(value);
    *(PyObject **)((char *)obj + offset) = value;
}

/* A record's port: None or an int (new reference). */
static PyObject *port_of(const Record *r) {
    if (r->port < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(r->port);
}

/* `made` (a new tuple of N_CALL_FIELDS empty items, or NULL) filled with the record's call, as wire.py's `unpack`
 * makes it: its texts, and its duration and billsec (None when the record has none). */
static PyObject *call_tuple(Drain *d, const Record *r, PyObject *made) {
    if (made == NULL) return NULL;
    PyObject **items = ((PyTupleObject *)made)->ob_item;
    for (int i = 0; i < N_CALL_TEXTS; i++) {
        PyObject *text = PyList_GET_ITEM(d->texts, r->call_text[i]);
        Py_INCREF(text);
        items[CALL_TEXT_FIELDS[i]] = text;
    }
    items[CALL_DURATION_AT] = r->call & DURATION ? PyFloat_FromDouble(r->duration) : (Py_INCREF(Py_None), Py_None);
    items[CALL_BILLSEC_AT] = r->call & BILLSEC ? PyFloat_FromDouble(r->billsec) : (Py_INCREF(Py_None), Py_None);
    if (items[CALL_DURATION_AT] == NULL || items[CALL_BILLSEC_AT] == NULL) { Py_DECREF(made); return NULL; }
    return made;
}

/* The wire tuple of a record (wire.py, `unpack`), for `event_of` when the Event's slots are not known here. */
static PyObject *wire_of(Drain *d, const Record *r) {
    PyObject *w = PyTuple_New(16);
    if (w == NULL) return NULL;
    PyObject *values[16] = {
        PyFloat_FromDouble(r->time), PyLong_FromLong(r->kind), PyLong_FromLong(r->service), NULL, port_of(r),
        NULL, NULL, NULL, NULL, PyLong_FromLong(r->evidence), PyLong_FromLongLong(r->line), NULL, NULL, NULL,
        object(d, r->extra), r->call ? call_tuple(d, r, PyTuple_New(N_CALL_FIELDS)) : (Py_INCREF(Py_None), Py_None)};
    Py_INCREF(values[14]);
    for (int i = 0; i < N_TEXTS; i++) {
        values[TEXT_FIELDS[i]] = text(d, r, i);
        Py_INCREF(values[TEXT_FIELDS[i]]);
    }
    for (int i = 11; i <= 13; i += 2)  /* form and reason: "" for None (wire.py, `unpack`) */
        if (values[i] == Py_None) { Py_DECREF(values[i]); values[i] = d->empty; Py_INCREF(d->empty); }
    for (int i = 0; i < 16; i++) {
        if (values[i] == NULL) {
            for (int j = i; j < 16; j++) Py_XDECREF(values[j]);
            Py_DECREF(w);
            return NULL;
        }
        PyTuple_SET_ITEM(w, i, values[i]);
    }
    return w;
}

/* Whether two records have the same call (its texts are numbered by content: the same numbers, the same texts). */
static int same_call(const Record *a, const Record *b) {
    return a->call == b->call && memcmp(a->call_text, b->call_text, sizeof(a->call_text)) == 0
           && (!(a->call & DURATION) || a->duration == b->duration) && (!(a->call & BILLSEC) || a->billsec == b->billsec);
}

/* A float of `value` in `*item`: the one there, changed in place, when nothing else holds it */
static int put_float(PyObject **item, double value) {
    if (PyFloat_CheckExact(*item) && Py_REFCNT(*item) == 1) {
        ((PyFloatObject *)*item)->ob_fval = value;
        return 0;
    }
    PyObject *made = PyFloat_FromDouble(value);
    if (made == NULL) return -1;
    Py_SETREF(*item, made);
    return 0;
}

/* The last Call made, filled again with this record's call where no one but this Drain holds it any more (itself,
 * and the spare event it is about to refill): a CDR row is a call of its own, and each made and freed its Call
 * (a tuple the collector tracks) and two floats. 1: done, 0: not so, -1: an error. */
static int refill_call(Drain *d, const Record *r) {
    PyObject *call = d->last_call;
    if (call == NULL || d->spare == NULL || SLOT(d->spare, d->offsets[F_CALL]) != call || Py_REFCNT(call) != 2)
        return 0;
    PyObject **items = ((PyTupleObject *)call)->ob_item;
    for (int i = 0; i < N_CALL_TEXTS; i++) {
        PyObject *text = PyList_GET_ITEM(d->texts, r->call_text[i]);
        Py_INCREF(text);
        Py_SETREF(items[CALL_TEXT_FIELDS[i]], text);
    }
    int rc = 0;
    if (r->call & DURATION) rc = put_float(&items[CALL_DURATION_AT], r->duration);
    else Py_SETREF(items[CALL_DURATION_AT], Py_NewRef(Py_None));
    if (rc == 0 && (r->call & BILLSEC)) rc = put_float(&items[CALL_BILLSEC_AT], r->billsec);
    else if (rc == 0) Py_SETREF(items[CALL_BILLSEC_AT], Py_NewRef(Py_None));
    d->last_call_of = *r;
    return rc < 0 ? -1 : 1;
}

/* The record's Call (a new reference): the one made for the record before when it had the same call (a Call is a
 * tuple: nothing else changes it), else that one refilled where no one else holds it (`refill_call`), else a new
 * one, what `Call(*fields)` makes without its keyword machinery. */
static PyObject *call_of(Drain *d, const Record *r) {
    if (d->last_call != NULL && same_call(&d->last_call_of, r)) {
        Py_INCREF(d->last_call);
        return d->last_call;
    }
    int refilled = refill_call(d, r);
    if (refilled != 0) {
        if (refilled < 0) return NULL;
        Py_INCREF(d->last_call);
        return d->last_call;
    }
    PyObject *made = call_tuple(d, r, d->call_type->tp_alloc(d->call_type, N_CALL_FIELDS));
    if (made == NULL) return NULL;
    Py_INCREF(made);
    Py_XSETREF(d->last_call, made);
    d->last_call_of = *r;
    return made;
}

/* A new event to fill: the spare one, its fields let go, or a fresh one. Most events end in the core (a call's
 * progress, an attacker's counted failure): allocating and freeing each was a tenth of the merge loop's own work. */
static PyObject *blank_event(Drain *d) {
    PyObject *event = d->spare;
    if (event == NULL) return d->event_type->tp_alloc(d->event_type, 0);
    d->spare = NULL;
    for (int i = 0; i < N_FIELDS; i++) {
        PyObject **slot = (PyObject **)((char *)event + d->offsets[i]);
        PyObject *old = *slot;
        *slot = NULL;
        Py_XDECREF(old);
    }
    return event;
}

/* A new empty dict for an event's `extra`: the spare event's own when it is one (empty, and nothing else holds it:
 * most records have no extras, and most events end in the core). */
static PyObject *empty_extra(Drain *d) {
    if (d->spare != NULL) {
        PyObject **slot = (PyObject **)((char *)d->spare + d->offsets[F_EXTRA]);
        PyObject *old = *slot;
        if (old != NULL && PyDict_CheckExact(old) && Py_REFCNT(old) == 1 && PyDict_GET_SIZE(old) == 0) {
            *slot = NULL;
            return old;
        }
    }
    return PyDict_New();
}

/* The core is done with `event`: kept as the spare when nothing else holds it, else let go. */
static void release_event(Drain *d, PyObject *event) {
    if (d->spare == NULL && Py_REFCNT(event) == 1 && Py_IS_TYPE(event, d->event_type)) d->spare = event;
    else Py_DECREF(event);
}

/* event_of(w, file, address, base) with `when` as its time, slot by slot (see EVENT_FIELDS). */
static PyObject *build_event(Drain *d, const Record *r, PyObject *when, PyObject *address, long kind) {
    PyObject *line_obj = PyLong_FromLongLong(r->line + d->base);
    if (line_obj == NULL) return NULL;
    PyObject *port = Py_None;
    if (r->port >= 0) {
        if (d->port == NULL || PyLong_AsLongLong(d->port) != r->port) {
            PyObject *made = PyLong_FromLongLong(r->port);
            if (made == NULL) { Py_DECREF(line_obj); return NULL; }
            Py_XSETREF(d->port, made);
        }
        port = d->port;
    }
    Py_INCREF(port);
    PyObject *extra = object(d, r->extra);
    if (extra == Py_None || (PyDict_Check(extra) && PyDict_GET_SIZE(extra) == 0)) extra = empty_extra(d);
    else Py_INCREF(extra);
    PyObject *call_obj = r->call ? call_of(d, r) : NULL;
    PyObject *reason = text(d, r, T_REASON), *form = text(d, r, T_FORM);
    if (reason == Py_None || PyUnicode_GET_LENGTH(reason) == 0) reason = d->empty;
    if (form == Py_None) form = d->empty;
    PyObject *event = extra == NULL || (r->call && call_obj == NULL) ? NULL
                      : blank_event(d);
    if (event != NULL) {
        Py_ssize_t *o = d->offsets;
        put(event, o[F_TIME], when);
        put(event, o[F_KIND], PyList_GET_ITEM(d->kinds, kind));
        put(event, o[F_SERVICE], PyList_GET_ITEM(d->services, r->service));
        put(event, o[F_IP], address);
        put(event, o[F_PORT], port);
        put(event, o[F_TRANSPORT], text(d, r, T_TRANSPORT));
        put(event, o[F_ACCOUNT], text(d, r, T_ACCOUNT));
        put(event, o[F_TARGET], text(d, r, T_TARGET));
        put(event, o[F_UA], text(d, r, T_UA));
        put(event, o[F_EVIDENCE], PyList_GET_ITEM(d->evidences, r->evidence));
        put(event, o[F_FILE], d->file);
        put(event, o[F_LINE], line_obj);
        put(event, o[F_RAW], d->empty);
        put(event, o[F_FORM], form);
        put(event, o[F_SESSION], text(d, r, T_SESSION));
        put(event, o[F_REASON], reason);
        put(event, o[F_EXTRA], extra);
        put(event, o[F_REPEAT], Py_False);
        put(event, o[F_BLOCKED], Py_False);
        put(event, o[F_CALL], call_obj);
    }
    Py_DECREF(line_obj);
    Py_DECREF(port);
    Py_XDECREF(extra);
    Py_XDECREF(call_obj);
    return event;
}

/* The address of a record (new reference; None when it has none): ip(text), once per text of the buffer. */
static PyObject *address_of(Drain *d, const Record *r) {
    uint32_t at = r->text[T_IP];
    if (at == 0) Py_RETURN_NONE;
    PyObject *address = d->addresses[at];
    if (address == NULL) {
        PyObject *text = PyList_GET_ITEM(d->texts, at);
        address = PyDict_GetItemWithError(d->ips, text);
        if (address != NULL) Py_INCREF(address);
        else if (PyErr_Occurred() || (address = PyObject_CallOneArg(d->ip_func, text)) == NULL) return NULL;
        d->addresses[at] = address;
    }
    Py_INCREF(address);
    return address;
}

static PyObject *drain_next(Drain *d) {
    if (d->records == NULL) return NULL;
    const Record *records = (const Record *)d->view.buf;
    while (d->pos < d->n) {
        Record rec;
        memcpy(&rec, &records[d->pos++], sizeof(Record));
        const Record *r = &rec;
        if (check(d, r) < 0) return NULL;
        if (r->line <= d->skip) { d->skipped++; continue; }  /* swallowed by a record of the previous chunk */
        double when_d = r->time != 0.0 ? r->time : d->last_time;
        PyObject *when = d->when;
        if (when == NULL || PyFloat_AS_DOUBLE(when) != when_d) {
            if ((when = PyFloat_FromDouble(when_d)) == NULL) return NULL;
            Py_XSETREF(d->when, when);
        }
        Py_INCREF(when);
        PyObject *address = address_of(d, r);
        if (address == NULL) { Py_DECREF(when); return NULL; }
        long kind = r->kind;
        if (count(d, address, when, r, kind) < 0) { Py_DECREF(when); Py_DECREF(address); return NULL; }
        if (address != Py_None) {
            PyObject *until = PyDict_GetItemWithError(d->banned, address);
            if (until == NULL && PyErr_Occurred()) { Py_DECREF(when); Py_DECREF(address); return NULL; }
            if (until != NULL) {
                int blocked = compare(when, until, Py_LT);
                if (blocked < 0) { Py_DECREF(when); Py_DECREF(address); return NULL; }
                if (blocked) { Py_DECREF(when); Py_DECREF(address); continue; }
            }
            if (d->nets != NULL && PyDict_GET_SIZE(d->nets) > 0) {  /* an IPv6 network is banned */
                PyObject *res = PyObject_CallFunctionObjArgs(d->net_blocked, address, when, NULL);
                if (res == NULL) { Py_DECREF(when); Py_DECREF(address); return NULL; }
                Py_DECREF(res);
                if (res == Py_True) { Py_DECREF(when); Py_DECREF(address); continue; }
            }
        }
        PyObject *event;
        if (d->event_type != NULL) {
            event = build_event(d, r, when, address, kind);
            Py_DECREF(address);
            if (event == NULL) { Py_DECREF(when); return NULL; }
        } else {
            PyObject *base = PyLong_FromLong(d->base), *w = wire_of(d, r);
            event = base && w ? PyObject_CallFunctionObjArgs(d->event_of, w, d->file, address, base, NULL) : NULL;
            Py_XDECREF(base);
            Py_XDECREF(w);
            Py_DECREF(address);
            if (event == NULL || PyObject_SetAttr(event, s_time, when) < 0) { Py_XDECREF(event); Py_DECREF(when); return NULL; }
        }
        Py_DECREF(when);
        d->last_time = when_d;
        if (d->take != NULL) {  /* the C core may see it through, all of it */
            PyObject *taken = PyObject_CallOneArg(d->take, event);
            if (taken == NULL) { Py_DECREF(event); return NULL; }
            Py_DECREF(taken);
            if (taken == Py_True) { release_event(d, event); continue; }
        }
        return event;
    }
    /* done: the buffer's results go now, whoever still holds the Drain */
    int failed = flush_batches(d) < 0;
    forget_addresses(d);
    Py_CLEAR(d->spare); Py_CLEAR(d->last_call);
    release_records(d);
    Py_CLEAR(d->texts); Py_CLEAR(d->objects);
    if (!failed) flush_kinds(d);
    return NULL;  /* StopIteration (or the error a flush set) */
}

/* The buffer's distinct texts, numbered by content in a table of its own: open addressing over (hash, number)
 * pairs, the hash of the text's code units taken eight bytes at a time. A dict keyed by the texts hashed each
 * new text with SipHash and then looked it up (~240 instructions a field, a sixth of a parse worker's time with
 * the making of the texts); a record's texts are short and mostly seen before. */
typedef struct {
    uint32_t hash;
    uint32_t number;  /* 0: an empty slot (text 0 is None, never in the table) */
} TextSlot;

static uint32_t text_hash(PyObject *text) {
    const unsigned char *data = PyUnicode_DATA(text);
    size_t size = (size_t)PyUnicode_GET_LENGTH(text) * (size_t)PyUnicode_KIND(text);
    uint64_t h = 0x9E3779B97F4A7C15ull ^ ((uint64_t)size << 8) ^ (uint64_t)PyUnicode_KIND(text), word;
    for (; size >= 8; data += 8, size -= 8) {  /* eight bytes at a time, each step multiplied and folded */
        memcpy(&word, data, 8);
        h = (h ^ word) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
    }
    word = 0;
    memcpy(&word, data, size);
    h = (h ^ word) * 0xC4CEB9FE1A85EC53ull;
    return (uint32_t)(h ^ (h >> 32));
}

static int same_text(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b)
           && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)(n * PyUnicode_KIND(a))) == 0;
}

typedef struct {
    TextSlot *slots;
    size_t mask;   /* slots - 1 (a power of two) */
    size_t used;
} TextTable;

static void table_free(TextTable *t) {
    PyMem_Free(t->slots);
    t->slots = NULL;
    t->mask = 0;
    t->used = 0;
}

static void table_put(TextTable *t, uint32_t hash, uint32_t number) {
    size_t i = hash & t->mask;
    while (t->slots[i].number != 0) i = (i + 1) & t->mask;
    t->slots[i].hash = hash;
    t->slots[i].number = number;
    t->used++;
}

/* The table made again from the texts numbered 1 and on, at most a quarter full (room to grow to half). */
static int table_remake(TextTable *t, PyObject *texts) {
    size_t count = (size_t)PyList_GET_SIZE(texts), size = 1024;
    while (size < 4 * count) size *= 2;
    TextSlot *slots = PyMem_Calloc(size, sizeof(TextSlot));
    if (slots == NULL) { PyErr_NoMemory(); return -1; }
    table_free(t);
    t->slots = slots;
    t->mask = size - 1;
    for (Py_ssize_t k = 1; k < PyList_GET_SIZE(texts); k++)
        table_put(t, text_hash(PyList_GET_ITEM(texts, k)), (uint32_t)k);
    return 0;
}

/* The number of a text in the buffer's texts, added on first sight (pack). */
static int text_index(TextTable *t, PyObject *texts, PyObject *value, uint32_t *at) {
    if (value == Py_None) { *at = 0; return 0; }
    if (!PyUnicode_Check(value)) { PyErr_SetString(PyExc_TypeError, "a wire tuple's text is not a str"); return -1; }
    Py_ssize_t n = PyList_GET_SIZE(texts);
    if (n >= UINT32_MAX) { PyErr_SetString(PyExc_OverflowError, "too many texts in a buffer"); return -1; }
    if ((t->slots == NULL || 2 * (t->used + 1) > t->mask + 1) && table_remake(t, texts) < 0) return -1;
    uint32_t hash = text_hash(value);
    size_t i = hash & t->mask;
    for (; t->slots[i].number != 0; i = (i + 1) & t->mask) {
        if (t->slots[i].hash == hash && same_text(PyList_GET_ITEM(texts, t->slots[i].number), value)) {
            *at = t->slots[i].number;
            return 0;
        }
    }
    if (PyList_Append(texts, value) < 0) return -1;
    t->slots[i].hash = hash;
    t->slots[i].number = (uint32_t)n;
    t->used++;
    *at = (uint32_t)n;
    return 0;
}

/* The index of an extra in the objects (0: None or an empty one). */
static int object_index(PyObject *objects, PyObject *value, uint32_t *at) {
    if (value == Py_None || (PyDict_Check(value) && PyDict_GET_SIZE(value) == 0)) { *at = 0; return 0; }
    *at = (uint32_t)PyList_GET_SIZE(objects);
    return PyList_Append(objects, value);
}

/* A buffer being packed (formats/wire.py's `pack`, record by record). The parse workers pack each record
 * the moment the fast lane has made it (`Engine.feed`'s `put`): its texts are still in the cache then,
 * where a pass over the whole buffer's tuples afterwards waits on memory for each of them. */
typedef struct {
    PyObject_HEAD
    TextTable index;                    /* text -> its number in the texts (see text_index) */
    PyObject *texts, *objects;          /* the texts (0: None); the extras */
    Record *records;
    Py_ssize_t n, cap;
    PyObject *convert;  /* for an item that is no wire tuple (an Event of the Python path): to_wire, or NULL */
} Packer;

static int packer_setup(Packer *p, PyObject *convert) {
    p->texts = PyList_New(1);
    p->objects = PyList_New(1);
    if (p->texts == NULL || p->objects == NULL) return -1;
    Py_INCREF(Py_None); PyList_SET_ITEM(p->texts, 0, Py_None);
    Py_INCREF(Py_None); PyList_SET_ITEM(p->objects, 0, Py_None);
    if (convert != NULL && convert != Py_None) { Py_INCREF(convert); p->convert = convert; }
    return 0;
}

static void packer_clear(Packer *p) {
    table_free(&p->index);
    Py_CLEAR(p->texts); Py_CLEAR(p->objects); Py_CLEAR(p->convert);
    PyMem_Free(p->records);
    p->records = NULL;
    p->n = p->cap = 0;
}

static void packer_dealloc(Packer *p) {
    packer_clear(p);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static int packer_init(Packer *p, PyObject *args, PyObject *kw) {
    PyObject *convert = NULL;
    static char *names[] = {"convert", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:Packer", names, &convert)) return -1;
    packer_clear(p);
    return packer_setup(p, convert);
}

/* A wire tuple's call (None, or a tuple of N_CALL_FIELDS: texts or None, and a duration and billsec in seconds or
 * None) into its record: its texts numbered with the others (a call's records repeat its channel, and all calls
 * their context and disposition). */
static int put_call(Packer *p, PyObject *call, Record *r) {
    if (call == Py_None) return 0;
    if (!PyTuple_Check(call) || PyTuple_GET_SIZE(call) != N_CALL_FIELDS) {
        PyErr_SetString(PyExc_TypeError, "a wire tuple's call is not a call tuple");
        return -1;
    }
    for (int i = 0; i < N_CALL_TEXTS; i++)
        if (text_index(&p->index, p->texts, PyTuple_GET_ITEM(call, CALL_TEXT_FIELDS[i]), &r->call_text[i]) < 0) return -1;
    r->call = CALL;
    PyObject *duration = PyTuple_GET_ITEM(call, CALL_DURATION_AT), *billsec = PyTuple_GET_ITEM(call, CALL_BILLSEC_AT);
    if (duration != Py_None) {
        r->call |= DURATION;
        if ((r->duration = PyFloat_AsDouble(duration)) == -1.0 && PyErr_Occurred()) return -1;
    }
    if (billsec != Py_None) {
        r->call |= BILLSEC;
        if ((r->billsec = PyFloat_AsDouble(billsec)) == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

/* Add one record from its parts (a wire tuple's, see _parts.h). */
static int packer_put_parts(Packer *p, const Parts *s) {
    if (p->texts == NULL) { PyErr_SetString(PyExc_ValueError, "a Packer that is done"); return -1; }
    if (s->kind < 0 || s->kind > MAX_KIND - 1 || s->service < 0 || s->service > 255 || s->evidence < 0
        || s->evidence > 255) {
        PyErr_SetString(PyExc_ValueError, "an index out of range in a wire tuple");
        return -1;
    }
    Record r;
    memset(&r, 0, sizeof(r));
    r.time = s->time;
    r.port = s->port;
    r.line = s->line;
    r.kind = (uint8_t)s->kind;
    r.service = (uint8_t)s->service;
    r.evidence = (uint8_t)s->evidence;
    for (int f = 0; f < N_TEXTS; f++)
        if (text_index(&p->index, p->texts, s->text[f], &r.text[f]) < 0) return -1;
    if (put_call(p, s->call, &r) < 0 || object_index(p->objects, s->extra, &r.extra) < 0)
        return -1;
    if (p->n == p->cap) {
        Py_ssize_t cap = p->cap ? 2 * p->cap : 1024;
        Record *more = PyMem_Realloc(p->records, (size_t)cap * sizeof(Record));
        if (more == NULL) { PyErr_NoMemory(); return -1; }
        p->records = more;
        p->cap = cap;
    }
    p->records[p->n++] = r;
    return 0;
}

static long index_of(PyObject *value) {
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) return -2;
    return v < 0 ? LONG_MAX : v;  /* (out of range either way) */
}

/* Add one wire tuple. */
static int packer_put(Packer *p, PyObject *w) {
    if (!PyTuple_Check(w) || PyTuple_GET_SIZE(w) != 16) {
        PyErr_SetString(PyExc_TypeError, "not a wire tuple");
        return -1;
    }
    if (p->texts == NULL) { PyErr_SetString(PyExc_ValueError, "a Packer that is done"); return -1; }
    Parts s;
    s.time = PyFloat_AsDouble(PyTuple_GET_ITEM(w, 0));
    if (s.time == -1.0 && PyErr_Occurred()) return -1;
    PyObject *port = PyTuple_GET_ITEM(w, 4);
    s.port = port == Py_None ? -1 : PyLong_AsLongLong(port);
    s.line = PyLong_AsLongLong(PyTuple_GET_ITEM(w, 10));
    if (PyErr_Occurred()) return -1;
    if (port != Py_None && s.port < 0) { PyErr_SetString(PyExc_ValueError, "a negative port"); return -1; }
    if ((s.kind = index_of(PyTuple_GET_ITEM(w, 1))) == -2 || (s.service = index_of(PyTuple_GET_ITEM(w, 2))) == -2
        || (s.evidence = index_of(PyTuple_GET_ITEM(w, 9))) == -2)
        return -1;
    for (int f = 0; f < N_TEXTS; f++) s.text[f] = PyTuple_GET_ITEM(w, TEXT_FIELDS[f]);
    s.extra = PyTuple_GET_ITEM(w, 14);
    s.call = PyTuple_GET_ITEM(w, 15);
    return packer_put_parts(p, &s);
}

/* put(item): a wire tuple, or (with `convert`) anything `convert` makes one of. */
static PyObject *packer_add(Packer *p, PyObject *item) {
    if (!PyTuple_CheckExact(item) && p->convert != NULL) {
        PyObject *w = PyObject_CallOneArg(p->convert, item);
        if (w == NULL) return NULL;
        int rc = packer_put(p, w);
        Py_DECREF(w);
        if (rc < 0) return NULL;
        Py_RETURN_NONE;
    }
    if (packer_put(p, item) < 0) return NULL;
    Py_RETURN_NONE;
}

/* add_all(items): add() for each. */
static PyObject *packer_add_all(Packer *p, PyObject *items) {
    PyObject *it = PyObject_GetIter(items);
    if (it == NULL) return NULL;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *done = packer_add(p, item);
        Py_DECREF(item);
        if (done == NULL) { Py_DECREF(it); return NULL; }
        Py_DECREF(done);
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) return NULL;
    Py_RETURN_NONE;
}

/* trim(last_line) -> the records kept: those of lines beyond `last_line` (read in a buffer's lookahead, the last
 * in file order) are dropped, as RecordScanner.feed drops their items. */
static PyObject *packer_trim(Packer *p, PyObject *arg) {
    long long last = PyLong_AsLongLong(arg);
    if (last == -1 && PyErr_Occurred()) return NULL;
    if (p->texts == NULL) { PyErr_SetString(PyExc_ValueError, "a Packer that is done"); return NULL; }
    Py_ssize_t n = p->n;
    while (n > 0 && p->records[n - 1].line > last) n--;
    if (n < p->n) {  /* the texts and objects first seen in the dropped records go too: they are the last ones */
        uint32_t texts = 0, objects = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            const Record *r = &p->records[i];
            for (int f = 0; f < N_TEXTS; f++) if (r->text[f] > texts) texts = r->text[f];
            for (int f = 0; f < N_CALL_TEXTS; f++) if (r->call_text[f] > texts) texts = r->call_text[f];
            if (r->extra > objects) objects = r->extra;
        }
        if (PyList_SetSlice(p->texts, texts + 1, PyList_GET_SIZE(p->texts), NULL) < 0
            || PyList_SetSlice(p->objects, objects + 1, PyList_GET_SIZE(p->objects), NULL) < 0)
            return NULL;
        table_free(&p->index);  /* (made again of the texts left if another record comes: most often none does) */
        p->n = n;
    }
    return PyLong_FromSsize_t(p->n);
}

/* targets(kinds) -> the distinct texts dialled (`target`) by the records of these kinds, first seen first. */
static PyObject *packer_targets(Packer *p, PyObject *kinds) {
    unsigned char wanted[MAX_KIND] = {0};
    PyObject *it = PyObject_GetIter(kinds), *kind;
    if (it == NULL) return NULL;
    while ((kind = PyIter_Next(it)) != NULL) {
        long k = PyLong_AsLong(kind);
        Py_DECREF(kind);
        if (k == -1 && PyErr_Occurred()) { Py_DECREF(it); return NULL; }
        if (k >= 0 && k < MAX_KIND) wanted[k] = 1;
    }
    Py_DECREF(it);
    if (PyErr_Occurred() || p->texts == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a Packer that is done");
        return NULL;
    }
    Py_ssize_t ntexts = PyList_GET_SIZE(p->texts);
    unsigned char *seen = PyMem_Calloc((size_t)ntexts, 1);
    PyObject *out = PyList_New(0);
    if (seen == NULL || out == NULL) { PyMem_Free(seen); Py_XDECREF(out); return PyErr_NoMemory(); }
    for (Py_ssize_t i = 0; i < p->n; i++) {
        const Record *r = &p->records[i];
        uint32_t at = r->text[T_TARGET];
        if (!wanted[r->kind] || at == 0 || at >= ntexts || seen[at]) continue;
        seen[at] = 1;
        if (PyList_Append(out, PyList_GET_ITEM(p->texts, at)) < 0) { PyMem_Free(seen); Py_DECREF(out); return NULL; }
    }
    PyMem_Free(seen);
    return out;
}

/* result() -> (texts, records, objects): the Packed buffer (formats/wire.py). The Packer is done then. */
static PyObject *packer_result(Packer *p, PyObject *unused) {
    (void)unused;
    if (p->texts == NULL) { PyErr_SetString(PyExc_ValueError, "a Packer that is done"); return NULL; }
    PyObject *records = PyBytes_FromStringAndSize((const char *)p->records, p->n * (Py_ssize_t)sizeof(Record));
    PyObject *result = records ? PyTuple_Pack(3, p->texts, records, p->objects) : NULL;
    Py_XDECREF(records);
    if (result != NULL) packer_clear(p);
    return result;
}

static Py_ssize_t packer_len(Packer *p) { return p->n; }

static PyMethodDef packer_methods[] = {
    {"add", (PyCFunction)packer_add, METH_O, "add(item): one more record (a wire tuple; see `convert`)."},
    {"add_all", (PyCFunction)packer_add_all, METH_O, "add_all(items): add() each."},
    {"trim", (PyCFunction)packer_trim, METH_O, "trim(last_line) -> records kept: drop those of later lines."},
    {"targets", (PyCFunction)packer_targets, METH_O, "targets(kinds) -> distinct targets of those kinds' records."},
    {"result", (PyCFunction)packer_result, METH_NOARGS, "result() -> (texts, records, objects)."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods packer_sequence = {.sq_length = (lenfunc)packer_len};

static PyTypeObject PackerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch._drain.Packer",
    .tp_basicsize = sizeof(Packer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)packer_init,
    .tp_dealloc = (destructor)packer_dealloc,
    .tp_methods = packer_methods,
    .tp_as_sequence = &packer_sequence,
    .tp_doc = "Packer(convert=None): one buffer's records packed as they come (formats/wire.py's pack).",
};

/* pack(wires) -> (texts, records, objects): formats/wire.py's `pack`, in C (the parse workers' side). */
static PyObject *pack(PyObject *self, PyObject *wires) {
    (void)self;
    if (!PyList_Check(wires)) { PyErr_SetString(PyExc_TypeError, "pack() takes a list of wire tuples"); return NULL; }
    Packer p;
    memset(&p, 0, sizeof(p));
    PyObject *result = NULL;
    if (packer_setup(&p, NULL) == 0) {
        Py_ssize_t i = 0, n = PyList_GET_SIZE(wires);
        while (i < n && packer_put(&p, PyList_GET_ITEM(wires, i)) == 0) i++;
        if (i == n) result = packer_result(&p, NULL);
    }
    packer_clear(&p);
    return result;
}

static PyObject *drain_get_last_time(Drain *d, void *unused) { (void)unused; return PyFloat_FromDouble(d->last_time); }
static PyObject *drain_get_skipped(Drain *d, void *unused) { (void)unused; return PyLong_FromLong(d->skipped); }

static PyGetSetDef drain_getset[] = {
    {"last_time", (getter)drain_get_last_time, NULL, "the time of the last event returned", NULL},
    {"skipped", (getter)drain_get_skipped, NULL, "records swallowed by the previous buffer", NULL},
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
    .tp_doc = "The events of one packed buffer that reach the pipeline (see the module's docs).",
};

static PyMethodDef module_methods[] = {
    {"pack", pack, METH_O, "pack(wires) -> (texts, records, objects): formats/wire.py's pack, in C."},
    {"knows_offenders", knows_offenders, METH_NOARGS, "Whether tally.Offender's slots are those Drain reads."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_drain", "The parallel scan's merge loop in C (see sipwatch/parallel.py).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

/* knows_offenders() -> bool: whether tally.Offender's slots are those this module reads and writes (looked up
 * on the first call, not at import: the parse workers, which only pack, fork before the detectors and the
 * tally are imported). False: the scan merges in Python. */
static PyObject *knows_offenders(PyObject *self, PyObject *unused) {
    (void)self; (void)unused;
    if (offender_type != NULL) Py_RETURN_TRUE;
    PyObject *tally = PyImport_ImportModule("sipwatch.tally");
    PyObject *cap = tally ? PyObject_GetAttrString(tally, "MAX_DISTINCT") : NULL;
    max_distinct = cap ? PyLong_AsSsize_t(cap) : -1;
    PyObject *type = tally ? PyObject_GetAttrString(tally, "Offender") : NULL;
    Py_XDECREF(tally);
    Py_XDECREF(cap);
    if (max_distinct < 0 || type == NULL) { Py_XDECREF(type); return NULL; }
    if (!PyType_Check(type) || !named_slots((PyTypeObject *)type, OFFENDER_FIELDS, N_OFFENDER, offender_offsets)) {
        Py_DECREF(type);
        Py_RETURN_FALSE;
    }
    offender_type = (PyTypeObject *)type;  /* kept for the module's life */
    Py_RETURN_TRUE;
}

static int api_put(PyObject *packer, const Parts *parts) { return packer_put_parts((Packer *)packer, parts); }

static PartsApi parts_api = {&PackerType, (PyCFunction)packer_add, api_put};

PyMODINIT_FUNC PyInit__drain(void) {
    s_time = PyUnicode_InternFromString("time");
    if (!s_time) return NULL;
    PyObject *m = module_with_type(&moduledef, "Drain", &DrainType);
    if (m != NULL && add_type(m, "Packer", &PackerType) < 0) Py_CLEAR(m);
    PyObject *capsule = m != NULL ? PyCapsule_New(&parts_api, PARTS_CAPSULE, NULL) : NULL;
    if (m != NULL && (capsule == NULL || PyModule_AddObject(m, "_parts_api", capsule) < 0)) {
        Py_XDECREF(capsule);
        Py_CLEAR(m);
    }
    return m;
}
