"""The C fast path of the capture reader (`parsers/_udpscan.c`) against the Python path it mirrors
(`pcapfile.Reader.feed` + `netlayers.decode` + `shard_key.ShardFilter`): on every classic pcap
of the project and the corpus, and on generated frames mutated at random."""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captures import corpus_captures, project_captures
from monitor.capture import CaptureStats, read_files
from monitor.shard_key import ShardFilter, udp_shard
from parsers import pcapfile
from parsers.errors import ParseError
from parsers.netlayers import Udp, decode
from parsers.pcapfile import Packet, Reader, split_ends, udp_ends

pytestmark = pytest.mark.skipif(os.environ.get("LWM2M_MONITOR_PURE") == "1",
                                reason="pure-Python run: the C fast path is off by design")

LINKTYPES = [1, 113, 276, 101, 12, 14, 228, 229, 0, 108, 147]


def test_the_fast_path_is_built():
    assert pcapfile._udpscan is not None, "run `python scripts/build_accel.py` (make test does)"


def _read(path: str) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _captures(kind: str) -> list[str]:
    """The project's and corpus' captures of one kind ("pcap" or "pcapng")."""
    return [p for p in project_captures() + corpus_captures()
            if (_read(p)[:4] == pcapfile._PCAPNG_SHB) == (kind == "pcapng")]


def _check(data: bytes, workers: int = 1, index: int = 0, chunk: int | None = None) -> int:
    """Both paths over `data`; returns how many records took the fast path."""
    def run(fast):
        reader, out, error = Reader(), [], None
        try:
            for i in range(0, len(data), chunk or len(data) or 1):
                out += reader.feed_udp(data[i:i + (chunk or len(data))], fast)
            reader.close()
        except ParseError as e:
            error = str(e)
        return out, error, reader.fast_bytes
    slow, slow_error, _ = run(None)
    fast, fast_error, fast_bytes = run(udp_shard(index, workers))
    assert fast_error == slow_error
    assert len(fast) == len(slow)
    keep = ShardFilter(index, workers).keep
    taken = nbytes = 0
    for py, c in zip(slow, fast):
        if type(c) is tuple or c is None:
            taken += 1
            nbytes += len(py.data)
            udp = decode(py.linktype, py.data, py.origlen)
            assert type(udp) is Udp, (py, c)
            if c is None:
                assert workers > 1 and not keep(udp.src, udp.src_port, udp.dst, udp.dst_port)
            else:
                assert c == (py.ts_ns, udp_ends(udp.src, udp.src_port, udp.dst, udp.dst_port), udp.payload)
                assert split_ends(c[1]) == (udp.src, udp.src_port, udp.dst, udp.dst_port)
                assert workers == 1 or keep(udp.src, udp.src_port, udp.dst, udp.dst_port)
        else:
            assert type(c) is type(py) and c == py
    assert fast_bytes == nbytes
    return taken


@pytest.mark.parametrize("path", _captures("pcap") + _captures("pcapng"), ids=lambda p: Path(p).name)
def test_real_captures_decode_alike(path):
    data = _read(path)
    udp = sum(1 for r in Reader().feed(data)
              if type(r) is Packet and type(decode(r.linktype, r.data, r.origlen)) is Udp)
    assert _check(data) >= udp * 0.9 if udp else True
    _check(data, workers=2, index=1, chunk=997)


def test_every_real_capture_in_the_check():
    assert len(_captures("pcap")) >= 30 and len(_captures("pcapng")) >= 5


def test_crc32_is_zlibs():
    for raw in (b"", bytes([10, 1, 0, 7]), bytes(range(16)), os.urandom(16)):
        assert pcapfile._udpscan.crc32(raw) == zlib.crc32(raw)


def _frame(linktype: int, v6: bool, sport: int, dport: int, payload: bytes, src: bytes, dst: bytes,
           udp_delta: int = 0, ip_delta: int = 0) -> bytes:
    """A frame of that link type; the deltas move the UDP and IP length fields off their values."""
    udp = struct.pack("!HHHH", sport, dport, max(0, 8 + len(payload) + udp_delta), 0) + payload
    if v6:
        ip = (struct.pack("!IHBB", 6 << 28, max(0, len(udp) + ip_delta), 17, 64)
              + src.ljust(16, b"\0")[:16] + dst.ljust(16, b"\0")[:16])
        etype, af = 0x86DD, 10
    else:
        ip = (struct.pack("!BBHHHBBH", 0x45, 0, max(0, 20 + len(udp) + ip_delta), 1, 0, 64, 17, 0)
              + src[:4].ljust(4, b"\0") + dst[:4].ljust(4, b"\0"))
        etype, af = 0x0800, 2
    link = {1: b"\0" * 12 + struct.pack("!H", etype), 113: b"\0" * 14 + struct.pack("!H", etype),
            276: struct.pack("!H", etype) + b"\0" * 18, 0: struct.pack("<I", af),
            108: struct.pack(">I", af)}.get(linktype, b"")
    return link + ip + udp


