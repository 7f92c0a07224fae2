"""``framepilot serve``: any world model as a Ray Serve application, for agents on other machines.

One deployment, ``WorldModelServer``; each replica loads the model (``--model``, whatever the other
subcommands take) once. Requests from several agents are gathered by ``@serve.batch`` and run one
batch at a time per replica, off the event loop, so a replica answers ``/v1/info`` and refuses bad
tokens while its model works. The client is ``planner.backends.remote.RemoteWorldModel``
(``--model http://HOST:PORT``); the wire format is described there.

Security and privacy, on by default:

- binds to 127.0.0.1 unless ``--host`` says otherwise;
- every request needs ``Authorization: Bearer TOKEN`` (``--token``, ``$FRAMEPILOT_TOKEN``, else one
  is generated and printed); replicas hold only the token's SHA-256 and compare in constant time; a
  refused request gets a 401 and nothing of its body is read or logged;
- frames are decoded in memory and never written to disk (the prompt and goal frames of a session
  stay in a replica's memory, bounded, least recently used first out); a local Ray started here has
  object spilling turned off, so the object store does not page frames to disk either;
- a request's size, its frames' pixels and its rollout count are bounded; exceeding them, or a
  malformed request, gets a 4xx with one sentence, never a traceback.

API: ``GET /v1/info`` (capabilities, layout, replicas, limits), ``POST /v1/rollout``,
``GET /v1/health``. Ray's own ``/-/healthz`` and ``/-/routes`` answer without a token and say
nothing of frames.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from framepilot.errors import FramepilotError, ServeError

RAY_MISSING = ("framepilot serve needs Ray Serve, which the default install leaves out: "
               "pip install 'framepilot[serve]' (or pip install 'ray[serve]')")
APP_NAME = "framepilot"


def require_ray():
    """Import Ray Serve, or say in one sentence how to install it."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise ServeError(RAY_MISSING) from None
    return ray, serve


@dataclass
class ServeConfig:
    """What ``framepilot serve`` deploys.

    Args:
        model: a ``--model`` value (``bundled``, a checkpoint folder, a hub id, ...).
        layout: the overlay layout (picks the bundled checkpoint; the served layout is checked by clients).
        denoise_steps, frame_steps: as for ``framepilot play``.
        replicas: replicas of the deployment, each holding the model.
        gpus_per_replica: GPUs each replica reserves (0: CPU); a replica with GPUs runs the model on CUDA.
        cpus_per_replica: CPUs each replica reserves.
        host, port: where Ray Serve's HTTP proxy listens.
        address: a Ray cluster to join (``auto``, ``HOST:6379``, ``ray://HOST:10001``); None starts a local one.
        token: the bearer token (None: ``$FRAMEPILOT_TOKEN``, else generated).
        max_rollouts: rollouts per request at most.
        max_request_mb: request body size at most.
        max_pixels: pixels of a request's frames at most (context clip stacked).
        max_batch_size: requests gathered into one batch per replica.
        num_cpus: CPUs of a local Ray started here (None: Ray's default, all of them).
    """

    model: str = "bundled"
    layout: str = "arrows"
    denoise_steps: int | None = None
    frame_steps: int | None = None
    replicas: int = 1
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None
    token: str | None = None
    max_rollouts: int = 64
    max_request_mb: float = 32.0
    max_pixels: int = 64 * 1920 * 1080
    max_batch_size: int = 8
    num_cpus: int | None = None
    extra: dict = field(default_factory=dict)

    def check(self) -> None:
        import math

        from framepilot.errors import ConfigError
        from framepilot.options import MAX_DENOISE_STEPS, MAX_ROLLOUTS

        def between(name, v, lo, hi, lo_open=False, none=False):
            if v is None and none:
                return
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and \
                (v > lo if lo_open else v >= lo) and v <= hi
            if not ok:
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number {'above' if lo_open else 'from'} "
                                  f"{lo:g} up to {hi:g}, got {v!r}")
        between("replicas", self.replicas, 1, 1024)
        between("gpus_per_replica", self.gpus_per_replica, 0, 1024)
        between("cpus_per_replica", self.cpus_per_replica, 0, 1024, lo_open=True)
        between("port", self.port, 1, 65535)
        between("max_rollouts", self.max_rollouts, 1, MAX_ROLLOUTS)
        between("max_request_mb", self.max_request_mb, 0, 4096, lo_open=True)
        between("max_pixels", self.max_pixels, 1, 2 ** 40)
        between("max_batch_size", self.max_batch_size, 1, 1024)
        between("num_cpus", self.num_cpus, 1, 4096, none=True)
        between("denoise_steps", getattr(self, "denoise_steps", None), 1, MAX_DENOISE_STEPS, none=True)
        between("frame_steps", getattr(self, "frame_steps", None), 1, MAX_DENOISE_STEPS, none=True)
        if self.model.startswith(("http://", "https://")):
            raise ConfigError("framepilot serve serves a model it loads itself; --model cannot be another server's URL")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def resolve_token(token: str | None) -> tuple[str, bool]:
    """(token, generated): ``token``, else ``$FRAMEPILOT_TOKEN``, else a fresh random one."""
    token = token or os.environ.get("FRAMEPILOT_TOKEN")
    if token:
        return token, False
    return secrets.token_urlsafe(24), True


