/* Fast path of the capture reader: classic pcap records straight to UDP datagrams.
 *
 * What `pcapfile.Reader._pcap_records` + `netlayers.decode` do for the common packet (Ethernet
 * with or without VLAN tags, Linux cooked v1/v2, raw IP, BSD loopback; an IPv4 header without
 * options and not fragmented, or an IPv6 header followed directly by UDP; all of it captured),
 * done in one C loop: the Python path builds a Packet, a slice and a Udp per packet before
 * anything is kept, which was a fifth of a sharded worker's CPU. Every other record (other link
 * types, IP options, fragments, non-UDP, anything short or inconsistent, a timestamp out of
 * range) is handed back as the `Packet` the Python reader would have made, so all of their
 * handling, anomalies included, stays in one place (netlayers.py). tests/test_udpscan.py
 * checks both paths agree on real captures and on random bytes.
 *
 * Sans-IO: bytes in, tuples out; no state between calls.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define IPPROTO_UDP 17
#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* zlib.crc32 (what sharding.shard_of uses) */
static uint32_t crc32_of(const unsigned char *p, Py_ssize_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n--)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static inline unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static inline uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

typedef struct {
    const unsigned char *src, *dst, *payload;
    Py_ssize_t alen, plen;
    unsigned sport, dport;
} udp_view;

/* The netlayers.decode fast path; 0 when the frame needs the full decoder. */
static int fast_udp(long linktype, const unsigned char *f, Py_ssize_t n, udp_view *u) {
    unsigned etype;
    Py_ssize_t off;
    switch (linktype) {
    case 1:                                                      /* Ethernet */
        if (n < 14) return 0;
        etype = be16(f + 12);
        off = 14;
        while (etype == 0x8100 || etype == 0x88A8 || etype == 0x9100 || etype == 0x9200) {
            if (n < off + 4) return 0;
            etype = be16(f + off + 2);
            off += 4;
        }
        break;
    case 113:                                                    /* Linux cooked v1 */
        if (n < 16) return 0;
        etype = be16(f + 14);
        off = 16;
        break;
    case 276:                                                    /* Linux cooked v2 */
        if (n < 20) return 0;
        etype = be16(f);
        off = 20;
        break;
    case 101: case 12: case 14: case 228: case 229:              /* raw IP */
        if (n < 1) return 0;
        etype = f[0] >> 4 == 4 ? ETH_IPV4 : f[0] >> 4 == 6 ? ETH_IPV6 : 0;
        off = 0;
        break;
    case 0: case 108: {                                          /* BSD null / loopback */
        if (n < 4) return 0;
        uint32_t af = le32(f);
        if (af > 0xFFFF) af = be32(f);
        etype = af == 2 ? ETH_IPV4 : (af == 10 || af == 24 || af == 28 || af == 30) ? ETH_IPV6 : 0;
        off = 4;
        break;
    }
    default:
        return 0;
    }
    if (etype == ETH_IPV4) {
        if (n < off + 28) return 0;
        const unsigned char *ip = f + off;
        unsigned total = be16(ip + 2), frag = be16(ip + 6);
        if (ip[0] != 0x45 || ip[9] != IPPROTO_UDP || frag & 0x3FFF || off + (Py_ssize_t)total > n)
            return 0;
        unsigned ulen = be16(ip + 24);
        if (ulen < 8 || ulen + 20 > total) return 0;
        u->src = ip + 12; u->dst = ip + 16; u->alen = 4;
        u->sport = be16(ip + 20); u->dport = be16(ip + 22);
        u->payload = ip + 28; u->plen = ulen - 8;
        return 1;
    }
    if (etype == ETH_IPV6) {
        if (n < off + 48) return 0;
        const unsigned char *ip = f + off;
        unsigned plen = be16(ip + 4);
        if (ip[0] >> 4 != 6 || ip[6] != IPPROTO_UDP || off + 40 + (Py_ssize_t)plen > n) return 0;
        unsigned ulen = be16(ip + 44);
        if (ulen < 8 || ulen > plen) return 0;
        u->src = ip + 8; u->dst = ip + 24; u->alen = 16;
        u->sport = be16(ip + 40); u->dport = be16(ip + 42);
        u->payload = ip + 48; u->plen = ulen - 8;
        return 1;
    }
    return 0;
}

