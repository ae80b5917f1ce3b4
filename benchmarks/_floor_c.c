/* The lease contract's floor (issue 15) hand-written against the CPython C API: no compiler
 * between the contract and the interpreter, so the least any build of it can cost here.
 *
 * The same steps as _minimal_lease_rr.NativeLeaseRoundRobin (the mypyc floor):
 *   select(key=None, avoid=()): read the injected clock (a Python callable, time.monotonic by
 *     default), take the next turn, the endpoint at turn % n, the next token (an int: last + 2),
 *     store outstanding[token] = endpoint, return a lease (endpoint, token, started);
 *   release(lease, *, ok=True, elapsed=None): remove outstanding[lease.token], KeyError if it is
 *     not outstanding (unknown, or released already).
 * Arguments are checked as mypyc checks them: at most key and avoid for select; one lease of
 * this module's type, keyword-only ok (a bool) and elapsed (None, a float or an int) for release.
 * Differences: release removes the token with ONE dict operation (PyDict_DelItem raises the
 * KeyError), where the mypyc floor looks it up and then deletes it (FLOOR_TWO_LOOKUPS restores
 * that); the lease is not constructible from Python (nothing here needs it).
 *
 * Built by benchmarks/bench_floors.py, never shipped. It compiles this file once per variant,
 * each variant removing one part so its price is the difference (see VARIANTS there):
 *   FLOOR_NO_CLOCK       started = None: no clock call, no float
 *   FLOOR_C_CLOCK        not a removal: when the injected clock is time.monotonic itself, read
 *                        CLOCK_MONOTONIC here (clock_gettime, the same float time.monotonic
 *                        makes) instead of calling it; any other clock is still called
 *   FLOOR_NO_FREELIST    every lease from PyObject_Malloc, back with PyObject_Free
 *   FLOOR_NO_LEASE       select returns the token itself, release takes it: no lease object
 *   FLOOR_SMALL_TOKEN    tokens cycle within CPython's cached small ints: no int allocation
 *   FLOOR_NO_DICT        no dict store and no dict removal (release cannot check anything)
 *   FLOOR_TWO_LOOKUPS    release as the mypyc floor: look the token up, then delete it
 *   FLOOR_KNOWN_HASH     not a removal, a further trick: store and remove the token with the
 *                        dict's private _KnownHash calls, the hash being the token's value
 *                        (an int below 2**61 - 1 hashes to itself), so neither hashes it
 *   FLOOR_NO_PARSE       neither method looks at its arguments (takes args[0] as the lease)
 *   FLOOR_EMPTY          select returns a prebuilt lease, release returns None: the two calls
 *                        and their argument checks, nothing else
 * (c_tuned in bench_floors is FLOOR_C_CLOCK + FLOOR_KNOWN_HASH: the contract kept, tuned.)
 * MODNAME names the module (PyInit_<MODNAME>), so each variant imports on its own.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

#ifndef MODNAME
#define MODNAME _floor_c
#endif
#define STR2(x) #x
#define STR(x) STR2(x)
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

/* -- the lease ------------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyObject *endpoint;
    PyObject *token;
    PyObject *started;
    long long value; /* the token's value: its hash (FLOOR_KNOWN_HASH) */
} Lease;

static PyTypeObject LeaseType;

/* A free list, as CPython keeps for floats and tuples: a released lease's memory is reused by
 * the next select, so the steady state allocates no lease. Not tracked by the garbage collector
 * (the mypyc floor's lease is acyclic too): no GC header, no tracking on each allocation. */
#ifndef FLOOR_NO_FREELIST
#define FREELIST_MAX 16
static Lease *freelist[FREELIST_MAX];
static int numfree = 0;
#endif

static inline Lease *
lease_alloc(void)
{
    Lease *lease;
#ifndef FLOOR_NO_FREELIST
    if (numfree > 0) {
        lease = freelist[--numfree];
        Py_SET_REFCNT(lease, 1); /* its type is still LeaseType (a static type: no type ref) */
        return lease;
    }
#endif
    lease = PyObject_Malloc(sizeof(Lease));
    if (lease == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    PyObject_Init((PyObject *)lease, &LeaseType);
    return lease;
}

static void
lease_dealloc(Lease *self)
{
    Py_XDECREF(self->endpoint);
    Py_XDECREF(self->token);
    Py_XDECREF(self->started);
#ifndef FLOOR_NO_FREELIST
    if (numfree < FREELIST_MAX) {
        freelist[numfree++] = self;
        return;
    }
#endif
    PyObject_Free(self);
}

static PyMemberDef lease_members[] = {
    {"endpoint", T_OBJECT_EX, offsetof(Lease, endpoint), READONLY, NULL},
    {"token", T_OBJECT_EX, offsetof(Lease, token), READONLY, NULL},
    {"started", T_OBJECT_EX, offsetof(Lease, started), READONLY, NULL},
    {NULL},
};

static PyTypeObject LeaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = STR(MODNAME) ".Lease",
    .tp_basicsize = sizeof(Lease),
    .tp_dealloc = (destructor)lease_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_members = lease_members,
};

