/* The dump's row pump: one SELECT's rows, read unbuffered from a mysqlclient connection's
 * own MYSQL handle and encoded in C as the ``escaped`` lines of encoding.py (fields
 * separated by TAB, lines ended by LF, NULL as \N, and backslash, TAB, LF, CR and NUL
 * escaped with a backslash).
 *
 * Why C: in Python every field becomes a bytes object and the escaping is per field;
 * here a block of rows is fetched and encoded with the GIL released, so the pump of one
 * worker runs beside the other workers' chunking, hashing and compression, and the
 * server only sends its plain text form (no per-row CONCAT/QUOTE to compute).
 *
 * Python API (wrapped by rowpump.py):
 *   RowStream(connection, sql: bytes)   runs the SELECT with mysql_use_result
 *   .read(limit: int) -> (bytes, rows)  whole lines, about ``limit`` bytes (b"" at the end)
 *   .close()                            frees the result (reading and dropping the rest)
 * Server and client errors raise ``Error(errno, message)``.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <mysql.h>
#include <stdlib.h>
#include <string.h>

static PyObject *RowPumpError;

/* The escape letter of each byte that needs one, 0 for the rest. */
static unsigned char ESCAPE[256];

typedef struct {
    PyObject_HEAD
    PyObject *conn;  /* the mysqlclient connection: kept alive while its handle is used */
    MYSQL *mysql;
    MYSQL_RES *res;
    char *buf;
    size_t cap;
    int finished;
} RowStream;

static int grow(RowStream *s, size_t need)
{
    if (need <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 1 << 16;
    while (cap < need)
        cap *= 2;
    char *buf = realloc(s->buf, cap);
    if (buf == NULL)
        return -1;
    s->buf = buf;
    s->cap = cap;
    return 0;
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

static int RowStream_init(RowStream *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"connection", "sql", NULL};
    PyObject *conn;
    Py_buffer sql;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oy*", kwlist, &conn, &sql))
        return -1;
    MYSQL *mysql = native_handle(conn);
    if (mysql == NULL) {
        PyBuffer_Release(&sql);
        return -1;
    }
    int rc;
    MYSQL_RES *res = NULL;
    Py_BEGIN_ALLOW_THREADS
    rc = mysql_real_query(mysql, sql.buf, (unsigned long)sql.len);
    if (rc == 0)
        res = mysql_use_result(mysql);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&sql);
    if (rc != 0 || res == NULL) {
        raise_mysql(mysql);
        return -1;
    }
    Py_INCREF(conn);
    Py_XSETREF(self->conn, conn);
    self->mysql = mysql;
    self->res = res;
    self->finished = 0;
    return 0;
}

/* Appends one row's line at s->buf + *len; -1 when out of memory. */
static int encode_row(RowStream *s, MYSQL_ROW row, const unsigned long *lengths,
                      unsigned int n, size_t *len)
{
    size_t worst = 3 * (size_t)n + 1;
    for (unsigned int i = 0; i < n; i++)
        worst += 2 * (size_t)lengths[i];
    if (grow(s, *len + worst) < 0)
        return -1;
    char *p = s->buf + *len;
    for (unsigned int i = 0; i < n; i++) {
        if (i)
            *p++ = '\t';
        const unsigned char *f = (const unsigned char *)row[i];
        if (f == NULL) {
            *p++ = '\\';
            *p++ = 'N';
            continue;
        }
        unsigned long start = 0, length = lengths[i];
        for (unsigned long j = 0; j < length; j++) {
            unsigned char e = ESCAPE[f[j]];
            if (e) {
                memcpy(p, f + start, j - start);
                p += j - start;
                *p++ = '\\';
                *p++ = (char)e;
                start = j + 1;
            }
        }
        memcpy(p, f + start, length - start);
        p += length - start;
    }
    *p++ = '\n';
    *len = (size_t)(p - s->buf);
    return 0;
}

static PyObject *RowStream_read(RowStream *self, PyObject *args)
{
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "n", &limit))
        return NULL;
    if (self->res == NULL || self->finished)
        return Py_BuildValue("(y#n)", "", (Py_ssize_t)0, (Py_ssize_t)0);
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
        if (encode_row(self, row, mysql_fetch_lengths(self->res), n, &len) < 0) {
            oom = 1;
            break;
        }
        rows++;
    }
    Py_END_ALLOW_THREADS
    if (oom)
        return PyErr_NoMemory();
    if (failed)
        return raise_mysql(self->mysql);
    /* buf is still NULL when the result had no rows; "y#" would make that None */
    return Py_BuildValue("(y#n)", len ? self->buf : "", (Py_ssize_t)len, rows);
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
    free(self->buf);
    self->buf = NULL;
    self->cap = 0;
}

static PyObject *RowStream_close(RowStream *self, PyObject *Py_UNUSED(ignored))
{
    release(self);
    Py_CLEAR(self->conn);
    Py_RETURN_NONE;
}

static void RowStream_dealloc(RowStream *self)
{
    release(self);
    Py_CLEAR(self->conn);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef RowStream_methods[] = {
    {"read", (PyCFunction)RowStream_read, METH_VARARGS,
     "read(limit) -> (bytes, rows): the next whole lines, about limit bytes; b'' at the end"},
    {"close", (PyCFunction)RowStream_close, METH_NOARGS,
     "Free the result, reading and dropping any rows not read."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RowStreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "snapkeep.engines.mysql._rowpump.RowStream",
    .tp_basicsize = sizeof(RowStream),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The escaped lines of one SELECT, read unbuffered from a mysqlclient connection.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)RowStream_init,
    .tp_dealloc = (destructor)RowStream_dealloc,
    .tp_methods = RowStream_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_rowpump",
    "Rows of a SELECT as the dump's escaped lines, fetched and encoded in C.", -1, NULL,
};

PyMODINIT_FUNC PyInit__rowpump(void)
{
    ESCAPE['\\'] = '\\';
    ESCAPE['\t'] = 't';
    ESCAPE['\n'] = 'n';
    ESCAPE['\r'] = 'r';
    ESCAPE['\0'] = '0';
    if (PyType_Ready(&RowStreamType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    RowPumpError = PyErr_NewException("snapkeep.engines.mysql._rowpump.Error", NULL, NULL);
    if (PyModule_AddObjectRef(m, "Error", RowPumpError) < 0
        || PyModule_AddObjectRef(m, "RowStream", (PyObject *)&RowStreamType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
