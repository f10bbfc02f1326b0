def top_words(text, n):
    """Return the n most frequent words of text as (word, count) pairs."""
    # Your code here
    return []


if __name__ == "__main__":
    print(top_words("The cat and the hat. The end!", 2))
