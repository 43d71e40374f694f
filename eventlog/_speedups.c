/* Optional C speed-ups for eventlog. Every function here has a pure-Python equivalent that is used when this
 * module is not built, and tests check that both give the same answers.
 *
 * NeedleScanner: where the first of a set of lower-case byte strings ("needles") occurs in a bytes object read
 * with ASCII letters lower-cased, as bytes.lower() does. The redaction pre-filter asks it whether a record's
 * encoded request and response may hold anything a rule could touch; almost none do. A bitmap over the first two
 * lower-cased bytes of every needle rejects almost every position with one look-up; the few positions it lets
 * through are compared with the needles that start with their byte.
 *
 * has_userinfo: whether a URL in a bytes object carries a password (scheme://user:password@), as the pre-filter's
 * regex for it finds.
 *
 * has_shape: whether a bytes object holds a token of a family that has no literal to search for (Twilio, Discord,
 * Telegram, Mailchimp), as the pre-filter's regex SHAPE_BYTES finds: one pass over its runs of token bytes.
 *
 * plain_floats: the proof walk of canonical_json's fast path (eventlog/format/canonical.py, _plain_floats): whether a
 * value is made of exact JSON types only, and its floats. canonical_fast: that whole fast path (_canonical_fast)
 * in one call.
 */

#define _GNU_SOURCE /* memmem */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_arguments.h"
#include <stdint.h>
#include <string.h>

static unsigned char lower_table[256];

typedef struct {
    PyObject_HEAD
    uint8_t pairs[65536 / 8];     /* bit (a << 8 | b): some needle starts with bytes a, b */
    uint8_t singles[256 / 8];     /* bit a: some needle is the one byte a */
    Py_ssize_t count;
    Py_ssize_t *lengths;
    unsigned char **needles;      /* lower-case bytes of each needle */
    Py_ssize_t *first_of;         /* per first byte: the last needle given that starts with it, or -1 */
    Py_ssize_t *next_of;          /* per needle: the one given before it with the same first byte, or -1 */
    int has_singles;              /* some needle is one byte long */
    /* Nibble tables of the vector filter: bit k of lo1[v & 15] & hi1[v >> 4] is set when byte v may be the
     * first byte of a needle of bucket k (either case), and likewise lo2, hi2 for the second byte and lo3, hi3
     * for the third (any byte, for a needle of two bytes). */
    uint8_t lo1[16], hi1[16], lo2[16], hi2[16], lo3[16], hi3[16];
} NeedleScanner;

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define HAVE_VECTOR_FILTER 1
#include <tmmintrin.h>
static int use_vector_filter;     /* the CPU has SSSE3 */
#endif

static void
scanner_free_arrays(NeedleScanner *self)
{
    if (self->needles != NULL) {
        for (Py_ssize_t i = 0; i < self->count; i++) {
            PyMem_Free(self->needles[i]);
        }
    }
    PyMem_Free(self->needles);
    PyMem_Free(self->lengths);
    PyMem_Free(self->first_of);
    PyMem_Free(self->next_of);
    self->needles = NULL;
    self->lengths = NULL;
    self->first_of = NULL;
    self->next_of = NULL;
    self->count = 0;
}

