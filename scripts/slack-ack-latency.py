#!/usr/bin/env python3
"""Measures how fast cert-assistant acknowledges Slack: `/cert status` and Approve clicks.

It plays Slack on both sides: a local Web API server (users.info, conversations.open,
chat.postMessage, ...) and signed requests to the service, sequentially, one at a time.
Start the service against the fake API first, for example:

    CERT_ASSISTANT_SLACK__SIGNING_SECRET=bench-secret \\
    CERT_ASSISTANT_SLACK__BOT_TOKEN=xoxb-bench \\
    CERT_ASSISTANT_SLACK__API_BASE_URL=http://127.0.0.1:18099/api \\
    CERT_ASSISTANT_AUTH__ADMINS=approver@bench.example \\
    cargo run --release -- serve

then run:  python3 scripts/slack-ack-latency.py --requests 300
"""
import argparse
import hashlib
import hmac
import http.server
import json
import statistics
import threading
import time
import urllib.parse
import urllib.request

USERS = {"UREQ": "requester@bench.example", "UAPP": "approver@bench.example"}


class FakeSlack(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        method = self.path.rsplit("/", 1)[-1]
        if method == "users.info":
            email = USERS.get(body.get("user"))
            answer = {"ok": True, "user": {"profile": {"email": email}}} if email else {"ok": False}
        elif method == "conversations.open":
            answer = {"ok": True, "channel": {"id": "D" + str(body.get("users"))}}
        elif method == "chat.postMessage":
            answer = {"ok": True, "ts": "%.6f" % time.time()}
        else:
            answer = {"ok": True}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def signed_post(url, secret, body):
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": "v0=" + digest,
    })
    started = time.perf_counter()
    with urllib.request.urlopen(request) as response:
        payload = response.read()
    return time.perf_counter() - started, payload


def command(args, user, text):
    body = urllib.parse.urlencode({
        "team_id": "TBENCH", "channel_id": "CBENCH", "user_id": user, "command": "/cert",
        "text": text, "response_url": f"http://127.0.0.1:{args.fake_port}/response",
        "trigger_id": "t",
    })
    return signed_post(args.service + "/slack/commands", args.secret, body)


def click(args, user, number):
    payload = json.dumps({
        "type": "block_actions", "team": {"id": "TBENCH"}, "user": {"id": user},
        "response_url": f"http://127.0.0.1:{args.fake_port}/response", "trigger_id": "t",
        "message": {"blocks": []}, "actions": [{"action_id": "approve", "value": number}],
    })
    return signed_post(args.service + "/slack/interactivity", args.secret,
                       urllib.parse.urlencode({"payload": payload}))


def report(name, samples):
    ms = sorted(s * 1000 for s in samples)
    p = lambda q: ms[min(len(ms) - 1, int(round(q * (len(ms) - 1))))]
    print(f"{name}: n={len(ms)} p50={p(0.5):.1f} ms p99={p(0.99):.1f} ms max={ms[-1]:.1f} ms "
          f"mean={statistics.mean(ms):.1f} ms")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", default="http://127.0.0.1:8080")
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--fake-port", type=int, default=18099)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.fake_port), FakeSlack)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    _, reply = command(args, "UREQ", "request cn=bench.example.com why=bench days=90")
    number = next(w for w in json.loads(reply)["text"].replace("*", " ").split() if w.startswith("REQ-"))
    command(args, "UAPP", "help")  # the approver's identity is cached like any regular user's
    report("/cert status ack", [command(args, "UREQ", f"status {number}")[0] for _ in range(args.requests)])

    numbers = []
    for i in range(args.requests):
        _, reply = command(args, "UREQ", f"request cn=b{i}.bench.example.com why=bench days=90")
        numbers.append(next(w for w in json.loads(reply)["text"].replace("*", " ").split() if w.startswith("REQ-")))
    report("Approve click ack", [click(args, "UAPP", n)[0] for n in numbers])


if __name__ == "__main__":
    main()