/* sharding.shard_address: the client side of the datagram (see monitor/shard_key.py) */
static const unsigned char *client_address(const udp_view *u, const unsigned char *server_ports) {
    int src_server = server_ports[u->sport >> 3] >> (u->sport & 7) & 1;
    int dst_server = server_ports[u->dport >> 3] >> (u->dport & 7) & 1;
    if (src_server != dst_server)
        return src_server ? u->dst : u->src;
    return memcmp(u->src, u->dst, (size_t)u->alen) <= 0 ? u->src : u->dst;
}

/* (ts_ns, ends, payload), built directly: Py_BuildValue would parse its format string for
 * every packet. `ends` = src address, src port (2 bytes, big-endian), dst address, dst port:
 * 12 bytes for IPv4, 36 for IPv6. One bytes object names both ends of the datagram, so the
 * reader finds their text and the flow they belong to with one dict lookup per packet. */
static int emit(PyObject *out, PyObject *packet, long long ts, long linktype, uint32_t orig,
                const unsigned char *data, uint32_t incl, long iface, long workers, long index,
                const unsigned char *pmap, long long *nbytes);

static PyObject *datagram_tuple(long long ts, const udp_view *u) {
    PyObject *t = PyTuple_New(3);
    if (t == NULL) return NULL;
    Py_ssize_t a = u->alen;
    PyObject *ends = PyBytes_FromStringAndSize(NULL, 2 * a + 4);
    if (ends != NULL) {
        unsigned char *e = (unsigned char *)PyBytes_AS_STRING(ends);
        memcpy(e, u->src, (size_t)a);
        e[a] = (unsigned char)(u->sport >> 8); e[a + 1] = (unsigned char)u->sport;
        memcpy(e + a + 2, u->dst, (size_t)a);
        e[2 * a + 2] = (unsigned char)(u->dport >> 8); e[2 * a + 3] = (unsigned char)u->dport;
    }
    PyObject *v[3] = {
        PyLong_FromLongLong(ts),
        ends,
        PyBytes_FromStringAndSize((const char *)u->payload, u->plen),
    };
    for (int i = 0; i < 3; i++) {
        if (v[i] == NULL) {
            for (int k = 0; k < 3; k++) Py_XDECREF(v[k]);
            Py_DECREF(t);
            return NULL;
        }
    }
    for (int i = 0; i < 3; i++) PyTuple_SET_ITEM(t, i, v[i]);
    return t;
}

PyDoc_STRVAR(scan_pcap_doc,
"scan_pcap(buf, pos, big_endian, tsmul, hdr, linktype, workers, index, server_ports, packet, out)\n"
"-> (pos, nbytes)\n\n"
"Appends to `out`, for each complete pcap record from `pos` on: a tuple (ts_ns, ends, payload)\n"
"for a plain UDP datagram (ends: raw src address, src port as 2 big-endian bytes, raw dst\n"
"address, dst port), None for one whose client\n"
"hashes to another shard (crc32 % workers != index; workers 1 keeps all), or\n"
"packet(ts_ns, linktype, origlen, data, 0) for any other record. Stops at the first incomplete\n"
"record and returns its position, with the captured bytes of the tuples and Nones (the\n"
"caller counts the Packets' itself). server_ports: 8192 bytes, bit p set for each\n"
"well-known LwM2M server port p.");