def _pcap(linktype: int, frames: list[bytes], big: bool, nano: bool) -> bytes:
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, f in enumerate(frames):
        out += struct.pack(e + "IIII", 1_700_000_000 + i, 999_999 - i, len(f), len(f) + (i % 2)) + f
    return out


ports = st.sampled_from([5683, 5684, 5685, 5783, 40000, 53, 0, 65535])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linktype=st.sampled_from(LINKTYPES), v6=st.booleans(),
       frames=st.lists(st.tuples(ports, ports, st.binary(max_size=40), st.binary(min_size=16, max_size=16),
                                 st.binary(min_size=16, max_size=16),
                                 st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=3),
                                 st.integers(0, 200), st.integers(-10, 3), st.integers(-3, 3),
                                 st.booleans()), max_size=8),
       big=st.booleans(), nano=st.booleans(), workers=st.integers(1, 4), data=st.data())
def test_generated_and_mutated_frames_decode_alike(linktype, v6, frames, big, nano, workers, data):
    built, plain = [], 0
    for sport, dport, payload, src, dst, flips, cut, udp_delta, ip_delta, intact in frames:
        if intact:
            flips, cut, udp_delta, ip_delta = [], 1 << 16, 0, 0
        f = bytearray(_frame(linktype, v6, sport, dport, payload, src, dst, udp_delta, ip_delta))
        for at, value in flips:                    # corrupt headers: every check must agree
            if at < len(f):
                f[at] = value
        built.append(bytes(f[:cut]) if cut < len(f) else bytes(f))
        plain += not flips and cut >= len(f) and udp_delta == ip_delta == 0
    raw = _pcap(linktype, built, big, nano)
    damaged = data.draw(st.booleans())
    if damaged:                                    # a damaged or truncated tail
        raw = raw[:data.draw(st.integers(0, len(raw)))] + data.draw(st.binary(max_size=20))
    index = data.draw(st.integers(0, workers - 1))
    taken = _check(raw, workers, index, chunk=data.draw(st.sampled_from([None, 1, 7, 64])))
    if not damaged and linktype != 147:            # every intact frame takes the fast path
        assert taken >= plain


def test_read_files_gives_the_same_datagrams_and_counts_either_way(monkeypatch):
    paths = (_captures("pcap")[:10] + _captures("pcapng")[:6]
             + [p for p in project_captures() if p.endswith("fragments.pcap")])

    def read(shard):
        out = []
        for p in paths:
            stats = CaptureStats()
            out.append(([astuple_datagram(d) for d in read_files([p], stats, shard=shard)],
                        stats.frames, stats.bytes, dict(stats.malformed), stats.non_udp))
        return out

    for shard in ((0, 1), (1, 2), (0, 3)):
        fast = read(shard)
        monkeypatch.setattr(pcapfile, "_udpscan", None)
        assert read(shard) == fast
        monkeypatch.undo()


def astuple_datagram(d) -> tuple:
    return (d.ts_ns, d.src_ip, d.src_port, d.dst_ip, d.dst_port, d.payload, d.frame, d.source)


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) & 3)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def _pcapng(big: bool, ifaces: list[tuple[int, int | None, int | None]], blocks: list[tuple]) -> bytes:
    """A section with these interfaces (linktype, if_tsresol, if_tsoffset) and blocks:
    ("epb", interface, ticks, frame), ("spb", frame), ("isb",), ("custom",), ("dsb",)."""
    e = ">" if big else "<"
    out = _block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype, tsresol, tsoffset in ifaces:
        opts = b""
        if tsresol is not None:
            opts += struct.pack(e + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
        if tsoffset is not None:
            opts += struct.pack(e + "HHq", 14, 8, tsoffset)
        out += _block(e, 1, struct.pack(e + "HHI", linktype, 0, 0) + opts + (struct.pack(e + "HH", 0, 0) if opts else b""))
    for b in blocks:
        if b[0] == "epb":
            _, ifid, ticks, frame = b
            out += _block(e, 6, struct.pack(e + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame)
        elif b[0] == "spb":
            out += _block(e, 3, struct.pack(e + "I", len(b[1])) + b[1])
        elif b[0] == "isb":
            out += _block(e, 5, struct.pack(e + "III", 0, 0, 0))
        elif b[0] == "custom":
            out += _block(e, 0x00000BAD, struct.pack(e + "I", 32473) + b"xyz")
        else:
            out += _block(e, 0x0A, struct.pack(e + "II", 0x544C534B, 4) + b"KEYS")
    return out


tsresols = st.sampled_from([None, 6, 9, 3, 0x80 | 20, 0x80 | 63, 19, 30, 127])
tsoffsets = st.sampled_from([None, 0, 1_700_000_000, -5, 10**10, 2**62])
ticks = st.sampled_from([0, 1, 1_700_000_000_123_456, 1_700_000_000_123_456_789, 2**64 - 1, 2**63, 12345])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linktype=st.sampled_from(LINKTYPES), v6=st.booleans(), big=st.booleans(),
       ifaces=st.lists(st.tuples(tsresols, tsoffsets), min_size=1, max_size=3),
       items=st.lists(st.tuples(st.sampled_from(["epb"] * 6 + ["spb", "isb", "custom", "dsb"]),
                                st.integers(0, 3), ticks, ports, ports, st.binary(max_size=24), st.booleans(),
                                st.integers(0, 80)), max_size=10),
       workers=st.integers(1, 3), data=st.data())
def test_generated_pcapng_decodes_alike(linktype, v6, big, ifaces, items, workers, data):
    blocks, plain = [], 0
    for kind, ifid, tick, sport, dport, payload, intact, cut in items:
        frame = _frame(linktype, v6, sport, dport, payload, bytes(16), bytes(range(16)))
        if not intact:
            frame = frame[:cut]
        blocks.append((kind, ifid, tick, frame) if kind == "epb" else (kind, frame) if kind == "spb" else (kind,))
    raw = _pcapng(big, [(linktype, r, o) for r, o in ifaces], blocks)
    if data.draw(st.booleans()):                   # a damaged or truncated tail
        raw = raw[:data.draw(st.integers(0, len(raw)))] + data.draw(st.binary(max_size=16))
    if raw and data.draw(st.booleans()):           # one byte changed anywhere (lengths, trailers)
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1:]
    _check(raw, workers, data.draw(st.integers(0, workers - 1)), chunk=data.draw(st.sampled_from([None, 5, 61])))


