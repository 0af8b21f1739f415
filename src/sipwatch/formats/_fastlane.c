/*
 * The record scanner's fast lane in C: the loop of `RecordScanner.feed` and the fast-lane match and
 * build of `LineParser.parse` for the common case, one plain-ASCII physical line that a combined
 * prefix + message regex matches. It knows no format: the regexes, the lane order and every form's
 * attributes come from the Python tables (formats/native.py compiles them); PCRE2's JIT runs the very
 * regexes that Python's `re` runs. Whatever it cannot reproduce exactly (a non-ASCII or coloured line,
 * a CSV row, a packet dump, an orphan tail, a record that needs reassembly, a form whose service is
 * decided by Python code, a forged separator) it hands, untouched, to `RecordScanner._record`, the
 * Python path, before it has changed any state. So the events are the same with or without it; only
 * the speed differs. tests/test_fastlane.py holds both to that.
 *
 * Its results are the wire tuples of sipwatch.parallel (an Event without its raw text); the Python
 * path's results are Event objects, in the same list, in file order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_parts.h"
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#ifdef HAVE_HS
#include <hs/hs.h>
#endif
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

enum { D_PYTHON = 0, D_FORM = 1, D_SECURITY = 2 };
#define MAX_GROUPS 4

typedef struct {
    pcre2_code *code; /* NULL: PCRE2 cannot compile it; a record that reaches this lane goes to Python */
    pcre2_match_data *md;
    int type;
    int g_ts, g_sts, g_msg; /* the prefix's time; a syslog header's time, used when the prefix has none */
    int g_reason, g_channel, g_context, g_target, g_callid, g_at, g_ua, g_contact, g_from;
    int g_account[MAX_GROUPS], n_account;
    int g_addr[MAX_GROUPS], n_addr;
    int g_name, g_tv, g_service, g_session, g_remote, g_tail; /* security lines; g_account[0] too */
    int kind;                /* -1: None */
    PyObject *kinds;         /* dict: reason -> kind index */
    int service;
    int service_of;          /* Python code decides the service */
    int shape;               /* netaddr.Shape, numbered as native.SHAPES */
    PyObject *separator;     /* bytes, or NULL */
    int evidence;
    PyObject *strong;        /* frozenset of reasons */
    int address_trusted, port_zero_untrusted;
    PyObject *transport;     /* str or Py_None */
    PyObject *form_id;       /* str */
} Lane;

typedef struct {
    PyObject_HEAD
    Lane *lanes;
    Py_ssize_t n;
    /* constants from the Python side (see native.py) */
    PyObject *call_kinds;      /* frozenset of kind indexes */
    uint64_t call_kind_bits;   /* the same as bits, when every index is below 64 (call_kinds_as_bits) */
    int call_kinds_as_bits;
    PyObject *kind_values;     /* tuple of kind strings */
    int k_scanner, k_unknown, k_acl;
    int e_strong, e_weak;
    int s_dialplan, s_sip, s_ami;
    PyObject *channel_services; /* dict: tech -> service index */
    PyObject *tls_like;         /* form._TLS_LIKE: transports that prove a round trip */
    PyObject *transports;       /* netaddr._TRANSPORTS: the transports a TRANSPORT-shaped address names */
    PyObject *uri_user, *host_text;  /* Python functions: form.uri_user, netaddr.host_text */
    PyObject *hosts;                 /* host as written -> canonical address text or None (host_text, cached) */
    PyObject *scanners;              /* fingerprints.SCANNER_USER_AGENTS: (lower-case needle, tool) */
    PyObject *named;                 /* text -> tool or None: what scanner_name found (the same texts recur) */
    PyObject *event_kinds;      /* security: dict name -> kind index */
    PyObject *services;         /* security: dict service -> service index */
    PyObject *careful_names;    /* security: frozenset of names the Python reader must read */
    /* the str keys of these tables, found by their bytes (see Known) */
    struct Known *known_names, *known_services, *known_transports, *known_techs;

} Engine;

#define NONE_MATCHED ((PyObject *)1)
#define FALLBACK ((PyObject *)2)
#define HANDED ((PyObject *)3)  /* the record went to the packer as its parts (see Run.packer) */

/* A few texts the engine knows (the str keys of its dicts and sets: security event names, services,
 * transports, channel techs), found by their bytes: a record's text is then that very object, with no str made, and its hash
 * is known to the dicts and sets it is asked of next (a new str was hashed with SipHash for each). */
#define MAX_KNOWN 64
#define MAX_KNOWN_LENGTH 40
typedef struct Known {
    int n;  /* -1: not kept so (a key too long or not plain ASCII, or too many): make a str and ask */
    PyObject *texts[MAX_KNOWN];
} Known;

static void known_clear(Known *k) {
    if (k == NULL) return;
    for (int i = 0; i < k->n; i++) Py_DECREF(k->texts[i]);
    PyMem_Free(k);
}

/* Adds the str keys of `keys` (a dict or a set). */
static int known_add(Known *k, PyObject *keys) {
    PyObject *it = PyObject_GetIter(keys), *key;
    if (it == NULL) return -1;
    while (k->n >= 0 && (key = PyIter_Next(it)) != NULL) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_IS_ASCII(key) || PyUnicode_GET_LENGTH(key) > MAX_KNOWN_LENGTH
            || k->n == MAX_KNOWN) {
            for (int i = 0; i < k->n; i++) Py_DECREF(k->texts[i]);
            k->n = -1;
            Py_DECREF(key);
            break;
        }
        k->texts[k->n++] = key;  /* (the reference PyIter_Next gave) */
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static Known *known_of(PyObject *keys, PyObject *more) {
    Known *k = PyMem_Calloc(1, sizeof(Known));
    if (k == NULL) { PyErr_NoMemory(); return NULL; }
    if (known_add(k, keys) < 0 || (more != NULL && known_add(k, more) < 0)) { known_clear(k); return NULL; }
    return k;
}

/* The known text of these bytes (a new reference), or NULL when none is (then no error is set). `fold`: compare
 * with the letters made upper-case (the transports, which upper() writes so). */
