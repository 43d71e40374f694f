/* Optional C assembly of log lines. Every function here has a pure-Python equivalent (eventlog/log/prepare.py, eventlog/log/writer.py,
 * eventlog/format/events.py, eventlog/format/envelope.py, eventlog/log/seals.py, eventlog/log/index.py) that is used when this module is
 * not built, and tests check byte for byte that both give the same answers.
 *
 * It does the per-record work of an append that is neither canonical encoding nor redaction: the content hash,
 * the derived exchange id, the envelope around the payload, the event line with its digest and chain hash, the
 * index row and the Merkle tree of the segment's seal. Hashes come from OpenSSL's libcrypto, as hashlib's do.
 *
 * Strings are written as their UTF-8 bytes, as str.encode() writes them; a lone surrogate raises
 * UnicodeEncodeError, and callers then take the Python path, which names the problem.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_arguments.h"
#include <datetime.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <string.h>

static EVP_MD *sha256_md;
static EVP_MD *sha1_md;
static EVP_MD_CTX *md_ctx;
static PyObject *observed_text;
static PyObject *revisited_text;

static const char hex_digits[] = "0123456789abcdef";

/* ------------------------------------------------------------------------------------------------------------ */
/* Hashing */

typedef struct {
    const char *data;
    Py_ssize_t size;
} Piece;

#define LITERAL(text) ((Piece){(text), (Py_ssize_t)sizeof(text) - 1})

static int
digest_pieces(const EVP_MD *md, const Piece *pieces, int count, unsigned char *out)
{
    if (!EVP_DigestInit_ex2(md_ctx, md, NULL)) {
        goto failed;
    }
    for (int i = 0; i < count; i++) {
        if (pieces[i].size > 0 && !EVP_DigestUpdate(md_ctx, pieces[i].data, (size_t)pieces[i].size)) {
            goto failed;
        }
    }
    if (!EVP_DigestFinal_ex(md_ctx, out, NULL)) {
        goto failed;
    }
    return 0;
failed:
    PyErr_SetString(PyExc_RuntimeError, "an OpenSSL digest failed");
    return -1;
}

static void
write_hex(char *out, const unsigned char *digest, int size)
{
    for (int i = 0; i < size; i++) {
        out[2 * i] = hex_digits[digest[i] >> 4];
        out[2 * i + 1] = hex_digits[digest[i] & 15];
    }
}

/* The index's look-up key of a text: the first 8 bytes of its SHA-256, big-endian, signed. */
static PyObject *
lookup_key_of(const char *text, Py_ssize_t size)
{
    unsigned char digest[32];
    Piece piece = {text, size};
    if (digest_pieces(sha256_md, &piece, 1, digest) < 0) {
        return NULL;
    }
    uint64_t value = 0;
    for (int i = 0; i < 8; i++) {
        value = value << 8 | digest[i];
    }
    int64_t key = value > (uint64_t)INT64_MAX ? -(int64_t)(~value) - 1 : (int64_t)value;
    return PyLong_FromLongLong((long long)key);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* Argument helpers */

static int
utf8_of(PyObject *object, const char *what, Piece *out)
{
    if (!PyUnicode_Check(object)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what, Py_TYPE(object)->tp_name);
        return -1;
    }
    out->data = PyUnicode_AsUTF8AndSize(object, &out->size);
    return out->data == NULL ? -1 : 0;
}

static int
bytes_of(PyObject *object, const char *what, Piece *out)
{
    if (!PyBytes_Check(object)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes, not %.100s", what, Py_TYPE(object)->tp_name);
        return -1;
    }
    out->data = PyBytes_AS_STRING(object);
    out->size = PyBytes_GET_SIZE(object);
    return 0;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* JSON strings, RFC 8785: '"' and '\' escaped, \b \f \n \r \t, other controls as \u00xx; the rest as is. */

static Py_ssize_t
json_string_size(Piece text)
{
    Py_ssize_t size = 2;
    for (Py_ssize_t i = 0; i < text.size; i++) {
        unsigned char c = (unsigned char)text.data[i];
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') {
            size += 2;
        }
        else if (c < 0x20) {
            size += 6;
        }
        else {
            size += 1;
        }
    }
    return size;
}

