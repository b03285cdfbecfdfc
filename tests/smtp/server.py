"""SMTP peer of tests/it/sinks/chat.rs: aiosmtpd on 127.0.0.1 with STARTTLS (required) and AUTH.

usage: server.py OUT_DIR

Makes a throwaway CA and a server certificate for localhost/127.0.0.1 (trustme), writes the CA
to OUT_DIR/ca.pem, prints "READY <port>" and serves until stdin closes. Every accepted message
is parsed with the standard `email` package and appended to OUT_DIR/received.jsonl.
Recipients starting with "reject-perm" get 550, with "reject-temp" 451. The only login is
user / pass.
"""

import email
import email.policy
import json
import os
import socket
import sys

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

out = sys.argv[1]


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject-perm"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("reject-temp"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        parts = []
        for part in msg.walk():
            if part.is_multipart():
                continue
            parts.append({"type": part.get_content_type(), "content": part.get_content()})
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "content_type": msg.get_content_type(),
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "cc": str(msg["cc"]) if msg["cc"] else None,
            "header_names": [k.lower() for k in msg.keys()],
            "defects": [str(d) for d in msg.defects],
            "parts": parts,
            "size": len(raw),
        }
        with open(os.path.join(out, "received.jsonl"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return "250 Message accepted for delivery"


def auth(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == b"user" and data.password == b"pass"
    return AuthResult(success=ok, handled=False)


ca = trustme.CA()
cert = ca.issue_cert("localhost", "127.0.0.1")
ca.cert_pem.write_to_path(os.path.join(out, "ca.pem"))
import ssl  # noqa: E402

ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
cert.configure_cert(ctx)

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]

controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=port,
    tls_context=ctx,
    require_starttls=True,
    authenticator=auth,
    auth_required=True,
    # Like many relays: messages over 1 MiB are refused (552).
    data_size_limit=1 << 20,
)
controller.start()
print(f"READY {port}", flush=True)
sys.stdin.read()
controller.stop()
