/* The page walk of ibd_rows.LeafCounter in C: the leaf pages of a tablespace's clustered
 * index and their live records, and the check that their chain is one list.
 *
 * Why C: the walk visits every record of every leaf page; in Python it cost 2.3 s of CPU
 * per GiB of .ibd, more than half of what storing the pages costs, and it held the GIL
 * the storing threads need. Here a buffer of pages is walked with the GIL released.
 * ibd_rows.py holds the rules (which pages count, what makes a page "not understood")
 * and the Python fallback used where this module is not built; both give the same result
 * (tests/unit/engines/test_ibd_rows.py compares them page by page).
 *
 * Python API:
 *   leaves(pages, first_no, page_size, index_id, free) -> (packed: bytes, bad_no, bad_kind)
 *       pages: whole pages, the first one numbered first_no; index_id: 8 bytes, the
 *       clustered index's id; free: a bitmap, bit n set when page n is free (pages past
 *       its end are not). packed: one record per counted leaf page, four native uint32
 *       (page number, prev, next, live records), in page order. The walk stops at the
 *       first page it cannot read: bad_kind 1 (a leaf whose header or record list is not
 *       understood) or 2 (a page-compressed or encrypted page), bad_no its number;
 *       bad_kind 0 when every page was read.
 *   chain(packed) -> int | None
 *       the sum of the live records when the leaves form one list (one head, one tail,
 *       every leaf on it once, in page order), None otherwise.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define FIL_NULL 0xFFFFFFFFu
#define FIL_PAGE_INDEX 17855
#define FIL_PAGE_TYPE_INSTANT 18
#define PAGE_COMPRESSED 34354
#define PAGE_COMPRESSED_ENCRYPTED 37401
#define PAGE_HEADER 38
#define PAGE_N_HEAP (PAGE_HEADER + 4)
#define PAGE_N_RECS (PAGE_HEADER + 16)
#define PAGE_LEVEL (PAGE_HEADER + 26)
#define PAGE_INDEX_ID (PAGE_HEADER + 28)
#define INFIMUM 99
#define SUPREMUM 112
#define ROOT 3
#define REC_DELETED 0x20
#define REC_MIN 0x10
#define STATUS_ORDINARY 0
#define STATUS_INSTANT 4

static inline uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Live user records of one COMPACT/DYNAMIC leaf page; -1 when its list is broken. */
static long records(const unsigned char *page, uint32_t page_size)
{
    long want = be16(page + PAGE_N_RECS), seen = 0, live = 0;
    uint32_t mask = page_size - 1;
    uint32_t at = (uint32_t)(INFIMUM + (int16_t)be16(page + INFIMUM - 2)) & mask;
    int meta = 0;
    while (at != SUPREMUM) {
        if (at < SUPREMUM || seen > want + 1)
            return -1;
        unsigned info = page[at - 5], status = page[at - 3] & 7;
        if (status == STATUS_INSTANT && (info & REC_MIN) && !seen && !meta)
            meta = 1;
        else if (status != STATUS_ORDINARY)
            return -1;
        else {
            seen++;
            live += !(info & REC_DELETED);
        }
        at = (uint32_t)(at + (int16_t)be16(page + at - 2)) & mask;
    }
    return (seen == want || (meta && seen + 1 == want)) ? live : -1;
}

static inline int is_free(const unsigned char *bits, Py_ssize_t nbits, uint64_t no)
{
    return (Py_ssize_t)no < nbits && (bits[no >> 3] >> (no & 7) & 1);
}