static char *
write_json_string(char *out, Piece text)
{
    *out++ = '"';
    for (Py_ssize_t i = 0; i < text.size; i++) {
        unsigned char c = (unsigned char)text.data[i];
        char escape = 0;
        switch (c) {
        case '"': escape = '"'; break;
        case '\\': escape = '\\'; break;
        case '\b': escape = 'b'; break;
        case '\f': escape = 'f'; break;
        case '\n': escape = 'n'; break;
        case '\r': escape = 'r'; break;
        case '\t': escape = 't'; break;
        default: break;
        }
        if (escape) {
            *out++ = '\\';
            *out++ = escape;
        }
        else if (c < 0x20) {
            memcpy(out, "\\u00", 4);
            out[4] = hex_digits[c >> 4];
            out[5] = hex_digits[c & 15];
            out += 6;
        }
        else {
            *out++ = (char)c;
        }
    }
    *out++ = '"';
    return out;
}

/* A JSON string, or null for None, in a new buffer (PyMem_Free it). */
static char *
encode_name(PyObject *object, const char *what, int nullable, Py_ssize_t *size)
{
    if (nullable && object == Py_None) {
        char *out = PyMem_Malloc(4);
        if (out == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        memcpy(out, "null", 4);
        *size = 4;
        return out;
    }
    Piece text;
    if (utf8_of(object, what, &text) < 0) {
        return NULL;
    }
    *size = json_string_size(text);
    char *out = PyMem_Malloc((size_t)*size);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    write_json_string(out, text);
    return out;
}

static char *
put(char *out, Piece piece)
{
    memcpy(out, piece.data, (size_t)piece.size);
    return out + piece.size;
}

static Py_ssize_t
total_size(const Piece *pieces, int count)
{
    Py_ssize_t size = 0;
    for (int i = 0; i < count; i++) {
        size += pieces[i].size;
    }
    return size;
}

static PyObject *
join_pieces(const Piece *pieces, int count)
{
    PyObject *result = PyBytes_FromStringAndSize(NULL, total_size(pieces, count));
    if (result == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(result);
    for (int i = 0; i < count; i++) {
        out = put(out, pieces[i]);
    }
    return result;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* prepare_record */

/* What prepare_record calls back into Python for, set once by set_helpers. */
static PyObject *helper_canonical;      /* eventlog.format.canonical.canonical_json */
static PyObject *helper_to_builtins;    /* msgspec.to_builtins, for a ResponseRef */
static PyObject *helper_normalize_id;   /* str(uuid.UUID(text)) */
static PyObject *helper_format_utc;     /* eventlog.format.envelope.format_utc, for times not in datetime.UTC */
static PyObject *helper_namespace;      /* bytes of the uuid5 namespace of derived exchange ids */
static PyTypeObject *helper_prepared;   /* eventlog.log.prepare.Prepared, a tuple subclass */

PyDoc_STRVAR(set_helpers_doc,
"set_helpers(canonical_json, to_builtins, normalize_id, format_utc, namespace, prepared_type, /)\n--\n\n"
"What prepare_record calls back into Python for; eventlog.log.prepare sets them once.");

static PyObject *
set_helpers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!argument_count_is("set_helpers", nargs, 6)) {
        return NULL;
    }
    if (!PyBytes_Check(args[4]) || !PyType_Check(args[5])
        || !PyType_IsSubtype((PyTypeObject *)args[5], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "namespace must be bytes and prepared_type a tuple subclass");
        return NULL;
    }
    Py_XSETREF(helper_canonical, Py_NewRef(args[0]));
    Py_XSETREF(helper_to_builtins, Py_NewRef(args[1]));
    Py_XSETREF(helper_normalize_id, Py_NewRef(args[2]));
    Py_XSETREF(helper_format_utc, Py_NewRef(args[3]));
    Py_XSETREF(helper_namespace, Py_NewRef(args[4]));
    Py_XSETREF(helper_prepared, (PyTypeObject *)Py_NewRef(args[5]));
    Py_RETURN_NONE;
}

/* format_utc of a datetime whose tzinfo is datetime.UTC; None (a new reference) for any other value. */
static PyObject *
utc_text_in_c(PyObject *moment)
{
    if (!PyDateTime_Check(moment) || PyDateTime_DATE_GET_TZINFO(moment) != PyDateTime_TimeZone_UTC) {
        Py_RETURN_NONE;
    }
    char text[32];
    int size = snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", PyDateTime_GET_YEAR(moment),
                        PyDateTime_GET_MONTH(moment), PyDateTime_GET_DAY(moment), PyDateTime_DATE_GET_HOUR(moment),
                        PyDateTime_DATE_GET_MINUTE(moment), PyDateTime_DATE_GET_SECOND(moment),
                        PyDateTime_DATE_GET_MICROSECOND(moment));
    return PyUnicode_FromStringAndSize(text, size);
}

