/* The MySQL engine's C helpers: the row pump, which reads one SELECT's rows for the dump
 * (connect.StreamReader.pump), and the row digest of digest.py, which the pump, the
 * restore's loader (loader.py) and the restore drill (verify.py) compute over encoded lines.
 *
 * RowStream runs a SELECT with mysql_use_result on a mysqlclient connection's own MYSQL
 * handle and encodes its rows as the ``escaped`` lines of encoding.py (fields separated by
 * TAB, lines ended by LF, NULL as \N, and backslash, TAB, LF, CR and NUL escaped with a
 * backslash). Why C: in Python every field becomes a bytes object and the escaping is per
 * field; here a block of rows is fetched and encoded with the GIL released, so the pump of
 * one worker runs beside the other workers' chunking, hashing and compression, and the
 * server only sends its plain text form (no per-row CONCAT/QUOTE to compute).
 *
 * LineDigest hashes each line (without its LF) with XXH64 (Yann Collet's public xxHash
 * algorithm, written here from its specification) under two seeds and sums each hash
 * modulo 2^64: an order-independent 128-bit digest of a stream of lines. Inside the pump a
 * line is hashed while it is still in the cache; elsewhere it is fed blocks of lines.
 *
 * Python API (wrapped by connect.StreamReader and digest.py):
 *   RowStream(connection, sql: bytes, digest=None)  runs the SELECT; every line read is
 *                                       added to ``digest`` (a LineDigest). Until the
 *                                       stream is closed the connection runs nothing else.
 *                                       Calling __init__ again frees the previous result.
 *   .read(limit: int) -> (bytes, rows)  the next whole lines: rows are added until the
 *                                       block holds at least ``limit`` bytes (so it ends
 *                                       within one line past it); b"" at the end. A limit
 *                                       below 1 raises ValueError.
 *   .read_block(limit) -> (Block, rows)  the same lines in a Block: a read-only buffer
 *                                       (len, memoryview) that the stream fills again
 *                                       once nothing refers to it (no copy into a new
 *                                       bytes object, no fresh mapping per block)
 *   .close()                            frees the result (reading and dropping the rest)
 *   LineDigest(quoted=False)            the digest of a stream of ``escaped`` (or ``quoted``)
 *   .update(data)                       lines, split like LOAD DATA splits them, the data
 *                                       cut anywhere (a partial line waits for the rest)
 *   .result() -> (rows, sum0, sum1, pending)  pending: bytes of an unfinished last line
 *   xxh64(data, seed=0) -> int          one XXH64 hash (digest.xxh64 where built)
 * Server and client errors raise ``Error(errno, message)``.
 *
 * Threads: read, close and __init__ run parts without the GIL. A RowStream is used by one
 * thread at a time: while one thread is inside one of them, the others' calls raise
 * RuntimeError (instead of freeing the result under it). A LineDigest is not guarded: it
 * must not be updated from two threads at once (nor while a stream that feeds it reads).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <mysql.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* -- XXH64 (from the xxHash specification) and the line digest -------------------------- */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL
#define SEED1 0x9E3779B97F4A7C15ULL /* the second seed of a line's pair of hashes */

/* The type object of one of this module's types, ``Name``: its C struct is ``Name``, its
 * __init__, deallocator and methods ``Name_init``, ``Name_dealloc``, ``Name_methods``. */
#define MODULE_TYPE(Name, doc)                                     \
    static PyTypeObject Name##Type = {                             \
        PyVarObject_HEAD_INIT(NULL, 0)                             \
        .tp_name = "snapkeep.engines.mysql._rowpump." #Name,       \
        .tp_basicsize = sizeof(Name),                              \
        .tp_flags = Py_TPFLAGS_DEFAULT,                            \
        .tp_doc = doc,                                             \
        .tp_new = PyType_GenericNew,                               \
        .tp_init = (initproc)Name##_init,                          \
        .tp_dealloc = (destructor)Name##_dealloc,                  \
        .tp_methods = Name##_methods,                              \
    }

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t read32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static inline uint64_t xround(uint64_t acc, uint64_t input)
{
    acc += input * P2;
    return rotl64(acc, 31) * P1;
}

static inline uint64_t xmerge(uint64_t h, uint64_t v)
{
    h ^= xround(0, v);
    return h * P1 + P4;
}

