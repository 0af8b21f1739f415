/*
 * The fast lane of a file of CDR rows (cdr_csv's Master.csv, cdr_custom), included by _fastlane.c: the work of
 * `CdrReader.record` (formats/calls.py, the specification), `LineParser._event` and `wire.to_wire` for the common
 * row, in C. It reads only what it can read exactly as Python does: a printable ASCII line whose fields are
 * plain or quoted with doubled quotes, of a known layout, with plain decimal durations; its time is read by
 * the record clock (the parser's records TimeParser, as `parse_record` reads it: `Clock`), its userfield's
 * address by `calls._source`. Anything else (and every broken
 * row: Python counts and samples those) goes to the Python path untouched. tests/test_fastlane.py compares both.
 */
#define MAX_COLUMNS 40

/* A layout's columns, as formats/calls.py `_CdrColumns` (-1: none) */
enum { L_DISPOSITION, L_AMAFLAGS, L_UNIQUEID, L_SEQUENCE, L_START, L_ANSWER, L_END, L_DURATION, L_BILLSEC, L_CHANNEL,
       L_DST, L_DSTCHANNEL, L_DCONTEXT, L_LINKEDID, L_USERFIELD, N_LAYOUT };

typedef struct {
    int columns;
    int at[N_LAYOUT];
    PyObject *form;
} RowLayout;

typedef struct {
    PyObject_HEAD
    RowLayout *layouts;
    Py_ssize_t n;
    PyObject *dispositions, *amaflags;  /* frozensets of str */
    unsigned char ids[MAX_MARKER];      /* the markers that are CdrReader's alone */
    PyObject *source, *ip_text;         /* calls._source, wire.ip_text */
    PyObject *answered;                 /* "ANSWERED" */
    PyObject *hosts;                    /* "src=<host>" -> (its address, ip_text of it), or False (see host_source) */
    int k_call_end;
} Rows;

static void rows_dealloc(Rows *r) {
    for (Py_ssize_t i = 0; i < r->n; i++) Py_XDECREF(r->layouts[i].form);
    PyMem_Free(r->layouts);
    Py_XDECREF(r->dispositions); Py_XDECREF(r->amaflags); Py_XDECREF(r->source); Py_XDECREF(r->ip_text);
    Py_XDECREF(r->answered); Py_XDECREF(r->hosts);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

/* Rows(layouts, dispositions, amaflags, cdr_ids, source, ip_text, k_call_end): layouts a sequence of
 * (columns, form, (disposition, amaflags, uniqueid, sequence, start, answer, end, duration, billsec, channel, dst,
 * dstchannel, dcontext, linkedid, userfield)), in the order they are tried */
static int rows_init(Rows *r, PyObject *args, PyObject *kw) {
    PyObject *layouts, *ids;
    (void)kw;
    if (!PyArg_ParseTuple(args, "OO!O!OOOi", &layouts, &PyFrozenSet_Type, &r->dispositions, &PyFrozenSet_Type,
                          &r->amaflags, &ids, &r->source, &r->ip_text, &r->k_call_end))
        return -1;
    Py_INCREF(r->dispositions); Py_INCREF(r->amaflags); Py_INCREF(r->source); Py_INCREF(r->ip_text);
    r->answered = PyUnicode_FromString("ANSWERED");
    r->hosts = PyDict_New();
    if (r->answered == NULL || r->hosts == NULL || flags_of(ids, r->ids) < 0) return -1;
    PyObject *seq = PySequence_Fast(layouts, "layouts");
    if (seq == NULL) return -1;
    r->n = PySequence_Fast_GET_SIZE(seq);
    r->layouts = PyMem_New(RowLayout, r->n ? r->n : 1);
    if (r->layouts == NULL) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    memset(r->layouts, 0, sizeof(RowLayout) * (size_t)(r->n ? r->n : 1));
    for (Py_ssize_t i = 0; i < r->n; i++) {
        RowLayout *L = &r->layouts[i];
        PyObject *at;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iUO!", &L->columns, &L->form, &PyTuple_Type, &at)
            || PyTuple_GET_SIZE(at) != N_LAYOUT) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a layout names 15 columns");
            Py_DECREF(seq);
            return -1;
        }
        Py_INCREF(L->form);
        for (int k = 0; k < N_LAYOUT; k++) {
            L->at[k] = (int)PyLong_AsLong(PyTuple_GET_ITEM(at, k));
            int optional = k == L_AMAFLAGS || k == L_UNIQUEID || k == L_SEQUENCE || k == L_LINKEDID || k == L_USERFIELD;
            if (L->at[k] < (optional ? -1 : 0) || L->at[k] >= L->columns || L->columns > MAX_COLUMNS) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a column out of the layout");
                Py_DECREF(seq);
                return -1;
            }
        }
    }
    Py_DECREF(seq);
    return 0;
}