/* The UTC time text of a datetime: in C when its tzinfo is datetime.UTC, else by eventlog.format.envelope.format_utc. */
static PyObject *
utc_text(PyObject *moment)
{
    PyObject *text = utc_text_in_c(moment);
    if (text != Py_None) {
        return text;
    }
    Py_DECREF(text);
    return PyObject_CallOneArg(helper_format_utc, moment);
}

/* Canonical JSON of an envelope field: `empty` when the value is empty (or None), else canonical_json of it. */
static PyObject *
field_json(PyObject *value, const char *empty, int as_list)
{
    if (value == Py_None || (PyObject_Length(value) == 0 && !PyErr_Occurred())) {
        return PyBytes_FromString(empty);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (!as_list) {
        return PyObject_CallOneArg(helper_canonical, value);
    }
    PyObject *list = PySequence_List(value);
    if (list == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallOneArg(helper_canonical, list);
    Py_DECREF(list);
    return result;
}

static PyObject *
response_ref_json(PyObject *ref)
{
    if (ref == Py_None) {
        return PyBytes_FromString("null");
    }
    PyObject *plain = PyObject_CallOneArg(helper_to_builtins, ref);
    if (plain == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallOneArg(helper_canonical, plain);
    Py_DECREF(plain);
    return result;
}

static PyObject *
bytes_or_fail(PyObject *object, const char *what)
{
    if (object != NULL && !PyBytes_Check(object)) {
        PyErr_Format(PyExc_TypeError, "%s did not encode to bytes", what);
        Py_DECREF(object);
        return NULL;
    }
    return object;
}

PyDoc_STRVAR(prepare_record_doc,
"prepare_record(record, request_json, response_json, redactions, redacted, /)\n--\n\n"
"The Prepared of a redacted ExchangeRecord, as eventlog.log.prepare.prepare makes it after encoding and redaction:\n"
"`redactions` is the sorted list the envelope states, `redacted` whether this redaction changed anything.\n"
"Raises UnicodeEncodeError for a lone surrogate in a name, which the Python path then names.");

enum { F_OBSERVED, F_ID, F_PROVENANCE, F_REF, F_SCHEMA, F_TAGS, F_TYPE, F_ENTITY, F_NATURAL, F_SOURCE, F_GIVEN_HASH,
       F_COUNT };
static const char *const field_names[F_COUNT] = {
    "observed_at_utc", "exchange_id", "provenance", "response_ref", "schema_version", "tags", "exchange_type",
    "entity_type", "natural_key", "source_system", "content_sha256",
};
static PyObject *field_strings[F_COUNT];

static PyObject *
prepare_record(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!argument_count_is("prepare_record", nargs, 5)) {
        return NULL;
    }
    if (helper_prepared == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "set_helpers() has not been called");
        return NULL;
    }
    PyObject *record = args[0];
    Piece request, response, namespace = {PyBytes_AS_STRING(helper_namespace), PyBytes_GET_SIZE(helper_namespace)};
    if (bytes_of(args[1], "request_json", &request) < 0 || bytes_of(args[2], "response_json", &response) < 0) {
        return NULL;
    }
    int redacted = PyObject_IsTrue(args[4]);
    if (redacted < 0) {
        return NULL;
    }
    PyObject *field[F_COUNT] = {NULL};
    PyObject *observed = NULL, *id_text = NULL, *extra[5] = {NULL}, *result = NULL;
    Piece entity = {NULL, 0}, natural = {NULL, 0}, source = {NULL, 0};
    for (int i = 0; i < F_COUNT; i++) {
        field[i] = PyObject_GetAttr(record, field_strings[i]);
        if (field[i] == NULL) {
            goto done;
        }
    }
    /* In the order of the Python path, so that the same problem is reported first. */
    observed = utc_text(field[F_OBSERVED]);
    if (observed == NULL) {
        goto done;
    }
    if (field[F_ID] != Py_None && PyObject_IsTrue(field[F_ID]) == 1) {
        id_text = PyObject_CallOneArg(helper_normalize_id, field[F_ID]);
        if (id_text == NULL) {
            goto done;
        }
    }
    extra[0] = bytes_or_fail(field_json(field[F_PROVENANCE], "{}", 0), "provenance");
    extra[1] = extra[0] ? bytes_or_fail(field_json(args[3], "[]", 0), "redactions_applied") : NULL;
    extra[2] = extra[1] ? bytes_or_fail(response_ref_json(field[F_REF]), "response_ref") : NULL;
    extra[3] = extra[2] ? bytes_or_fail(PyObject_CallOneArg(helper_canonical, field[F_SCHEMA]), "schema_version")
                        : NULL;
    extra[4] = extra[3] ? bytes_or_fail(field_json(field[F_TAGS], "[]", 1), "tags") : NULL;
    if (extra[4] == NULL) {
        goto done;
    }
    Piece exchange_type, observed_text, provenance, redactions, ref, schema, tags;
    if (utf8_of(field[F_TYPE], "exchange_type", &exchange_type) < 0
        || utf8_of(observed, "observed", &observed_text) < 0) {
        goto done;
    }
    bytes_of(extra[0], "", &provenance);
    bytes_of(extra[1], "", &redactions);
    bytes_of(extra[2], "", &ref);
    bytes_of(extra[3], "", &schema);
    bytes_of(extra[4], "", &tags);
    entity.data = encode_name(field[F_ENTITY], "entity_type", 0, &entity.size);
    if (entity.data == NULL) {
        goto done;
    }
    natural.data = encode_name(field[F_NATURAL], "natural_key", 1, &natural.size);
    if (natural.data == NULL) {
        goto done;
    }
    source.data = encode_name(field[F_SOURCE], "source_system", 0, &source.size);
    if (source.data == NULL) {
        goto done;
    }

    unsigned char digest[32];
    Piece content[] = {
        LITERAL("{\"entity_type\":"), entity, LITERAL(",\"exchange_type\":\""), exchange_type,
        LITERAL("\",\"natural_key\":"), natural, LITERAL(",\"request\":"), request, LITERAL(",\"response\":"),
        response, LITERAL(",\"source_system\":"), source, LITERAL("}"),
    };
    if (digest_pieces(sha256_md, content, (int)(sizeof(content) / sizeof(content[0])), digest) < 0) {
        goto done;
    }
    char content_hex[64];
    write_hex(content_hex, digest, 32);

    char derived[36];
    Piece exchange_id;
    if (id_text == NULL) {
        /* uuid5: SHA-1 of the namespace's bytes and the name, version nibble 5, variant bits 10 (RFC 4122). */
        unsigned char sha1[20];
        Piece name[] = {namespace, {content_hex, 64}, LITERAL("|"), observed_text};
        if (digest_pieces(sha1_md, name, 4, sha1) < 0) {
            goto done;
        }
        sha1[6] = (unsigned char)((sha1[6] & 0x0f) | 0x50);
        sha1[8] = (unsigned char)((sha1[8] & 0x3f) | 0x80);
        char *out = derived;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10) {
                *out++ = '-';
            }
            *out++ = hex_digits[sha1[i] >> 4];
            *out++ = hex_digits[sha1[i] & 15];
        }
        exchange_id = (Piece){derived, 36};
        id_text = PyUnicode_FromStringAndSize(derived, 36);
        if (id_text == NULL) {
            goto done;
        }
    }
    else if (utf8_of(id_text, "exchange_id", &exchange_id) < 0) {
        goto done;
    }

    Piece head[] = {
        LITERAL("\"content_sha256\":\""), {content_hex, 64}, LITERAL("\",\"entity_type\":"), entity,
        LITERAL(",\"exchange_id\":\""), exchange_id, LITERAL("\",\"exchange_type\":\""), exchange_type,
        LITERAL("\",\"natural_key\":"), natural, LITERAL(",\"observed_at_utc\":\""), observed_text,
        LITERAL("\",\"provenance\":"), provenance, LITERAL(",\"redactions_applied\":"), redactions,
    };
    Piece tail[] = {
        LITERAL("\"response_ref\":"), ref, LITERAL(",\"schema_version\":"), schema, LITERAL(",\"source_system\":"),
        source, LITERAL(",\"tags\":"), tags,
    };
    PyObject *hash_text = PyUnicode_FromStringAndSize(content_hex, 64);
    PyObject *head_bytes = join_pieces(head, (int)(sizeof(head) / sizeof(head[0])));
    PyObject *tail_bytes = join_pieces(tail, (int)(sizeof(tail) / sizeof(tail[0])));
    PyObject *key = field[F_NATURAL] == Py_None ? Py_NewRef(Py_None)
        : PyUnicode_FromFormat("%U\x1f%U\x1f%U", field[F_SOURCE], field[F_ENTITY], field[F_NATURAL]);
    int mismatch = 0;
    if (hash_text != NULL && field[F_GIVEN_HASH] != Py_None) {
        mismatch = PyObject_RichCompareBool(field[F_GIVEN_HASH], hash_text, Py_NE);
    }
    if (hash_text != NULL && head_bytes != NULL && tail_bytes != NULL && key != NULL && mismatch >= 0) {
        /* Prepared(exchange_id, content_sha256, observed_at_utc, key, head, tail, request_json, response_json,
         *          hash_mismatch, redacted) */
        PyObject *items[10] = {
            id_text, hash_text, observed, key, head_bytes, tail_bytes, args[1], args[2],
            mismatch ? Py_True : Py_False, redacted ? Py_True : Py_False,
        };
        result = helper_prepared->tp_alloc(helper_prepared, 10);
        if (result != NULL) {
            for (int i = 0; i < 10; i++) {
                PyTuple_SET_ITEM(result, i, Py_NewRef(items[i]));
            }
        }
    }
    Py_XDECREF(hash_text);
    Py_XDECREF(head_bytes);
    Py_XDECREF(tail_bytes);
    Py_XDECREF(key);