static inline uint64_t avalanche(uint64_t h)
{
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    return h ^ (h >> 32);
}

/* The last len % 32 bytes into both states at once: each step's input term does not
 * depend on the seed, so it is computed once. */
static inline void xtail_pair(uint64_t *h, uint64_t *g, const unsigned char *p, size_t left)
{
    uint64_t a = *h, b = *g;
    for (; left >= 8; left -= 8, p += 8) {
        uint64_t k = xround(0, read64(p));
        a = rotl64(a ^ k, 27) * P1 + P4;
        b = rotl64(b ^ k, 27) * P1 + P4;
    }
    if (left >= 4) {
        uint64_t k = read32(p) * P1;
        a = rotl64(a ^ k, 23) * P2 + P3;
        b = rotl64(b ^ k, 23) * P2 + P3;
        p += 4;
        left -= 4;
    }
    for (; left; left--, p++) {
        uint64_t k = *p * P5;
        a = rotl64(a ^ k, 11) * P1;
        b = rotl64(b ^ k, 11) * P1;
    }
    *h = avalanche(a);
    *g = avalanche(b);
}

/* XXH64 of p[0..len) under seeds a and b at once (one pass over the data). */
static void xxh64_pair(const unsigned char *p, size_t len, uint64_t a, uint64_t b,
                       uint64_t *ha, uint64_t *hb)
{
    const unsigned char *end = p + len;
    uint64_t h, g;
    if (len >= 32) {
        uint64_t v1 = a + P1 + P2, v2 = a + P2, v3 = a, v4 = a - P1;
        uint64_t w1 = b + P1 + P2, w2 = b + P2, w3 = b, w4 = b - P1;
        for (; p + 32 <= end; p += 32) {
            uint64_t x1 = read64(p), x2 = read64(p + 8), x3 = read64(p + 16),
                     x4 = read64(p + 24);
            v1 = xround(v1, x1); w1 = xround(w1, x1);
            v2 = xround(v2, x2); w2 = xround(w2, x2);
            v3 = xround(v3, x3); w3 = xround(w3, x3);
            v4 = xround(v4, x4); w4 = xround(w4, x4);
        }
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        g = rotl64(w1, 1) + rotl64(w2, 7) + rotl64(w3, 12) + rotl64(w4, 18);
        h = xmerge(xmerge(xmerge(xmerge(h, v1), v2), v3), v4);
        g = xmerge(xmerge(xmerge(xmerge(g, w1), w2), w3), w4);
    } else {
        h = a + P5;
        g = b + P5;
    }
    h += len;
    g += len;
    xtail_pair(&h, &g, p, (size_t)(end - p));
    *ha = h;
    *hb = g;
}

/* Used by one thread at a time (update and RowStream.read run without the GIL). */
typedef struct {
    PyObject_HEAD
    int quoted;           /* lines of the quoted encoding: LF inside '…' does not end one */
    uint64_t sum0, sum1;  /* the sums of the lines' hashes under seeds 0 and SEED1 */
    unsigned long long rows;
    char *carry;          /* the unfinished last line of the data so far */
    size_t carry_len, carry_cap;
    int in_quotes, escape_next, field_start;  /* quoted-encoding state at the carry's end */
} LineDigest;

static inline void digest_line(LineDigest *d, const unsigned char *p, size_t len)
{
    uint64_t a, b;
    xxh64_pair(p, len, 0, SEED1, &a, &b);
    d->sum0 += a;
    d->sum1 += b;
    d->rows++;
}

static int carry_append(LineDigest *d, const unsigned char *p, size_t len)
{
    if (d->carry_len + len > d->carry_cap) {
        size_t cap = d->carry_cap ? d->carry_cap : 1 << 12;
        while (cap < d->carry_len + len)
            cap *= 2;
        char *c = realloc(d->carry, cap);
        if (c == NULL)
            return -1;
        d->carry = c;
        d->carry_cap = cap;
    }
    memcpy(d->carry + d->carry_len, p, len);
    d->carry_len += len;
    return 0;
}

/* The offset of the LF ending the line that continues at p (the scan state carried across
 * calls), or -1 when the data ends inside the line. */