static void
scanner_dealloc(NeedleScanner *self)
{
    scanner_free_arrays(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Let the first bytes of a needle (lower case; an ASCII letter in either case) pass the vector filter's tests for
 * the buckets in `bits`: its first, second and third byte, or any third byte for a needle of two. */
static void
note_in_filter(NeedleScanner *self, const unsigned char *needle, Py_ssize_t length, uint8_t bits)
{
    for (int k = 0; k < 2; k++) {
        for (int place = 0; place < 3; place++) {
            uint8_t *lo = place == 0 ? self->lo1 : place == 1 ? self->lo2 : self->lo3;
            uint8_t *hi = place == 0 ? self->hi1 : place == 1 ? self->hi2 : self->hi3;
            if (place >= length) {
                for (int nibble = 0; nibble < 16; nibble++) {
                    lo[nibble] |= bits;
                    hi[nibble] |= bits;
                }
                continue;
            }
            unsigned char c = needle[place];
            if (k == 1 && c >= 'a' && c <= 'z') {
                c = (unsigned char)(c - ('a' - 'A'));
            }
            lo[c & 15] |= bits;
            hi[c >> 4] |= bits;
        }
    }
}

static int
scanner_init(NeedleScanner *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"needles", NULL};
    PyObject *given;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:NeedleScanner", keywords, &given)) {
        return -1;
    }
    PyObject *items = PySequence_Fast(given, "needles must be a sequence of bytes");
    if (items == NULL) {
        return -1;
    }
    scanner_free_arrays(self);
    memset(self->pairs, 0, sizeof(self->pairs));
    memset(self->singles, 0, sizeof(self->singles));
    memset(self->lo1, 0, sizeof(self->lo1));
    memset(self->hi1, 0, sizeof(self->hi1));
    memset(self->lo2, 0, sizeof(self->lo2));
    memset(self->hi2, 0, sizeof(self->hi2));
    memset(self->lo3, 0, sizeof(self->lo3));
    memset(self->hi3, 0, sizeof(self->hi3));
    self->has_singles = 0;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    self->needles = PyMem_Calloc(count ? count : 1, sizeof(unsigned char *));
    self->lengths = PyMem_Calloc(count ? count : 1, sizeof(Py_ssize_t));
    self->next_of = PyMem_Calloc(count ? count : 1, sizeof(Py_ssize_t));
    self->first_of = PyMem_Calloc(256, sizeof(Py_ssize_t));
    if (self->needles == NULL || self->lengths == NULL || self->next_of == NULL || self->first_of == NULL) {
        Py_DECREF(items);
        scanner_free_arrays(self);
        PyErr_NoMemory();
        return -1;
    }
    int bucket_of[256];
    int buckets = 0;
    for (int b = 0; b < 256; b++) {
        self->first_of[b] = -1;
        bucket_of[b] = -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(items, i);
        char *data;
        Py_ssize_t length;
        if (!PyBytes_Check(item) || PyBytes_AsStringAndSize(item, &data, &length) < 0 || length == 0) {
            Py_DECREF(items);
            self->count = i;
            scanner_free_arrays(self);
            PyErr_Format(PyExc_ValueError, "needle %zd is not a non-empty bytes object", i);
            return -1;
        }
        self->needles[i] = PyMem_Malloc(length);
        if (self->needles[i] == NULL) {
            Py_DECREF(items);
            self->count = i;
            scanner_free_arrays(self);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(self->needles[i], data, length);
        self->lengths[i] = length;
        self->count = i + 1;
        unsigned char first = self->needles[i][0];
        if (length == 1) {
            self->has_singles = 1;
            self->singles[first >> 3] |= (uint8_t)(1u << (first & 7));
            for (int b = 0; b < 256; b++) {
                unsigned pair = (unsigned)first << 8 | (unsigned)b;
                self->pairs[pair >> 3] |= (uint8_t)(1u << (pair & 7));
            }
        }
        else {
            unsigned pair = (unsigned)first << 8 | self->needles[i][1];
            self->pairs[pair >> 3] |= (uint8_t)(1u << (pair & 7));
            /* One bucket per first byte (round robin past eight), so that a bucket's second bytes are few. */
            if (bucket_of[first] < 0) {
                bucket_of[first] = buckets++ % 8;
            }
            note_in_filter(self, self->needles[i], length, (uint8_t)(1u << bucket_of[first]));
        }
        /* Prepend to its first byte's list: needles are compared in reverse order, which finds the same
         * earliest position, since every needle starting there is tried before moving on. */
        self->next_of[i] = self->first_of[first];
        self->first_of[first] = i;
    }
    Py_DECREF(items);
    return 0;
}

static int
matches_at(const NeedleScanner *self, const unsigned char *data, Py_ssize_t size, Py_ssize_t at)
{
    for (Py_ssize_t i = self->first_of[lower_table[data[at]]]; i >= 0; i = self->next_of[i]) {
        Py_ssize_t length = self->lengths[i];
        if (length > size - at) {
            continue;
        }
        const unsigned char *needle = self->needles[i];
        Py_ssize_t k = 1;
        while (k < length && lower_table[data[at + k]] == needle[k]) {
            k++;
        }
        if (k == length) {
            return 1;
        }
    }
    return 0;
}

/* The first needle at or after `start` (< size), byte pair by byte pair; -1 if none. */
static Py_ssize_t
find_scalar(const NeedleScanner *self, const unsigned char *data, Py_ssize_t size, Py_ssize_t start)
{
    unsigned previous = lower_table[data[start]];
    for (Py_ssize_t at = start; at + 1 < size; at++) {
        unsigned current = lower_table[data[at + 1]];
        unsigned pair = previous << 8 | current;
        previous = current;
        if ((self->pairs[pair >> 3] >> (pair & 7)) & 1 && matches_at(self, data, size, at)) {
            return at;
        }
    }
    unsigned last = lower_table[data[size - 1]];
    return (self->singles[last >> 3] >> (last & 7)) & 1 ? size - 1 : -1;
}

#ifdef HAVE_VECTOR_FILTER
/* Bucket bits of 16 bytes: those k where the byte may be of bucket k by both of its nibbles. */
__attribute__((target("ssse3"))) static inline __m128i
classify(__m128i bytes, __m128i lo, __m128i hi)
{
    __m128i low_nibbles = _mm_and_si128(bytes, _mm_set1_epi8(0x0f));
    __m128i high_nibbles = _mm_and_si128(_mm_srli_epi16(bytes, 4), _mm_set1_epi8(0x0f));
    return _mm_and_si128(_mm_shuffle_epi8(lo, low_nibbles), _mm_shuffle_epi8(hi, high_nibbles));
}

/* The first needle at or after *start, 16 positions at a time: a position passes when its byte and the next two
 * fall in one bucket, and only those are checked exactly. Leaves in *start where the positions it did not look at
 * begin, and returns -1, when it finds none. Needs needles of two bytes or more. */
__attribute__((target("ssse3"))) static Py_ssize_t
find_vector(const NeedleScanner *self, const unsigned char *data, Py_ssize_t size, Py_ssize_t *start)
{
    const __m128i lo1 = _mm_loadu_si128((const __m128i *)self->lo1);
    const __m128i hi1 = _mm_loadu_si128((const __m128i *)self->hi1);
    const __m128i lo2 = _mm_loadu_si128((const __m128i *)self->lo2);
    const __m128i hi2 = _mm_loadu_si128((const __m128i *)self->hi2);
    const __m128i lo3 = _mm_loadu_si128((const __m128i *)self->lo3);
    const __m128i hi3 = _mm_loadu_si128((const __m128i *)self->hi3);
    Py_ssize_t at = *start;
    for (; at + 18 <= size; at += 16) {
        __m128i first = _mm_loadu_si128((const __m128i *)(data + at));
        __m128i second = _mm_loadu_si128((const __m128i *)(data + at + 1));
        __m128i third = _mm_loadu_si128((const __m128i *)(data + at + 2));
        __m128i all = _mm_and_si128(_mm_and_si128(classify(first, lo1, hi1), classify(second, lo2, hi2)),
                                    classify(third, lo3, hi3));
        unsigned candidates = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(all, _mm_setzero_si128())) ^ 0xffffu;
        while (candidates) {
            Py_ssize_t position = at + __builtin_ctz(candidates);
            unsigned pair = (unsigned)lower_table[data[position]] << 8 | lower_table[data[position + 1]];
            if ((self->pairs[pair >> 3] >> (pair & 7)) & 1 && matches_at(self, data, size, position)) {
                return position;
            }
            candidates &= candidates - 1;
        }
    }
    *start = at;
    return -1;
}
#endif