done:
    for (int i = 0; i < F_COUNT; i++) {
        Py_XDECREF(field[i]);
    }
    for (int i = 0; i < 5; i++) {
        Py_XDECREF(extra[i]);
    }
    Py_XDECREF(observed);
    Py_XDECREF(id_text);
    PyMem_Free((void *)entity.data);
    PyMem_Free((void *)natural.data);
    PyMem_Free((void *)source.data);
    return result;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* encode_chunk */

/* The fields of a Prepared (eventlog.log.prepare) that lines are made of. */
enum { P_ID, P_CONTENT, P_OBSERVED, P_KEY, P_HEAD, P_TAIL, P_REQUEST, P_RESPONSE, P_FIELDS };

typedef struct {
    Piece id, head, tail, request, response;
    int observed;
} LineParts;

static int
line_parts(PyObject *prepared, int observed, Py_ssize_t index, LineParts *out)
{
    if (!PyTuple_Check(prepared) || PyTuple_GET_SIZE(prepared) < P_FIELDS) {
        PyErr_Format(PyExc_TypeError, "item %zd of the batch is not a Prepared record", index);
        return -1;
    }
    out->observed = observed;
    if (utf8_of(PyTuple_GET_ITEM(prepared, P_ID), "exchange_id", &out->id) < 0
        || bytes_of(PyTuple_GET_ITEM(prepared, P_HEAD), "head", &out->head) < 0
        || bytes_of(PyTuple_GET_ITEM(prepared, P_TAIL), "tail", &out->tail) < 0
        || bytes_of(PyTuple_GET_ITEM(prepared, P_REQUEST), "request_json", &out->request) < 0
        || bytes_of(PyTuple_GET_ITEM(prepared, P_RESPONSE), "response_json", &out->response) < 0) {
        return -1;
    }
    if (!PyUnicode_Check(PyTuple_GET_ITEM(prepared, P_CONTENT))
        || !PyUnicode_Check(PyTuple_GET_ITEM(prepared, P_OBSERVED))) {
        PyErr_Format(PyExc_TypeError, "item %zd of the batch has no content hash or observed time", index);
        return -1;
    }
    return 0;
}