static Py_ssize_t line_end(LineDigest *d, const unsigned char *p, size_t len)
{
    if (!d->quoted) {
        const unsigned char *nl = memchr(p, '\n', len);
        return nl ? nl - p : -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (d->in_quotes) {
            if (d->escape_next)
                d->escape_next = 0;
            else if (c == '\\')
                d->escape_next = 1;
            else if (c == '\'')
                d->in_quotes = 0;
            continue;
        }
        if (c == '\n') {
            d->field_start = 1;
            return (Py_ssize_t)i;
        }
        if (c == '\'' && d->field_start)
            d->in_quotes = 1;
        d->field_start = c == '\t';
    }
    return -1;
}

static int digest_update(LineDigest *d, const unsigned char *p, size_t len)
{
    while (len) {
        Py_ssize_t nl = line_end(d, p, len);
        if (nl < 0)
            return carry_append(d, p, len);
        if (d->carry_len) {
            if (carry_append(d, p, (size_t)nl) < 0)
                return -1;
            digest_line(d, (const unsigned char *)d->carry, d->carry_len);
            d->carry_len = 0;
        } else {
            digest_line(d, p, (size_t)nl);
        }
        p += nl + 1;
        len -= (size_t)nl + 1;
    }
    return 0;
}

static int LineDigest_init(LineDigest *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"quoted", NULL};
    int quoted = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p", kwlist, &quoted))
        return -1;
    self->quoted = quoted;
    self->sum0 = self->sum1 = 0;
    self->rows = 0;
    self->carry_len = 0;
    self->in_quotes = self->escape_next = 0;
    self->field_start = 1;
    return 0;
}

static PyObject *LineDigest_update(LineDigest *self, PyObject *args)
{
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data))
        return NULL;
    int rc;
    if (data.len >= 1 << 14) {
        Py_BEGIN_ALLOW_THREADS
        rc = digest_update(self, data.buf, (size_t)data.len);
        Py_END_ALLOW_THREADS
    } else {
        rc = digest_update(self, data.buf, (size_t)data.len);
    }
    PyBuffer_Release(&data);
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *LineDigest_result(LineDigest *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(KKKn)", self->rows, (unsigned long long)self->sum0,
                         (unsigned long long)self->sum1, (Py_ssize_t)self->carry_len);
}

static void LineDigest_dealloc(LineDigest *self)
{
    free(self->carry);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef LineDigest_methods[] = {
    {"update", (PyCFunction)LineDigest_update, METH_VARARGS,
     "update(data): add the lines ended in data (a partial last line waits for the rest)"},
    {"result", (PyCFunction)LineDigest_result, METH_NOARGS,
     "result() -> (rows, sum0, sum1, pending bytes of an unfinished line)"},
    {NULL, NULL, 0, NULL},
};

MODULE_TYPE(LineDigest,
            "The order-independent digest of a stream of encoded lines (see digest.py).");

static PyObject *py_xxh64(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"data", "seed", NULL};
    Py_buffer data;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*|K", kwlist, &data, &seed))
        return NULL;
    uint64_t h, unused;
    xxh64_pair(data.buf, (size_t)data.len, seed, seed, &h, &unused);
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLongLong(h);
}

static PyObject *RowPumpError;

/* The escape letter of each byte that needs one, 0 for the rest. */
static unsigned char ESCAPE[256];

/* A block of lines: a read-only buffer (memoryview(block), len(block)) that its stream
 * fills again once nothing refers to it any more. */
typedef struct {
    PyObject_HEAD
    char *buf;
    size_t cap;
    Py_ssize_t len;
    Py_ssize_t exports;  /* buffers exported and not yet released */
} Block;

static int Block_getbuffer(Block *self, Py_buffer *view, int flags)
{
    static char empty[1];
    if (PyBuffer_FillInfo(view, (PyObject *)self, self->buf ? self->buf : empty, self->len,
                          1, flags) < 0)
        return -1;
    self->exports++;
    return 0;
}

static void Block_releasebuffer(Block *self, Py_buffer *Py_UNUSED(view))
{
    self->exports--;
}

static Py_ssize_t Block_length(Block *self) { return self->len; }

static void Block_dealloc(Block *self)
{
    free(self->buf);
    PyObject_Del(self);
}

static PyBufferProcs Block_as_buffer = {
    .bf_getbuffer = (getbufferproc)Block_getbuffer,
    .bf_releasebuffer = (releasebufferproc)Block_releasebuffer,
};