/* -- the balancer --------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *endpoints; /* tuple */
    Py_ssize_t n;
    size_t turn;
    long long last;
    PyObject *outstanding; /* dict: token -> endpoint */
    PyObject *clock;
    PyObject *prebuilt; /* FLOOR_EMPTY's lease */
} Floor;

static PyObject *str_key, *str_avoid, *str_ok, *str_elapsed, *monotonic;

/* Which of names[0..count) is `name`, or -1? Compiled call sites pass interned constants, so
 * the pointer tests decide; comparing the text is the fallback for a name built at run time,
 * tried only once no pointer matched (else every name but the first would pay a compare). */
static inline int
which_name(PyObject *name, PyObject *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (name == names[i])
            return i;
    for (int i = 0; i < count; i++)
        if (PyUnicode_Compare(name, names[i]) == 0)
            return i;
    return -1;
}

static int
floor_init(Floor *self, PyObject *args, PyObject *kwds)
{
    PyObject *endpoints;
    if (!PyArg_ParseTuple(args, "O", &endpoints))
        return -1;
    Py_XSETREF(self->endpoints, PySequence_Tuple(endpoints));
    if (self->endpoints == NULL)
        return -1;
    self->n = PyTuple_GET_SIZE(self->endpoints);
    if (self->n == 0) {
        PyErr_SetString(PyExc_ValueError, "no endpoints");
        return -1;
    }
    self->turn = 0;
    self->last = 0;
    Py_XSETREF(self->outstanding, PyDict_New());
    if (self->outstanding == NULL)
        return -1;
    Py_XSETREF(self->clock, Py_NewRef(monotonic));
#ifdef FLOOR_EMPTY
    Lease *lease = lease_alloc();
    if (lease == NULL)
        return -1;
    lease->endpoint = Py_NewRef(PyTuple_GET_ITEM(self->endpoints, 0));
    lease->token = PyLong_FromLong(2);
    lease->started = Py_NewRef(Py_None);
    Py_XSETREF(self->prebuilt, (PyObject *)lease);
#endif
    return 0;
}

static void
floor_dealloc(Floor *self)
{
    Py_XDECREF(self->endpoints);
    Py_XDECREF(self->outstanding);
    Py_XDECREF(self->clock);
    Py_XDECREF(self->prebuilt);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
floor_select(Floor *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
#ifndef FLOOR_NO_PARSE
    if (nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "select() takes at most 2 arguments");
        return NULL;
    }
    if (kwnames != NULL) {
        Py_ssize_t count = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            PyObject *const names[] = {str_key, str_avoid};
            int at = which_name(name, names, 2);
            if (at < 0 || at < nargs) {
                PyErr_Format(PyExc_TypeError, "select() got an unexpected or repeated argument %R",
                             name);
                return NULL;
            }
        }
    }
#endif
#ifdef FLOOR_EMPTY
    return Py_NewRef(self->prebuilt);
#else
    PyObject *started, *token;
#if defined(FLOOR_NO_CLOCK)
    started = Py_NewRef(Py_None);
#elif defined(FLOOR_C_CLOCK)
    if (self->clock == monotonic) { /* as time.monotonic: ns, then _PyTime_AsSecondsDouble */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
        started = PyFloat_FromDouble(ns % 1000000000LL == 0 ? (double)(ns / 1000000000LL)
                                                           : (double)ns / 1e9);
    }
    else {
        started = PyObject_CallNoArgs(self->clock);
    }
#else
    started = PyObject_CallNoArgs(self->clock); /* vectorcall: time.monotonic() */
#endif
    if (started == NULL)
        return NULL;
    size_t turn = self->turn++;
    PyObject *endpoint = PyTuple_GET_ITEM(self->endpoints, (Py_ssize_t)(turn % (size_t)self->n));
    self->last += 2;
#ifdef FLOOR_SMALL_TOKEN
    token = PyLong_FromLong((long)(self->last & 255)); /* cached: 0..256 exist already */
#else
    token = PyLong_FromLongLong(self->last);
#endif
    if (token == NULL) {
        Py_DECREF(started);
        return NULL;
    }
#if defined(FLOOR_KNOWN_HASH)
    if (_PyDict_SetItem_KnownHash(self->outstanding, token, endpoint, (Py_hash_t)self->last) < 0) {
        Py_DECREF(started);
        Py_DECREF(token);
        return NULL;
    }
