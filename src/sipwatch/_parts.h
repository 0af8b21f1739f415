/* A record handed from the fast lane (formats/_fastlane.c) to a parse worker's packer (_drain.c) as its parts: no
 * wire tuple made (with a float for its time and an int for its line) only to be taken apart again at once, ~9,000
 * times a 4 MiB buffer. _drain exports `put` in a capsule (PARTS_CAPSULE), which the fast lane imports when a feed
 * is given a packer's `add`. The fields are a wire tuple's (formats/wire.py); the objects are borrowed. */
#ifndef SIPWATCH_PARTS_H
#define SIPWATCH_PARTS_H

#include <Python.h>
#include <stdint.h>

#define PARTS_TEXTS 8  /* ip, transport, account, target, user agent, form, session, reason: a wire tuple's 3, 5-8, 11-13 */

typedef struct {
    double time;
    int64_t port;  /* -1: None */
    int64_t line;
    long kind, service, evidence;
    PyObject *text[PARTS_TEXTS];  /* str or None */
    PyObject *extra;               /* a dict, or None */
    PyObject *call;                /* a call tuple, or None */
} Parts;

typedef struct {
    PyTypeObject *packer_type;  /* _drain.Packer */
    PyCFunction add;            /* its `add`: a feed given this bound method hands the packer parts instead */
    int (*put)(PyObject *packer, const Parts *parts);  /* 0, or -1 with an exception set */
} PartsApi;

#define PARTS_CAPSULE "sipwatch._drain._parts_api"

#endif