/* The first needle at or after `start` (>= 0), or -1. */
static Py_ssize_t
scanner_search(const NeedleScanner *self, const unsigned char *data, Py_ssize_t size, Py_ssize_t start)
{
    if (self->count == 0 || start >= size) {
        return -1;
    }
#ifdef HAVE_VECTOR_FILTER
    if (use_vector_filter && !self->has_singles) {
        Py_ssize_t found = find_vector(self, data, size, &start);
        if (found >= 0) {
            return found;
        }
    }
#endif
    return find_scalar(self, data, size, start);
}

PyDoc_STRVAR(scanner_find_doc,
"find(data, start=0, /)\n--\n\n"
"The first position at or after start where a needle occurs in data read with ASCII letters lower-cased, or -1.");

static PyObject *
scanner_find(NeedleScanner *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "find() takes data and an optional start");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Py_ssize_t start = 0;
    if (nargs == 2) {
        start = PyLong_AsSsize_t(args[1]);
        if (start == -1 && PyErr_Occurred()) {
            PyBuffer_Release(&view);
            return NULL;
        }
        if (start < 0) {
            start = 0;
        }
    }
    Py_ssize_t found = scanner_search(self, view.buf, view.len, start);
    PyBuffer_Release(&view);
    return PyLong_FromSsize_t(found);
}

/* Bytes that end the user name (A) and the password (B) of user info in a URL: whitespace as the regex \s of
 * bytes patterns reads it, and / ? # @ ' " \, plus : for the user name. */
static int
ends_user(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || c == '/' || c == '?' || c == '#' || c == '@' || c == '\''
        || c == '"' || c == '\\' || c == ':';
}

static int
ends_password(unsigned char c)
{
    return c != ':' && ends_user(c);
}

