"""A minimal RESP2 client over the stack's unix socket, for tests that need
Redis round trips faster than a redis-cli process each (stdlib only)."""
import socket


class RespError(Exception):
    pass


class Redis:
    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rb")

    def close(self):
        self.f.close()
        self.sock.close()

    @staticmethod
    def _encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        return b"".join(out)

    def _read(self):
        line = self.f.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError(f"bad RESP line {line!r}")

    def cmd(self, *args):
        """One command; an error reply raises RespError."""
        self.sock.sendall(self._encode(args))
        r = self._read()
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, cmds):
        """Several commands in one write; returns the replies (errors as
        RespError objects, not raised)."""
        self.sock.sendall(b"".join(self._encode(c) for c in cmds))
        return [self._read() for _ in cmds]
