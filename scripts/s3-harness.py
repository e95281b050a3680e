#!/usr/bin/env python3
"""A real S3 API for the tests of s3:// sources (issue 22): moto's server, with its SigV4 check on.

  s3-harness.py serve [--port N] [--latency-ms MS]
                                       moto_server on 127.0.0.1 (port 0: a free one), printing
                                       "listening PORT" once it accepts connections. Set
                                       INITIAL_NO_AUTH_ACTION_COUNT in the environment: after that
                                       many requests every request must be signed.
  s3-harness.py setup --endpoint URL   creates an IAM user allowed s3:* with an access key
                                       (unsigned: the first 3 requests) and prints "KEY SECRET".
  s3-harness.py put --endpoint URL --bucket B --from DIR [--prefix P] [--content-encoding E]
                                       creates the bucket if needed and uploads every file under
                                       DIR as PREFIX + its relative path, signed with the key in
                                       AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (boto3).

moto 5.2 checks a signature against the query string after it was decoded: a listing with
prefix=segment-logs%2F is refused with SignatureDoesNotMatch although AWS accepts it. `serve`
works around that here, by giving the check the query string as the client sent it; the
loader signs exactly as AWS wants and is never changed for moto.
"""
import argparse
import os
import sys
import threading
import time


def serve(port, latency_ms=0):
    # moto reads INITIAL_NO_AUTH_ACTION_COUNT when it is imported.
    from moto.iam import access_control
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    raw = threading.local()

    class RawQuery:
        """Keeps each request's query string as it came off the wire (werkzeug runs one request
        per thread)."""

        def __init__(self, app):
            self.app = app

        def __call__(self, environ, start_response):
            raw.query = environ.get("QUERY_STRING", "")
            if latency_ms:
                # A real bucket's time to first byte, which loopback does not have.
                time.sleep(latency_ms / 1000)
            return self.app(environ, start_response)

    original_init = access_control.IAMRequestBase.__init__

    def init_with_raw_query(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        query = getattr(raw, "query", None)
        if query is not None:
            self._path = self._path.split("?", 1)[0] + ("?" + query if query else "")

    access_control.IAMRequestBase.__init__ = init_with_raw_query

    app = RawQuery(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


def client(service, endpoint, key=None):
    """A boto3 client; `key` (id, secret) instead of the environment's. moto tells IAM from S3 by
    the signature's credential scope, so even the first, unchecked requests are signed."""
    import boto3
    from botocore.config import Config

    kwargs = dict(endpoint_url=endpoint, region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))
    if key:
        kwargs.update(aws_access_key_id=key[0], aws_secret_access_key=key[1])
    return boto3.client(service, **kwargs)


def setup(endpoint):
    iam = client("iam", endpoint, key=("AKIDSETUP", "not checked before INITIAL_NO_AUTH_ACTION_COUNT"))
    iam.create_user(UserName="loader")
    key = iam.create_access_key(UserName="loader")["AccessKey"]
    iam.put_user_policy(
        UserName="loader",
        PolicyName="s3",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}',
    )
    print(key["AccessKeyId"], key["SecretAccessKey"])


def put(endpoint, bucket, source, prefix, encoding):
    s3 = client("s3", endpoint)
    existing = [b["Name"] for b in s3.list_buckets().get("Buckets", [])]
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)
    count = 0
    for folder, _, files in os.walk(source):
        for name in sorted(files):
            path = os.path.join(folder, name)
            key = prefix + os.path.relpath(path, source).replace(os.sep, "/")
            extra = {"ContentEncoding": encoding} if encoding else {}
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read(), **extra)
            count += 1
    print(f"uploaded {count}")


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=int, default=0, help="wait this long before answering each request")
    p = sub.add_parser("setup")
    p.add_argument("--endpoint", required=True)
    p = sub.add_parser("put")
    p.add_argument("--endpoint", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--from", dest="source", required=True)
    p.add_argument("--prefix", default="")
    p.add_argument("--content-encoding", default=None)
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.latency_ms)
    elif args.command == "setup":
        setup(args.endpoint)
    else:
        put(args.endpoint, args.bucket, args.source, args.prefix, args.content_encoding)


if __name__ == "__main__":
    sys.exit(main())