static PyObject *known_text(const Known *k, const char *s, Py_ssize_t n, int fold) {
    for (int i = 0; i < k->n; i++) {
        PyObject *t = k->texts[i];
        if (PyUnicode_GET_LENGTH(t) != n) continue;
        const Py_UCS1 *d = PyUnicode_1BYTE_DATA(t);
        Py_ssize_t j = 0;
        if (fold) while (j < n && d[j] == (Py_UCS1)((s[j] >= 'a' && s[j] <= 'z') ? s[j] - 32 : s[j])) j++;
        else while (j < n && d[j] == (Py_UCS1)s[j]) j++;
        if (j == n) { Py_INCREF(t); return t; }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */

static int attr_int(PyObject *o, const char *name, int *out) {
    PyObject *v = PyObject_GetAttrString(o, name);
    if (v == NULL) return -1;
    long x = PyLong_AsLong(v);
    Py_DECREF(v);
    if (x == -1 && PyErr_Occurred()) return -1;
    *out = (int)x;
    return 0;
}

static PyObject *attr_ref(PyObject *o, const char *name) { return PyObject_GetAttrString(o, name); }

static int group_number(pcre2_code *code, const char *name) {
    if (code == NULL) return -1;
    int n = pcre2_substring_number_from_name(code, (PCRE2_SPTR)name);
    return n > 0 ? n : -1;
}

static int group_list(pcre2_code *code, PyObject *desc, const char *attr, int *out, int *count) {
    PyObject *seq = PyObject_GetAttrString(desc, attr);
    if (seq == NULL) return -1;
    PyObject *fast = PySequence_Fast(seq, "groups must be a sequence");
    Py_DECREF(seq);
    if (fast == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    *count = 0;
    for (Py_ssize_t i = 0; i < n && *count < MAX_GROUPS; i++) {
        const char *name = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
        if (name == NULL) { Py_DECREF(fast); return -1; }
        int g = group_number(code, name);
        if (g > 0) out[(*count)++] = g;
    }
    Py_DECREF(fast);
    return 0;
}

static void lane_clear(Lane *L) {
    if (L->md) pcre2_match_data_free(L->md);
    if (L->code) pcre2_code_free(L->code);
    Py_XDECREF(L->kinds); Py_XDECREF(L->separator); Py_XDECREF(L->strong);
    Py_XDECREF(L->transport); Py_XDECREF(L->form_id);
    memset(L, 0, sizeof(*L));
}

/* One lane from its pattern and its descriptor (a native.LaneSpec). */
static int lane_init(Lane *L, PyObject *spec) {
    memset(L, 0, sizeof(*L));
    PyObject *pattern = attr_ref(spec, "pattern");
    if (pattern == NULL) return -1;
    Py_ssize_t plen;
    const char *ptext = PyUnicode_AsUTF8AndSize(pattern, &plen);
    if (ptext == NULL) { Py_DECREF(pattern); return -1; }
    int errcode; PCRE2_SIZE erroff;
    pcre2_code *code;
    Py_BEGIN_ALLOW_THREADS  /* (no Python object is touched: an engine can be compiled on another thread, see native.ahead) */
    code = pcre2_compile((PCRE2_SPTR)ptext, (PCRE2_SIZE)plen, PCRE2_ANCHORED | PCRE2_DOTALL, &errcode, &erroff, NULL);
    if (code != NULL && pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) != 0) { /* interpreter: still exact */ }
    Py_END_ALLOW_THREADS
    L->code = code;
    Py_DECREF(pattern);
    if (L->code != NULL) {
        L->md = pcre2_match_data_create_from_pattern(L->code, NULL);
        if (L->md == NULL) { pcre2_code_free(L->code); L->code = NULL; }
    }
    if (attr_int(spec, "type", &L->type) < 0) return -1;
    L->g_ts = group_number(L->code, "ts");
    L->g_sts = group_number(L->code, "sts");
    L->g_msg = group_number(L->code, "msg");
    if (L->g_msg < 0 && L->code != NULL) L->type = D_PYTHON;
    L->form_id = attr_ref(spec, "form");
    if (L->form_id == NULL) return -1;
    if (L->type == D_FORM) {
        L->g_reason = group_number(L->code, "reason");
        L->g_channel = group_number(L->code, "channel");
        L->g_context = group_number(L->code, "context");
        L->g_target = group_number(L->code, "target");
        L->g_callid = group_number(L->code, "callid");
        L->g_at = group_number(L->code, "at");
        L->g_ua = group_number(L->code, "ua");
        L->g_contact = group_number(L->code, "contact");
        L->g_from = group_number(L->code, "from");
        if (group_list(L->code, spec, "account_groups", L->g_account, &L->n_account) < 0) return -1;
        if (group_list(L->code, spec, "address_groups", L->g_addr, &L->n_addr) < 0) return -1;
        if (attr_int(spec, "kind", &L->kind) < 0 || attr_int(spec, "service", &L->service) < 0
            || attr_int(spec, "service_of", &L->service_of) < 0
            || attr_int(spec, "evidence", &L->evidence) < 0
            || attr_int(spec, "address_trusted", &L->address_trusted) < 0
            || attr_int(spec, "port_zero_untrusted", &L->port_zero_untrusted) < 0)
            return -1;
        if ((L->kinds = attr_ref(spec, "kinds")) == NULL) return -1;
        if (attr_int(spec, "shape", &L->shape) < 0) return -1;
        if ((L->strong = attr_ref(spec, "strong_reasons")) == NULL) return -1;
        if ((L->transport = attr_ref(spec, "transport")) == NULL) return -1;
        PyObject *sep = attr_ref(spec, "separator");
        if (sep == NULL) return -1;
        if (sep == Py_None) Py_DECREF(sep);
        else { L->separator = PyUnicode_AsASCIIString(sep); Py_DECREF(sep); if (!L->separator) return -1; }
    } else if (L->type == D_SECURITY) {
        L->g_name = group_number(L->code, "name");
        L->g_tv = group_number(L->code, "tv");
        L->g_service = group_number(L->code, "service");
        L->g_account[0] = group_number(L->code, "account");
        L->g_session = group_number(L->code, "session");
        L->g_remote = group_number(L->code, "remote");
        L->g_tail = group_number(L->code, "tail");
        if (L->g_name < 0 || L->g_tv < 0 || L->g_service < 0 || L->g_account[0] < 0 || L->g_session < 0
            || L->g_remote < 0 || L->g_tail < 0)
            L->type = D_PYTHON;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------- */
/* A match's groups */

static PyObject *ascii(const char *s, Py_ssize_t n) {
    PyObject *u = PyUnicode_New(n, 127); /* the fast lane only sees plain ASCII lines */
    if (u != NULL) memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)n);
    return u;
}


typedef struct {
    const char *text;
    PCRE2_SIZE *ov;
} Match;

static int has(Match *m, int g) { return g > 0 && m->ov[2 * g] != PCRE2_UNSET; }

/* The group's text as str, or a new reference to None when the group did not take part. */
static PyObject *group(Match *m, int g) {
    if (!has(m, g)) Py_RETURN_NONE;
    return ascii(m->text + m->ov[2 * g], (Py_ssize_t)(m->ov[2 * g + 1] - m->ov[2 * g]));
}

/* Whether `needle` occurs twice in s[:n], not overlapping (a forged separator: `str.count(...) > 1`). A record's
 * message is short: memchr to the needle's first byte and a compare beat memmem's set-up for each. */
static int twice_in(const char *s, Py_ssize_t n, const char *needle, Py_ssize_t k) {
    if (k == 0) return 1;
    Py_ssize_t c = 0;
    const char *p = s, *end = s + n;
    while (end - p >= k) {
        const char *q = memchr(p, needle[0], (size_t)(end - p - k + 1));
        if (q == NULL) break;
        if (memcmp(q, needle, (size_t)k) != 0) { p = q + 1; continue; }
        if (++c == 2) return 1;
        p = q + k;
    }
    return 0;
}

/* `text[start:end]` after `key` up to the next '"' (security.py `_value_after`), or NULL. */
static PyObject *value_after(const char *s, Py_ssize_t n, const char *key) {
    Py_ssize_t k = (Py_ssize_t)strlen(key);
    const char *p = memmem(s, (size_t)n, key, (size_t)k);
    if (p == NULL) return NULL;
    p += k;
    const char *q = memchr(p, '"', (size_t)(s + n - p));
    if (q == NULL) return NULL;
    return ascii(p, q - p);
}

static int kind_index(PyObject *dict, PyObject *key, int *out) {
    PyObject *v = PyDict_GetItemWithError(dict, key);
    if (v == NULL) return PyErr_Occurred() ? -1 : 0;
    *out = (int)PyLong_AsLong(v);
    return 1;
}

/* form.py `channel_account`: `PJSIP/6001-00000001` -> (PJSIP, "6001"); Local and others: (DIALPLAN, None). */
static int channel_account(Engine *E, PyObject *channel, int *service, PyObject **account) {
    *service = E->s_dialplan;
    *account = NULL;
    if (channel == Py_None) return 0;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(channel, &n);
    if (s == NULL) return -1;
    if (n == 0) return 0;
    const char *slash = memchr(s, '/', (size_t)n);
    Py_ssize_t tech_len = slash ? slash - s : n;
    int svc = 0, found = 0;
    /* a tech the table has not (when it is kept as known texts) has no service: no str made to ask it */
    PyObject *tech = E->known_techs->n >= 0 ? known_text(E->known_techs, s, tech_len, 0) : ascii(s, tech_len);
    if (tech == NULL && PyErr_Occurred()) return -1;
    if (tech != NULL) {
        found = kind_index(E->channel_services, tech, &svc);
        Py_DECREF(tech);
        if (found < 0) return -1;
    }
    const char *rest = slash ? slash + 1 : s + n;
    Py_ssize_t rest_len = s + n - rest;
    if (!found || rest_len == 0) return 0;
    *service = svc;
    const char *dash = NULL;
    for (Py_ssize_t i = rest_len; i > 0; i--)
        if (rest[i - 1] == '-') { dash = rest + i - 1; break; }
    if (dash != NULL && dash > rest) *account = ascii(rest, dash - rest);
    else *account = ascii(rest, rest_len);
    return *account == NULL ? -1 : 0;
}

/* form.uri_user(text): the user part of the first SIP URI in a header value, else the value itself (None when
 * the URI has no user part). Exact str values here; anything else goes to the Python function. */
static PyObject *uri_user(Engine *E, PyObject *text) {
    static PyObject *sip, *sips, *at;
    if (sip == NULL && ((sip = PyUnicode_InternFromString("sip:")) == NULL || (sips = PyUnicode_InternFromString("sips:")) == NULL
                        || (at = PyUnicode_InternFromString("@")) == NULL))
        return NULL;
    if (!PyUnicode_CheckExact(text)) return PyObject_CallOneArg(E->uri_user, text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (n == 0) { Py_INCREF(text); return text; }
    Py_ssize_t start = PyUnicode_Find(text, sip, 0, n, 1);
    if (start == -2) return NULL;
    if (start < 0) {
        start = PyUnicode_Find(text, sips, 0, n, 1);
        if (start == -2) return NULL;
        if (start < 0) { Py_INCREF(text); return text; }
        start += 1;
    }
    start += 4;
    Py_ssize_t end = PyUnicode_Find(text, at, start, n, 1);
    if (end == -2) return NULL;
    if (end < 0) Py_RETURN_NONE;
    return PyUnicode_Substring(text, start, end);
}

/* The parts of an event a build produces, before the time and the line are added. */
typedef struct {
    int kind, service, evidence;
    PyObject *ip, *port, *transport, *account, *target, *ua, *session, *reason, *extra, *call, *at;
} Built;

static void built_clear(Built *b) {
    Py_XDECREF(b->ip); Py_XDECREF(b->port); Py_XDECREF(b->transport); Py_XDECREF(b->account);
    Py_XDECREF(b->target); Py_XDECREF(b->ua); Py_XDECREF(b->session); Py_XDECREF(b->reason);
    Py_XDECREF(b->extra); Py_XDECREF(b->call); Py_XDECREF(b->at);
    memset(b, 0, sizeof(*b));
}

/* The extra's keys are a few string literals: each is made an interned str once (by its address), not decoded
 * and interned again for every record. */
#define MAX_EXTRA_KEYS 16
static const char *extra_names[MAX_EXTRA_KEYS];
static PyObject *extra_keys[MAX_EXTRA_KEYS];
static int n_extra_keys;

static int set_extra(Built *b, const char *key, PyObject *value) {
    if (b->extra == NULL && (b->extra = PyDict_New()) == NULL) return -1;
    for (int i = 0; i < n_extra_keys; i++)
        if (extra_names[i] == key) return PyDict_SetItem(b->extra, extra_keys[i], value);
    if (n_extra_keys == MAX_EXTRA_KEYS) return PyDict_SetItemString(b->extra, key, value);
    PyObject *name = PyUnicode_InternFromString(key);
    if (name == NULL) return -1;
    extra_names[n_extra_keys] = key;
    extra_keys[n_extra_keys++] = name;  /* kept for the life of the process */
    return PyDict_SetItem(b->extra, name, value);
}

static int in_set(PyObject *set, PyObject *key) {
    if (key == NULL || key == Py_None) return 0;
    return PySet_Contains(set, key);
}

/* netaddr.parse_address, step for step, on plain ASCII. Shapes as numbered in native.SHAPES. */
enum { SHAPE_BARE = 0, SHAPE_PORT = 1, SHAPE_OPTPORT = 2, SHAPE_TUPLE = 3, SHAPE_TRANSPORT = 4 };

static int is_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

/* netaddr._port: 1 to 5 digits, at most 65535; -1 when not a port. */
static long port_of(const char *s, Py_ssize_t n) {
    if (n < 1 || n > 5) return -1;
    long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

/* The canonical text of the address `host` (netaddr.ip_of, then str), or NULL for None; a new reference.
 * Hosts repeat (an attacker's, a phone's), so the answers are kept; the port never enters the key. */
/* Whether s is an IPv4 address as ipaddress.IPv4Address reads one and writes it back: four decimal numbers of at
 * most 255, with no leading zero, between dots (its own canonical text: no lookup, no Python call). */
static int canonical_ipv4(const char *s, Py_ssize_t n) {
    if (n < 7 || n > 15) return 0;
    int parts = 0;
    for (Py_ssize_t i = 0;;) {
        Py_ssize_t start = i;
        int value = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3) value = value * 10 + (s[i++] - '0');
        Py_ssize_t len = i - start;
        if (len == 0 || value > 255 || (len > 1 && s[start] == '0')) return 0;
        if (++parts == 4) return i == n;
        if (i == n || s[i] != '.') return 0;
        i++;
    }
}

static PyObject *host_text(Engine *E, const char *s, Py_ssize_t n, int *error) {
    *error = 0;
    if (canonical_ipv4(s, n)) {
        PyObject *text = ascii(s, n);
        if (text == NULL) *error = 1;
        return text;
    }
    PyObject *key = ascii(s, n);
    if (key == NULL) { *error = 1; return NULL; }
    PyObject *found = PyDict_GetItemWithError(E->hosts, key);
    if (found == NULL) {
        if (PyErr_Occurred()) { Py_DECREF(key); *error = 1; return NULL; }
        found = PyObject_CallOneArg(E->host_text, key);
        if (found == NULL) { Py_DECREF(key); *error = 1; return NULL; }
        if (PyDict_GET_SIZE(E->hosts) > 100000) PyDict_Clear(E->hosts);
        int rc = PyDict_SetItem(E->hosts, key, found);
        Py_DECREF(key);
        if (rc < 0) { Py_DECREF(found); *error = 1; return NULL; }
    } else {
        Py_INCREF(found);
        Py_DECREF(key);
    }
    if (found == Py_None) { Py_DECREF(found); return NULL; }
    return found;
}

static int set_address(Engine *E, Built *b, const char *host, Py_ssize_t hn, long port, PyObject *transport) {
    int error;
    PyObject *ip = host_text(E, host, hn, &error);
    if (ip == NULL) return error ? -1 : 0;
    b->ip = ip;
    if (port >= 0) { if ((b->port = PyLong_FromLong(port)) == NULL) return -1; }
    else { b->port = Py_None; Py_INCREF(Py_None); }
    if (transport == NULL) { transport = Py_None; }
    Py_INCREF(transport);
    b->transport = transport;
    return 1;
}

/* netaddr._hostport */
static int hostport(Engine *E, Built *b, const char *s, Py_ssize_t n, int shape) {
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s + 1, ']', (size_t)(n - 1));
        if (close == NULL) return 0;
        const char *rest = close + 1;
        Py_ssize_t rn = s + n - rest;
        if (rn == 0) return shape == SHAPE_PORT ? 0 : set_address(E, b, s + 1, close - s - 1, -1, NULL);
        if (rest[0] != ':') return 0;
        long port = port_of(rest + 1, rn - 1);
        if (port < 0) {  /* Python validates the address too; neither gives an address */
            return 0;
        }
        return set_address(E, b, s + 1, close - s - 1, port, NULL);
    }
    Py_ssize_t colons = 0;
    const char *first = NULL, *last = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] == ':') { colons++; if (!first) first = s + i; last = s + i; }
    if (colons == 0) return shape == SHAPE_PORT ? 0 : set_address(E, b, s, n, -1, NULL);
    const char *sep = colons == 1 ? first : (shape == SHAPE_PORT ? last : NULL);
    if (sep == NULL) return set_address(E, b, s, n, -1, NULL);
    long port = port_of(sep + 1, s + n - sep - 1);
    if (port < 0) return 0;
    return set_address(E, b, s, sep - s, port, NULL);
}

