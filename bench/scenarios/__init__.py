"""The benchmark scenarios; each has `async def run(ctx, store_kind) -> dict`."""
