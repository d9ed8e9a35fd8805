"""The HTTP-target dispatcher: claims tasks that carry an `http_request` like a worker, and sends them."""

from tasques.dispatch.dispatcher import Dispatcher, DispatchSettings
from tasques.domain.token_bucket import TokenBucket

__all__ = ["DispatchSettings", "Dispatcher", "TokenBucket"]
