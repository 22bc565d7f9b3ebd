#!/usr/bin/python3
"""crimsg.py: the two CRI image calls a kubelet makes to pull, as gRPC messages encoded by hand,
so a test can talk to containerd's CRI plugin with curl (HTTP/2 over its unix socket) and no gRPC
library. Only the fields the tests use are known here (k8s.io/cri-api runtime/v1 api.proto).

  crimsg.py pull IMAGE [USER PASS] > req   PullImageRequest{image: ImageSpec{image}, auth}
  crimsg.py status IMAGE > req             ImageStatusRequest{image: ImageSpec{image}}
  crimsg.py decode pull|status < body      the response's fields, one "name: value" a line
  crimsg.py trailers < headers             grpc-status and grpc-message (percent-decoded);
                                           exit status 0 only for grpc-status 0
"""
import struct
import sys
import urllib.parse


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(number, data):
    """A length-delimited field (strings and embedded messages)."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def frame(msg):
    """gRPC framing: not compressed (0), then the big-endian length."""
    return b"\0" + struct.pack(">I", len(msg)) + msg


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def parse(buf):
    """The wire format as (field, value) pairs: ints for varints, bytes for the rest."""
    i, out = 0, []
    while i < len(buf):
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise SystemExit("crimsg.py: wire type %d in the response" % wire)
        out.append((number, value))
    return out


def messages(data):
    out = []
    while len(data) >= 5:
        n = struct.unpack(">I", data[1:5])[0]
        out.append(data[5:5 + n])
        data = data[5 + n:]
    return out


# Image (in ImageStatusResponse field 1): 1 id, 2 repo_tags, 3 repo_digests, 4 size.
IMAGE_FIELDS = {1: "id", 2: "repo_tag", 3: "repo_digest", 4: "size"}


def decode(kind, data):
    msgs = messages(data)
    if not msgs:
        print("(no message)")
    for m in msgs:
        if kind == "pull":  # PullImageResponse{1: image_ref}
            for number, value in parse(m):
                if number == 1:
                    print("image_ref:", value.decode())
            continue
        images = [v for n, v in parse(m) if n == 1]
        if not images:
            print("image: (none)")
        for image in images:
            for number, value in parse(image):
                if number in IMAGE_FIELDS:
                    text = value.decode() if isinstance(value, bytes) else value
                    print("%s: %s" % (IMAGE_FIELDS[number], text))


def trailers(text):
    status = message = None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "grpc-status":
            status = value.strip()
        elif name == "grpc-message":
            message = urllib.parse.unquote(value.strip())
    print("grpc-status: %s" % status)
    if message is not None:
        print("grpc-message: %s" % message)
    return 0 if status == "0" else 1


def main(argv):
    if len(argv) >= 3 and argv[1] in ("pull", "status"):
        msg = field(1, field(1, argv[2].encode()))
        if argv[1] == "pull" and len(argv) == 5:  # AuthConfig{1: username, 2: password}
            msg += field(2, field(1, argv[3].encode()) + field(2, argv[4].encode()))
        sys.stdout.buffer.write(frame(msg))
        return 0
    if len(argv) == 3 and argv[1] == "decode":
        decode(argv[2], sys.stdin.buffer.read())
        return 0
    if len(argv) == 2 and argv[1] == "trailers":
        return trailers(sys.stdin.read())
    sys.stderr.write(__doc__)
    return 2


sys.exit(main(sys.argv))