PyDoc_STRVAR(has_userinfo_doc,
"has_userinfo(data, /)\n--\n\n"
"Whether data holds user info with a password in a URL, as eventlog.redaction.prefilter.USERINFO_BYTES.search finds it:\n"
"://, a user name, :, a non-empty password, @.");

static int
userinfo_in(const unsigned char *data, Py_ssize_t size)
{
    const unsigned char *scheme = data;
    while (size >= 3 && (scheme = memchr(scheme, ':', size - (scheme - data) - 2)) != NULL) {
        Py_ssize_t at = scheme - data;
        scheme++;
        if (data[at + 1] != '/' || data[at + 2] != '/') {
            continue;
        }
        /* Each run stops at its first ending byte, which must be the one the pattern needs next. */
        Py_ssize_t i = at + 3;
        while (i < size && !ends_user(data[i])) {
            i++;
        }
        if (i >= size || data[i] != ':') {
            continue;
        }
        Py_ssize_t password = ++i;
        while (i < size && !ends_password(data[i])) {
            i++;
        }
        if (i < size && i > password && data[i] == '@') {
            return 1;
        }
    }
    return 0;
}

static PyObject *
has_userinfo(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int found = userinfo_in(view.buf, view.len);
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

/* Token bytes ([A-Za-z0-9_-]): the runs the shapes below are made of; filled in at module start. */
static unsigned char token_table[256];

static int
lower_alnum(const unsigned char *data, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        if (!((data[i] >= 'a' && data[i] <= 'z') || (data[i] >= '0' && data[i] <= '9'))) {
            return 0;
        }
    }
    return 1;
}

static int
digits(const unsigned char *data, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        if (data[i] < '0' || data[i] > '9') {
            return 0;
        }
    }
    return 1;
}

/* The length of the run of token bytes at `at`. */
static Py_ssize_t
run_at(const unsigned char *data, Py_ssize_t size, Py_ssize_t at)
{
    Py_ssize_t end = at;
    while (end < size && token_table[data[end]]) {
        end++;
    }
    return end - at;
}

/* Whether the whole run [start, end) of 24 or more token bytes is a token of a shape, or begins a Discord one. */
static int
long_run_is_shape(const unsigned char *data, Py_ssize_t size, Py_ssize_t start, Py_ssize_t end)
{
    const unsigned char *r = data + start;
    Py_ssize_t run = end - start;
    if (run == 34 && ((r[0] == 'A' && r[1] == 'C') || (r[0] == 'S' && r[1] == 'K')) && lower_alnum(r + 2, 32)) {
        return 1; /* Twilio account SID or API key */
    }
    if ((run == 36 || run == 37) && lower_alnum(r, 32) && r[32] == '-' && r[33] == 'u' && r[34] == 's'
        && digits(r + 35, run - 35)) {
        return 1; /* Mailchimp API key */
    }
    return run <= 26 && (r[0] == 'M' || r[0] == 'N' || r[0] == 'O') && end < size && data[end] == '.'
        && run_at(data, size, end + 1) == 6 && end + 7 < size && data[end + 7] == '.'
        && run_at(data, size, end + 8) >= 27; /* Discord bot token */
}

/* Where a run's token starts once a JSON escape before it is skipped: a run starting right after a backslash began
 * inside an escape (\n, \u0001), whose letters are no part of the token. `start` where there is none. */
static Py_ssize_t
unescaped_start(const unsigned char *data, Py_ssize_t end, Py_ssize_t start)
{
    if (start == 0 || data[start - 1] != '\\') {
        return start;
    }
    unsigned char c = data[start];
    if (c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
        return start + 1;
    }
    return c == 'u' && end - start >= 5 ? start + 5 : start;
}

/* Whether the run of token bytes around `probe` (a token byte) is a token of a shape; sets *end past the run. */
static int
run_is_shape(const unsigned char *data, Py_ssize_t size, Py_ssize_t probe, Py_ssize_t *end_out)
{
    Py_ssize_t start = probe;
    while (start > 0 && token_table[data[start - 1]]) {
        start--;
    }
    Py_ssize_t end = probe + 1 + run_at(data, size, probe + 1);
    *end_out = end;
    Py_ssize_t from = unescaped_start(data, end, start);
    if (end - start >= 24 && (long_run_is_shape(data, size, start, end)
                              || (from != start && end - from >= 24 && long_run_is_shape(data, size, from, end)))) {
        return 1;
    }
    if (end - start == 35 && start >= 9 && data[start - 1] == ':') {
        Py_ssize_t digits_start = start - 1;
        while (digits_start > 0 && token_table[data[digits_start - 1]]) {
            digits_start--;
        }
        for (int k = 0; k < 2; k++) {
            Py_ssize_t count = start - 1 - digits_start;
            if (count >= 8 && count <= 10 && digits(data + digits_start, count)) {
                return 1; /* Telegram bot token: 8 to 10 digits, ':' and this run */
            }
            digits_start = unescaped_start(data, start - 1, digits_start);
        }
    }
    return 0;
}