static PyObject *upper(const char *s, Py_ssize_t n) {
    PyObject *u = PyUnicode_New(n, 127);
    if (u == NULL) return NULL;
    Py_UCS1 *d = PyUnicode_1BYTE_DATA(u);
    for (Py_ssize_t i = 0; i < n; i++) d[i] = (Py_UCS1)((s[i] >= 'a' && s[i] <= 'z') ? s[i] - 32 : s[i]);
    return u;
}

/* upper(s, n), as the known transport of that name when there is one. */
static PyObject *transport_of(Engine *E, const char *s, Py_ssize_t n) {
    PyObject *known = E->known_transports->n >= 0 ? known_text(E->known_transports, s, n, 1) : NULL;
    return known != NULL ? known : upper(s, n);
}

/* group(m, g), as the known text of those bytes when there is one. */
static PyObject *known_group(const Known *k, Match *m, int g) {
    if (k->n >= 0 && has(m, g)) {
        PyObject *known = known_text(k, m->text + m->ov[2 * g], (Py_ssize_t)(m->ov[2 * g + 1] - m->ov[2 * g]), 0);
        if (known != NULL) return known;
    }
    return group(m, g);
}


/* The address fields of `addr_text` written in `shape`: 1, 0 when it is no address of that shape, -1 error. */
static int take_address(Engine *E, PyObject *addr_text, int shape, Built *b) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(addr_text, &n);
    if (s == NULL) return -1;
    while (n > 0 && is_space(s[0])) { s++; n--; }
    while (n > 0 && is_space(s[n - 1])) n--;
    if (shape == SHAPE_BARE) {
        while (n > 0 && (s[0] == '[' || s[0] == ']')) { s++; n--; }
        while (n > 0 && (s[n - 1] == '[' || s[n - 1] == ']')) n--;
        return set_address(E, b, s, n, -1, NULL);
    }
    if (shape == SHAPE_TUPLE) {
        const char *part[5];
        Py_ssize_t len[5];
        int parts = 0;
        const char *p = s, *end = s + n;
        while (parts < 5) {
            const char *slash = memchr(p, '/', (size_t)(end - p));
            part[parts] = p;
            len[parts] = (slash ? slash : end) - p;
            parts++;
            if (slash == NULL) break;
            p = slash + 1;
        }
        if (parts != 3 && parts != 4) return 0;
        if (parts == 4 && memchr(p, '/', (size_t)(end - p)) != NULL) return 0;
        if (!(len[0] == 4 && (memcmp(part[0], "IPV4", 4) == 0 || memcmp(part[0], "IPV6", 4) == 0))) return 0;
        int h = parts == 4 ? 2 : 1;
        long port = port_of(part[h + 1], len[h + 1]);
        PyObject *transport = NULL;
        if (parts == 4 && len[1] > 0 && (transport = transport_of(E, part[1], len[1])) == NULL) return -1;
        int error;
        PyObject *ip = host_text(E, part[h], len[h], &error);
        if (ip == NULL || port < 0) { Py_XDECREF(ip); Py_XDECREF(transport); return error ? -1 : 0; }
        b->ip = ip;
        if ((b->port = PyLong_FromLong(port)) == NULL) { Py_XDECREF(transport); return -1; }
        b->transport = transport ? transport : (Py_INCREF(Py_None), Py_None);
        return 1;
    }
    if (shape == SHAPE_TRANSPORT) {
        const char *colon = memchr(s, ':', (size_t)n);
        if (colon == NULL) return 0;
        PyObject *transport = transport_of(E, s, colon - s);
        if (transport == NULL) return -1;
        int known = PySet_Contains(E->transports, transport);
        int got = known <= 0 ? known : hostport(E, b, colon + 1, s + n - colon - 1, SHAPE_PORT);
        if (got <= 0) { Py_DECREF(transport); return got; }
        Py_SETREF(b->transport, transport);
        return 1;
    }
    return hostport(E, b, s, n, shape);
}

static PyObject *scanner_search(Engine *E, PyObject *text);

/* fingerprints.scanner_name: the tool a text names (needles matched case-insensitively), or NULL
 * (borrowed); remembered per text, as a few texts (phones' and scanners' names) make up most records. */
static PyObject *scanner_name(Engine *E, PyObject *text) {
    if (text == Py_None) return NULL;
    PyObject *known = PyDict_GetItemWithError(E->named, text);
    if (known != NULL) return known == Py_None ? NULL : known;
    if (PyErr_Occurred()) return NULL;
    PyObject *tool = scanner_search(E, text);
    if (tool == NULL && PyErr_Occurred()) return NULL;
    if (PyDict_GET_SIZE(E->named) >= 4096) PyDict_Clear(E->named);
    if (PyDict_SetItem(E->named, text, tool != NULL ? tool : Py_None) < 0) return NULL;
    return tool;
}

static PyObject *scanner_search(Engine *E, PyObject *text) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL || n == 0) return NULL;
    char small[512];
    char *low = n <= (Py_ssize_t)sizeof(small) ? small : PyMem_Malloc((size_t)n);
    if (low == NULL) { PyErr_NoMemory(); return NULL; }
    for (Py_ssize_t i = 0; i < n; i++) low[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    PyObject *tool = NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(E->scanners) && tool == NULL; i++) {
        PyObject *row = PyTuple_GET_ITEM(E->scanners, i);
        Py_ssize_t k;
        const char *needle = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(row, 0), &k);
        if (needle != NULL && k <= n && memmem(low, (size_t)n, needle, (size_t)k) != NULL) tool = PyTuple_GET_ITEM(row, 1);
    }
    if (low != small) PyMem_Free(low);
    return tool; /* borrowed */
}

static int build_form_with(Engine *E, Lane *L, Match *m, const char *message, Py_ssize_t mlen, Built *b,
                           PyObject *reason);

/* Form.build (form.py), step for step. Returns 1 built, 0 not this form (None), 2 fall back, -1 error. */
static int build_form(Engine *E, Lane *L, Match *m, const char *message, Py_ssize_t mlen, Built *b) {
    if (L->service_of) return 2;
    PyObject *reason = group(m, L->g_reason);
    if (reason == NULL) return -1;
    int rc = build_form_with(E, L, m, message, mlen, b, reason);
    Py_DECREF(reason);
    return rc;
}

