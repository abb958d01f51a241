"""Runs REDbot (https://redbot.org) on one request and prints its notes as JSON lines:
{"level": "good|info|warning|bad", "summary": "..."}. Used by tests/contract.rs, one process
per request (REDbot's event loop does not restart cleanly within one process).

usage: redbot_check.py METHOD URL [BODY]
"""

import json
import sys
from configparser import ConfigParser

import thor
from redbot.resource import HttpResource


def main():
    method, url = sys.argv[1], sys.argv[2]
    body = sys.argv[3].encode() if len(sys.argv) > 3 else b""
    config = ConfigParser()
    config.read_dict({"redbot": {"enable_local_access": "True"}})
    resource = HttpResource(config["redbot"])
    headers = [("Content-Type", "application/octet-stream")] if body else []
    resource.set_request(url, method=method, headers=headers, content=body)

    @thor.events.on(resource)
    def check_done():
        thor.stop()

    resource.check()
    thor.run()
    if resource.fetch_error is not None:
        print(json.dumps({"level": "bad", "summary": f"fetch failed: {resource.fetch_error.desc}"}))
    print(json.dumps({"level": "status", "summary": str(resource.response.status_code)}))
    for note in resource.response.notes:
        for n in [note, *note.subnotes]:
            print(json.dumps({"level": n.level.value, "summary": n.summary}))


if __name__ == "__main__":
    main()
