"""Weaviate v4 client: local stack, custom URL, or a cluster with an API key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import dagster as dg
import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout


class WeaviateResource(dg.ConfigurableResource):
    url: str
    grpc_port: int = 50051
    api_key: str | None = None

    @contextmanager
    def client(self) -> Iterator[weaviate.WeaviateClient]:
        parsed = urlparse(self.url)
        secure = parsed.scheme == "https"
        client = weaviate.connect_to_custom(
            http_host=parsed.hostname or "127.0.0.1",
            http_port=parsed.port or (443 if secure else 80),
            http_secure=secure,
            grpc_host=parsed.hostname or "127.0.0.1",
            grpc_port=self.grpc_port,
            grpc_secure=secure,
            auth_credentials=Auth.api_key(self.api_key) if self.api_key else None,
            additional_config=AdditionalConfig(timeout=Timeout(init=30, query=60, insert=120)),
            skip_init_checks=False,
        )
        try:
            yield client
        finally:
            client.close()