static int build_form_with(Engine *E, Lane *L, Match *m, const char *message, Py_ssize_t mlen, Built *b,
                           PyObject *reason) {
    int kind = L->kind;
    if (reason != Py_None && kind_index(L->kinds, reason, &kind) < 0) return -1;
    if (kind < 0) return 0;
    b->kind = kind;
    b->service = L->service;
    b->evidence = E->e_weak;
    Py_INCREF(reason);
    b->reason = reason; /* None stands for "" until the end */
    int is_call;
    if (E->call_kinds_as_bits) {
        is_call = kind < 64 && (E->call_kind_bits >> kind) & 1;
    } else {
        PyObject *kobj = PyLong_FromLong(kind);
        is_call = kobj ? PySet_Contains(E->call_kinds, kobj) : -1;
        Py_XDECREF(kobj);
        if (is_call < 0) return -1;
    }
    if (is_call && L->g_channel > 0) {
        PyObject *channel = group(m, L->g_channel);
        if (channel == NULL) return -1;
        if (channel_account(E, channel, &b->service, &b->account) < 0) { Py_DECREF(channel); return -1; }
        PyObject *context = L->g_context > 0 ? group(m, L->g_context) : (Py_INCREF(Py_None), Py_None);
        if (context == NULL) { Py_DECREF(channel); return -1; }
        PyObject *disposition = (reason != Py_None && PyUnicode_GET_LENGTH(reason) > 0) ? reason : Py_None;
        b->call = PyTuple_Pack(8, Py_None, Py_None, channel, Py_None, context, Py_None, Py_None, disposition);
        Py_DECREF(channel); Py_DECREF(context);
        if (b->call == NULL) return -1;
    }
    for (int i = 0; i < L->n_account; i++) {
        if (!has(m, L->g_account[i])) continue;
        PyObject *value = group(m, L->g_account[i]);
        if (value == NULL) return -1;
        PyObject *user = uri_user(E, value);
        Py_DECREF(value);
        if (user == NULL) return -1;
        Py_XSETREF(b->account, user);
        break;
    }
    if (L->g_target > 0 && (b->target = group(m, L->g_target)) == NULL) return -1;
    if (L->g_callid > 0 && (b->session = group(m, L->g_callid)) == NULL) return -1;
    if (L->g_at > 0 && (b->at = group(m, L->g_at)) == NULL) return -1;
    if (L->g_ua > 0 && (b->ua = group(m, L->g_ua)) == NULL) return -1;
    if (L->g_contact > 0) {
        PyObject *contact = group(m, L->g_contact);
        if (contact == NULL) return -1;
        Py_CLEAR(b->extra);
        int rc = set_extra(b, "contact", contact);
        Py_DECREF(contact);
        if (rc < 0) return -1;
    }
    if (L->g_from > 0) {
        PyObject *from = group(m, L->g_from);
        if (from == NULL) return -1;
        PyObject *tool = scanner_name(E, from);
        Py_DECREF(from);
        if (tool == NULL && PyErr_Occurred()) return -1;
        if (tool != NULL && (b->kind == E->k_unknown || b->kind == E->k_acl)) {
            Py_CLEAR(b->extra);
            if (set_extra(b, "tool", tool) < 0
                || set_extra(b, "was", PyTuple_GET_ITEM(E->kind_values, b->kind)) < 0) return -1;
            b->kind = E->k_scanner;
            PyObject *why;
            if (reason != Py_None && PyUnicode_GET_LENGTH(reason) > 0) why = PyUnicode_FromFormat("%U (%U)", tool, reason);
            else { why = tool; Py_INCREF(why); }
            if (why == NULL) return -1;
            Py_SETREF(b->reason, why);
        }
    }
    PyObject *addr_text = NULL;
    for (int i = 0; i < L->n_addr; i++) {
        if (has(m, L->g_addr[i])) {
            if ((addr_text = group(m, L->g_addr[i])) == NULL) return -1;
            break;
        }
    }
    Py_ssize_t seplen = L->separator ? PyBytes_GET_SIZE(L->separator) : 0;
    int forged = L->separator && twice_in(message, mlen, PyBytes_AS_STRING(L->separator), seplen);
    if (addr_text == NULL || !L->address_trusted) {
        if (addr_text != NULL) {
            int rc = set_extra(b, "untrusted_address", addr_text);
            Py_DECREF(addr_text);
            if (rc < 0) return -1;
        }
        return forged ? 2 : 1;
    }
    int got = take_address(E, addr_text, L->shape, b);
    if (got <= 0) { Py_DECREF(addr_text); return got; }
    if (L->port_zero_untrusted && PyLong_Check(b->port) && PyLong_AsLong(b->port) == 0) {
        Py_CLEAR(b->extra);
        int rc = set_extra(b, "untrusted_address", addr_text);
        Py_DECREF(addr_text);
        Py_SETREF(b->ip, (Py_INCREF(Py_None), Py_None));
        Py_SETREF(b->port, (Py_INCREF(Py_None), Py_None));
        Py_SETREF(b->transport, (Py_INCREF(Py_None), Py_None));
        return rc < 0 ? -1 : 1;
    }
    Py_DECREF(addr_text);
    if (b->transport == Py_None || PyObject_Not(b->transport)) {
        Py_INCREF(L->transport);
        Py_SETREF(b->transport, L->transport);
    }
    int strong = in_set(L->strong, reason);
    if (strong < 0) return -1;
    int tls = in_set(E->tls_like, b->transport);
    if (tls < 0) return -1;
    b->evidence = (tls || strong) ? E->e_strong : L->evidence;
    return forged ? 2 : 1;
}

/* SecurityReader.build and _plain (security.py). Returns as build_form. */
static int build_security(Engine *E, Lane *L, Match *m, const char *message, Py_ssize_t mlen, Built *b) {
    const char *tail = m->text + m->ov[2 * L->g_tail];
    Py_ssize_t tlen = (Py_ssize_t)(m->ov[2 * L->g_tail + 1] - m->ov[2 * L->g_tail]);
    if (memmem(tail, (size_t)tlen, "RemoteAddress=", 14) != NULL) return 0;
    PyObject *name = known_group(E->known_names, m, L->g_name);
    if (name == NULL) return -1;
    int careful = PySet_Contains(E->careful_names, name);
    if (careful != 0) { Py_DECREF(name); return careful < 0 ? -1 : 2; }
    int kind;
    int found = kind_index(E->event_kinds, name, &kind);
    if (found <= 0) { Py_DECREF(name); return found; }
    PyObject *remote = group(m, L->g_remote);
    if (remote == NULL) { Py_DECREF(name); return -1; }
    int got = take_address(E, remote, SHAPE_TUPLE, b);
    Py_DECREF(remote);
    if (got <= 0) { Py_DECREF(name); return got; }
    b->kind = kind;
    b->reason = name;
    PyObject *service = known_group(E->known_services, m, L->g_service);
    if (service == NULL) return -1;
    b->service = E->s_sip;
    if (kind_index(E->services, service, &b->service) < 0) { Py_DECREF(service); return -1; }
    Py_DECREF(service);
    if ((b->account = group(m, L->g_account[0])) == NULL) return -1;
    if ((b->session = group(m, L->g_session)) == NULL) return -1;
    PyObject *tv = group(m, L->g_tv);
    if (tv == NULL) return -1;
    int rc = set_extra(b, "event_tv", tv);
    Py_DECREF(tv);
    if (rc < 0) return -1;
    PyObject *challenge = NULL;
    if (tlen > 0) {
        challenge = value_after(tail, tlen, ",Challenge=\"");
        if (challenge == NULL && PyErr_Occurred()) return -1;
        if (challenge != NULL && set_extra(b, "Challenge", challenge) < 0) { Py_DECREF(challenge); return -1; }
    }
    int strong = b->service == E->s_ami;
    if (!strong && PyUnicode_CompareWithASCIIString(name, "InvalidPassword") == 0) {
        PyObject *received = value_after(tail, tlen, ",ReceivedChallenge=\"");
        if (received == NULL && PyErr_Occurred()) { Py_XDECREF(challenge); return -1; }
        if (received != NULL && PyUnicode_GET_LENGTH(received) > 0 && challenge != NULL)
            strong = PyUnicode_Compare(received, challenge) == 0;
        Py_XDECREF(received);
    }
    Py_XDECREF(challenge);
    int tls = in_set(E->tls_like, b->transport);
    if (tls < 0) return -1;
    b->evidence = (strong || tls) ? E->e_strong : E->e_weak;
    (void)message; (void)mlen;
    return 1;
}

/* ---------------------------------------------------------------------------------------------- */
/* Time: TimeParser.parse (timeparse.py), its cheap steps done here on its own caches (`_days`, the
 * seconds of a known date; `_cache`, texts parsed before), the rest through Python. The text of the
 * previous call is remembered too: an unchanged text gives an unchanged result. */

typedef struct {
    PyObject *parser;      /* parser.time_parser */
    PyObject *parse;       /* its parse method */
    PyObject *days, *cache, *midnights; /* its `_days`, `_cache` and `_midnights` dicts */
    char last[64];
    Py_ssize_t last_len;   /* -1: nothing remembered */
    PyObject *last_value;  /* float or None */
    char day[10];          /* the date of the last ISO time read through `_days`... */
    int has_day;
    double day_base;       /* ...and its entry there (a log's lines keep one date for hours) */
} Clock;