static PyTypeObject RowsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sipwatch.formats._fastlane.Rows",
    .tp_basicsize = sizeof(Rows),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)rows_init,
    .tp_dealloc = (destructor)rows_dealloc,
    .tp_doc = "The CDR layouts and helpers of the rows' fast lane (see formats/native.py `rows`).",
};

typedef struct {
    const char *s;
    Py_ssize_t n;
    int escaped;  /* a quoted field with doubled quotes in it */
} Field;

/* csv.reader's reading of the line, for the lines it reads plainly: 1 with the fields, 0 for any other line. */
static int split_row(const char *s, Py_ssize_t n, Field *f, int *count) {
    Py_ssize_t i = 0;
    int k = 0;
    for (;;) {
        if (k == MAX_COLUMNS) return 0;
        if (i < n && s[i] == '"') {
            Py_ssize_t j = i + 1;
            int escaped = 0;
            for (;;) {
                if (j >= n) return 0;  /* unterminated */
                if (s[j] == '"') {
                    if (j + 1 < n && s[j + 1] == '"') { escaped = 1; j += 2; continue; }
                    break;
                }
                j++;
            }
            f[k++] = (Field){s + i + 1, j - i - 1, escaped};
            i = j + 1;
            if (i < n && s[i] != ',') return 0;  /* text after a closing quote */
        } else {
            Py_ssize_t j = i;
            while (j < n && s[j] != ',') {
                if (s[j] == '"') return 0;
                j++;
            }
            f[k++] = (Field){s + i, j - i, 0};
            i = j;
        }
        if (i >= n) break;
        i++;  /* the comma */
        if (i == n) { f[k++] = (Field){s + n, 0, 0}; break; }  /* a last, empty field */
    }
    *count = k;
    return 1;
}

static PyObject *field_text(const Field *f) {
    if (!f->escaped) return ascii(f->s, f->n);
    char *out = PyMem_Malloc((size_t)f->n + 1);
    if (out == NULL) return PyErr_NoMemory();
    Py_ssize_t w = 0;
    for (Py_ssize_t i = 0; i < f->n; i++) {
        out[w++] = f->s[i];
        if (f->s[i] == '"') i++;  /* "" -> " */
    }
    PyObject *text = ascii(out, w);
    PyMem_Free(out);
    return text;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int all_digits(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) if (!is_digit(s[i])) return 0;
    return n > 0;
}