static PyObject *py_leaves(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer pages, index_id, free;
    unsigned long long first_no;
    unsigned long page_size;
    if (!PyArg_ParseTuple(args, "y*Kky*y*", &pages, &first_no, &page_size, &index_id, &free))
        return NULL;
    PyObject *out = NULL;
    if (page_size < 4096 || (page_size & (page_size - 1)) || index_id.len != 8) {
        PyErr_SetString(PyExc_ValueError, "page_size must be a power of two >= 4096 and "
                                          "index_id 8 bytes");
        goto done;
    }
    Py_ssize_t n = pages.len / (Py_ssize_t)page_size;
    out = PyBytes_FromStringAndSize(NULL, n * 16);
    if (out == NULL)
        goto done;
    uint32_t *rec = (uint32_t *)PyBytes_AS_STRING(out);
    Py_ssize_t kept = 0;
    int bad_kind = 0;
    unsigned long long bad_no = 0;
    const unsigned char *base = pages.buf, *id = index_id.buf, *bits = free.buf;
    Py_ssize_t nbits = free.len * 8;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *page = base + i * (Py_ssize_t)page_size;
        uint64_t no = first_no + (uint64_t)i;
        if (no < ROOT || is_free(bits, nbits, no))
            continue;
        unsigned kind = be16(page + 24);
        if (kind != FIL_PAGE_INDEX && !(no == ROOT && kind == FIL_PAGE_TYPE_INSTANT)) {
            if (kind == PAGE_COMPRESSED || kind == PAGE_COMPRESSED_ENCRYPTED) {
                bad_kind = 2;
                bad_no = no;
                break;
            }
            continue;
        }
        if (memcmp(page + PAGE_INDEX_ID, id, 8) != 0 || be16(page + PAGE_LEVEL) != 0)
            continue;
        long live = -1;
        if (be32(page + 4) == (uint32_t)no && (page[PAGE_N_HEAP] & 0x80))
            live = records(page, (uint32_t)page_size);
        if (live < 0) {
            bad_kind = 1;
            bad_no = no;
            break;
        }
        rec[kept * 4] = (uint32_t)no;
        rec[kept * 4 + 1] = be32(page + 8);
        rec[kept * 4 + 2] = be32(page + 12);
        rec[kept * 4 + 3] = (uint32_t)live;
        kept++;
    }
    Py_END_ALLOW_THREADS
    if (_PyBytes_Resize(&out, kept * 16) < 0)
        goto done;
    PyObject *result = Py_BuildValue("(NKi)", out, bad_no, bad_kind);
    out = result;
done:
    PyBuffer_Release(&pages);
    PyBuffer_Release(&index_id);
    PyBuffer_Release(&free);
    return out;
}

/* The index of page ``no`` in the sorted records, or -1. */
static Py_ssize_t find(const uint32_t *rec, Py_ssize_t n, uint32_t no)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (rec[mid * 4] < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && rec[lo * 4] == no ? lo : -1;
}

static PyObject *py_chain(PyObject *Py_UNUSED(module), PyObject *args)
{
    Py_buffer packed;
    if (!PyArg_ParseTuple(args, "y*", &packed))
        return NULL;
    const uint32_t *rec = packed.buf;
    Py_ssize_t n = packed.len / 16;
    Py_ssize_t head = -1, seen = 0;
    unsigned long long total = 0;
    int ok = n > 0 && packed.len % 16 == 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; ok && i < n; i++) {
        if (i && rec[i * 4] <= rec[(i - 1) * 4])
            ok = 0;  /* not in page order: binary search would not find pages */
        else if (rec[i * 4 + 1] == FIL_NULL) {
            if (head >= 0)
                ok = 0;  /* two heads */
            head = i;
        }
    }
    if (ok && head < 0)
        ok = 0;
    for (Py_ssize_t at = head; ok;) {
        if (seen++ >= n) {
            ok = 0;  /* a loop */
            break;
        }
        total += rec[at * 4 + 3];
        uint32_t next = rec[at * 4 + 2];
        if (next == FIL_NULL)
            break;
        at = find(rec, n, next);
        if (at < 0)
            ok = 0;  /* the chain leaves the index's leaf pages */
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&packed);
    if (!ok || seen != n)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(total);
}

static PyMethodDef methods[] = {
    {"leaves", py_leaves, METH_VARARGS,
     "leaves(pages, first_no, page_size, index_id, free) -> (packed, bad_no, bad_kind)"},
    {"chain", py_chain, METH_VARARGS,
     "chain(packed) -> int | None: the live records of one well-formed leaf list"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ibdpages",
    "The leaf pages of an InnoDB clustered index and their live records, walked in C.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__ibdpages(void) { return PyModule_Create(&module); }