static PySequenceMethods Block_as_sequence = {.sq_length = (lenfunc)Block_length};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "snapkeep.engines.mysql._rowpump.Block",
    .tp_basicsize = sizeof(Block),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lines read by RowStream.read_block: a read-only buffer.",
    .tp_dealloc = (destructor)Block_dealloc,
    .tp_as_buffer = &Block_as_buffer,
    .tp_as_sequence = &Block_as_sequence,
};

/* Blocks a stream keeps to fill again: those a worker's reading thread is ahead of its
 * store by, the one being stored and the one being filled. */
#define POOL 6

typedef struct {
    PyObject_HEAD
    PyObject *conn;  /* the mysqlclient connection: kept alive while its handle is used */
    MYSQL *mysql;
    MYSQL_RES *res;
    Block *pool[POOL];  /* blocks to fill again, each once only the pool refers to it */
    int finished;
    int busy;  /* a call runs with the GIL released: no other thread may use the stream */
    LineDigest *digest;  /* every line read is added to it, or NULL */
} RowStream;

/* Claims the stream for the calling thread (the GIL is held, so check and set are one
 * step); -1 with RuntimeError when another thread is inside read or __init__ — freeing or
 * reusing the result under it would read freed memory. */
static int claim(RowStream *s, const char *what)
{
    if (s->busy) {
        PyErr_Format(PyExc_RuntimeError,
                     "RowStream.%s: the stream is in use by another thread (a stream is "
                     "read and closed by one thread at a time)", what);
        return -1;
    }
    s->busy = 1;
    return 0;
}

static int grow(Block *b, size_t need)
{
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < need)
        cap *= 2;
    char *buf = realloc(b->buf, cap);
    if (buf == NULL)
        return -1;
    b->buf = buf;
    b->cap = cap;
    return 0;
}

/* A block to fill (a new reference; the GIL held): a pooled one that nothing else refers
 * to (no object, no exported buffer), else a new one, pooled if there is room. Its
 * contents may be overwritten: nobody can see them any more. */
static Block *take_block(RowStream *s)
{
    int room = -1;
    for (int i = 0; i < POOL; i++) {
        Block *b = s->pool[i];
        if (b == NULL) {
            if (room < 0)
                room = i;
        } else if (Py_REFCNT(b) == 1 && b->exports == 0) {
            b->len = 0;
            Py_INCREF(b);
            return b;
        }
    }
    Block *b = PyObject_New(Block, &BlockType);
    if (b == NULL)
        return NULL;
    b->buf = NULL;
    b->cap = 0;
    b->len = 0;
    b->exports = 0;
    if (room >= 0) {
        Py_INCREF(b);
        s->pool[room] = b;
    }
    return b;
}