# ---- the deployment ----------------------------------------------------------------------------------
class SessionCache:
    """Prompts and goal frames per session, in memory: at most ``sessions`` sessions of ``items`` each,
    least recently used out first, and a session unused for ``ttl`` seconds forgotten."""

    def __init__(self, sessions: int = 256, items: int = 16, ttl: float = 3600.0):
        self.sessions, self.items, self.ttl = sessions, items, ttl
        self._data: OrderedDict[str, tuple[float, OrderedDict]] = OrderedDict()

    def _session(self, sid: str) -> OrderedDict:
        now = time.monotonic()
        for k in [k for k, (t, _) in self._data.items() if now - t > self.ttl]:
            del self._data[k]
        _, d = self._data.pop(sid, (now, OrderedDict()))
        self._data[sid] = (now, d)
        while len(self._data) > self.sessions:
            self._data.popitem(last=False)
        return d

    def get(self, sid: str, key: str):
        d = self._session(sid)
        if key in d:
            d.move_to_end(key)
            return d[key]
        return None

    def put(self, sid: str, key: str, value) -> None:
        d = self._session(sid)
        d[key] = value
        d.move_to_end(key)
        while len(d) > self.items:
            d.popitem(last=False)


class BadRequest(Exception):
    def __init__(self, status: int, sentence: str, **extra):
        super().__init__(sentence)
        self.status, self.sentence, self.extra = status, sentence, extra


