import trio


class FetchError(Exception):
    pass


async def fetch(item_id):
    await trio.sleep(0.2)
    if item_id % 3 == 0:
        raise FetchError(f"item {item_id} is unavailable")
    return f"item-{item_id}"


async def fetch_all(item_ids):
    results = {}

    async def fetch_one(item_id):
        try:
            results[item_id] = await fetch(item_id)
        except FetchError:
            results[item_id] = "FAILED"

    async with trio.open_nursery() as nursery:
        for item_id in item_ids:
            nursery.start_soon(fetch_one, item_id)
    return results


if __name__ == "__main__":
    print(trio.run(fetch_all, list(range(1, 11))))