static int digits(const char *s, Py_ssize_t n) {
    if (n <= 0) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int two(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

static const char *MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* TimeParser._parse for a syslog stamp (`Feb  3 21:04:11[.frac][ 2024]`, its `_SYSLOG`) whose date's
 * midnight TimeParser already knows, filed in its `_cache` as TimeParser.parse files it. NULL without an
 * exception: not such a stamp, or not known yet (Python does it). */
static PyObject *syslog_time(Clock *c, PyObject *key, const char *s, Py_ssize_t n) {
    while (n > 0 && is_space(s[0])) { s++; n--; }
    while (n > 0 && is_space(s[n - 1])) n--;
    if (n < 14 || !(s[0] >= 'A' && s[0] <= 'Z') || !(s[1] >= 'a' && s[1] <= 'z') || !(s[2] >= 'a' && s[2] <= 'z'))
        return NULL;
    int month = 0;
    for (int i = 0; i < 12; i++)
        if (memcmp(s, MONTHS[i], 3) == 0) month = i + 1;
    if (month == 0) return NULL;
    Py_ssize_t i = 3;
    if (s[i] != ' ') return NULL;
    while (i < n && s[i] == ' ') i++;
    Py_ssize_t d0 = i;
    while (i < n && i - d0 < 3 && s[i] >= '0' && s[i] <= '9') i++;
    if (i - d0 < 1 || i - d0 > 2 || n - i < 9 || s[i] != ' ') return NULL;
    int day = (int)(s[d0] - '0');
    if (i - d0 == 2) day = day * 10 + (s[d0 + 1] - '0');
    const char *t = s + i + 1;
    if (!digits(t, 2) || t[2] != ':' || !digits(t + 3, 2) || t[5] != ':' || !digits(t + 6, 2)) return NULL;
    Py_ssize_t j = i + 9;
    const char *frac = NULL;
    Py_ssize_t frac_len = 0;
    if (j < n && s[j] == '.') {
        frac = s + j + 1;
        while (j + 1 + frac_len < n && s[j + 1 + frac_len] >= '0' && s[j + 1 + frac_len] <= '9') frac_len++;
        if (frac_len == 0 || frac_len > 58) return NULL;
        j += 1 + frac_len;
    }
    PyObject *year = NULL;
    int yearless = j >= n;
    if (!yearless) {
        if (n - j != 5 || s[j] != ' ' || !digits(s + j + 1, 4)) return NULL;
        year = PyLong_FromLong((s[j + 1] - '0') * 1000 + (s[j + 2] - '0') * 100 + (s[j + 3] - '0') * 10 + (s[j + 4] - '0'));
    } else {
        year = PyObject_GetAttrString(c->parser, "default_year");
    }
    if (year == NULL) return NULL;
    int h = two(t), mi = two(t + 3), sec = two(t + 6);
    if (h > 23 || mi > 59 || sec > 60) { Py_DECREF(year); return NULL; }
    PyObject *midnight_key = Py_BuildValue("(OiiO)", year, month, day, Py_None);
    Py_DECREF(year);
    if (midnight_key == NULL) return NULL;
    PyObject *base = PyDict_GetItemWithError(c->midnights, midnight_key);
    Py_DECREF(midnight_key);
    if (base == NULL || !PyFloat_CheckExact(base)) return NULL;
    double f = 0.0;
    if (frac != NULL) {
        char buf[64] = "0.";
        memcpy(buf + 2, frac, (size_t)frac_len);
        buf[frac_len + 2] = 0;
        f = PyOS_string_to_double(buf, NULL, NULL);
        if (f == -1.0 && PyErr_Occurred()) return NULL;
    }
    double seconds = (((PyFloat_AS_DOUBLE(base) + (double)(h * 3600)) + (double)(mi * 60)) + (double)sec) + f;
    if (yearless) {  /* after the horizon: the year before (TimeParser._yearless does it) */
        PyObject *horizon = PyObject_GetAttrString(c->parser, "horizon");
        if (horizon == NULL) return NULL;
        double limit = horizon == Py_None ? 0.0 : PyFloat_AsDouble(horizon);
        int none = horizon == Py_None;
        Py_DECREF(horizon);
        if (!none && limit == -1.0 && PyErr_Occurred()) return NULL;
        if (!none && seconds > limit) return NULL;
    }
    PyObject *value = PyFloat_FromDouble(seconds);
    if (value == NULL) return NULL;
    if (PyDict_GET_SIZE(c->cache) > 50000) PyDict_Clear(c->cache);
    if (PyDict_SetItem(c->cache, key, value) < 0) { Py_DECREF(value); return NULL; }
    return value;
}

static PyObject *clock_value(Clock *c, const char *s, Py_ssize_t n) {
    if (n == 19 && s[13] == ':' && s[16] == ':' && s[4] == '-') {
        if (!c->has_day || memcmp(c->day, s, 10) != 0) {
            PyObject *day = ascii(s, 10);
            if (day == NULL) return NULL;
            PyObject *base = PyDict_GetItemWithError(c->days, day);
            Py_DECREF(day);
            if (base == NULL && PyErr_Occurred()) return NULL;
            c->has_day = base != NULL && PyFloat_CheckExact(base);
            if (c->has_day) {
                memcpy(c->day, s, 10);
                c->day_base = PyFloat_AS_DOUBLE(base);
            }
        }
        if (c->has_day && digits(s + 11, 2) && digits(s + 14, 2) && digits(s + 17, 2))
            return PyFloat_FromDouble(((c->day_base + (double)(two(s + 11) * 3600)) + (double)(two(s + 14) * 60))
                                      + (double)two(s + 17));
    }
    PyObject *text = ascii(s, n);
    if (text == NULL) return NULL;
    PyObject *cached = PyDict_GetItemWithError(c->cache, text);
    if (cached != NULL) { Py_DECREF(text); Py_INCREF(cached); return cached; }
    if (PyErr_Occurred()) { Py_DECREF(text); return NULL; }
    if (n > 20 && (s[19] == '.' || s[19] == ',') && s[4] == '-' && digits(s + 20, n - 20) && n - 20 < 60) {
        Py_DECREF(text);
        PyObject *second = clock_value(c, s, 19);
        if (second == NULL || second == Py_None) return second;
        char frac[64] = "0.";
        memcpy(frac + 2, s + 20, (size_t)(n - 20));
        frac[n - 20 + 2] = 0;
        double f = PyOS_string_to_double(frac, NULL, NULL);
        if (f == -1.0 && PyErr_Occurred()) { Py_DECREF(second); return NULL; }
        double v = PyFloat_AsDouble(second) + f;
        Py_DECREF(second);
        return PyFloat_FromDouble(v);
    }
    PyObject *value = syslog_time(c, text, s, n);
    if (value == NULL && !PyErr_Occurred()) value = PyObject_CallOneArg(c->parse, text);
    Py_DECREF(text);
    return value;
}

static PyObject *clock_parse(Clock *c, const char *s, Py_ssize_t n) {
    if (c->last_len == n && n <= (Py_ssize_t)sizeof(c->last) && memcmp(c->last, s, (size_t)n) == 0) {
        Py_INCREF(c->last_value);
        return c->last_value;
    }
    PyObject *value = clock_value(c, s, n);
    if (value == NULL) return NULL;
    if (n <= (Py_ssize_t)sizeof(c->last)) {
        memcpy(c->last, s, (size_t)n);
        c->last_len = n;
        Py_INCREF(value);
        Py_XSETREF(c->last_value, value);
    }
    return value;
}

static void clock_forget(Clock *c) { c->last_len = -1; c->has_day = 0; }

/* A clock on the TimeParser that `owner.<method>()` returns (its own reference held in `parser`). */
static int clock_of(Clock *c, PyObject *owner, const char *method) {
    c->parser = PyObject_CallMethod(owner, method, NULL);
    if (c->parser == NULL) return -1;
    c->parse = PyObject_GetAttrString(c->parser, "parse");
    c->days = PyObject_GetAttrString(c->parser, "_days");
    c->cache = PyObject_GetAttrString(c->parser, "_cache");
    c->midnights = PyObject_GetAttrString(c->parser, "_midnights");
    if (c->parse == NULL || c->days == NULL || c->cache == NULL || c->midnights == NULL) return -1;
    if (!PyDict_CheckExact(c->days) || !PyDict_CheckExact(c->cache) || !PyDict_CheckExact(c->midnights)) {
        PyErr_SetString(PyExc_TypeError, "the time parser's caches must be dicts");
        return -1;
    }
    return 0;
}

/* Let go of a clock made by clock_of (or left zeroed). */
static void clock_clear(Clock *c) {
    Py_CLEAR(c->parser); Py_CLEAR(c->parse); Py_CLEAR(c->days); Py_CLEAR(c->cache); Py_CLEAR(c->midnights);
    Py_CLEAR(c->last_value);
}

/* ---------------------------------------------------------------------------------------------- */

typedef struct {
    Engine *E;
    PyObject *fast;     /* parser._fast: list of lane tuples, reordered like the Python parser does */
    Clock clock;
    Clock records;      /* the clock of CDR and CEL times: the time parser's records TimeParser */
    double last_time;
    PyObject *packer;   /* the packer whose `add` the feed was given: a record goes to it as its parts, or NULL */
} Run;

/* The time of a built record: its own field's (`at`), else its line's stamp, else the last one's. */
static int built_time(Run *R, Lane *L, Match *m, Built *b, double *when) {
    PyObject *value = NULL;
    if (b->at != NULL && b->at != Py_None && PyUnicode_GET_LENGTH(b->at) > 0) {
        value = PyObject_CallOneArg(R->clock.parse, b->at);
        if (value == NULL) return -1;
        if (value == Py_None) Py_CLEAR(value);
    }
    int g = has(m, L->g_ts) && m->ov[2 * L->g_ts + 1] > m->ov[2 * L->g_ts] ? L->g_ts : L->g_sts;
    if (value == NULL && has(m, g) && m->ov[2 * g + 1] > m->ov[2 * g]) {
        value = clock_parse(&R->clock, m->text + m->ov[2 * g], (Py_ssize_t)(m->ov[2 * g + 1] - m->ov[2 * g]));
        if (value == NULL) return -1;
        if (value == Py_None) Py_CLEAR(value);
    }
    if (value != NULL) {
        double t = PyFloat_AsDouble(value);
        Py_DECREF(value);
        if (t == -1.0 && PyErr_Occurred()) return -1;
        R->last_time = t;
    }
    *when = R->last_time;
    return 0;
}

static PartsApi *parts_api;  /* _drain's (see _parts.h), once imported */
static int parts_tried;

/* The packer behind `put` when it is a _drain.Packer's `add` (records then go to it as their parts), else NULL. */
static PyObject *packer_of(PyObject *put) {
    if (put == NULL || !PyCFunction_Check(put)) return NULL;
    if (!parts_tried) {
        parts_tried = 1;
        parts_api = PyCapsule_Import(PARTS_CAPSULE, 0);
        if (parts_api == NULL) PyErr_Clear();  /* (no _drain: the tuples go through `put`) */
    }
    PyObject *self = PyCFunction_GET_SELF(put);
    return parts_api != NULL && self != NULL && Py_IS_TYPE(self, parts_api->packer_type)
           && PyCFunction_GET_FUNCTION(put) == parts_api->add ? self : NULL;
}

/* What `wire` makes, handed to the packer as its parts. */
static int hand_over(Run *R, Lane *L, Match *m, Built *b, long line) {
    Parts s;
    if (built_time(R, L, m, b, &s.time) < 0) return -1;
    s.port = -1;
    if (b->port != NULL && b->port != Py_None) {
        s.port = PyLong_AsLongLong(b->port);
        if (s.port == -1 && PyErr_Occurred()) return -1;
        if (s.port < 0) { PyErr_SetString(PyExc_ValueError, "a negative port"); return -1; }
    }
    s.line = line;
    s.kind = b->kind;
    s.service = b->service;
    s.evidence = b->evidence;
    PyObject *texts[PARTS_TEXTS] = {b->ip, b->transport, b->account, b->target, b->ua, L->form_id, b->session,
                                    b->reason};
    for (int f = 0; f < PARTS_TEXTS; f++) s.text[f] = texts[f] != NULL ? texts[f] : Py_None;
    if (s.text[PARTS_TEXTS - 1] == Py_None) {  /* (a reason is never None: "", as `wire` has it) */
        static PyObject *empty;
        if (empty == NULL && (empty = PyUnicode_New(0, 0)) == NULL) return -1;  /* (kept for the process's life) */
        s.text[PARTS_TEXTS - 1] = empty;
    }
    s.extra = b->extra != NULL && PyDict_GET_SIZE(b->extra) > 0 ? b->extra : Py_None;
    s.call = b->call != NULL ? b->call : Py_None;
    return parts_api->put(R->packer, &s);
}

static PyObject *wire(Run *R, Lane *L, Match *m, Built *b, long line) {
    double seconds;
    if (built_time(R, L, m, b, &seconds) < 0) return NULL;
    PyObject *when = PyFloat_FromDouble(seconds);
    if (when == NULL) return NULL;
    PyObject *t = PyTuple_New(16);
    if (t == NULL) { Py_DECREF(when); return NULL; }
#define PUT(i, v) do { PyObject *_v = (v); if (_v == NULL) { _v = Py_None; } Py_INCREF(_v); PyTuple_SET_ITEM(t, i, _v); } while (0)
    PyTuple_SET_ITEM(t, 0, when);
    PyTuple_SET_ITEM(t, 1, PyLong_FromLong(b->kind));
    PyTuple_SET_ITEM(t, 2, PyLong_FromLong(b->service));
    PUT(3, b->ip);
    PUT(4, b->port);
    PUT(5, b->transport);
    PUT(6, b->account);
    PUT(7, b->target);
    PUT(8, b->ua);
    PyTuple_SET_ITEM(t, 9, PyLong_FromLong(b->evidence));
    PyTuple_SET_ITEM(t, 10, PyLong_FromLong(line));
    PUT(11, L->form_id);
    PUT(12, b->session);
    if (b->reason == NULL || b->reason == Py_None) PyTuple_SET_ITEM(t, 13, ascii("", 0));
    else PUT(13, b->reason);
    if (b->extra != NULL && PyDict_GET_SIZE(b->extra) > 0) PUT(14, b->extra);
    else PUT(14, Py_None);
    PUT(15, b->call);
#undef PUT
    for (int i = 1; i < 16; i++)
        if (PyTuple_GET_ITEM(t, i) == NULL) { Py_DECREF(t); return NULL; }
    return t;
}

/* The fast lanes of the markers `ids` over one line, in the parser's order; on success the lane that
 * matched moves to the front (LineParser.parse does the same). */
static PyObject *try_lanes(Run *R, const char *line, Py_ssize_t len, const int *ids, int nids, long line_no) {
    Engine *E = R->E;
    Py_ssize_t nfast = PyList_GET_SIZE(R->fast);
    for (int j = 0; j < nids; j++) {
        int index = ids[j];
        int dup = 0;
        for (int q = 0; q < j; q++) dup |= ids[q] == index;
        if (dup || index >= nfast) continue;
        PyObject *lane = PyList_GET_ITEM(R->fast, index);
        Py_ssize_t nl = PyTuple_GET_SIZE(lane);
        for (Py_ssize_t k = 0; k < nl; k++) {
            PyObject *item = PyTuple_GET_ITEM(lane, k);
            long n = PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
            if (n < 0 || n >= E->n) return FALLBACK;
            Lane *L = &E->lanes[n];
            if (L->code == NULL || L->type == D_PYTHON) return FALLBACK;
            int rc = pcre2_match(L->code, (PCRE2_SPTR)line, (PCRE2_SIZE)len, 0, 0, L->md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) continue;
            if (rc < 0) return FALLBACK; /* a resource limit: let Python's engine decide */
            Match m = {line, pcre2_get_ovector_pointer(L->md)};
            const char *message = line + m.ov[2 * L->g_msg];
            Py_ssize_t mlen = len - (Py_ssize_t)m.ov[2 * L->g_msg];
            Built b;
            memset(&b, 0, sizeof(b));
            int built = L->type == D_FORM ? build_form(E, L, &m, message, mlen, &b)
                                          : build_security(E, L, &m, message, mlen, &b);
            if (built < 0) { built_clear(&b); return NULL; }
            if (built == 0) { built_clear(&b); continue; }
            if (built == 2) { built_clear(&b); return FALLBACK; }
            PyObject *result = R->packer != NULL ? (hand_over(R, L, &m, &b, line_no) < 0 ? NULL : HANDED)
                                                 : wire(R, L, &m, &b, line_no);
            built_clear(&b);
            if (result == NULL) return NULL;
            if (k > 0) {
                PyObject *moved = PyTuple_New(nl);
                if (moved == NULL) { Py_DECREF(result); return NULL; }
                Py_INCREF(item);
                PyTuple_SET_ITEM(moved, 0, item);
                Py_ssize_t w = 1;
                for (Py_ssize_t q = 0; q < nl; q++) {
                    if (q == k) continue;
                    PyObject *o = PyTuple_GET_ITEM(lane, q);
                    Py_INCREF(o);
                    PyTuple_SET_ITEM(moved, w++, o);
                }
                if (PyList_SetItem(R->fast, index, moved) < 0) { Py_DECREF(result); return NULL; }
            }
            return result;
        }
    }
    return NONE_MATCHED;
}

static int plain_line(const char *s, Py_ssize_t n) {
    if (n == 0 || s[0] == '"') return 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || c == 0x1b) return 0;
    }
    return 1;
}

