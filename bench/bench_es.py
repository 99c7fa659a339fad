"""Documents/s indexed into Elasticsearch by EsSink (bulk create, _id = event.id).

Run: python bench/bench_es.py [DOCS] [BATCH]
Starts a local node from tests/es (Maven Central integ-test-zip, 512 MB heap, HTTPS + basic
auth) unless LWM2M_ES_URL (+ LWM2M_ES_USER/PASSWORD/CA or API_KEY) points at one. Documents are
the pipeline's output for pcaps/*.pcap, repeated with distinct event.ids. Wall time from the
first write() to close() returning, with every document acknowledged; the NDJSON sink on the
same documents is printed for scale. Note the node shares this machine's CPUs with the client.
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from es.documents import all_documents  # noqa: E402
from monitor.es_sink import EsConfig, EsSink  # noqa: E402
from monitor.sinks import NdjsonSink  # noqa: E402

n_docs = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000

base = all_documents()
docs = []
r = 0
while len(docs) < n_docs:
    for d in base:
        d = json.loads(json.dumps(d))
        d["event"]["id"] = f"{d['event']['id']}-b{r}"
        docs.append(d)
    r += 1
docs = docs[:n_docs]

node = None
tmp = tempfile.mkdtemp(prefix="bench-es-")
if os.environ.get("LWM2M_ES_URL"):
    config = EsConfig.from_env_and_args(spool_dir=tmp, batch_docs=batch, namespace="bench")
else:
    from es.node import ADMIN_USER, Node
    node = Node.create()
    print(f"starting Elasticsearch node at {node.url} ...", file=sys.stderr)
    t = time.perf_counter()
    node.start()
    print(f"node ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    config = EsConfig.from_env_and_args(node.url, user=ADMIN_USER, password=node.password, ca=node.ca_path,
                                        env={}, spool_dir=tmp, batch_docs=batch, replicas=0, namespace="bench")
try:
    sink = EsSink(config)
    t = time.perf_counter()
    cpu = time.process_time()
    for i in range(0, len(docs), 512):          # the pipeline driver's batch size (monitor/analyze.py)
        sink.write(docs[i:i + 512])
    report = sink.close()
    es_s = time.perf_counter() - t
    es_cpu = time.process_time() - cpu
    assert report.sent + report.duplicates == len(docs) and report.spooled_remaining == 0, report

    t = time.perf_counter()
    nd = NdjsonSink(os.path.join(tmp, "bench.ndjson"))
    for i in range(0, len(docs), 512):
        nd.write(docs[i:i + 512])
    nd.close()
    nd_s = time.perf_counter() - t
    size = os.path.getsize(os.path.join(tmp, "bench.ndjson"))
    print(f"elasticsearch: {len(docs)} documents ({size / len(docs):.0f} B avg) in {es_s:.2f} s = "
          f"{len(docs) / es_s:,.0f} documents/s (bulk batch {batch}, sent {report.sent}, "
          f"duplicates {report.duplicates}, retries {report.retries}); client CPU {es_cpu:.2f} s")
    print(f"ndjson:        {len(docs) / nd_s:,.0f} documents/s")
finally:
    if node is not None:
        node.destroy()
