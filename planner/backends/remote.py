"""A world model on another machine: ``--model http://HOST:PORT`` talks to ``framepilot serve``.

``RemoteWorldModel`` is a ``WorldModel`` whose ``_rollout`` sends the context clip to a model server
(``framepilot/serve.py``, a Ray Serve application) and returns the futures it imagined. It needs
only the standard library on the agent's machine; Ray runs on the server alone.

    model = RemoteWorldModel("http://gpu-box:8000", token="...")   # or FRAMEPILOT_TOKEN
    rollouts = model(clip, n=8, rollout_length=0.1, prompt="reach the flag")

- Capabilities (and the overlay layout the model learnt) are the served model's, asked once.
- Frames travel compressed and lossless, as PNG (the default) or ``?codec=xor`` (each frame XOR
  the previous one, deflated: several times faster for the same bytes): the overlay strip, where
  the action is read, arrives bit-exact, and so does every imagined future (the votes read on the
  agent's machine are those the server's model drew).
- The prompt and goal frames are sent once per session and then referred to by their SHA-256; the
  server keeps them in memory for the session (a replica that has not seen them asks for them
  once, with a 409).
- With several replicas, the rollouts of one decision are split over them (``min(n, replicas)``
  requests in parallel) and gathered in order; ``?split=0`` sends them in one request.
- Faults: every request has a timeout and is retried with backoff on a refused connection, a
  timeout or a 5xx; after that a ``RemoteModelError`` says in one sentence what happened.

Options in the URL's query: ``timeout`` (seconds per attempt, default 5), ``retries`` (default 2),
``patience`` (seconds to keep retrying after that, default 0), ``split`` (``1``/``0``, default 1), ``codec`` (``png``/``xor``, default png). The token is never put in the URL: pass ``token=`` or set
``FRAMEPILOT_TOKEN``.

Wire format (both directions): ``b"FPW1"``, a 4-byte big-endian header length, a UTF-8 JSON header,
then the binary blobs the header lists by length (``"blobs": [len, ...]``).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import os
import struct
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import numpy as np

from framepilot.errors import ConfigError, RemoteModelError, UnsupportedRequest
from planner.world_model import (
    Capabilities,
    ContextClip,
    GoalFrame,
    Rollouts,
    WorldModel,
)

MAGIC = b"FPW1"
CONTENT_TYPE = "application/x-framepilot"
API = "/v1"
TOKEN_ENV = "FRAMEPILOT_TOKEN"
log = logging.getLogger("framepilot.remote")


# ---- wire format -------------------------------------------------------------------------------------
def pack(header: dict, blobs: list[bytes] = ()) -> bytes:
    """``MAGIC``, header length, JSON header (with the blobs' lengths), blobs."""
    header = {**header, "blobs": [len(b) for b in blobs]}
    h = json.dumps(header, separators=(",", ":")).encode()
    return b"".join([MAGIC, struct.pack(">I", len(h)), h, *blobs])


def unpack(body: bytes) -> tuple[dict, list[bytes]]:
    """The header and the blobs of a ``pack``ed body; ``ValueError`` (one sentence) when malformed."""
    if len(body) < 8 or body[:4] != MAGIC:
        raise ValueError("the body is not a framepilot request (it must start with FPW1)")
    (n,) = struct.unpack(">I", body[4:8])
    if 8 + n > len(body):
        raise ValueError("the request header is longer than the body")
    try:
        header = json.loads(body[8:8 + n])
    except ValueError:
        raise ValueError("the request header is not valid JSON") from None
    if not isinstance(header, dict):
        raise ValueError("the request header must be a JSON object")  # noqa: TRY004 -- callers catch ValueError
    lengths = header.get("blobs", [])
    if not isinstance(lengths, list) or not all(isinstance(v, int) and v >= 0 for v in lengths):
        raise ValueError("the request header's blobs must be a list of byte counts")
    if 8 + n + sum(lengths) != len(body):
        raise ValueError("the blobs' lengths do not add up to the body's length")
    blobs, at = [], 8 + n
    for v in lengths:
        blobs.append(body[at:at + v])
        at += v
    return header, blobs


CODECS = ("png", "xor")


def encode_frames(frames: np.ndarray, codec: str = "png") -> bytes:
    """(..., H, W, 3) uint8, losslessly: ``png``, one PNG with the frames stacked top to bottom;
    ``xor``, each frame XOR the one before it (the first as it is), deflated (zlib level 1): the
    frames of a clip, and the rollouts of one decision, differ in few pixels, so this is several
    times faster than PNG for the same bytes back."""
    if codec == "xor":
        import zlib
        flat = np.ascontiguousarray(frames.reshape(-1, *frames.shape[-3:]))
        delta = flat.copy()
        delta[1:] ^= flat[:-1]
        return zlib.compress(delta.tobytes(), 1)
    if codec != "png":
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    from PIL import Image
    w = frames.shape[-2]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frames.reshape(-1, w, 3))).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def decode_frames(data: bytes, shape, max_pixels: int | None = None, codec: str = "png") -> np.ndarray:
    """The frames of ``encode_frames`` as ``shape`` (..., H, W, 3); ``ValueError`` (one sentence) when
    they are not that shape or are larger than ``max_pixels`` (checked before decompressing)."""
    shape = tuple(int(v) for v in shape)
    if len(shape) < 3 or shape[-1] != 3 or min(shape) < 1:
        raise ValueError(f"frame shape must be (..., H, W, 3) with positive sides, got {list(shape)}")
    rows = int(np.prod(shape[:-2]))
    if max_pixels is not None and rows * shape[-2] > max_pixels:
        raise ValueError(f"the frames have {rows * shape[-2]} pixels, more than this server's limit of {max_pixels}")
    if codec == "xor":
        import zlib
        size = rows * shape[-2] * 3
        try:
            raw = zlib.decompressobj().decompress(data, size + 1)  # bounded: no decompression bomb
        except zlib.error:
            raise ValueError("the frames are not readable xor-deflated data") from None
        if len(raw) != size:
            raise ValueError(f"the frames hold {len(raw)} bytes, not the {size} of shape {list(shape)}")
        flat = np.frombuffer(raw, np.uint8).reshape(-1, *shape[-3:])
        return np.bitwise_xor.accumulate(flat, axis=0).reshape(shape)
    if codec != "png":
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "PNG" or im.size != (shape[-2], rows) or im.mode != "RGB":
                raise ValueError(f"the frames must be an RGB PNG of {shape[-2]}x{rows} pixels for shape {list(shape)}")
            arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError):
        raise ValueError("the frames are not a readable PNG") from None
    return arr.reshape(shape)


