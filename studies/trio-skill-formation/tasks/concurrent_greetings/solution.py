import trio


async def greeter(name, delay, count):
    for i in range(1, count + 1):
        await trio.sleep(delay)
        print(f"hello from {name} ({i})")


async def main():
    with trio.move_on_after(1) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(greeter, "alice", 0.1, 3)
            nursery.start_soon(greeter, "bob", 0.25, 3)
    print("timed out" if scope.cancelled_caught else "done")


if __name__ == "__main__":
    trio.run(main)