static PyObject *scan_pcap(PyObject *self, PyObject *args) {
    Py_buffer buf, ports;
    Py_ssize_t pos, hdr;
    int big;
    long long tsmul;
    long linktype, workers, index;
    PyObject *packet, *out;
    if (!PyArg_ParseTuple(args, "y*npLnllly*OO!", &buf, &pos, &big, &tsmul, &hdr, &linktype,
                          &workers, &index, &ports, &packet, &PyList_Type, &out))
        return NULL;
    PyObject *result = NULL;
    if (ports.len != 8192 || hdr < 16 || pos < 0 || workers < 1 || tsmul < 1 || tsmul > 1000) {
        PyErr_SetString(PyExc_ValueError, "scan_pcap: bad arguments");
        goto done;
    }
    const unsigned char *b = buf.buf, *pmap = ports.buf;
    Py_ssize_t n = buf.len;
    long long nbytes = 0;
    while (pos + hdr <= n) {
        const unsigned char *h = b + pos;
        uint32_t sec = big ? be32(h) : le32(h), frac = big ? be32(h + 4) : le32(h + 4);
        uint32_t incl = big ? be32(h + 8) : le32(h + 8), orig = big ? be32(h + 12) : le32(h + 12);
        if ((Py_ssize_t)incl > n - pos - hdr)
            break;
        const unsigned char *data = h + hdr;
        /* sec < 2^32 and frac * tsmul < 2^42: always within monitor/datagram.py's TS_NS_MIN
         * (1970) and TS_NS_MAX (year 9999), so no range check is needed here */
        long long ts = (long long)sec * 1000000000LL + (long long)frac * tsmul;
        if (emit(out, packet, ts, linktype, orig, data, incl, 0, workers, index, pmap, &nbytes))
            goto done;
        pos += hdr + incl;
    }
    result = Py_BuildValue("(nL)", pos, nbytes);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&ports);
    return result;
}

/* One datagram of the fast path: appended as a tuple, None (another shard's) or `packet(...)`. */
static int emit(PyObject *out, PyObject *packet, long long ts, long linktype, uint32_t orig,
                const unsigned char *data, uint32_t incl, long iface, long workers, long index,
                const unsigned char *pmap, long long *nbytes) {
    udp_view u;
    PyObject *item;
    if (fast_udp(linktype, data, incl, &u)) {
        *nbytes += incl;
        if (workers > 1 &&
            (long)(crc32_of(client_address(&u, pmap), u.alen) % (uint32_t)workers) != index) {
            item = Py_None;
            Py_INCREF(item);
        } else {
            item = datagram_tuple(ts, &u);
        }
    } else {
        item = PyObject_CallFunction(packet, "LlIy#l", ts, linktype, orig, (const char *)data,
                                     (Py_ssize_t)incl, iface);
    }
    if (item == NULL)
        return -1;
    int err = PyList_Append(out, item);
    Py_DECREF(item);
    return err;
}

PyDoc_STRVAR(scan_pcapng_doc,
"scan_pcapng(buf, pos, big_endian, interfaces, workers, index, server_ports, packet, out)\n"
"-> (pos, nbytes, last_ts)\n\n"
"scan_pcap for the Enhanced Packet Blocks of a pcapng section: `interfaces` lists\n"
"(linktype, mul, div, offset_ns) per interface (ts = ticks * mul // div + offset_ns; linktype -1:\n"
"the interface's scale does not fit in 64 bits, its packets are left to Python). Stops at\n"
"the first block that is not a complete, well-formed EPB of a known interface with a timestamp\n"
"between 1970 and 9999 (the Python reader takes that block: any other block type, damage,\n"
"an incomplete block), returning its position and the last EPB's timestamp (None if none).");

/* monitor/datagram.py's TS_NS_MAX (9999-01-01T00:00:00Z) is beyond 64 bits: the fast path
 * takes the timestamps up to INT64_MAX (year 2262) and leaves the rest to the Python reader */

