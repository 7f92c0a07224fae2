"""The Ray Serve deployment class: ``WorldModelServer`` with its ``@serve.batch`` (imports Ray; only
``framepilot.serve.build_app`` imports this module, after checking that Ray is installed)."""

from __future__ import annotations

import asyncio

from ray import serve

from framepilot.serve import WorldModelServer


class BatchedWorldModelServer(WorldModelServer):
    """Requests that arrive together (from several agents, or the split rollouts of one decision)
    are gathered into one batch, and the model runs them in a worker thread, one batch at a time, so
    the replica keeps answering ``/v1/info`` and refusing bad tokens while its model works."""

    def __init__(self, config: dict, digest: str, replicas: int):
        super().__init__(config, digest, replicas)
        self._batch.set_max_batch_size(self.config.max_batch_size)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def _batch(self, jobs: list[dict]) -> list:
        return await asyncio.to_thread(self._run_jobs, jobs)
