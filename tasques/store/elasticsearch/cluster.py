"""Facts about the cluster that change how Tasques uses it."""

from __future__ import annotations

from elasticsearch import ApiError as EsApiError
from elasticsearch import AsyncElasticsearch, NotFoundError


async def has_ilm(client: AsyncElasticsearch) -> bool:
    """Whether index lifecycle management is available (it is missing from the integ-test distribution)."""
    try:
        await client.ilm.get_status()
    except NotFoundError:
        return False
    except EsApiError as e:
        # Without the ILM module, the route has no handler: 400/405 rather than 404, depending on version.
        if e.meta.status in (400, 404, 405, 410):
            return False
        raise
    return True


async def node_version(client: AsyncElasticsearch) -> str:
    """The version of a node; `GET /` is not served by every distribution, so ask the nodes API."""
    resp = await client.nodes.info(node_id="_local", metric="_none", filter_path="nodes.*.version")
    nodes = resp.body["nodes"]
    return str(next(iter(nodes.values()))["version"])