class WorldModelServer:
    """One replica: the model, the session cache, the limits. Wrapped by ``serve.deployment`` in ``build_app``."""

    def __init__(self, config: dict, digest: str, replicas: int):
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from planner.backends import load_world_model
        c = ServeConfig(**config)
        device = "cuda" if c.gpus_per_replica > 0 else None
        self.model = load_world_model(c.model, c.layout, c.denoise_steps, device=device, frame_steps=c.frame_steps)
        self.config, self.digest, self.replicas = c, digest, replicas
        self.cache = SessionCache()
        self.failures = 0
        meta = getattr(self.model, "meta", None)
        self.layout = meta.get("layout") if isinstance(meta, dict) else None

    # Ray Serve calls this every health_check_period_s; raising restarts the replica
    def check_health(self):
        if self.failures >= 3:
            raise RuntimeError(f"the model failed {self.failures} requests in a row")

    def info(self) -> dict:
        from planner.backends.remote import capabilities_to_dict
        c = self.config
        return {"version": 1, "name": self.model.name, "capabilities": capabilities_to_dict(self.model.capabilities),
                "layout": self.layout, "replicas": self.replicas,
                "settings": {k: getattr(self.model, k, None) for k in ("denoise_steps", "frame_steps")},
                "limits": {"max_rollouts": c.max_rollouts, "max_request_bytes": int(c.max_request_mb * 2 ** 20),
                           "max_pixels": c.max_pixels}}

    def authorized(self, request) -> bool:
        auth = request.headers.get("authorization", "")
        given = auth[7:] if auth[:7].lower() == "bearer " else ""
        return bool(given) and hmac.compare_digest(token_digest(given), self.digest)

    async def __call__(self, request):
        from starlette.responses import JSONResponse, Response

        from planner.backends.remote import CONTENT_TYPE, pack
        if not self.authorized(request):  # nothing of the body is read, nothing is logged
            return JSONResponse({"error": "a valid token is needed (Authorization: Bearer TOKEN)"}, status_code=401)
        path = request.url.path.rstrip("/")
        try:
            if path.endswith("/v1/info") and request.method == "GET":
                return JSONResponse(self.info())
            if path.endswith("/v1/health") and request.method == "GET":
                self.check_health()
                return JSONResponse({"ok": True})
            if not path.endswith("/v1/rollout"):
                raise BadRequest(404, f"no such endpoint {path or '/'}; use /v1/info or /v1/rollout")
            if request.method != "POST":
                raise BadRequest(405, "/v1/rollout takes POST")
            limit = int(self.config.max_request_mb * 2 ** 20)
            try:
                length = int(request.headers.get("content-length", "0"))
            except ValueError:
                raise BadRequest(400, "the Content-Length header is not a number") from None
            if length > limit:
                raise BadRequest(413, f"the request has {length} bytes, more than this server's limit of {limit}")
            body = await request.body()
            if len(body) > limit:
                raise BadRequest(413, f"the request has {len(body)} bytes, more than this server's limit of {limit}")
            job = self.parse(body)
            ok, value = await self.run_batched(job)
            if not ok:
                raise value
            frames_png, fps, timings, shape = value
            return Response(pack({"shape": shape, "fps": fps, "timings": timings, "codec": job["codec"]}, [frames_png]),
                            media_type=CONTENT_TYPE)
        except BadRequest as e:
            return JSONResponse({"error": e.sentence, **e.extra}, status_code=e.status)
        except FramepilotError as e:
            return JSONResponse({"error": str(e).strip().splitlines()[0], "retry": False}, status_code=400)
        except Exception as e:  # a bug or the device: said in one sentence; the traceback goes to the log
            import logging
            logging.getLogger("ray.serve").exception("framepilot: the model failed a request")
            return JSONResponse({"error": f"the served model failed the request ({type(e).__name__}); "
                                 "see the server's log"}, status_code=500)

    def parse(self, body: bytes) -> dict:
        """The rollout request in ``body``; BadRequest (one sentence) for anything malformed or too large."""
        import numpy as np

        from planner.backends.remote import (
            CODECS,
            decode_frames,
            goal_hash,
            text_hash,
            unpack,
        )
        from planner.world_model import ContextClip, GoalFrame
        c = self.config
        try:
            h, blobs = unpack(body)
        except ValueError as e:
            raise BadRequest(400, str(e)) from None
        try:
            sid = str(h["session"])[:64]
            codec = h.get("codec", "png")
            if codec not in CODECS:
                raise BadRequest(400, f"codec must be one of {', '.join(CODECS)}, got {str(codec)[:20]!r}")
            n = h["n"]
            if not isinstance(n, int) or n < 1:
                raise BadRequest(400, f"n must be a whole number of rollouts of at least 1, got {n!r}")
            if n > c.max_rollouts:
                raise BadRequest(413, f"{n} rollouts asked, more than this server's limit of {c.max_rollouts}")
            length, fps = float(h["rollout_length"]), float(h["fps"])
            seed = h.get("seed")
            if seed is not None and not isinstance(seed, int):
                raise BadRequest(400, f"seed must be a whole number or null, got {seed!r}")
            fr = h["frames"]
            frames = decode_frames(blobs[int(fr["blob"])], fr["shape"], c.max_pixels, codec)
            if frames.ndim != 4:
                raise BadRequest(400, f"the context frames must have shape (T, H, W, 3), got {list(frames.shape)}")
            prompt, missing = None, []
            if h.get("prompt"):
                p = h["prompt"]
                if "text" in p:
                    prompt = str(p["text"])[:4096]
                    if text_hash(prompt) != p["hash"]:
                        raise BadRequest(400, "the prompt's hash does not match its text")
                    self.cache.put(sid, p["hash"], prompt)
                else:
                    prompt = self.cache.get(sid, p["hash"])
                    if prompt is None:
                        missing.append(p["hash"])
            goals = []
            for g in h.get("goals", []):
                if "blob" in g:
                    img = decode_frames(blobs[int(g["blob"])], [1, *g["shape"]], c.max_pixels, codec)[0]
                    if goal_hash(img) != g["hash"]:
                        raise BadRequest(400, "a goal frame's hash does not match its pixels")
                    self.cache.put(sid, g["hash"], img)
                else:
                    img = self.cache.get(sid, g["hash"])
                    if img is None:
                        missing.append(g["hash"])
                        continue
                goals.append(GoalFrame(img, float(g["offset"])))
            if missing:
                raise BadRequest(409, "this replica has not seen the prompt or goal frames of this session; "
                                 "send them once", missing=missing)
            return {"context": ContextClip(np.ascontiguousarray(frames), fps), "n": n, "rollout_length": length,
                    "prompt": prompt, "goals": tuple(goals), "seed": seed, "codec": codec}
        except BadRequest:
            raise
        except FramepilotError as e:
            raise BadRequest(400, str(e).strip().splitlines()[0]) from None
        except (KeyError, IndexError, TypeError, ValueError) as e:
            what = f"a field is missing ({e})" if isinstance(e, KeyError) else str(e) or type(e).__name__
            raise BadRequest(400, f"the rollout request is malformed: {what}") from None

    async def run_batched(self, job: dict):
        return await self._batch(job)  # ``@serve.batch``: framepilot.serve_app

    def _run_jobs(self, jobs: list[dict]) -> list[tuple[bool, object]]:
        from planner.backends.remote import encode_frames
        out = []
        for j in jobs:
            try:
                t0 = time.perf_counter()
                r = self.model(j["context"], n=j["n"], rollout_length=j["rollout_length"], prompt=j["prompt"],
                               goals=j["goals"], seed=j["seed"])
                t1 = time.perf_counter()
                png = encode_frames(r.frames, j["codec"])
                timings = {**r.timings, "model": t1 - t0, "encode": time.perf_counter() - t1,
                           "batch": len(jobs)}
                out.append((True, (png, r.fps, timings, list(r.frames.shape))))
                self.failures = 0
            except FramepilotError as e:
                out.append((False, e))
            except Exception as e:  # noqa: BLE001 -- a bug or the device: a 500 with one sentence, the count for check_health
                self.failures += 1
                out.append((False, e))
        return out


