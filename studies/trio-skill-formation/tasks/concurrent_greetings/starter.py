import trio


async def greeter(name, delay, count):
    for i in range(1, count + 1):
        await trio.sleep(delay)
        print(f"hello from {name} ({i})")


async def main():
    # Start both greeters concurrently inside a nursery, under a cancel scope
    # with a deadline one second from now. Then print "done" or "timed out".
    pass


if __name__ == "__main__":
    trio.run(main)