static Py_ssize_t
body_size(const LineParts *parts)
{
    Py_ssize_t bare = 3 + parts->head.size + parts->tail.size; /* {head,tail} */
    if (!parts->observed) {
        return bare;
    }
    return bare + (Py_ssize_t)strlen(",\"request\":,\"response\":") + parts->request.size + parts->response.size;
}

static char *
write_body(char *out, const LineParts *parts, int with_payload)
{
    *out++ = '{';
    out = put(out, parts->head);
    if (with_payload) {
        out = put(out, LITERAL(",\"request\":"));
        out = put(out, parts->request);
        out = put(out, LITERAL(",\"response\":"));
        out = put(out, parts->response);
    }
    *out++ = ',';
    out = put(out, parts->tail);
    *out++ = '}';
    return out;
}

PyDoc_STRVAR(encode_chunk_doc,
"encode_chunk(batch, observed, origin, recorded_at_utc, seq, prev, segment, offset, /)\n--\n\n"
"The lines of a list of Prepared records, as eventlog.format.events.encode_observation writes them one at a time, from\n"
"`seq` on, chained from `prev`. `observed` holds a byte per record: non-zero for an observed event (the line\n"
"carries the payload), zero for a revisited one. `segment` and `offset` place the first line.\n"
"Returns (data, rows, leaves, last_hash): the lines joined, each ended by a newline; the index rows, as\n"
"eventlog.log.index writes them; the lines' SHA-256 digests concatenated; the last line's hash in hex.");

