/* Shared by eventlog's optional C modules. */

#ifndef EVENTLOG_ARGUMENTS_H
#define EVENTLOG_ARGUMENTS_H

#include <Python.h>

/* Whether a METH_FASTCALL function got the number of arguments it takes; a TypeError when not. */
static inline int
argument_count_is(const char *function, Py_ssize_t given, Py_ssize_t wanted)
{
    if (given == wanted) {
        return 1;
    }
    PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", function, wanted, given);
    return 0;
}

#endif