def build_app(c: ServeConfig, digest: str):
    """The Ray Serve application for ``c`` (replicas, resources, batching, health checks)."""
    _, serve = require_ray()
    from framepilot.serve_app import BatchedWorldModelServer
    code_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # replicas import this framepilot
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": os.pathsep.join(p for p in (code_root, os.environ.get("PYTHONPATH")) if p)}
    dep = serve.deployment(
        name="WorldModelServer", num_replicas=c.replicas,
        ray_actor_options={"num_cpus": c.cpus_per_replica, "num_gpus": c.gpus_per_replica,
                           "runtime_env": {"env_vars": env}},
        max_ongoing_requests=4 * c.max_batch_size, health_check_period_s=10, health_check_timeout_s=30,
    )(BatchedWorldModelServer)
    from dataclasses import asdict
    cfg = {k: v for k, v in asdict(c).items() if k != "token"}  # the token itself never enters Ray's state
    return dep.bind(cfg, digest, c.replicas)


@dataclass
class Server:
    """A running server: ``url``, ``token``, and ``stop()``."""

    url: str
    token: str
    generated: bool
    started_ray: bool

    def stop(self) -> None:
        ray, serve = require_ray()
        try:
            serve.shutdown()
        finally:
            if self.started_ray:
                ray.shutdown()


def start(c: ServeConfig) -> Server:
    """Start (or join) Ray, start Serve's HTTP proxy at ``c.host:c.port``, deploy the model; returns
    when every replica has loaded it."""
    c.check()
    ray, serve = require_ray()
    token, generated = resolve_token(c.token)
    started = False
    if not ray.is_initialized():
        try:
            if c.address:
                ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address="local", num_cpus=c.num_cpus, include_dashboard=False, log_to_driver=False,
                         _system_config={"automatic_object_spilling_enabled": False})
                started = True
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {c.address}" if c.address else "a local Ray instance"
            raise ServeError(f"could not start or join {where} ({str(e).splitlines()[0][:160]})") from None
    try:
        serve.start(http_options={"host": c.host, "port": c.port})
        serve.run(build_app(c, token_digest(token)), name=APP_NAME, route_prefix="/")
    except Exception as e:
        if started:
            ray.shutdown()
        msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        if isinstance(e, FramepilotError):
            raise
        raise ServeError(f"could not deploy {c.model} on Ray Serve at {c.host}:{c.port} ({msg})") from None
    host = c.host if c.host not in ("0.0.0.0", "::") else "HOST"
    return Server(url=f"http://{host}:{c.port}", token=token, generated=generated, started_ray=started)


