from checker import participant


def test_example_from_the_instructions():
    """The example from the instructions"""
    result = participant.call("top_words", "The cat and the hat. The end!", 2)
    assert result == [("the", 3), ("and", 1)], f"returned {result!r}"


def test_ties_are_alphabetical():
    """Ties are alphabetical"""
    result = participant.call("top_words", "b a c b a c", 3)
    assert result == [("a", 2), ("b", 2), ("c", 2)], f"returned {result!r}"


def test_punctuation_and_case_are_ignored():
    """Punctuation and case are ignored"""
    result = participant.call("top_words", "Hello, hello! HELLO? (hello)", 1)
    assert result == [("hello", 4)], f"returned {result!r}"


def test_empty_text_gives_no_words():
    """An empty text gives no words"""
    result = participant.call("top_words", "", 3)
    assert result == [], f"returned {result!r}"