/* Token bytes among 8 bytes at `at` (fewer at the end of the data), one bit each, by table. */
static unsigned
token_bits8(const unsigned char *data, Py_ssize_t size, Py_ssize_t at)
{
    unsigned bits = 0;
    for (Py_ssize_t k = 0; k < 8 && at + k < size; k++) {
        bits |= (unsigned)token_table[data[at + k]] << k;
    }
    return bits;
}

#if defined(__SSE2__)
#include <emmintrin.h>
/* Token bytes among the 16 bytes at `data`, one bit each: letters, digits, '_' and '-'. */
static inline unsigned
token_bits16(const unsigned char *data)
{
    __m128i v = _mm_loadu_si128((const __m128i *)data);
    __m128i folded = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* ASCII letters to lower case; bytes >= 0x80 stay
                                                              negative, so outside every signed range below */
    __m128i letter = _mm_and_si128(_mm_cmpgt_epi8(folded, _mm_set1_epi8('a' - 1)),
                                   _mm_cmpgt_epi8(_mm_set1_epi8('z' + 1), folded));
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)), _mm_cmpgt_epi8(_mm_set1_epi8('9' + 1), v));
    __m128i other = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('_')), _mm_cmpeq_epi8(v, _mm_set1_epi8('-')));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(letter, digit), other));
}
#endif

/* Every shape is, starts with or (Telegram's) ends with a whole run of 24 or more token bytes. Such a run covers
 * two whole consecutive groups of 8 bytes (groups at multiples of 8), so groups are classified 16 bytes at a time
 * and a run is measured only where two consecutive groups are all token bytes. */
static int
shape_in(const unsigned char *data, Py_ssize_t size)
{
    unsigned previous = 0; /* token bits of the group before `at` */
    Py_ssize_t skip_to = 0; /* runs measured already end here */
    for (Py_ssize_t at = 0; at < size; at += 16) {
        unsigned bits;
#if defined(__SSE2__)
        if (at + 16 <= size) {
            bits = token_bits16(data + at);
        }
        else
#endif
        {
            bits = token_bits8(data, size, at) | token_bits8(data, size, at + 8) << 8;
        }
        unsigned low = bits & 0xff, high = bits >> 8;
        Py_ssize_t probe = -1;
        if (previous == 0xff && low == 0xff) {
            probe = at;
        }
        else if (low == 0xff && high == 0xff) {
            probe = at + 8;
        }
        previous = high;
        if (probe >= skip_to) {
            Py_ssize_t end;
            if (run_is_shape(data, size, probe, &end)) {
                return 1;
            }
            skip_to = end;
        }
    }
    return 0;
}

PyDoc_STRVAR(has_shape_doc,
"has_shape(data, /)\n--\n\n"
"Whether data holds a token of a shape without a literal (Twilio, Discord, Telegram, Mailchimp), as\n"
"eventlog.redaction.prefilter.SHAPE_BYTES.search finds it.");

static PyObject *
has_shape(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int found = shape_in(view.buf, view.len);
    PyBuffer_Release(&view);
    return PyBool_FromLong(found);
}

PyDoc_STRVAR(scanner_clear_of_doc,
"clear_of(*texts)\n--\n\n"
"Whether no needle, no password in a URL (see has_userinfo) and no token of a shape (see has_shape) occurs in any of\n"
"the texts.");