static PyObject *
encode_chunk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!argument_count_is("encode_chunk", nargs, 8)) {
        return NULL;
    }
    PyObject *batch = args[0];
    Piece flags, origin, recorded, prev;
    if (!PyList_Check(batch)) {
        PyErr_SetString(PyExc_TypeError, "batch must be a list");
        return NULL;
    }
    if (bytes_of(args[1], "observed", &flags) < 0 || utf8_of(args[2], "origin", &origin) < 0
        || utf8_of(args[3], "recorded_at_utc", &recorded) < 0 || utf8_of(args[5], "prev", &prev) < 0) {
        return NULL;
    }
    long long seq = PyLong_AsLongLong(args[4]);
    long long segment = PyLong_AsLongLong(args[6]);
    long long offset = PyLong_AsLongLong(args[7]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(batch);
    if (flags.size != count) {
        PyErr_Format(PyExc_ValueError, "observed has %zd flags for %zd records", flags.size, count);
        return NULL;
    }
    if (prev.size != 64) {
        PyErr_SetString(PyExc_ValueError, "prev must be a hash of 64 hex digits");
        return NULL;
    }

    LineParts *parts = PyMem_Calloc(count ? (size_t)count : 1, sizeof(LineParts));
    if (parts == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *data = NULL, *rows = NULL, *leaves = NULL, *result = NULL;
    /* Fixed bytes of a line: {"body":,"digest":"<64>","event_id":"","origin":"","prev":"<64>",
     * "recorded_at_utc":"","seq":,"type":""} */
    const Py_ssize_t fixed = (Py_ssize_t)strlen("{\"body\":,\"digest\":\"\",\"event_id\":\"\",\"origin\":\"\","
                                                "\"prev\":\"\",\"recorded_at_utc\":\"\",\"seq\":,\"type\":\"\"}")
                             + 128 + origin.size + recorded.size;
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (line_parts(PyList_GET_ITEM(batch, i), flags.data[i] != 0, i, &parts[i]) < 0) {
            goto done;
        }
        char digits[24];
        int seq_size = snprintf(digits, sizeof(digits), "%lld", seq + i);
        total += fixed + body_size(&parts[i]) + parts[i].id.size + seq_size
                 + (parts[i].observed ? 8 : 9) /* observed / revisited */ + 1 /* newline */;
    }
    data = PyBytes_FromStringAndSize(NULL, total);
    rows = PyList_New(count);
    leaves = PyBytes_FromStringAndSize(NULL, 32 * count);
    if (data == NULL || rows == NULL || leaves == NULL) {
        goto done;
    }
    char *out = PyBytes_AS_STRING(data);
    unsigned char *leaf = (unsigned char *)PyBytes_AS_STRING(leaves);
    char prev_hex[64];
    memcpy(prev_hex, prev.data, 64);
    for (Py_ssize_t i = 0; i < count; i++) {
        const LineParts *p = &parts[i];
        Piece type = p->observed ? LITERAL("observed") : LITERAL("revisited");
        /* The digest covers the body without its payload. */
        char *start = out;
        unsigned char digest[32];
        char digest_hex[64];
        out = write_body(out, p, 0);
        Piece signed_parts[] = {
            LITERAL("{\"body\":"), {start, out - start}, LITERAL(",\"event_id\":\""), p->id,
            LITERAL("\",\"origin\":\""), origin, LITERAL("\",\"recorded_at_utc\":\""), recorded,
            LITERAL("\",\"type\":\""), type, LITERAL("\"}"),
        };
        if (digest_pieces(sha256_md, signed_parts, (int)(sizeof(signed_parts) / sizeof(signed_parts[0])),
                          digest) < 0) {
            goto done;
        }
        write_hex(digest_hex, digest, 32);
        out = start;
        out = put(out, LITERAL("{\"body\":"));
        out = write_body(out, p, p->observed);
        out = put(out, LITERAL(",\"digest\":\""));
        out = put(out, (Piece){digest_hex, 64});
        out = put(out, LITERAL("\",\"event_id\":\""));
        out = put(out, p->id);
        out = put(out, LITERAL("\",\"origin\":\""));
        out = put(out, origin);
        out = put(out, LITERAL("\",\"prev\":\""));
        out = put(out, (Piece){prev_hex, 64});
        out = put(out, LITERAL("\",\"recorded_at_utc\":\""));
        out = put(out, recorded);
        char digits[24];
        int seq_size = snprintf(digits, sizeof(digits), "%lld", seq + i);
        out = put(out, LITERAL("\",\"seq\":"));
        out = put(out, (Piece){digits, seq_size});
        out = put(out, LITERAL(",\"type\":\""));
        out = put(out, type);
        out = put(out, LITERAL("\"}"));
        Py_ssize_t length = out - start;
        Piece line = {start, length};
        if (digest_pieces(sha256_md, &line, 1, leaf) < 0) {
            goto done;
        }
        write_hex(prev_hex, leaf, 32);
        leaf += 32;
        *out++ = '\n';

        PyObject *prepared = PyList_GET_ITEM(batch, i);
        PyObject *content = PyTuple_GET_ITEM(prepared, P_CONTENT);
        Piece content_text;
        if (utf8_of(content, "content_sha256", &content_text) < 0) {
            goto done;
        }
        PyObject *row = PyTuple_New(12);
        if (row == NULL) {
            goto done;
        }
        PyList_SET_ITEM(rows, i, row);
        PyObject *items[12] = {
            PyLong_FromLongLong(seq + i), Py_NewRef(PyTuple_GET_ITEM(prepared, P_ID)),
            Py_NewRef(p->observed ? observed_text : revisited_text), PyUnicode_FromStringAndSize(digest_hex, 64),
            Py_NewRef(content), Py_NewRef(PyTuple_GET_ITEM(prepared, P_KEY)),
            Py_NewRef(PyTuple_GET_ITEM(prepared, P_OBSERVED)), PyLong_FromLongLong(segment),
            PyLong_FromLongLong(offset), PyLong_FromSsize_t(length), lookup_key_of(p->id.data, p->id.size),
            lookup_key_of(content_text.data, content_text.size),
        };
        int failed = 0;
        for (int k = 0; k < 12; k++) {
            if (items[k] == NULL) {
                failed = 1;
                items[k] = Py_NewRef(Py_None);
            }
            PyTuple_SET_ITEM(row, k, items[k]);
        }
        if (failed) {
            goto done;
        }
        offset += length + 1;
    }
    if (out != PyBytes_AS_STRING(data) + total) {
        PyErr_SetString(PyExc_SystemError, "encode_chunk wrote a different size than it computed");
        goto done;
    }
    PyObject *last = PyUnicode_FromStringAndSize(prev_hex, 64);
    if (last != NULL) {
        result = PyTuple_Pack(4, data, rows, leaves, last);
        Py_DECREF(last);
    }
done:
    PyMem_Free(parts);
    Py_XDECREF(data);
    Py_XDECREF(rows);
    Py_XDECREF(leaves);
    return result;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* merkle_extend */

PyDoc_STRVAR(merkle_extend_doc,
"merkle_extend(stack, leaves, /)\n--\n\n"
"Add leaves (32-byte line hashes, concatenated) to the stack of an RFC 6962 Merkle tree, a list of\n"
"(size, digest) pairs, as eventlog.log.seals.MerkleTree.add does one at a time.");

static PyObject *
merkle_extend(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (!argument_count_is("merkle_extend", nargs, 2)) {
        return NULL;
    }
    PyObject *stack = args[0];
    Piece leaves;
    if (!PyList_Check(stack)) {
        PyErr_SetString(PyExc_TypeError, "stack must be a list");
        return NULL;
    }
    if (bytes_of(args[1], "leaves", &leaves) < 0) {
        return NULL;
    }
    if (leaves.size % 32 != 0) {
        PyErr_SetString(PyExc_ValueError, "leaves must be 32-byte hashes");
        return NULL;
    }
    for (Py_ssize_t at = 0; at < leaves.size; at += 32) {
        unsigned char digest[32];
        Piece leaf[] = {LITERAL("\x00"), {leaves.data + at, 32}};
        if (digest_pieces(sha256_md, leaf, 2, digest) < 0) {
            return NULL;
        }
        Py_ssize_t size = 1;
        while (PyList_GET_SIZE(stack) > 0) {
            PyObject *top = PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1);
            if (!PyTuple_Check(top) || PyTuple_GET_SIZE(top) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(top, 1))
                || PyBytes_GET_SIZE(PyTuple_GET_ITEM(top, 1)) != 32) {
                PyErr_SetString(PyExc_TypeError, "stack items must be (size, 32-byte digest) pairs");
                return NULL;
            }
            Py_ssize_t left_size = PyLong_AsSsize_t(PyTuple_GET_ITEM(top, 0));
            if (left_size == -1 && PyErr_Occurred()) {
                return NULL;
            }
            if (left_size != size) {
                break;
            }
            Piece node[] = {LITERAL("\x01"), {PyBytes_AS_STRING(PyTuple_GET_ITEM(top, 1)), 32}, {(char *)digest, 32}};
            if (digest_pieces(sha256_md, node, 3, digest) < 0) {
                return NULL;
            }
            size += left_size;
            if (PyList_SetSlice(stack, PyList_GET_SIZE(stack) - 1, PyList_GET_SIZE(stack), NULL) < 0) {
                return NULL;
            }
        }
        PyObject *count = PyLong_FromSsize_t(size);
        PyObject *node = PyBytes_FromStringAndSize((const char *)digest, 32);
        PyObject *pair = count != NULL && node != NULL ? PyTuple_Pack(2, count, node) : NULL;
        Py_XDECREF(count);
        Py_XDECREF(node);
        if (pair == NULL) {
            return NULL;
        }
        int appended = PyList_Append(stack, pair);
        Py_DECREF(pair);
        if (appended < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------------------------ */
/* format_utc */

PyDoc_STRVAR(format_utc_doc,
"format_utc(moment, /)\n--\n\n"
"eventlog.format.envelope.format_utc of a datetime whose tzinfo is datetime.UTC, or None for any other value.");

static PyObject *
format_utc(PyObject *module, PyObject *moment)
{
    return utc_text_in_c(moment);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* lookup_key */

PyDoc_STRVAR(lookup_key_doc,
"lookup_key(text, /)\n--\n\n"
"eventlog.log.index.lookup_key: the first 8 bytes of the SHA-256 of the text's UTF-8, big-endian, signed.");

static PyObject *
lookup_key(PyObject *module, PyObject *text)
{
    Piece piece;
    if (utf8_of(text, "text", &piece) < 0) {
        return NULL;
    }
    return lookup_key_of(piece.data, piece.size);
}

static PyMethodDef module_methods[] = {
    {"set_helpers", (PyCFunction)(void (*)(void))set_helpers, METH_FASTCALL, set_helpers_doc},
    {"prepare_record", (PyCFunction)(void (*)(void))prepare_record, METH_FASTCALL, prepare_record_doc},
    {"encode_chunk", (PyCFunction)(void (*)(void))encode_chunk, METH_FASTCALL, encode_chunk_doc},
    {"merkle_extend", (PyCFunction)(void (*)(void))merkle_extend, METH_FASTCALL, merkle_extend_doc},
    {"format_utc", format_utc, METH_O, format_utc_doc},
    {"lookup_key", lookup_key, METH_O, lookup_key_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef records_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "eventlog._records",
    .m_doc = "Optional C assembly of log lines; each function has a pure-Python equivalent.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__records(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    if (sha256_md == NULL) {
        sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
        sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
        md_ctx = EVP_MD_CTX_new();
        if (sha256_md == NULL || sha1_md == NULL || md_ctx == NULL) {
            PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256 or SHA-1 here");
            return NULL;
        }
    }
    for (int i = 0; i < F_COUNT; i++) {
        if (field_strings[i] == NULL && (field_strings[i] = PyUnicode_InternFromString(field_names[i])) == NULL) {
            return NULL;
        }
    }
    if (observed_text == NULL) {
        observed_text = PyUnicode_InternFromString("observed");
        revisited_text = PyUnicode_InternFromString("revisited");
        if (observed_text == NULL || revisited_text == NULL) {
            return NULL;
        }
    }
    return PyModule_Create(&records_module);
}