/* Line breaks in s[from:to), 16 bytes at a time where SSE2 is there (every x86-64): the scan counts the
 * lines of every buffer (memchr per line costs a call per ~150 bytes). */
/* How many bytes of s[from:to] are `byte`: sixteen at a time where SSE2 is there. */
static Py_ssize_t count_byte(const char *s, Py_ssize_t from, Py_ssize_t to, char byte) {
    Py_ssize_t c = 0;
    const char *p = s + from, *end = s + to;
#ifdef __SSE2__
    const __m128i wanted = _mm_set1_epi8(byte), zero = _mm_setzero_si128();
    while (end - p >= 16) {  /* per-byte counters (a match is -1), summed before any can pass 255 */
        __m128i acc = zero;
        for (int k = 0; k < 255 && end - p >= 16; k++, p += 16)
            acc = _mm_sub_epi8(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)p), wanted));
        __m128i sums = _mm_sad_epu8(acc, zero);
        c += _mm_cvtsi128_si32(sums) + _mm_extract_epi16(sums, 4);
    }
#endif
    for (; p < end; p++)
        c += *p == byte;
    return c;
}

static Py_ssize_t count_newlines(const char *s, Py_ssize_t from, Py_ssize_t to) {
    return count_byte(s, from, to, '\n');
}

/* (every CSV line's quotes are counted, twice a file: the main process's cut between rows, a worker's rows) */
static Py_ssize_t count_quotes(const char *s, Py_ssize_t n) {
    return count_byte(s, 0, n, '"');
}

/* open_rows(buffer, max_lines) -> [(start, end)]: CSV rows that a quoted field holding line breaks spreads
 * over several physical lines (see records.open_rows, which this is). */
static PyObject *fastlane_open_rows(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t max_lines;
    if (!PyArg_ParseTuple(args, "y*n", &view, &max_lines)) return NULL;
    const char *b = (const char *)view.buf;
    Py_ssize_t n = view.len, pos = 0;
    PyObject *out = PyList_New(0);
    while (out != NULL && pos < n) {
        const char *nl = memchr(b + pos, '\n', (size_t)(n - pos));
        Py_ssize_t end = nl ? nl - b : n;
        if (b[pos] == '"' && (count_quotes(b + pos, end - pos) & 1)) {
            Py_ssize_t j = end, close = -1;
            for (Py_ssize_t lines = 0; j < n && lines < max_lines; lines++) {
                Py_ssize_t s2 = j + 1;
                const char *nl2 = s2 < n ? memchr(b + s2, '\n', (size_t)(n - s2)) : NULL;
                Py_ssize_t e2 = nl2 ? nl2 - b : n;
                if (count_quotes(b + s2, e2 - s2) & 1) { close = e2; break; }
                j = e2;
            }
            if (close >= 0) {
                PyObject *span = Py_BuildValue("(nn)", pos, close);
                if (span == NULL || PyList_Append(out, span) < 0) Py_CLEAR(out);
                Py_XDECREF(span);
                end = close;
            }
        }
        pos = end + 1;
    }
    PyBuffer_Release(&view);
    return out;
}

/* count_lines(buffer, start, end) -> the line breaks in buffer[start:end] (bytes.count(b"\n", ...)) */
static PyObject *fastlane_count_lines(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    Py_ssize_t start, end;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &start, &end)) return NULL;
    if (start < 0) start = 0;
    if (end > view.len) end = view.len;
    Py_ssize_t c = start < end ? count_newlines((const char *)view.buf, start, end) : 0;
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(c);
}

#define MAX_MARKER 1024

/* The marker ids of a Python set of ints as flags (ids at or beyond MAX_MARKER are refused). */
static int flags_of(PyObject *set, unsigned char *flags) {
    memset(flags, 0, MAX_MARKER);
    PyObject *it = PyObject_GetIter(set);
    if (it == NULL) return -1;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        long v = PyLong_AsLong(item);
        Py_DECREF(item);
        if (v < 0 || v >= MAX_MARKER) {
            Py_DECREF(it);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "marker id out of range");
            return -1;
        }
        flags[v] = 1;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static int flag(const unsigned char *flags, int id) { return id >= 0 && id < MAX_MARKER && flags[id]; }

#include "_rows.h"

#define MAX_IDS 64

/* Engine.feed(scanner, buf, limit, hits, line_base, orphans, special, max_record)
 *   -> (items, spill_end, candidates, the newlines in buf[:limit], counted on from where the loop counted to)
 * The loop of RecordScanner.feed; `scanner._record(buf, start, stop, ids, line_no, limit, items, tried)`
 * is the Python path for one record and returns (skip_until, spill_end), 0 meaning unchanged. */
/* ---------------------------------------------------------------------------------------------- */
/* The prefilter's hits, (end offset, marker id) in the order found: from Prefilter.hits()'s list, or found
 * here by libhs when the module was built with it (`Markers`), with no Python call and no tuple per hit. */

typedef struct {
    Py_ssize_t *end;
    int *id;
    Py_ssize_t n, cap;
} Hits;

static int hits_add(Hits *h, Py_ssize_t end, int id) {
    if (h->n == h->cap) {
        Py_ssize_t cap = h->cap ? 2 * h->cap : 4096;
        Py_ssize_t *e = PyMem_Realloc(h->end, (size_t)cap * sizeof(Py_ssize_t));
        if (e == NULL) return -1;
        h->end = e;
        int *i = PyMem_Realloc(h->id, (size_t)cap * sizeof(int));
        if (i == NULL) return -1;
        h->id = i;
        h->cap = cap;
    }
    h->end[h->n] = end;
    h->id[h->n++] = id;
    return 0;
}

static void hits_clear(Hits *h) {
    PyMem_Free(h->end);
    PyMem_Free(h->id);
    memset(h, 0, sizeof(*h));
}

static int hits_from_list(Hits *h, PyObject *list) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *hit = PyList_GET_ITEM(list, i);
        if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 2) {
            PyErr_SetString(PyExc_TypeError, "a hit is (end, marker id)");
            return -1;
        }
        Py_ssize_t end = PyLong_AsSsize_t(PyTuple_GET_ITEM(hit, 0));
        long ident = PyLong_AsLong(PyTuple_GET_ITEM(hit, 1));
        if (PyErr_Occurred()) return -1;
        if (ident < 0 || ident >= MAX_MARKER) { PyErr_SetString(PyExc_ValueError, "marker id out of range"); return -1; }
        if (hits_add(h, end, (int)ident) < 0) { PyErr_NoMemory(); return -1; }
    }
    return 0;
}

#ifdef HAVE_HS
/* Markers(markers: list[bytes]): the literal markers compiled by libhs, as Prefilter compiles them. */
typedef struct {
    PyObject_HEAD
    hs_database_t *db;
    hs_scratch_t *scratch;
} Markers;

static int markers_init(Markers *M, PyObject *args, PyObject *kw) {
    (void)kw;
    PyObject *list;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &list)) return -1;
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (n == 0 || n > MAX_MARKER) { PyErr_SetString(PyExc_ValueError, "between 1 and 1024 markers"); return -1; }
    const char **exprs = PyMem_Calloc((size_t)n, sizeof(char *));
    size_t *lens = PyMem_Calloc((size_t)n, sizeof(size_t));
    unsigned *flags = PyMem_Calloc((size_t)n, sizeof(unsigned)), *ids = PyMem_Calloc((size_t)n, sizeof(unsigned));
    int rc = -1;
    if (exprs == NULL || lens == NULL || flags == NULL || ids == NULL) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(list, i);
        if (!PyBytes_Check(m) || PyBytes_GET_SIZE(m) == 0) { PyErr_SetString(PyExc_TypeError, "markers are non-empty bytes"); goto done; }
        exprs[i] = PyBytes_AS_STRING(m);
        lens[i] = (size_t)PyBytes_GET_SIZE(m);
        ids[i] = (unsigned)i;
    }
    hs_compile_error_t *error = NULL;
    hs_error_t compiled;
    Py_BEGIN_ALLOW_THREADS  /* (the list and its bytes are held by the caller meanwhile) */
    compiled = hs_compile_lit_multi(exprs, flags, ids, lens, (unsigned)n, HS_MODE_BLOCK, NULL, &M->db, &error);
    Py_END_ALLOW_THREADS
    if (compiled != HS_SUCCESS) {
        PyErr_Format(PyExc_ValueError, "hyperscan: %s", error != NULL ? error->message : "cannot compile");
        hs_free_compile_error(error);
        goto done;
    }
    if (hs_alloc_scratch(M->db, &M->scratch) != HS_SUCCESS) { PyErr_SetString(PyExc_MemoryError, "hyperscan scratch"); goto done; }
    rc = 0;