static PyObject *
scanner_clear_of(NeedleScanner *self, PyObject *const *args, Py_ssize_t nargs)
{
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(args[i], &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        int found = scanner_search(self, view.buf, view.len, 0) >= 0 || userinfo_in(view.buf, view.len)
            || shape_in(view.buf, view.len);
        PyBuffer_Release(&view);
        if (found) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(plain_floats_doc,
"plain_floats(value, keys_at_risk, limit, /)\n--\n\n"
"The floats in `value` (in no set order) if it is made of exact dict (with exact str keys), list, tuple, str, int,\n"
"bool, None and float only; None if anything else is in it, if `keys_at_risk` and a key has a character at or\n"
"above U+E000, or past `limit` floats. The walk keeps a stack of its own, so depth costs no C stack.");

/* Containers still to look into: borrowed references, which stay valid since no Python code runs during the
 * walk. */
typedef struct {
    PyObject **items;
    Py_ssize_t size, capacity;
} Pending;

/* 0, or -1 with MemoryError set. */
static int
push(Pending *pending, PyObject *item)
{
    if (pending->size == pending->capacity) {
        Py_ssize_t capacity = pending->capacity * 2;
        PyObject **items = PyMem_Realloc(pending->items, (size_t)capacity * sizeof(PyObject *));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        pending->items = items;
        pending->capacity = capacity;
    }
    pending->items[pending->size++] = item;
    return 0;
}

/* 1: nothing to refuse so far; 0: refused; -1: an error. */
static int
note_scalar_or_push(PyObject *item, PyObject *floats, Pending *pending, Py_ssize_t limit)
{
    PyTypeObject *type = Py_TYPE(item);
    if (type == &PyUnicode_Type || type == &PyLong_Type || type == &PyBool_Type || item == Py_None) {
        return 1;
    }
    if (type == &PyFloat_Type) {
        if (PyList_Append(floats, item) < 0) {
            return -1;
        }
        return PyList_GET_SIZE(floats) <= limit;
    }
    if (type == &PyDict_Type || type == &PyList_Type || type == &PyTuple_Type) {
        return push(pending, item) < 0 ? -1 : 1;
    }
    return 0;
}

static int
high_key(PyObject *key)
{
    if (PyUnicode_MAX_CHAR_VALUE(key) < 0xE000) {
        return 0;
    }
    int kind = PyUnicode_KIND(key);
    const void *data = PyUnicode_DATA(key);
    for (Py_ssize_t i = 0, n = PyUnicode_GET_LENGTH(key); i < n; i++) {
        if (PyUnicode_READ(kind, data, i) >= 0xE000) {
            return 1;
        }
    }
    return 0;
}

/* The floats of `value`, a new list, or None (a new reference) when the walk refuses it; NULL on error. The
 * containers wait on a stack of their own, so depth costs no C stack. */
static PyObject *
walk_floats(PyObject *value, int keys_at_risk, Py_ssize_t limit)
{
    Pending pending = {PyMem_Malloc(64 * sizeof(PyObject *)), 0, 64};
    PyObject *floats = PyList_New(0);
    if (floats == NULL || pending.items == NULL) {
        if (pending.items == NULL) {
            PyErr_NoMemory();
        }
        Py_XDECREF(floats);
        PyMem_Free(pending.items);
        return NULL;
    }
    int ok = note_scalar_or_push(value, floats, &pending, limit);
    while (ok == 1 && pending.size > 0) {
        PyObject *item = pending.items[--pending.size];
        if (PyDict_CheckExact(item)) {
            Py_ssize_t position = 0;
            PyObject *key, *child;
            while (ok == 1 && PyDict_Next(item, &position, &key, &child)) {
                if (!PyUnicode_CheckExact(key) || (keys_at_risk && high_key(key))) {
                    ok = 0;
                }
                else {
                    ok = note_scalar_or_push(child, floats, &pending, limit);
                }
            }
        }
        else {
            PyObject **items = PySequence_Fast_ITEMS(item);  /* an exact list or tuple */
            Py_ssize_t count = PySequence_Fast_GET_SIZE(item);
            for (Py_ssize_t k = 0; ok == 1 && k < count; k++) {
                ok = note_scalar_or_push(items[k], floats, &pending, limit);
            }
        }
    }
    PyMem_Free(pending.items);
    if (ok < 0) {
        Py_DECREF(floats);
        return NULL;
    }
    if (ok == 0) {
        Py_DECREF(floats);
        Py_RETURN_NONE;
    }
    return floats;
}

static PyObject *
plain_floats(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!argument_count_is("plain_floats", nargs, 3)) {
        return NULL;
    }
    int keys_at_risk = PyObject_IsTrue(args[1]);
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (keys_at_risk < 0 || (limit == -1 && PyErr_Occurred())) {
        return NULL;
    }
    return walk_floats(args[0], keys_at_risk, limit);
}

/* Code point order (msgspec) and UTF-16 order (JCS) differ only between U+E000..U+FFFF (UTF-8 lead byte EE or
 * EF) and characters above U+FFFF (lead bytes F0..F4); with both in the output, the keys need a look. */
static int
keys_at_risk_in(const unsigned char *data, Py_ssize_t size)
{
    /* memchr is the fastest search libc has; most outputs hold neither EE nor EF. */
    if (memchr(data, 0xEE, (size_t)size) == NULL && memchr(data, 0xEF, (size_t)size) == NULL) {
        return 0;
    }
    for (int lead = 0xF0; lead <= 0xF4; lead++) {
        if (memchr(data, lead, (size_t)size) != NULL) {
            return 1;
        }
    }
    return 0;
}

static int
contains(const char *data, Py_ssize_t size, const char *needle)
{
    size_t length = strlen(needle);
    return size >= (Py_ssize_t)length && memmem(data, (size_t)size, needle, length) != NULL;
}

PyDoc_STRVAR(canonical_fast_doc,
"canonical_fast(value, encode, limit, /)\n--\n\n"
"canonical_json's fast path (eventlog/format/canonical.py, _canonical_fast) in one call: `encode` is msgspec's sorted\n"
"encoder's encode. Returns its output where that is proven to be RFC 8785, a 1-tuple holding it where only its\n"
"float tokens need another layout, or None where the exact path must decide.");

static PyObject *
canonical_fast(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!argument_count_is("canonical_fast", nargs, 3)) {
        return NULL;
    }
    PyObject *value = args[0], *encode = args[1];
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *out = PyObject_CallOneArg(encode, value);
    if (out == NULL) {
        /* An unsupported type, a non-string key, a lone surrogate, a cycle: the exact path explains it. */
        if (PyErr_ExceptionMatches(PyExc_Exception)) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
        return NULL;
    }
    if (!PyBytes_Check(out)) {
        Py_DECREF(out);
        PyErr_SetString(PyExc_TypeError, "encode must return bytes");
        return NULL;
    }
    int at_risk = keys_at_risk_in((const unsigned char *)PyBytes_AS_STRING(out), PyBytes_GET_SIZE(out));
    PyObject *floats = walk_floats(value, at_risk, limit);
    if (floats == NULL || floats == Py_None || PyList_GET_SIZE(floats) == 0) {
        if (floats == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        int refused = floats == Py_None;
        Py_DECREF(floats);
        if (refused) {
            Py_DECREF(out);
            Py_RETURN_NONE;
        }
        return out;
    }
    PyObject *tokens = PyObject_CallOneArg(encode, floats);
    Py_DECREF(floats);
    if (tokens == NULL || !PyBytes_Check(tokens)) {
        Py_XDECREF(tokens);
        Py_DECREF(out);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "encode must return bytes");
        }
        return NULL;
    }
    const char *text = PyBytes_AS_STRING(tokens);
    Py_ssize_t size = PyBytes_GET_SIZE(tokens);
    int nan_or_infinity = contains(text, size, "null");
    /* Fixed notation without ".0" is already the ECMAScript layout (see _jcs_float). */
    int relayout = contains(text, size, "e") || contains(text, size, ".0,") || contains(text, size, ".0]");
    Py_DECREF(tokens);
    if (nan_or_infinity) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    if (!relayout) {
        return out;
    }
    PyObject *pending = PyTuple_Pack(1, out);
    Py_DECREF(out);
    return pending;
}

