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
    # Fetch every item concurrently; store "FAILED" for items whose fetch raises FetchError.
    return results


if __name__ == "__main__":
    print(trio.run(fetch_all, list(range(1, 11))))