/* calls._UNIQUEID: `(?:[\w.-]+-)?\d{9,}\.\d+$`, for ASCII text */
static int uniqueid_like(const char *s, Py_ssize_t n) {
    Py_ssize_t e = n;
    while (e > 0 && is_digit(s[e - 1])) e--;
    if (e == n || e == 0 || s[e - 1] != '.') return 0;
    Py_ssize_t dot = e - 1, b = dot;
    while (b > 0 && is_digit(s[b - 1])) b--;
    if (dot - b < 9) return 0;
    if (b == 0) return 1;
    if (s[b - 1] != '-' || b - 1 == 0) return 0;
    for (Py_ssize_t i = 0; i < b - 1; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int two_digits(const char *s, char lo0, char hi0, char hi1_if_hi0, char hi1) {
    /* two digits d0 d1 with lo0 <= d0 <= hi0, and d1 <= hi1_if_hi0 when d0 == hi0, else d1 <= hi1 */
    if (!is_digit(s[0]) || !is_digit(s[1]) || s[0] < lo0 || s[0] > hi0) return 0;
    return s[1] <= (s[0] == hi0 ? hi1_if_hi0 : hi1);
}

/* calls._DATE, for ASCII text */
static int date_like(const char *s, Py_ssize_t n) {
    if (n < 19 || !all_digits(s, 4) || s[4] != '-' || s[7] != '-' || (s[10] != ' ' && s[10] != 'T')
        || s[13] != ':' || s[16] != ':')
        return 0;
    int month = is_digit(s[5]) && is_digit(s[6]) && ((s[5] == '0' && s[6] != '0') || (s[5] == '1' && s[6] <= '2'));
    int day = is_digit(s[8]) && is_digit(s[9])
              && ((s[8] == '0' && s[9] != '0') || s[8] == '1' || s[8] == '2' || (s[8] == '3' && s[9] <= '1'));
    if (!month || !day || !two_digits(s + 11, '0', '2', '3', '9') || !two_digits(s + 14, '0', '5', '9', '9')
        || !two_digits(s + 17, '0', '5', '9', '9'))
        return 0;
    Py_ssize_t i = 19;
    if (i < n && s[i] == '.') {
        Py_ssize_t j = i + 1;
        while (j < n && is_digit(s[j])) j++;
        if (j == i + 1) return 0;
        i = j;
    }
    if (i < n && s[i] == 'Z') i++;
    else if (i < n && (s[i] == '+' || s[i] == '-')) {
        if (n - i == 6 && is_digit(s[i + 1]) && is_digit(s[i + 2]) && s[i + 3] == ':' && is_digit(s[i + 4])
            && is_digit(s[i + 5]))
            i += 6;
        else if (n - i == 5 && all_digits(s + i + 1, 4))
            i += 5;
        else
            return 0;
    }
    return i == n;
}

/* calls._EPOCH: `\d{9,11}(?:\.\d+)?$` */
static int epoch_like(const char *s, Py_ssize_t n) {
    Py_ssize_t i = 0;
    while (i < n && is_digit(s[i])) i++;
    if (i < 9 || i > 11) return 0;
    if (i == n) return 1;
    return s[i] == '.' && all_digits(s + i + 1, n - i - 1);
}

/* calls._time's test, with no object made: a date-like or epoch-like text, which the record clock reads */
static int record_time_ok(const Field *f) {
    return !f->escaped && (date_like(f->s, f->n) || epoch_like(f->s, f->n));
}

/* TimeParser.parse_record of a field that passed record_time_ok (a new reference: a float or None; NULL with an
 * error): a date through the record clock (its `_days` read here, no Python call on a known date), a count of
 * seconds as `@<seconds>` through Python */
static PyObject *record_time(Run *R, const Field *f) {
    if (date_like(f->s, f->n)) return clock_parse(&R->records, f->s, f->n);
    PyObject *digits = ascii(f->s, f->n), *at = digits ? PyUnicode_FromFormat("@%U", digits) : NULL;
    Py_XDECREF(digits);
    PyObject *when = at ? PyObject_CallOneArg(R->records.parse, at) : NULL;
    Py_XDECREF(at);
    return when;
}

/* calls._seconds for plain decimals (`\d+(\.\d+)?`): 1 with the value, 0 for any other text (Python's turn) */
static int plain_seconds(const Field *f, double *out) {
    if (f->escaped || f->n == 0 || f->n > 30) return 0;
    Py_ssize_t i = 0;
    while (i < f->n && is_digit(f->s[i])) i++;
    if (i == 0) return 0;
    if (i < f->n && !(f->s[i] == '.' && all_digits(f->s + i + 1, f->n - i - 1))) return 0;
    char text[32];
    memcpy(text, f->s, (size_t)f->n);
    text[f->n] = '\0';
    *out = PyOS_string_to_double(text, NULL, NULL);
    if (*out == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    return 1;
}

#define MAX_HOSTS 4096

/* A userfield that is `src=<host>:<port>` and nothing else (the dialplan line of the docs writes it so), with a
 * host of no colon, blank or separator and a port of 1 to 5 digits: its host part's length (`src=<host>`), and
 * the port; 0 for any other userfield (Python's turn). calls._SRC reads all of such a field as the address, and
 * parse_address reads it as the host's address and that port (None for a port over 65535: False). */
static Py_ssize_t host_and_port(const Field *f, long *port) {
    if (f->escaped || f->n < 7 || memcmp(f->s, "src=", 4) != 0) return 0;
    Py_ssize_t colon = f->n - 1;
    while (colon > 4 && is_digit(f->s[colon])) colon--;
    Py_ssize_t digits = f->n - 1 - colon;
    if (colon <= 4 || f->s[colon] != ':' || digits < 1 || digits > 5) return 0;
    for (Py_ssize_t i = 4; i < colon; i++) {
        char c = f->s[i];
        if (c == ':' || c == ' ' || c == ';' || c == ',' || c == '|') return 0;
    }
    long value = 0;
    for (Py_ssize_t i = colon + 1; i < f->n; i++) value = value * 10 + (f->s[i] - '0');
    *port = value;
    return colon;
}

/* The address of `src=<host>` (what calls._source makes of it) and its text (wire.ip_text), as (address, text),
 * or Py_False for a host that is no address; a borrowed reference (NULL with an error). Remembered by the host:
 * a phone calls from one address, with a port that its NAT may change on every call. */
static PyObject *host_source(Rows *r, const char *s, Py_ssize_t n) {
    PyObject *key = ascii(s, n);
    if (key == NULL) return NULL;
    PyObject *found = PyDict_GetItemWithError(r->hosts, key);
    if (found != NULL || PyErr_Occurred()) { Py_DECREF(key); return found; }
    PyObject *source = PyObject_CallOneArg(r->source, key), *made = NULL;
    if (source == Py_False) made = Py_NewRef(Py_False);
    else if (source != NULL && PyTuple_Check(source) && PyTuple_GET_SIZE(source) >= 1) {
        PyObject *text = PyObject_CallOneArg(r->ip_text, PyTuple_GET_ITEM(source, 0));
        made = text ? PyTuple_Pack(2, PyTuple_GET_ITEM(source, 0), text) : NULL;
        Py_XDECREF(text);
    } else if (source != NULL)
        PyErr_SetString(PyExc_TypeError, "calls._source of a bare host is an address or False");
    Py_XDECREF(source);
    if (made != NULL && PyDict_GET_SIZE(r->hosts) >= MAX_HOSTS) PyDict_Clear(r->hosts);
    int rc = made != NULL ? PyDict_SetItem(r->hosts, key, made) : -1;
    Py_DECREF(key);
    Py_XDECREF(made);  /* (the dict holds it) */
    return rc < 0 ? NULL : made;
}

static int field_in(PyObject *set, const Field *f) {
    PyObject *text = field_text(f);
    if (text == NULL) return -1;
    int found = PySet_Contains(set, text);
    Py_DECREF(text);
    return found;
}

/* The first layout of the row's length whose fixed vocabulary fits (calls._fitting); NULL: none (or an error). */
static RowLayout *fitting(Rows *r, const Field *f, int count) {
    for (Py_ssize_t i = 0; i < r->n; i++) {
        RowLayout *L = &r->layouts[i];
        if (L->columns != count) continue;
        int a = L->at[L_DISPOSITION], b = L->at[L_AMAFLAGS], u = L->at[L_UNIQUEID], q = L->at[L_SEQUENCE];
        int ok = a < 0 ? 1 : field_in(r->dispositions, &f[a]);
        if (ok > 0 && b >= 0) ok = field_in(r->amaflags, &f[b]);
        if (ok < 0) return NULL;
        if (ok && u >= 0 && f[u].n) ok = !f[u].escaped && uniqueid_like(f[u].s, f[u].n);
        if (ok && q >= 0 && f[q].n) ok = !f[q].escaped && all_digits(f[q].s, f[q].n);
        if (ok) return L;
    }
    return NULL;
}

static PyObject *text_or_none(const Field *f) {
    if (f->n == 0) { Py_RETURN_NONE; }
    return field_text(f);
}

/* One CDR row as a wire tuple (formats/wire.py), or FALLBACK (Python's turn), or NULL with an error. */
static PyObject *cdr_row(Run *R, Rows *r, const char *line, Py_ssize_t len, long line_no) {
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n')) len--;
    for (Py_ssize_t i = 0; i < len; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e) return FALLBACK;
    Field f[MAX_COLUMNS];
    int count;
    if (!split_row(line, len, f, &count)) return FALLBACK;
    RowLayout *L = fitting(r, f, count);
    if (L == NULL) return PyErr_Occurred() ? NULL : FALLBACK;
    const Field *start = &f[L->at[L_START]], *answer = &f[L->at[L_ANSWER]], *end = &f[L->at[L_END]];
    double duration, billsec;
    if (!plain_seconds(&f[L->at[L_DURATION]], &duration) || !plain_seconds(&f[L->at[L_BILLSEC]], &billsec)
        || !(duration < 10 * 86400) || !(billsec < 10 * 86400) || billsec > duration + 1)
        return FALLBACK;
    const Field *clock = NULL;  /* the time of the record: its end, else its start */
    PyObject *source = NULL, *when = NULL, *address = NULL, *out = FALLBACK;
    if (start->n) {
        if (!record_time_ok(start)) return FALLBACK;
        if (end->n == 0) clock = start;
    }
    if (answer->n && !record_time_ok(answer)) goto done;
    if (clock == NULL) {
        if (end->n == 0 || !record_time_ok(end)) goto done;
        clock = end;
    }
    int u = L->at[L_USERFIELD];
    PyObject *ip = Py_None, *port = Py_None;
    long port_value;
    Py_ssize_t host = u >= 0 ? host_and_port(&f[u], &port_value) : 0;
    if (host) {  /* `src=<host>:<port>`: its host's address, remembered */
        PyObject *found = host_source(r, f[u].s, host);
        if (found == NULL) { out = NULL; goto done; }
        if (found == Py_False || port_value > 65535) goto done;  /* a broken address: Python counts the row */
        ip = PyTuple_GET_ITEM(found, 0);
        address = Py_NewRef(PyTuple_GET_ITEM(found, 1));
        if ((source = port = PyLong_FromLong(port_value)) == NULL) { out = NULL; goto done; }
    } else if (u >= 0) {
        PyObject *userfield = field_text(&f[u]);
        source = userfield ? PyObject_CallOneArg(r->source, userfield) : NULL;
        Py_XDECREF(userfield);
        if (source == NULL) { out = NULL; goto done; }
        if (source == Py_False) goto done;  /* a broken address: Python counts the row */
        if (source != Py_None) {
            if (!PyTuple_Check(source) || PyTuple_GET_SIZE(source) < 2) goto done;
            ip = PyTuple_GET_ITEM(source, 0);
            port = PyTuple_GET_ITEM(source, 1);
        }
    }
    when = record_time(R, clock);  /* LineParser._event */
    if (when == NULL) { out = NULL; goto done; }
    if (when == Py_None) {
        Py_DECREF(when);
        when = PyFloat_FromDouble(R->last_time);
    } else {
        double t = PyFloat_AsDouble(when);
        if (t == -1.0 && PyErr_Occurred()) { out = NULL; goto done; }
        R->last_time = t;
    }
    PyObject *channel = text_or_none(&f[L->at[L_CHANNEL]]);
    PyObject *disposition = field_text(&f[L->at[L_DISPOSITION]]);
    PyObject *call = PyTuple_New(8), *account = NULL, *target = NULL;
    int service, evidence = R->E->e_weak;
    if (when == NULL || channel == NULL || disposition == NULL || call == NULL
        || channel_account(R->E, channel, &service, &account) < 0)
        goto built;
    if (ip != Py_None) {
        if (address == NULL && (address = PyObject_CallOneArg(r->ip_text, ip)) == NULL) goto built;
        int yes = PyUnicode_Compare(disposition, r->answered);
        if (yes == -1 && PyErr_Occurred()) goto built;
        evidence = yes == 0 ? R->E->e_strong : R->E->e_weak;
    } else {
        address = Py_None;
        Py_INCREF(address);
    }
    int linked = L->at[L_LINKEDID], unique = L->at[L_UNIQUEID];
    PyObject *parts[8] = {unique >= 0 ? text_or_none(&f[unique]) : (Py_INCREF(Py_None), Py_None),
                          linked >= 0 ? text_or_none(&f[linked]) : (Py_INCREF(Py_None), Py_None),
                          (Py_INCREF(channel), channel), text_or_none(&f[L->at[L_DSTCHANNEL]]),
                          text_or_none(&f[L->at[L_DCONTEXT]]), PyFloat_FromDouble(duration),
                          PyFloat_FromDouble(billsec), (Py_INCREF(disposition), disposition)};
    int ok = 1;
    for (int k = 0; k < 8; k++) {
        if (parts[k] == NULL) ok = 0;
        PyTuple_SET_ITEM(call, k, parts[k]);
    }
    if (ok) target = text_or_none(&f[L->at[L_DST]]);
    if (target == NULL) goto built;
    if (R->packer != NULL) {  /* to the packer as its parts: no wire tuple made only to be taken apart */
        Parts s = {.time = PyFloat_AsDouble(when), .port = -1, .line = line_no, .kind = r->k_call_end,
                   .service = service, .evidence = evidence, .extra = Py_None, .call = call};
        if (s.time == -1.0 && PyErr_Occurred()) goto built;
        if (port != Py_None && (s.port = PyLong_AsLongLong(port)) < 0) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a negative port");
            goto built;
        }
        PyObject *texts[PARTS_TEXTS] = {address, Py_None, account ? account : Py_None, target, Py_None, L->form,
                                        Py_None, disposition};  /* (wire.py's order, as `items` below) */
        memcpy(s.text, texts, sizeof(texts));
        out = parts_api->put(R->packer, &s) < 0 ? NULL : HANDED;
        goto built;
    }
    out = PyTuple_New(16);
    if (out != NULL) {
        PyObject *items[16] = {when, PyLong_FromLong(r->k_call_end), PyLong_FromLong(service), address, port,
                               Py_None, account ? account : Py_None, target, Py_None, PyLong_FromLong(evidence),
                               PyLong_FromLong(line_no), L->form, Py_None, disposition, Py_None, call};
        int owned[16] = {1, 1, 1, 1, 0, 0, account != NULL, 1, 0, 1, 1, 0, 0, 0, 0, 0};
        for (int k = 0; k < 16; k++) {
            if (items[k] == NULL) ok = 0;
            else if (!owned[k]) Py_INCREF(items[k]);
            PyTuple_SET_ITEM(out, k, items[k]);
        }
        when = address = target = account = NULL;  /* the tuple holds them now */
        if (!ok) Py_CLEAR(out);
    }
built:
    if (out == FALLBACK) out = NULL;  /* an error on the way */
    Py_XDECREF(when); Py_XDECREF(channel); Py_XDECREF(disposition); Py_XDECREF(call); Py_XDECREF(account);
    Py_XDECREF(address); Py_XDECREF(target);
    Py_XDECREF(source);
    return out;
done:
    Py_XDECREF(source); Py_XDECREF(address); Py_XDECREF(when);
    return out;
}