def main(c: ServeConfig) -> int:
    """``framepilot serve``: start, say where it listens and the token, serve until Ctrl-C."""
    server = start(c)
    lines = [(f"framepilot serve: {c.model} on {server.url} ({c.replicas} replica(s), "
              f"{c.gpus_per_replica:g} GPU(s) each)")]
    if server.generated:
        lines.append(f"token: {server.token}")
    else:
        lines.append("token: the one you gave (--token or FRAMEPILOT_TOKEN)")
    lines.append(f"agents: FRAMEPILOT_TOKEN=<token> framepilot play --model {server.url}")
    if c.host not in ("127.0.0.1", "localhost", "::1"):
        lines.append(f"note: listening on {c.host}: screen frames from every agent cross the network unencrypted; "
                     "use an SSH tunnel or a private network")
    print("\n".join(lines), file=sys.stderr, flush=True)

    def _stop(signum, frame):
        raise KeyboardInterrupt

    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where a shell started it with SIGINT ignored
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)  # a service manager's stop, a closed terminal: shut Serve and Ray down too
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        print("framepilot serve: stopping", file=sys.stderr, flush=True)
        server.stop()
    print("framepilot serve: stopped", file=sys.stderr)
    return 0


# ---- the command line (``framepilot serve``) -----------------------------------------------------------
DESCRIPTION = """\
Serve a world model to agents on other machines, as a Ray Serve application (needs the serve
extra: pip install 'framepilot[serve]'). Starts a local Ray instance, or joins one with --address;
prints where it listens and the token. Screen frames of every agent travel to this machine.

    framepilot serve --model bundled                                    # 127.0.0.1:8000, a token printed
    framepilot serve --model Lightricks/LTX-Video-0.9.5 --replicas 4 --gpus-per-replica 1 --host 0.0.0.0
    ray start --head && framepilot serve --address auto --model ...     # a Ray cluster
    FRAMEPILOT_TOKEN=... framepilot play --model http://127.0.0.1:8000  # an agent"""


def add_arguments(p) -> None:
    d = ServeConfig()
    p.add_argument("--model", default=d.model, help="what --model takes elsewhere: bundled, a checkpoint folder, "
                   "a diffusers hub id or folder, a .safetensors file (default: %(default)s)")
    p.add_argument("--layout", default=d.layout, help="overlay layout (picks the bundled checkpoint) (default: %(default)s)")
    p.add_argument("--denoise-steps", type=int, default=d.denoise_steps, help="denoising steps (default: the model's)")
    p.add_argument("--frame-steps", type=int, default=d.frame_steps, help="the bundled model's steps for the "
                   "imagined game area (default: the model's, 1)")
    p.add_argument("--replicas", type=int, default=d.replicas, help="replicas, each holding the model (default: %(default)s)")
    p.add_argument("--gpus-per-replica", type=float, default=d.gpus_per_replica, help="GPUs per replica; above 0 "
                   "the model runs on CUDA (default: %(default)s)")
    p.add_argument("--cpus-per-replica", type=float, default=d.cpus_per_replica, help="(default: %(default)s)")
    p.add_argument("--host", default=d.host, help="address to listen on; 0.0.0.0 for other machines (default: %(default)s)")
    p.add_argument("--port", type=int, default=d.port, help="(default: %(default)s)")
    p.add_argument("--address", default=d.address, help="a Ray cluster to join: auto, HOST:6379 (default: start a "
                   "local Ray instance)")
    p.add_argument("--token", default=d.token, help="the token agents must send (default: $FRAMEPILOT_TOKEN, "
                   "else a generated one, printed)")
    p.add_argument("--max-rollouts", type=int, default=d.max_rollouts, help="rollouts per request at most (default: %(default)s)")
    p.add_argument("--max-request-mb", type=float, default=d.max_request_mb, help="request size at most (default: %(default)s)")
    p.add_argument("--max-batch-size", type=int, default=d.max_batch_size, help="requests batched per replica "
                   "(default: %(default)s)")
    p.add_argument("--num-cpus", type=int, default=d.num_cpus, help="CPUs of a local Ray started here (default: all)")


def run(ns) -> int:
    """``framepilot serve`` from parsed arguments."""
    from dataclasses import fields
    c = ServeConfig(**{f.name: getattr(ns, f.name) for f in fields(ServeConfig) if hasattr(ns, f.name)})
    return main(c)