#elif !defined(FLOOR_NO_DICT)
    if (PyDict_SetItem(self->outstanding, token, endpoint) < 0) {
        Py_DECREF(started);
        Py_DECREF(token);
        return NULL;
    }
#endif
#ifdef FLOOR_NO_LEASE
    Py_DECREF(started);
    return token;
#else
    Lease *lease = lease_alloc();
    if (lease == NULL) {
        Py_DECREF(started);
        Py_DECREF(token);
        return NULL;
    }
    lease->endpoint = Py_NewRef(endpoint);
    lease->token = token;
    lease->started = started;
    lease->value = self->last;
    return (PyObject *)lease;
#endif
#endif /* FLOOR_EMPTY */
}

static PyObject *
floor_release(Floor *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
#ifndef FLOOR_NO_PARSE
    if (nargs != 1) {
        PyErr_SetString(PyExc_TypeError, "release() takes exactly 1 positional argument");
        return NULL;
    }
    if (kwnames != NULL) {
        Py_ssize_t count = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i), *value = args[nargs + i];
            PyObject *const names[] = {str_ok, str_elapsed};
            int at = which_name(name, names, 2);
            if (at == 0) {
                if (!PyBool_Check(value)) {
                    PyErr_SetString(PyExc_TypeError, "ok must be a bool");
                    return NULL;
                }
            }
            else if (at == 1) {
                if (value != Py_None && !PyFloat_Check(value) && !PyLong_Check(value)) {
                    PyErr_SetString(PyExc_TypeError, "elapsed must be a float or None");
                    return NULL;
                }
            }
            else {
                PyErr_Format(PyExc_TypeError, "release() got an unexpected argument %R", name);
                return NULL;
            }
        }
    }
#ifndef FLOOR_NO_LEASE
    if (Py_TYPE(args[0]) != &LeaseType) {
        PyErr_SetString(PyExc_TypeError, "release() takes a lease");
        return NULL;
    }
#endif
#endif /* FLOOR_NO_PARSE */
#ifndef FLOOR_EMPTY
#ifdef FLOOR_NO_LEASE
    PyObject *token = args[0];
#else
    PyObject *token = ((Lease *)args[0])->token;
#endif
#ifndef FLOOR_NO_DICT
#ifdef FLOOR_TWO_LOOKUPS
    if (PyDict_GetItemWithError(self->outstanding, token) == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetObject(PyExc_KeyError, token);
        return NULL;
    }
#endif
#ifdef FLOOR_KNOWN_HASH
    Py_hash_t hash = (Py_hash_t)((Lease *)args[0])->value;
    if (_PyDict_DelItem_KnownHash(self->outstanding, token, hash) < 0) /* KeyError */
        return NULL;
#else
    if (PyDict_DelItem(self->outstanding, token) < 0) /* KeyError: not outstanding */
        return NULL;
#endif
#else
    (void)token;
#endif
#endif /* FLOOR_EMPTY */
    Py_RETURN_NONE;
}

static PyObject *
floor_outstanding(Floor *self, PyObject *unused)
{
    return PyLong_FromSsize_t(PyDict_GET_SIZE(self->outstanding));
}

static PyMethodDef floor_methods[] = {
    {"select", (PyCFunction)(void (*)(void))floor_select, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"release", (PyCFunction)(void (*)(void))floor_release, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"outstanding", (PyCFunction)floor_outstanding, METH_NOARGS, "How many leases are out."},
    {NULL},
};

static PyTypeObject FloorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = STR(MODNAME) ".CLeaseRoundRobin",
    .tp_basicsize = sizeof(Floor),
    .tp_dealloc = (destructor)floor_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_methods = floor_methods,
    .tp_init = (initproc)floor_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = STR(MODNAME),
    .m_doc = "The lease contract's floor in C (benchmarks/_floor_c.c): never shipped.",
    .m_size = -1,
};

PyMODINIT_FUNC
CAT(PyInit_, MODNAME)(void)
{
    if (PyType_Ready(&LeaseType) < 0 || PyType_Ready(&FloorType) < 0)
        return NULL;
    str_key = PyUnicode_InternFromString("key");
    str_avoid = PyUnicode_InternFromString("avoid");
    str_ok = PyUnicode_InternFromString("ok");
    str_elapsed = PyUnicode_InternFromString("elapsed");
    if (!str_key || !str_avoid || !str_ok || !str_elapsed)
        return NULL;
    PyObject *time = PyImport_ImportModule("time");
    if (time == NULL)
        return NULL;
    monotonic = PyObject_GetAttrString(time, "monotonic"); /* the default clock */
    Py_DECREF(time);
    if (monotonic == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "CLeaseRoundRobin", (PyObject *)&FloorType) < 0 ||
        PyModule_AddObjectRef(m, "Lease", (PyObject *)&LeaseType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