def goal_hash(image: np.ndarray) -> str:
    return hashlib.sha256(repr(image.shape).encode() + image.tobytes()).hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def capabilities_to_dict(cap: Capabilities) -> dict:
    from dataclasses import asdict
    d = asdict(cap)
    d["size"] = list(cap.size) if cap.size is not None else None
    return d


def capabilities_from_dict(d: dict) -> Capabilities:
    from dataclasses import fields
    names = {f.name for f in fields(Capabilities)}
    kw = {k: v for k, v in d.items() if k in names}
    if kw.get("size") is not None:
        kw["size"] = tuple(kw["size"])
    return Capabilities(**kw)


def split_counts(n: int, parts: int) -> list[int]:
    """``n`` rollouts over ``parts`` requests, the earlier ones one larger: 8 over 3 -> [3, 3, 2]."""
    parts = max(1, min(n, parts))
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def chunk_seed(seed: int | None, i: int) -> int | None:
    """The seed of the ``i``-th request of a split decision (the first keeps ``seed``)."""
    return None if seed is None else (seed if i == 0 else (seed * 1_000_003 + i) % (2 ** 63))


# ---- the client --------------------------------------------------------------------------------------
def is_remote_spec(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


class RemoteWorldModel(WorldModel):
    """The model served by ``framepilot serve`` at ``url``.

    Args:
        url: ``http://HOST:PORT`` (optionally ``?timeout=S&retries=K&split=0``).
        token: the server's token (default: ``$FRAMEPILOT_TOKEN``).
        timeout: seconds per attempt (default 5, or the URL's ``timeout``).
        retries: further attempts after a refused connection, a timeout or a 5xx, with backoff
            0.25 s, 0.5 s, ... (default 2, or the URL's ``retries``).
        split: split a decision's rollouts over the server's replicas (default True).
        patience: after the retries, keep retrying (backoff up to 2 s) until this many seconds have
            passed since the first failure, saying so once on the log (default 0, or the URL's
            ``patience``): a server that restarts is waited for, and meanwhile the executor's
            deadline has released every key.
    Raises:
        RemoteModelError: the server cannot be reached or refused the token (one sentence).
    """

    def __init__(self, url: str, token: str | None = None, timeout: float | None = None, retries: int | None = None,
                 split: bool | None = None, patience: float | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"a model server URL must look like http://HOST:PORT, got {url!r}")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"timeout", "retries", "patience", "split", "codec"}
        if unknown:
            raise ConfigError(f"unknown option(s) {', '.join(sorted(unknown))} in {url!r}; "
                              "the URL takes timeout, retries, patience, split and codec")
        self.codec = query.get("codec", "png")
        if self.codec not in CODECS:
            raise ConfigError(f"codec in {url!r} must be one of {', '.join(CODECS)}, got {self.codec!r}")
        try:
            self.timeout = float(timeout if timeout is not None else query.get("timeout", 5.0))
            self.retries = int(retries if retries is not None else query.get("retries", 2))
            self.patience = float(patience if patience is not None else query.get("patience", 0.0))
        except ValueError:
            raise ConfigError(f"timeout, retries and patience in {url!r} must be numbers") from None
        if not self.timeout > 0 or self.retries < 0 or self.patience < 0:
            raise ConfigError(f"timeout must be positive, retries and patience at least 0 in {url!r}")
        self.split = bool(split) if split is not None else query.get("split", "1") not in ("0", "false", "no")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = (parts.path or "").rstrip("/")
        self.url = f"{self.scheme}://{self.host}:{self.port}{self.base}"
        self.token = token if token is not None else os.environ.get(TOKEN_ENV)
        if not self.token:
            raise ConfigError(f"the model server at {self.url} needs its token: set {TOKEN_ENV} to the token "
                              "framepilot serve printed")
        self.session = uuid.uuid4().hex
        self._local = threading.local()
        self._known: set[str] = set()  # hashes this session has sent (the server may still ask again)
        self._pool: ThreadPoolExecutor | None = None
        self.retried = 0  # attempts repeated after a refused connection, a timeout or a 5xx
        info = self._request("GET", f"{API}/info")
        self.info = info
        self.capabilities = capabilities_from_dict(info["capabilities"])
        self.layout_dict = info.get("layout")
        self.replicas = max(1, int(info.get("replicas", 1)))
        self.max_rollouts = int(info.get("limits", {}).get("max_rollouts", 1 << 30))
        self.name = f"remote:{info.get('name', 'model')}@{self.host}:{self.port}"

    def check_settings(self, **wanted) -> None:
        """Refuse settings (``denoise_steps=3``) that differ from the served model's: the server fixes them."""
        served = self.info.get("settings", {})
        for k, v in wanted.items():
            if v is not None and served.get(k) != v:
                flag = "--" + k.replace("_", "-")
                raise ConfigError(f"the served model runs with {flag} {served.get(k)}, not {v}: a served model "
                                  f"denoises as its server was started, so pass {flag} to framepilot serve")

    # -- what the agent asks of any backend
    def check_layout(self, layout) -> None:
        """Refuse a layout other than the one the served model learnt (when it says which)."""
        if self.layout_dict is not None:
            layout.check_compatible(self.layout_dict, what=f"the served model {self.info.get('name', '')}".strip())

    def check_request(self, context, n, rollout_length, prompt, goals) -> None:
        super().check_request(context, n, rollout_length, prompt, goals)
        if n > self.max_rollouts:
            raise UnsupportedRequest(f"the model server at {self.url} takes at most {self.max_rollouts} rollouts "
                                     f"per decision, got {n}; lower --rollouts")

    def _rollout(self, context: ContextClip, n: int, rollout_length: float, prompt: str | None,
                 goals: tuple[GoalFrame, ...], seed: int | None) -> Rollouts:
        t0 = time.perf_counter()
        frames_png = encode_frames(context.frames, self.codec)
        goal_pngs = {goal_hash(g.image): (g, None) for g in goals}
        t1 = time.perf_counter()
        counts = split_counts(n, self.replicas if self.split else 1)
        jobs = [(c, chunk_seed(seed, i)) for i, c in enumerate(counts)]

        def one(job):
            return self._rollout_request(context, frames_png, job[0], rollout_length, prompt, goals, goal_pngs, job[1])

        if len(jobs) == 1:
            results = [one(jobs[0])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=max(2, self.replicas), thread_name_prefix="framepilot-remote")
            results = list(self._pool.map(one, jobs))
        t2 = time.perf_counter()
        frames = np.concatenate([r[0] for r in results]) if len(results) > 1 else results[0][0]
        server = results[0][2]
        timings = {"encode": t1 - t0, "remote": t2 - t1}
        timings.update({f"server.{k}": v for k, v in server.items()})
        return Rollouts(frames=frames, fps=results[0][1], timings=timings)

    def _rollout_request(self, context, frames_png, n, rollout_length, prompt, goals, goal_pngs, seed):
        for attempt in range(3):  # the second and third: the server asked for what it had not seen
            header = {"session": self.session, "codec": self.codec, "n": n, "rollout_length": rollout_length, "seed": seed,
                      "fps": context.fps, "frames": {"shape": list(context.frames.shape), "blob": 0}}
            blobs = [frames_png]
            if prompt:
                h = text_hash(prompt)
                header["prompt"] = {"hash": h} if h in self._known else {"hash": h, "text": prompt}
            header["goals"] = []
            for g in goals:
                h = goal_hash(g.image)
                entry = {"hash": h, "offset": g.offset, "shape": list(g.image.shape)}
                if h not in self._known:
                    png = goal_pngs[h][1] or encode_frames(g.image[None], self.codec)
                    goal_pngs[h] = (g, png)
                    entry["blob"] = len(blobs)
                    blobs.append(png)
                header["goals"].append(entry)
            status, head, out = self._request("POST", f"{API}/rollout", pack(header, blobs), raw=True)
            if status == 409:
                missing = set(head.get("missing", ()))
                if not missing:
                    break
                self._known -= missing
                continue
            if prompt:
                self._known.add(text_hash(prompt))
            self._known.update(goal_pngs)
            try:
                shape = head["shape"]
                frames = decode_frames(out[0], shape, codec=head.get("codec", "png"))
            except (KeyError, IndexError, ValueError) as e:
                raise RemoteModelError(f"the model server at {self.url} sent a reply framepilot cannot read ({e})") from None
            return frames, float(head["fps"]), head.get("timings", {})
        raise RemoteModelError(f"the model server at {self.url} keeps asking for the prompt and goal frames; "
                               "is it a framepilot server of the same version?")

    # -- HTTP
    def _connection(self, fresh: bool = False):
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _request(self, method: str, path: str, body: bytes | None = None, raw: bool = False):
        """(status, header, blobs) for ``raw`` (a 200 or a 409), else the JSON of a 200; retries
        refused connections, timeouts and 5xx with backoff; other failures raise RemoteModelError."""
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            headers["Content-Type"] = CONTENT_TYPE
        last, attempt, first_failure = "", -1, None
        while True:
            attempt += 1
            if attempt:
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                if attempt > self.retries and now - first_failure >= self.patience:
                    break
                if attempt == 1 and self.patience > 0:
                    log.warning("the model server at %s %s; retrying for up to %g s", self.url, last, self.patience)
                self.retried += 1
                time.sleep(min(2.0, 0.25 * 2 ** (attempt - 1)))
            try:
                conn = self._connection(fresh=attempt > 0)
                conn.request(method, self.base + path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except TimeoutError:
                last = f"did not answer within {self.timeout:g} s"
                self._connection(fresh=True)
                continue
            except (ConnectionError, OSError, http.client.HTTPException) as e:
                last = f"cannot be reached ({type(e).__name__}: {e})" if not isinstance(e, ConnectionRefusedError) \
                    else "refused the connection (is framepilot serve running there?)"
                self._connection(fresh=True)
                continue
            status = resp.status
            if status == 200 or (raw and status == 409):
                if raw and data[:4] == MAGIC:
                    try:
                        return (status, *unpack(data))
                    except ValueError as e:
                        raise RemoteModelError(f"the model server at {self.url} sent a malformed reply ({e})") from None
                try:
                    js = json.loads(data)
                except ValueError:
                    raise RemoteModelError(f"the model server at {self.url} sent a reply that is not framepilot's "
                                           f"(HTTP {status}); is it framepilot serve?") from None
                return (status, js, []) if raw else js
            message = _error_sentence(data)
            if status == 401:
                raise RemoteModelError(f"the model server at {self.url} refused the token (401): set {TOKEN_ENV} "
                                       "to the token framepilot serve printed")
            if status == 404:
                raise RemoteModelError(f"the model server at {self.url} has no {path} (404); is it framepilot serve "
                                       "of this version?")
            if 400 <= status < 500:
                raise RemoteModelError(f"the model server at {self.url} refused the request ({status}): {message}")
            last = f"failed the request ({status}: {message})"
            if not _retryable(data):
                attempt += 1
                break
        raise RemoteModelError(f"the model server at {self.url} {last}; gave up after {attempt} attempt(s)")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None


def _error_sentence(data: bytes) -> str:
    try:
        return str(json.loads(data)["error"]).strip().rstrip(".")
    except (ValueError, KeyError, TypeError):
        text = data[:200].decode("utf-8", "replace").strip().splitlines()
        return text[0] if text else "no reason given"


def _retryable(data: bytes) -> bool:
    try:
        return bool(json.loads(data).get("retry", True))
    except (ValueError, AttributeError):
        return True
