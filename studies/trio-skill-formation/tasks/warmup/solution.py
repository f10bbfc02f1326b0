from collections import Counter


def top_words(text, n):
    """Return the n most frequent words of text as (word, count) pairs."""
    words = [w.strip(".,;:!?\"'()").lower() for w in text.split()]
    counts = Counter(w for w in words if w)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


if __name__ == "__main__":
    print(top_words("The cat and the hat. The end!", 2))