done:
    PyMem_Free(exprs); PyMem_Free(lens); PyMem_Free(flags); PyMem_Free(ids);
    return rc;
}

static void markers_dealloc(Markers *M) {
    if (M->scratch != NULL) hs_free_scratch(M->scratch);
    if (M->db != NULL) hs_free_database(M->db);
    Py_TYPE(M)->tp_free((PyObject *)M);
}

static int on_hit(unsigned int id, unsigned long long from, unsigned long long to, unsigned int flags, void *ctx) {
    (void)from; (void)flags;
    return hits_add((Hits *)ctx, (Py_ssize_t)to, (int)id) < 0;  /* non-zero stops the scan */
}

static int hits_scan(Hits *h, Markers *M, const char *buf, Py_ssize_t size) {
    if (M->db == NULL) { PyErr_SetString(PyExc_ValueError, "Markers not compiled"); return -1; }
    if ((unsigned long long)size > 0xffffffffULL) { PyErr_SetString(PyExc_ValueError, "buffer too large"); return -1; }
    hs_error_t rc = hs_scan(M->db, buf, (unsigned)size, 0, M->scratch, on_hit, h);
    if (rc == HS_SCAN_TERMINATED) { PyErr_NoMemory(); return -1; }
    if (rc != HS_SUCCESS) { PyErr_Format(PyExc_RuntimeError, "hyperscan scan failed (%d)", (int)rc); return -1; }
    return 0;
}

/* hits(buffer) -> [(end, id), ...]: what Prefilter.hits() gives (for tests). */
static PyObject *markers_hits(Markers *M, PyObject *arg) {
    if (!PyBytes_Check(arg)) { PyErr_SetString(PyExc_TypeError, "bytes expected"); return NULL; }
    Hits h = {0};
    if (hits_scan(&h, M, PyBytes_AS_STRING(arg), PyBytes_GET_SIZE(arg)) < 0) { hits_clear(&h); return NULL; }
    PyObject *out = PyList_New(h.n);
    for (Py_ssize_t i = 0; out != NULL && i < h.n; i++) {
        PyObject *t = Py_BuildValue("(ni)", h.end[i], h.id[i]);
        if (t == NULL) Py_CLEAR(out);
        else PyList_SET_ITEM(out, i, t);
    }
    hits_clear(&h);
    return out;
}

static PyMethodDef markers_methods[] = {
    {"hits", (PyCFunction)markers_hits, METH_O, "The (end offset, marker id) of every marker in a buffer."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MarkersType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch.formats._fastlane.Markers",
    .tp_basicsize = sizeof(Markers),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)markers_init,
    .tp_dealloc = (destructor)markers_dealloc,
    .tp_methods = markers_methods,
    .tp_doc = "The prefilter's literal markers, compiled by libhs (hyperscan) for engine_feed.",
};
#endif

static int hits_of(Hits *h, PyObject *source, const char *buf, Py_ssize_t size) {
    if (PyList_Check(source)) return hits_from_list(h, source);
#ifdef HAVE_HS
    if (Py_TYPE(source) == &MarkersType) return hits_scan(h, (Markers *)source, buf, size);
#endif
    PyErr_SetString(PyExc_TypeError, "hits must be a list of (end, id) or a Markers");
    return -1;
}

