"""Start a throw-away local Elasticsearch node by hand (same setup as the tests) and keep it in
the foreground until Ctrl-C / SIGTERM, which stops it and deletes its data.

    python tests/es/run_node.py --env-file /tmp/es.env     # prints the LWM2M_ES_* lines
    . /tmp/es.env; lwm2m-monitor analyze CAPTURE --es "$LWM2M_ES_URL"  # in another shell
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from es.node import ADMIN_USER, Node  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env-file", help="also write the export lines to this file (mode 600)")
    args = ap.parse_args()
    node = Node.create()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        node.start()
        lines = [f"export LWM2M_ES_URL={node.url}", f"export LWM2M_ES_USER={ADMIN_USER}",
                 f"export LWM2M_ES_PASSWORD={node.password}", f"export LWM2M_ES_CA={node.ca_path}"]
        if args.env_file:
            fd = os.open(args.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)
        print(f"# node running (data in {node.workdir}); Ctrl-C stops it", file=sys.stderr, flush=True)
        while node.proc is not None and node.proc.poll() is None:
            time.sleep(1)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        node.destroy()


if __name__ == "__main__":
    sys.exit(main())