PyDoc_STRVAR(no_repeated_key_doc,
"no_repeated_key(data, value, /)\n--\n\n"
"Whether `data`, valid JSON bytes that msgspec decoded to `value`, is proven free of repeated keys (which the\n"
"decode drops silently). In valid JSON each raw ':' is a name separator, one per member, or sits in a string.\n"
"Without the escapes \\u0030..\\u003f in `data`, no string gains a ':' by decoding, so the raw count equals the\n"
"keys of `value` plus the ':' in its strings unless a member was dropped, which takes its separator with it.\n"
"False asks for the slow check; so does anything in `value` that a JSON decode does not make.");

static Py_ssize_t
colons_in(PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), count = 0;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (kind == PyUnicode_1BYTE_KIND) {  /* ASCII or Latin-1: the byte 0x3A is ':' and nothing else */
        const char *at = data, *end = at + n;
        while ((at = memchr(at, ':', (size_t)(end - at))) != NULL) {
            count++;
            at++;
        }
        return count;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        count += PyUnicode_READ(kind, data, i) == ':';
    }
    return count;
}

/* The colons a member or item adds: those of a string; containers go on the stack. -1: refused (a type a
 * JSON decode does not make); -2: an error. */
static Py_ssize_t
colons_or_push(PyObject *item, Pending *pending)
{
    PyTypeObject *type = Py_TYPE(item);
    if (type == &PyUnicode_Type) {
        return colons_in(item);
    }
    if (type == &PyLong_Type || type == &PyFloat_Type || type == &PyBool_Type || item == Py_None) {
        return 0;
    }
    if (type != &PyDict_Type && type != &PyList_Type) {
        return -1;
    }
    return push(pending, item) < 0 ? -2 : 0;
}

