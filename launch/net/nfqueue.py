"""A minimal nfnetlink_queue client in pure Python: bind queues, read packets, send verdicts.

Netfilter hands a packet that a rule sends to ``NFQUEUE --queue-num Q`` to the process
bound to queue ``Q`` of the packet's network namespace, and holds it until that process
answers with a verdict (accept or drop). The messages are netlink (``AF_NETLINK``,
protocol ``NETLINK_NETFILTER`` = 12), each a ``struct nlmsghdr`` (host byte order), a
``struct nfgenmsg`` (family, version, the queue number big-endian) and attributes
(``struct nlattr``: length, type, value padded to 4 bytes; nfnetlink_queue's integers are
big-endian). From ``include/uapi/linux/netfilter/nfnetlink_queue.h``:

* ``NFQNL_MSG_CONFIG`` (2): ``NFQA_CFG_CMD`` = {u8 command (1 bind), u8 pad, be16 pf},
  ``NFQA_CFG_PARAMS`` = {be32 copy_range, u8 copy_mode (1 = meta data only)},
  ``NFQA_CFG_QUEUE_MAXLEN`` (be32), ``NFQA_CFG_MASK``/``NFQA_CFG_FLAGS`` (be32 each;
  ``NFQA_CFG_F_GSO`` hands a GSO packet over whole instead of segmenting it);
* ``NFQNL_MSG_PACKET`` (0, kernel to us): ``NFQA_PACKET_HDR`` = {be32 packet_id,
  be16 hw_protocol, u8 hook};
* ``NFQNL_MSG_VERDICT`` (1, us to kernel): ``NFQA_VERDICT_HDR`` = {be32 verdict, be32 id}.

Only what :mod:`launch.net.delayer` needs: meta-data copy mode (no payload crosses to
user space), one socket per namespace serving several queues, verdicts written in
batches (several netlink messages in one ``send``).
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator

NETLINK_NETFILTER = 12
_NFNL_SUBSYS_QUEUE = 3
_MSG_PACKET, _MSG_VERDICT, _MSG_CONFIG = 0, 1, 2
_NLMSG_ERROR = 2
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_CFG_CMD, _CFG_PARAMS, _CFG_QUEUE_MAXLEN, _CFG_MASK, _CFG_FLAGS = 1, 2, 3, 4, 5
_CMD_BIND = 1
_COPY_META = 1
_F_GSO = 0x4
_PACKET_HDR = 1
_VERDICT_HDR = 2
_SOL_NETLINK = 270
_NETLINK_NO_ENOBUFS = 5
_SO_RCVBUFFORCE = 33

NF_DROP, NF_ACCEPT = 0, 1

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host order)
_NFGENMSG = struct.Struct(">BBH")  # family, version, res_id (the queue, big-endian)
_NLATTR = struct.Struct("=HH")


def _attr(kind: int, value: bytes) -> bytes:
    body = _NLATTR.pack(_NLATTR.size + len(value), kind) + value
    return body + b"\0" * (-len(body) % 4)


def _message(msg: int, queue: int, attrs: bytes, *, seq: int = 0, flags: int = _NLM_F_REQUEST) -> bytes:
    payload = _NFGENMSG.pack(socket.AF_UNSPEC, 0, queue) + attrs
    kind = (_NFNL_SUBSYS_QUEUE << 8) | msg
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(payload), kind, flags, seq, 0) + payload


def verdict_message(queue: int, packet_id: int, verdict: int = NF_ACCEPT) -> bytes:
    """One ``NFQNL_MSG_VERDICT`` for ``packet_id`` of ``queue``."""
    return _message(_MSG_VERDICT, queue, _attr(_VERDICT_HDR, struct.pack(">II", verdict, packet_id)))


def parse_packets(data: bytes, errors: list[int]) -> Iterator[tuple[int, int]]:
    """``(queue, packet_id)`` of every ``NFQNL_MSG_PACKET`` in one read; the errno of each
    ``NLMSG_ERROR`` that is not an acknowledgement (a refused verdict) goes to ``errors``."""
    at = 0
    while at + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, at)
        if length < _NLMSGHDR.size:
            return
        end = at + length
        if kind == _NLMSG_ERROR:
            (code,) = struct.unpack_from("=i", data, at + _NLMSGHDR.size)
            if code != 0:
                errors.append(-code)
        elif kind == (_NFNL_SUBSYS_QUEUE << 8) | _MSG_PACKET:
            _family, _version, queue = _NFGENMSG.unpack_from(data, at + _NLMSGHDR.size)
            pos = at + _NLMSGHDR.size + _NFGENMSG.size
            while pos + _NLATTR.size <= end:
                alen, atype = _NLATTR.unpack_from(data, pos)
                if alen < _NLATTR.size:
                    break
                if atype & 0x3FFF == _PACKET_HDR:
                    yield queue, struct.unpack_from(">I", data, pos + _NLATTR.size)[0]
                    break
                pos += (alen + 3) & ~3
        at = (end + 3) & ~3


class QueueSocket:
    """One netlink socket of one network namespace (the namespace the calling thread is
    in when it is made), bound to any number of that namespace's queues."""

    def __init__(self, *, rcvbuf: int = 8 << 20) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        # a full receive buffer then loses the packets it could not hand over (netfilter
        # drops them: TCP retransmits) instead of failing every later read with ENOBUFS
        self.sock.setsockopt(_SOL_NETLINK, _NETLINK_NO_ENOBUFS, 1)
        self.sock.bind((0, 0))
        self._seq = 0
        self.errors: list[int] = []  #: errno of every verdict the kernel refused

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def bind(self, queue: int, *, maxlen: int = 1 << 16) -> None:
        """Bind ``queue`` in meta-data copy mode (GSO packets whole); OSError (e.g. EBUSY:
        another process holds the queue, EPERM: not CAP_NET_ADMIN) if the kernel refuses."""
        self._request(queue, _attr(_CFG_CMD, struct.pack(">BBH", _CMD_BIND, 0, 0)))
        flags = struct.pack(">I", _F_GSO)
        self._request(
            queue,
            _attr(_CFG_PARAMS, struct.pack(">IB", 0, _COPY_META))
            + _attr(_CFG_QUEUE_MAXLEN, struct.pack(">I", maxlen))
            + _attr(_CFG_MASK, flags)
            + _attr(_CFG_FLAGS, flags),
        )

    def _request(self, queue: int, attrs: bytes) -> None:
        self._seq += 1
        self.sock.send(_message(_MSG_CONFIG, queue, attrs, seq=self._seq, flags=_NLM_F_REQUEST | _NLM_F_ACK))
        while True:  # the acknowledgement (code 0) or the kernel's error
            data = self.sock.recv(65536)
            length, kind, _flags, seq, _pid = _NLMSGHDR.unpack_from(data)
            if kind == _NLMSG_ERROR and seq == self._seq:
                (code,) = struct.unpack_from("=i", data, _NLMSGHDR.size)
                if code != 0:
                    raise OSError(-code, f"binding nfqueue {queue}: {os.strerror(-code)}")
                return

    def read(self) -> list[tuple[int, int]]:
        """Every packet waiting (non-blocking): ``(queue, packet_id)`` in arrival order."""
        out: list[tuple[int, int]] = []
        while True:
            try:
                data = self.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    continue
                raise
            out.extend(parse_packets(data, self.errors))

    def send(self, messages: list[bytes]) -> None:
        """Write verdict messages, as many per ``send`` as fit in 64 KiB."""
        chunk: list[bytes] = []
        size = 0
        for m in messages:
            if size + len(m) > 1 << 16:
                self.sock.send(b"".join(chunk))
                chunk, size = [], 0
            chunk.append(m)
            size += len(m)
        if chunk:
            self.sock.send(b"".join(chunk))