static PyObject *raise_mysql(MYSQL *mysql)
{
    PyObject *args = Py_BuildValue("(Is)", mysql_errno(mysql), mysql_error(mysql));
    if (args != NULL) {
        PyErr_SetObject(RowPumpError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static MYSQL *native_handle(PyObject *conn)
{
    PyObject *capsule = PyObject_CallMethod(conn, "_get_native_connection", NULL);
    if (capsule == NULL)
        return NULL;
    MYSQL *mysql = PyCapsule_GetPointer(capsule, "_mysql.connection.native_connection");
    Py_DECREF(capsule);
    return mysql;
}

static void release(RowStream *self)
{
    if (self->res != NULL) {
        MYSQL_RES *res = self->res;
        self->res = NULL;
        Py_BEGIN_ALLOW_THREADS
        mysql_free_result(res);
        Py_END_ALLOW_THREADS
    }
    for (int i = 0; i < POOL; i++)
        Py_CLEAR(self->pool[i]);  /* blocks still referred to live on, unpooled */
}

static int RowStream_init(RowStream *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"connection", "sql", "digest", NULL};
    PyObject *conn, *digest = Py_None;
    Py_buffer sql;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oy*|O", kwlist, &conn, &sql, &digest))
        return -1;
    if (digest != Py_None && !PyObject_TypeCheck(digest, &LineDigestType)) {
        PyBuffer_Release(&sql);
        PyErr_SetString(PyExc_TypeError, "digest must be a LineDigest or None");
        return -1;
    }
    MYSQL *mysql = native_handle(conn);
    if (mysql == NULL || claim(self, "__init__") < 0) {
        PyBuffer_Release(&sql);
        return -1;
    }
    /* a second __init__: the first result is freed (its rest read and dropped, so the
     * connection can run the new query) and its connection and digest let go */
    release(self);
    Py_CLEAR(self->conn);
    Py_CLEAR(self->digest);
    self->finished = 0;
    int rc;
    MYSQL_RES *res = NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = mysql_real_query(mysql, sql.buf, (unsigned long)sql.len);
    if (rc == 0)
        res = mysql_use_result(mysql);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&sql);
    self->busy = 0;
    if (rc != 0 || res == NULL) {
        raise_mysql(mysql);
        return -1;
    }
    Py_INCREF(conn);
    self->conn = conn;
    if (digest != Py_None) {
        Py_INCREF(digest);
        self->digest = (LineDigest *)digest;
    }
    self->mysql = mysql;
    self->res = res;
    return 0;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Whether some byte of the word x needs an escape: every such byte is a backslash or below
 * 0x20 (the test leaves a byte's high bit set for a byte below 0x20 in x, or zero in y). */
static inline int needs_escape(uint64_t x)
{
    uint64_t y = x ^ (ONES * '\\');
    return ((((x - ONES * 0x20) & ~x) | ((y - ONES) & ~y)) & HIGHS) != 0;
}

static inline size_t scan_bytes(const unsigned char *f, size_t j, size_t n)
{
    for (; j < n; j++)
        if (ESCAPE[f[j]])
            return j;
    return n;
}

/* The offset of the first byte of f[j..n) that needs an escape, or n. Eight bytes at a
 * time (nearly every word of a row needs none), a word that does byte by byte. The last
 * bytes are one word too, read without going past f + n: the field's last eight bytes
 * (bytes before j in it are only looked at again, never escaped twice: a hit is confirmed
 * byte by byte from j), or for 4-7 bytes two overlapping halves. */
static inline size_t next_escape(const unsigned char *f, size_t j, size_t n)
{
    for (; j + 8 <= n; j += 8)
        if (needs_escape(read64(f + j))) {
            size_t k = scan_bytes(f, j, j + 8);
            if (k < j + 8)
                return k;
        }
    size_t left = n - j;
    if (left < 4)
        return scan_bytes(f, j, n);
    uint64_t x = n >= 8 ? read64(f + n - 8) : read32(f + j) | read32(f + n - 4) << 32;
    return needs_escape(x) ? scan_bytes(f, j, n) : n;
}

/* Appends one row's line at b->buf + *len; -1 when out of memory. */
static int encode_row(RowStream *s, Block *b, MYSQL_ROW row, const unsigned long *lengths,
                      unsigned int n, size_t *len)
{
    size_t worst = 3 * (size_t)n + 1;
    for (unsigned int i = 0; i < n; i++)
        worst += 2 * (size_t)lengths[i];
    if (grow(b, *len + worst) < 0)
        return -1;
    char *p = b->buf + *len;
    for (unsigned int i = 0; i < n; i++) {
        if (i)
            *p++ = '\t';
        const unsigned char *f = (const unsigned char *)row[i];
        if (f == NULL) {
            *p++ = '\\';
            *p++ = 'N';
            continue;
        }
        size_t start = 0, length = lengths[i];
        for (;;) {
            size_t j = next_escape(f, start, length);
            memcpy(p, f + start, j - start);
            p += j - start;
            if (j == length)
                break;
            *p++ = '\\';
            *p++ = (char)ESCAPE[f[j]];
            start = j + 1;
        }
    }
    if (s->digest != NULL)
        digest_line(s->digest, (const unsigned char *)b->buf + *len,
                    (size_t)(p - b->buf) - *len);
    *p++ = '\n';
    *len = (size_t)(p - b->buf);
    return 0;
}

/* The next block of whole lines (a new reference, len 0 at the end), or NULL with an
 * exception; ``what`` names the method for errors. */
static Block *fill(RowStream *self, PyObject *args, const char *what, Py_ssize_t *rows_out)
{
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "n", &limit))
        return NULL;
    if (limit < 1) {
        PyErr_Format(PyExc_ValueError,
                     "RowStream.%s: limit must be at least 1 byte, not %zd", what, limit);
        return NULL;
    }
    if (claim(self, what) < 0)
        return NULL;
    Block *b = take_block(self);
    if (b == NULL || self->res == NULL || self->finished) {
        self->busy = 0;
        *rows_out = 0;
        return b;
    }
    size_t len = 0;
    Py_ssize_t rows = 0;
    int oom = 0, failed = 0;
    unsigned int n = mysql_num_fields(self->res);
    Py_BEGIN_ALLOW_THREADS
    while (len < (size_t)limit) {
        MYSQL_ROW row = mysql_fetch_row(self->res);
        if (row == NULL) {
            self->finished = 1;
            failed = mysql_errno(self->mysql) != 0;
            break;
        }
        if (encode_row(self, b, row, mysql_fetch_lengths(self->res), n, &len) < 0) {
            oom = 1;
            break;
        }
        rows++;
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    b->len = (Py_ssize_t)len;
    if (oom || failed) {
        Py_DECREF(b);
        return oom ? (Block *)PyErr_NoMemory() : (Block *)raise_mysql(self->mysql);
    }
    *rows_out = rows;
    return b;
}

static PyObject *RowStream_read(RowStream *self, PyObject *args)
{
    Py_ssize_t rows;
    Block *b = fill(self, args, "read", &rows);
    if (b == NULL)
        return NULL;
    /* buf is still NULL when the result had no rows; "y#" would make that None */
    PyObject *out = Py_BuildValue("(y#n)", b->len ? b->buf : "", b->len, rows);
    Py_DECREF(b);
    return out;
}

static PyObject *RowStream_read_block(RowStream *self, PyObject *args)
{
    Py_ssize_t rows;
    Block *b = fill(self, args, "read_block", &rows);
    if (b == NULL)
        return NULL;
    return Py_BuildValue("(Nn)", (PyObject *)b, rows);
}

static PyObject *RowStream_close(RowStream *self, PyObject *Py_UNUSED(ignored))
{
    if (claim(self, "close") < 0)
        return NULL;
    release(self);
    self->busy = 0;
    Py_CLEAR(self->conn);
    Py_CLEAR(self->digest);
    Py_RETURN_NONE;
}

static void RowStream_dealloc(RowStream *self)
{
    release(self);
    Py_CLEAR(self->conn);
    Py_CLEAR(self->digest);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef RowStream_methods[] = {
    {"read", (PyCFunction)RowStream_read, METH_VARARGS,
     "read(limit) -> (bytes, rows): the next whole lines, about limit bytes; b'' at the end"},
    {"read_block", (PyCFunction)RowStream_read_block, METH_VARARGS,
     "read_block(limit) -> (Block, rows): read's lines in a buffer filled again once "
     "released; len 0 at the end"},
    {"close", (PyCFunction)RowStream_close, METH_NOARGS,
     "Free the result, reading and dropping any rows not read."},
    {NULL, NULL, 0, NULL},
};

MODULE_TYPE(RowStream,
            "The escaped lines of one SELECT, read unbuffered from a mysqlclient connection.");

static PyMethodDef module_methods[] = {
    {"xxh64", (PyCFunction)(void (*)(void))py_xxh64, METH_VARARGS | METH_KEYWORDS,
     "xxh64(data, seed=0) -> int: the XXH64 hash of data"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowpump",
    "Rows of a SELECT as the dump's escaped lines, fetched and encoded in C.", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__rowpump(void)
{
    ESCAPE['\\'] = '\\';
    ESCAPE['\t'] = 't';
    ESCAPE['\n'] = 'n';
    ESCAPE['\r'] = 'r';
    ESCAPE['\0'] = '0';
    if (PyType_Ready(&RowStreamType) < 0 || PyType_Ready(&LineDigestType) < 0
        || PyType_Ready(&BlockType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    RowPumpError = PyErr_NewException("snapkeep.engines.mysql._rowpump.Error", NULL, NULL);
    if (PyModule_AddObjectRef(m, "Error", RowPumpError) < 0
        || PyModule_AddObjectRef(m, "RowStream", (PyObject *)&RowStreamType) < 0
        || PyModule_AddObjectRef(m, "LineDigest", (PyObject *)&LineDigestType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