static PyObject *
no_repeated_key(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!argument_count_is("no_repeated_key", nargs, 2)) {
        return NULL;
    }
    if (!PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "no_repeated_key() takes bytes as its first argument");
        return NULL;
    }
    const char *data = PyBytes_AS_STRING(args[0]), *end = data + PyBytes_GET_SIZE(args[0]);
    if (contains(data, end - data, "\\u003")) {
        Py_RETURN_FALSE;
    }
    Py_ssize_t raw = 0;
    for (const char *at = data; (at = memchr(at, ':', (size_t)(end - at))) != NULL; at++) {
        raw++;
    }
    Pending pending = {PyMem_Malloc(64 * sizeof(PyObject *)), 0, 64};
    if (pending.items == NULL) {
        return PyErr_NoMemory();
    }
    /* No Python code runs during the walk, so the borrowed references on the stack stay valid. */
    Py_ssize_t counted = colons_or_push(args[1], &pending);
    while (counted >= 0 && counted <= raw && pending.size > 0) {
        PyObject *item = pending.items[--pending.size];
        if (PyDict_CheckExact(item)) {
            Py_ssize_t position = 0;
            PyObject *key, *child;
            counted += PyDict_GET_SIZE(item);  /* one separator per key */
            while (counted <= raw && PyDict_Next(item, &position, &key, &child)) {
                if (!PyUnicode_CheckExact(key)) {
                    counted = -1;
                    break;
                }
                Py_ssize_t added = colons_or_push(child, &pending);
                if (added < 0) {
                    counted = added;
                    break;
                }
                counted += colons_in(key) + added;
            }
        }
        else {
            PyObject **items = PySequence_Fast_ITEMS(item);  /* an exact list */
            for (Py_ssize_t k = 0, count = PyList_GET_SIZE(item); counted <= raw && k < count; k++) {
                Py_ssize_t added = colons_or_push(items[k], &pending);
                if (added < 0) {
                    counted = added;
                    break;
                }
                counted += added;
            }
        }
    }
    PyMem_Free(pending.items);
    if (counted == -2) {
        return NULL;
    }
    return PyBool_FromLong(counted == raw);
}

static PyMethodDef module_methods[] = {
    {"has_userinfo", has_userinfo, METH_O, has_userinfo_doc},
    {"has_shape", has_shape, METH_O, has_shape_doc},
    {"plain_floats", (PyCFunction)(void (*)(void))plain_floats, METH_FASTCALL, plain_floats_doc},
    {"canonical_fast", (PyCFunction)(void (*)(void))canonical_fast, METH_FASTCALL, canonical_fast_doc},
    {"no_repeated_key", (PyCFunction)(void (*)(void))no_repeated_key, METH_FASTCALL, no_repeated_key_doc},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef scanner_methods[] = {
    {"find", (PyCFunction)(void (*)(void))scanner_find, METH_FASTCALL, scanner_find_doc},
    {"clear_of", (PyCFunction)(void (*)(void))scanner_clear_of, METH_FASTCALL, scanner_clear_of_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(scanner_doc,
"NeedleScanner(needles)\n--\n\n"
"Finds the first occurrence of any of the given non-empty lower-case byte strings in data read with ASCII\n"
"letters lower-cased.");

static PyTypeObject NeedleScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "eventlog._speedups.NeedleScanner",
    .tp_basicsize = sizeof(NeedleScanner),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = scanner_doc,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)scanner_init,
    .tp_dealloc = (destructor)scanner_dealloc,
    .tp_methods = scanner_methods,
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "eventlog._speedups",
    .m_doc = "Optional C speed-ups for eventlog; each has a pure-Python equivalent.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    for (int b = 0; b < 256; b++) {
        lower_table[b] = (unsigned char)((b >= 'A' && b <= 'Z') ? b + ('a' - 'A') : b);
        token_table[b] = (unsigned char)((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9')
                                         || b == '_' || b == '-');
    }
#ifdef HAVE_VECTOR_FILTER
    __builtin_cpu_init();
    use_vector_filter = __builtin_cpu_supports("ssse3");
#endif
    if (PyType_Ready(&NeedleScannerType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&NeedleScannerType);
    if (PyModule_AddObject(module, "NeedleScanner", (PyObject *)&NeedleScannerType) < 0) {
        Py_DECREF(&NeedleScannerType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