static PyObject *scan_pcapng(PyObject *self, PyObject *args) {
    Py_buffer buf, ports;
    Py_ssize_t pos;
    int big;
    long long last_ts = -1;
    long workers, index;
    PyObject *ifaces, *packet, *out;
    if (!PyArg_ParseTuple(args, "y*npO!lly*OO!", &buf, &pos, &big, &PyList_Type, &ifaces,
                          &workers, &index, &ports, &packet, &PyList_Type, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t nif = PyList_GET_SIZE(ifaces);
    long *lt = NULL;
    unsigned long long *mul = NULL, *div = NULL;
    long long *offset = NULL;
    if (ports.len != 8192 || pos < 0 || workers < 1) {
        PyErr_SetString(PyExc_ValueError, "scan_pcapng: bad arguments");
        goto done;
    }
    lt = PyMem_Calloc(nif + 1, sizeof *lt);
    mul = PyMem_Calloc(nif + 1, sizeof *mul);
    div = PyMem_Calloc(nif + 1, sizeof *div);
    offset = PyMem_Calloc(nif + 1, sizeof *offset);
    if (!lt || !mul || !div || !offset) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nif; i++) {
        PyObject *t = PyList_GET_ITEM(ifaces, i);
        if (!PyTuple_Check(t) || !PyArg_ParseTuple(t, "lKKL", &lt[i], &mul[i], &div[i], &offset[i]))
            goto done;
        if (div[i] == 0) {
            PyErr_SetString(PyExc_ValueError, "scan_pcapng: zero divisor");
            goto done;
        }
    }
    const unsigned char *b = buf.buf, *pmap = ports.buf;
    Py_ssize_t n = buf.len;
    long long nbytes = 0;
    while (pos + 32 <= n) {
        const unsigned char *h = b + pos;
        uint32_t btype = big ? be32(h) : le32(h), blen = big ? be32(h + 4) : le32(h + 4);
        if (btype != 6 || blen < 32 || blen & 3 || (Py_ssize_t)blen > n - pos)
            break;
        if ((big ? be32(h + blen - 4) : le32(h + blen - 4)) != blen)
            break;
        uint32_t ifid = big ? be32(h + 8) : le32(h + 8);
        uint32_t hi = big ? be32(h + 12) : le32(h + 12), lo = big ? be32(h + 16) : le32(h + 16);
        uint32_t cap = big ? be32(h + 20) : le32(h + 20), orig = big ? be32(h + 24) : le32(h + 24);
        if ((uint64_t)cap + 32 > blen || ifid >= (uint64_t)nif)
            break;
        /* exact, as Python's integers: 64-bit ticks times at most 10^9, in 128 bits */
        unsigned __int128 ticks = (unsigned __int128)((uint64_t)hi << 32 | lo) * mul[ifid] / div[ifid];
        __int128 ts = (__int128)ticks + offset[ifid];
        if (ts < 0 || ts > (__int128)INT64_MAX || lt[ifid] < 0)
            break;
        if (emit(out, packet, (long long)ts, lt[ifid], orig, h + 28, cap, (long)ifid, workers,
                 index, pmap, &nbytes))
            goto done;
        last_ts = (long long)ts;
        pos += blen;
    }
    if (last_ts < 0)
        result = Py_BuildValue("(nLO)", pos, nbytes, Py_None);
    else
        result = Py_BuildValue("(nLL)", pos, nbytes, last_ts);
done:
    PyMem_Free(lt);
    PyMem_Free(mul);
    PyMem_Free(div);
    PyMem_Free(offset);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&ports);
    return result;
}

static PyObject *crc32_py(PyObject *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE))
        return NULL;
    uint32_t c = crc32_of(b.buf, b.len);
    PyBuffer_Release(&b);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef methods[] = {
    {"scan_pcap", scan_pcap, METH_VARARGS, scan_pcap_doc},
    {"scan_pcapng", scan_pcapng, METH_VARARGS, scan_pcapng_doc},
    {"crc32", crc32_py, METH_O, "zlib.crc32 of a bytes-like object (the shard hash; for tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_udpscan", "Fast path of the pcap reader (see _udpscan.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__udpscan(void) {
    crc_init();
    return PyModule_Create(&module);
}