/* An item made: appended to the items, or handed to `put` (a Packer's add, see _drain.c). */
static int emit(PyObject *items, PyObject *put, PyObject *item) {
    if (put == NULL) return PyList_Append(items, item);
    PyObject *done = PyObject_CallOneArg(put, item);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

static PyObject *engine_feed(Engine *E, PyObject *args) {
    PyObject *scanner, *bufobj, *hits, *orphans, *special, *rows_arg = Py_None, *put = Py_None;
    Py_ssize_t limit, line_base, max_record;
    if (!PyArg_ParseTuple(args, "OO!nOnOOn|OO", &scanner, &PyBytes_Type, &bufobj, &limit, &hits,
                          &line_base, &orphans, &special, &max_record, &rows_arg, &put))
        return NULL;
    if (put == Py_None) put = NULL;  /* else each item goes to put(item) as it is made, in file order */
    if (rows_arg != Py_None && !Py_IS_TYPE(rows_arg, &RowsType)) {
        PyErr_SetString(PyExc_TypeError, "rows: a Rows or None");
        return NULL;
    }
    Rows *rows = rows_arg == Py_None ? NULL : (Rows *)rows_arg;
    const char *buf = PyBytes_AS_STRING(bufobj);
    Py_ssize_t size = PyBytes_GET_SIZE(bufobj);
    unsigned char orphan_flags[MAX_MARKER], special_flags[MAX_MARKER];
    if (flags_of(orphans, orphan_flags) < 0 || flags_of(special, special_flags) < 0) return NULL;
    Hits H = {0};
    if (hits_of(&H, hits, buf, size) < 0) { hits_clear(&H); return NULL; }
    PyObject *parser = PyObject_GetAttrString(scanner, "parser");
    if (parser == NULL) { hits_clear(&H); return NULL; }
    Run R;
    memset(&R, 0, sizeof(R));
    R.E = E;
    R.clock.last_len = -1;
    R.packer = packer_of(put);
    if (R.packer == NULL && PyErr_Occurred()) { hits_clear(&H); Py_DECREF(parser); return NULL; }
    PyObject *items = PyList_New(0), *record = NULL, *time_parser = NULL, *last = NULL;
    R.fast = PyObject_GetAttrString(parser, "_fast");
    time_parser = PyObject_GetAttrString(parser, "time_parser");
    record = PyObject_GetAttrString(scanner, "_record");
    last = PyObject_GetAttrString(parser, "last_time");
    if (items == NULL || R.fast == NULL || time_parser == NULL || record == NULL || last == NULL) goto fail;
    if (!PyList_Check(R.fast)) { PyErr_SetString(PyExc_TypeError, "parser._fast must be a list"); goto fail; }
    R.clock.parser = time_parser;
    R.clock.parse = PyObject_GetAttrString(time_parser, "parse");
    R.clock.days = PyObject_GetAttrString(time_parser, "_days");
    R.clock.cache = PyObject_GetAttrString(time_parser, "_cache");
    R.clock.midnights = PyObject_GetAttrString(time_parser, "_midnights");
    if (R.clock.parse == NULL || R.clock.days == NULL || R.clock.cache == NULL || R.clock.midnights == NULL) goto fail;
    if (!PyDict_CheckExact(R.clock.days) || !PyDict_CheckExact(R.clock.cache) || !PyDict_CheckExact(R.clock.midnights)) {
        PyErr_SetString(PyExc_TypeError, "the time parser's caches must be dicts");
        goto fail;
    }
    R.last_time = PyFloat_AsDouble(last);
    if (R.last_time == -1.0 && PyErr_Occurred()) goto fail;
    R.records.last_len = -1;
    if (rows != NULL && clock_of(&R.records, time_parser, "records") < 0) goto fail;
    Py_ssize_t skip_until = 0, spill_end = 0, counted_pos = 0, counted_lines = 0, candidates = 0;
    Py_ssize_t i = 0, n = H.n;
    int seen_prefix = 0, told_prefix = 0;
    int ids[MAX_IDS];
    while (i < n) {
        Py_ssize_t gstart = i;
        Py_ssize_t end = H.end[i];
        int ident = H.id[i];
        int orphan = flag(orphan_flags, ident);
        Py_ssize_t upto = orphan ? end - 1 : end, start = 0;
        if (upto > size) upto = size;
        if (upto > 0) {
            const char *prev = memrchr(buf, '\n', (size_t)upto);
            start = prev ? prev - buf + 1 : 0;
        }
        const char *nl = end < size ? memchr(buf + end, '\n', (size_t)(size - end)) : NULL;
        Py_ssize_t stop = nl ? nl - buf : size;
        int nids = 0, overflow = 0;
        ids[nids++] = ident;
        i++;
        while (i < n) {
            if (H.end[i] > stop) break;
            if (nids < MAX_IDS) ids[nids++] = H.id[i];
            else overflow = 1;
            i++;
        }
        if (start < skip_until) continue;
        counted_lines += count_newlines(buf, counted_pos, start);
        counted_pos = start;
        Py_ssize_t line_no = line_base + counted_lines + 1;
        int inside = start < limit;
        if (rows != NULL && !overflow && buf[start] == '"' && stop - start <= max_record) {
            int cdr = 1;  /* only CdrReader's markers on the line: it is the reader Python would ask */
            for (int q = 0; cdr && q < nids; q++) cdr = flag(rows->ids, ids[q]);
            PyObject *result = cdr ? cdr_row(&R, rows, buf + start, stop - start, (long)line_no) : FALLBACK;
            if (result == NULL) goto fail;
            if (result != FALLBACK) {
                if (result != HANDED) {
                    int rc = emit(items, put, result);
                    Py_DECREF(result);
                    if (rc < 0) goto fail;
                }
                candidates += inside;
                continue;
            }
        }
        int fast_ok = !overflow && stop - start <= max_record && plain_line(buf + start, stop - start);
        for (int q = 0; fast_ok && q < nids; q++)
            if (flag(special_flags, ids[q])) fast_ok = 0;
        int tried = 0;
        if (fast_ok) {
            PyObject *result = try_lanes(&R, buf + start, stop - start, ids, nids, (long)line_no);
            if (result == NULL) goto fail;
            if (result == NONE_MATCHED) tried = 1;
            else if (result != FALLBACK) {
                if (result != HANDED) {
                    int rc = emit(items, put, result);
                    Py_DECREF(result);
                    if (rc < 0) goto fail;
                }
                candidates += inside;
                seen_prefix = 1;
                if (inside && stop > limit) spill_end = stop;
                continue;
            }
        }
        /* the Python path: it sees the state this loop keeps */
        PyObject *lt = PyFloat_FromDouble(R.last_time);
        if (lt == NULL || PyObject_SetAttrString(parser, "last_time", lt) < 0) { Py_XDECREF(lt); goto fail; }
        Py_DECREF(lt);
        if (seen_prefix && !told_prefix) {
            if (PyObject_SetAttrString(parser, "seen_prefix", Py_True) < 0) goto fail;
            told_prefix = 1;
        }
        PyObject *idlist = PyList_New(0);
        if (idlist == NULL) goto fail;
        for (Py_ssize_t q = gstart; q < i; q++) { /* the group's marker ids in hit order, as Python has them */
            PyObject *id = PyLong_FromLong(H.id[q]);
            int rc = id == NULL ? -1 : PyList_Append(idlist, id);
            Py_XDECREF(id);
            if (rc < 0) { Py_DECREF(idlist); goto fail; }
        }
        PyObject *res = PyObject_CallFunction(record, "OnnOnnOO", bufobj, start, stop, idlist, line_no, limit, items,
                                              tried ? Py_True : Py_False);
        Py_DECREF(idlist);
        if (res == NULL) goto fail;
        Py_ssize_t skip = 0, spill = 0;
        if (!PyArg_ParseTuple(res, "nn", &skip, &spill)) { Py_DECREF(res); goto fail; }
        Py_DECREF(res);
        if (skip) skip_until = skip;
        if (spill) spill_end = spill;
        if (put != NULL && PyList_GET_SIZE(items) > 0) {  /* what the Python path made, in its place */
            for (Py_ssize_t q = 0; q < PyList_GET_SIZE(items); q++)
                if (emit(NULL, put, PyList_GET_ITEM(items, q)) < 0) goto fail;
            if (PyList_SetSlice(items, 0, PyList_GET_SIZE(items), NULL) < 0) goto fail;
        }
        PyObject *back = PyObject_GetAttrString(parser, "last_time");
        if (back == NULL) goto fail;
        R.last_time = PyFloat_AsDouble(back);
        Py_DECREF(back);
        if (R.last_time == -1.0 && PyErr_Occurred()) goto fail;
        clock_forget(&R.clock);
        clock_forget(&R.records);
    }
    {
        PyObject *lt = PyFloat_FromDouble(R.last_time);
        if (lt == NULL || PyObject_SetAttrString(parser, "last_time", lt) < 0) { Py_XDECREF(lt); goto fail; }
        Py_DECREF(lt);
        if (seen_prefix && !told_prefix && PyObject_SetAttrString(parser, "seen_prefix", Py_True) < 0) goto fail;
    }
    Py_DECREF(parser); Py_DECREF(R.fast); Py_DECREF(time_parser); Py_DECREF(record); Py_DECREF(last);
    Py_XDECREF(R.clock.parse); Py_XDECREF(R.clock.days); Py_XDECREF(R.clock.cache); Py_XDECREF(R.clock.midnights);
    Py_XDECREF(R.clock.last_value);
    clock_clear(&R.records);
    hits_clear(&H);
    Py_ssize_t newlines = counted_pos <= limit ? counted_lines + count_newlines(buf, counted_pos, limit)
                                               : counted_lines - count_newlines(buf, limit, counted_pos);
    PyObject *out = Py_BuildValue("Nnnn", items, spill_end, candidates, newlines);
    return out;
fail:
    hits_clear(&H);
    Py_XDECREF(parser); Py_XDECREF(R.fast); Py_XDECREF(time_parser); Py_XDECREF(record); Py_XDECREF(last);
    Py_XDECREF(R.clock.parse); Py_XDECREF(R.clock.days); Py_XDECREF(R.clock.cache); Py_XDECREF(R.clock.midnights);
    Py_XDECREF(R.clock.last_value);
    clock_clear(&R.records);
    Py_XDECREF(items);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------- */

static void engine_dealloc(Engine *E) {
    for (Py_ssize_t i = 0; i < E->n; i++) lane_clear(&E->lanes[i]);
    PyMem_Free(E->lanes);
    Py_XDECREF(E->call_kinds); Py_XDECREF(E->kind_values); Py_XDECREF(E->channel_services);
    Py_XDECREF(E->tls_like); Py_XDECREF(E->transports); Py_XDECREF(E->uri_user); Py_XDECREF(E->host_text); Py_XDECREF(E->hosts);
    Py_XDECREF(E->scanners); Py_XDECREF(E->named);
    Py_XDECREF(E->event_kinds); Py_XDECREF(E->services); Py_XDECREF(E->careful_names);
    known_clear(E->known_names); known_clear(E->known_services); known_clear(E->known_transports);
    known_clear(E->known_techs);
    Py_TYPE(E)->tp_free((PyObject *)E);
}

/* Engine(specs, consts): `specs` a sequence of native.LaneSpec, `consts` a native.Constants. */
/* The call kinds as the bits of a word, when every index is below 64 (else the set is asked). */
static int call_kinds_as_bits(Engine *E) {
    E->call_kind_bits = 0;
    E->call_kinds_as_bits = 1;
    PyObject *it = PyObject_GetIter(E->call_kinds), *item;
    if (it == NULL) return -1;
    while ((item = PyIter_Next(it)) != NULL) {
        long k = PyLong_Check(item) ? PyLong_AsLong(item) : -1;
        Py_DECREF(item);
        if (k == -1 && PyErr_Occurred()) { Py_DECREF(it); return -1; }
        if (k < 0 || k >= 64) E->call_kinds_as_bits = 0;
        else E->call_kind_bits |= (uint64_t)1 << k;
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

static int engine_init(Engine *E, PyObject *args, PyObject *kw) {
    PyObject *specs, *c;
    (void)kw;
    if (!PyArg_ParseTuple(args, "OO", &specs, &c)) return -1;
    PyObject *seq = PySequence_Fast(specs, "specs must be a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    E->lanes = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Lane));
    if (E->lanes == NULL) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        E->n = i + 1;
        if (lane_init(&E->lanes[i], PySequence_Fast_GET_ITEM(seq, i)) < 0) { Py_DECREF(seq); return -1; }
    }
    Py_DECREF(seq);
    if (attr_int(c, "k_scanner", &E->k_scanner) < 0 || attr_int(c, "k_unknown", &E->k_unknown) < 0
        || attr_int(c, "k_acl", &E->k_acl) < 0 || attr_int(c, "e_strong", &E->e_strong) < 0
        || attr_int(c, "e_weak", &E->e_weak) < 0 || attr_int(c, "s_dialplan", &E->s_dialplan) < 0
        || attr_int(c, "s_sip", &E->s_sip) < 0 || attr_int(c, "s_ami", &E->s_ami) < 0)
        return -1;
    if ((E->call_kinds = attr_ref(c, "call_kinds")) == NULL || (E->kind_values = attr_ref(c, "kind_values")) == NULL
        || (E->channel_services = attr_ref(c, "channel_services")) == NULL
        || (E->tls_like = attr_ref(c, "tls_like")) == NULL || (E->transports = attr_ref(c, "transports")) == NULL || (E->uri_user = attr_ref(c, "uri_user")) == NULL
        || (E->host_text = attr_ref(c, "host_text")) == NULL || (E->scanners = attr_ref(c, "scanners")) == NULL
        || (E->event_kinds = attr_ref(c, "event_kinds")) == NULL || (E->services = attr_ref(c, "services")) == NULL
        || (E->careful_names = attr_ref(c, "careful_names")) == NULL
        || (E->hosts = PyDict_New()) == NULL || (E->named = PyDict_New()) == NULL)
        return -1;
    if (!PyTuple_Check(E->scanners)) {
        PyErr_SetString(PyExc_TypeError, "scanners must be a tuple of (needle, tool)");
        return -1;
    }
    if (!PyTuple_Check(E->kind_values) || !PyDict_Check(E->channel_services) || !PyDict_Check(E->event_kinds)
        || !PyDict_Check(E->services) || !PyAnySet_Check(E->call_kinds) || !PyAnySet_Check(E->tls_like) || !PyAnySet_Check(E->transports)
        || !PyAnySet_Check(E->careful_names)) {
        PyErr_SetString(PyExc_TypeError, "constants of the wrong type");
        return -1;
    }
    for (Py_ssize_t i = 0; i < E->n; i++) {
        Lane *L = &E->lanes[i];
        if (L->type == D_FORM && (!PyDict_Check(L->kinds) || !PyAnySet_Check(L->strong))) {
            PyErr_SetString(PyExc_TypeError, "a lane's kinds must be a dict and its strong reasons a set");
            return -1;
        }
    }
    if ((E->known_names = known_of(E->event_kinds, E->careful_names)) == NULL
        || (E->known_services = known_of(E->services, NULL)) == NULL
        || (E->known_transports = known_of(E->transports, E->tls_like)) == NULL
        || (E->known_techs = known_of(E->channel_services, NULL)) == NULL)
        return -1;
    return call_kinds_as_bits(E);
}

static PyObject *engine_native_lanes(Engine *E, PyObject *unused) {
    (void)unused;
    Py_ssize_t c = 0;
    for (Py_ssize_t i = 0; i < E->n; i++) c += E->lanes[i].code != NULL && E->lanes[i].type != D_PYTHON;
    return PyLong_FromSsize_t(c);
}

/* Engine.address(text, shape) -> (address text, port, transport) or None: take_address on its own, for
 * the parity tests with netaddr.parse_address. */
static PyObject *engine_address(Engine *E, PyObject *args) {
    PyObject *text;
    int shape;
    if (!PyArg_ParseTuple(args, "Ui", &text, &shape)) return NULL;
    if (!PyUnicode_IS_ASCII(text)) {
        PyErr_SetString(PyExc_ValueError, "the fast lane only reads plain ASCII");
        return NULL;
    }
    Built b;
    memset(&b, 0, sizeof(b));
    int got = take_address(E, text, shape, &b);
    PyObject *out = NULL;
    if (got > 0) out = PyTuple_Pack(3, b.ip, b.port, b.transport);
    else if (got == 0) { out = Py_None; Py_INCREF(out); }
    built_clear(&b);
    return out;
}

static PyMethodDef engine_methods[] = {
    {"address", (PyCFunction)engine_address, METH_VARARGS, "The address fields of a text in a shape (for tests)."},
    {"feed", (PyCFunction)engine_feed, METH_VARARGS, "The record loop of one buffer (see the module's docs)."},
    {"native_lanes", (PyCFunction)engine_native_lanes, METH_NOARGS, "How many lanes run in C."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch.formats._fastlane.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)engine_init,
    .tp_dealloc = (destructor)engine_dealloc,
    .tp_methods = engine_methods,
    .tp_doc = "The fast lanes of one parser, compiled by PCRE2.",
};

static PyMethodDef module_methods[] = {
    {"open_rows", fastlane_open_rows, METH_VARARGS, "open_rows(buffer, max_lines): CSV rows over several lines."},
    {"count_lines", fastlane_count_lines, METH_VARARGS, "count_lines(buffer, start, end): bytes.count(b'\\n', start, end), faster."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_fastlane", "The record scanner's fast lane in C (see formats/native.py).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fastlane(void) {
    if (PyType_Ready(&EngineType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyType_Ready(&RowsType) < 0) { Py_DECREF(m); return NULL; }
    Py_INCREF(&RowsType);
    if (PyModule_AddObject(m, "Rows", (PyObject *)&RowsType) < 0) {
        Py_DECREF(&RowsType);
        Py_DECREF(m);
        return NULL;
    }
#ifdef HAVE_HS
    if (PyType_Ready(&MarkersType) < 0) { Py_DECREF(m); return NULL; }
    Py_INCREF(&MarkersType);
    if (PyModule_AddObject(m, "Markers", (PyObject *)&MarkersType) < 0) {
        Py_DECREF(&MarkersType);
        Py_DECREF(m);
        return NULL;
    }
#endif
    return m;
}