def test_pcapng_fast_path_takes_plain_epbs():
    frames = [_frame(1, v6, 40000, 5683, b"\x40\x01\x00\x01", bytes([10, 0, 0, i]), bytes([10, 0, 0, 1]))
              for i, v6 in enumerate([False, True] * 4)]
    raw = _pcapng(False, [(1, None, None), (1, 9, None)], [("epb", i % 2, 1_700_000_000_000_000 + i, f)
                                                             for i, f in enumerate(frames)] + [("isb",)])
    assert _check(raw) == len(frames)


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_every_single_byte_corruption_decodes_alike(kind):
    """Each byte of a small capture changed in turn (headers, lengths, trailers, addresses)."""
    frames = [_frame(1, v6, 40000, 5684, b"\x17\xfe\xfd", bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))
              for v6 in (False, True)]
    if kind == "pcap":
        raw = _pcap(1, frames, big=False, nano=True)
    else:
        raw = _pcapng(False, [(1, 9, 0)], [("epb", 0, 1_700_000_000_000_000_000 + i, f)
                                            for i, f in enumerate(frames)] + [("isb",)])
    for at in range(len(raw)):
        for flip in (0x01, 0x80, 0xFF):
            _check(raw[:at] + bytes([raw[at] ^ flip]) + raw[at + 1:], workers=2, index=at % 2)


SANITIZED_DRIVER = """
import importlib.util, random, sys
spec = importlib.util.spec_from_file_location("_udpscan", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
from parsers import pcapfile
pcapfile._udpscan = module
import test_udpscan as t
for path in t._captures("pcap") + t._captures("pcapng"):
    t._check(t._read(path), workers=2, index=1, chunk=4093)
rnd = random.Random(7)
small = [t._read(p) for p in t._captures("pcap") + t._captures("pcapng")]
small = [s[:600] for s in small]
for i in range(3000):                      # random corruption of capture starts
    raw = bytearray(rnd.choice(small))
    for _ in range(rnd.randrange(1, 6)):
        raw[rnd.randrange(len(raw))] = rnd.randrange(256)
    t._check(bytes(raw[:rnd.randrange(len(raw) + 1)]), workers=rnd.randrange(1, 4), index=0)
print("clean")
"""


def test_the_c_fast_path_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    """Every capture and 3,000 corrupted ones through an ASan/UBSan build of `_udpscan.c`, Python
    allocating with malloc so that reads past a bytes object are caught."""
    import subprocess
    import sys
    import sysconfig
    root = Path(__file__).resolve().parent.parent
    so = tmp_path / "_udpscan_asan.so"
    libs = []
    for lib in ("libasan.so", "libubsan.so"):
        found = subprocess.run(["gcc", f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
        assert found != lib and Path(found).exists(), f"{lib} missing (gcc's sanitizer runtime)"
        libs.append(found)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                    f"-I{sysconfig.get_paths()['include']}", str(root / "parsers" / "_udpscan.c"), "-o", str(so)],
                   check=True)
    env = {**os.environ, "PYTHONMALLOC": "malloc", "LD_PRELOAD": " ".join(libs),
           "ASAN_OPTIONS": "detect_leaks=0", "PYTHONPATH": f"{root}{os.pathsep}{root / 'tests'}"}
    env.pop("LWM2M_MONITOR_PURE", None)
    r = subprocess.run([sys.executable, "-c", SANITIZED_DRIVER, str(so)], cwd=root, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and r.stdout.strip() == "clean", r.stderr[-3000:]
